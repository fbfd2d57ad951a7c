//! `portcullis`: the command line. Parses flags, runs the command, maps failures to the
//! documented exit codes. The work lives in the library crates.

mod agent_cmd;
mod args;
mod bypass_cmd;
mod check;
mod events_cmd;
mod exit;
mod export_cmd;
mod hashes;
mod load;
mod man_cmd;
mod policy_cmd;
mod record;
mod request_cmd;
mod scan;
mod server_cmd;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args = args::Cli::parse();
    if matches!(args.command, args::Command::Agent(_)) {
        agent_cmd::prepare_process();
    }
    match run(args) {
        Ok(code) => code,
        Err(err) => {
            let code = exit::code_of(&err);
            eprintln!("error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            code
        }
    }
}

fn run(cli: args::Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        args::Command::Scan(a) => scan::run(a),
        args::Command::Hashes { command: args::HashesCommand::Extract(a) } => hashes::extract(a),
        args::Command::Check(a) => check::run(a),
        args::Command::Export(a) => export_cmd::run(a),
        args::Command::Import(a) => export_cmd::import(a),
        args::Command::Policy { command } => match command {
            args::PolicyCommand::Lint(a) => policy_cmd::lint(a),
            args::PolicyCommand::Compile(a) => policy_cmd::compile(a),
            args::PolicyCommand::Apps(a) => policy_cmd::apps(a),
        },
        args::Command::Agent(a) => agent_cmd::run(*a),
        args::Command::Events(a) => events_cmd::run(a),
        args::Command::Bypass(a) => bypass_cmd::run(a),
        args::Command::Request(a) => request_cmd::run(a),
        args::Command::Server(a) => server_cmd::run(a),
        args::Command::Man(a) => man_cmd::run(a),
    }
}

/// Log to stderr at `level` (error, warn, info, debug) for every Portcullis crate: the agent
/// and the server share one format.
pub fn log_to_stderr(level: &str) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(format!("portcullis={level}"))
        .map_err(|e| crate::exit::fail(2, format!("--log {level:?}: {e}; use error, warn, info or debug")))?;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
    Ok(())
}
