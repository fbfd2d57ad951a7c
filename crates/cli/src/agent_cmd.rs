//! `portcullis agent`: flags → [`portcullis_agent::Config`], policy loading, logging.

use crate::args::{AgentArgs, OverloadVerdict};
use crate::exit::{AGENT_START, BAD_POLICY, fail};
use crate::load;
use portcullis_agent::Response;
use portcullis_agent::{AgentError, Config};
use std::process::ExitCode;
use std::time::Duration;

/// Before anything else runs: no backtraces (resolving one opens files, which on a watched
/// filesystem would wait for this very process) and a panic hook that prints only a message.
pub fn prepare_process() {
    // SAFETY: called first thing in main, before any other thread exists.
    unsafe {
        std::env::remove_var("RUST_BACKTRACE");
        std::env::remove_var("RUST_LIB_BACKTRACE");
    }
    portcullis_agent::install_quiet_panic_hook();
}

fn host_name() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname").ok().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

pub fn run(a: AgentArgs) -> anyhow::Result<ExitCode> {
    let filter = tracing_subscriber::EnvFilter::try_new(format!("portcullis_agent={0},portcullis={0}", a.log))
        .map_err(|e| fail(2, format!("--log {:?}: {e}; use error, warn, info or debug", a.log)))?;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();

    // Load once here so that a bad policy fails before anything is marked, with file:line:col.
    let loaded = load::policy(&a.policy)?;
    let computer = a
        .computer
        .clone()
        .or_else(|| host_name().filter(|h| loaded.set.computers.iter().any(|c| c.name.eq_ignore_ascii_case(h))));
    let policy_path = std::fs::canonicalize(&a.policy)
        .map_err(|e| fail(crate::exit::UNREADABLE, format!("{}: {e}", a.policy.display())))?;

    let mut excluded: Vec<String> = portcullis_agent::mounts::DEFAULT_EXCLUDED.iter().map(|s| s.to_string()).collect();
    excluded.extend(a.exclude_fstype.iter().cloned());
    let mut interpreters = portcullis_agent::default_interpreters();
    interpreters.extend(a.interpreters.iter().cloned());
    let scope = if a.mark_under.is_empty() {
        portcullis_agent::mounts::Scope::All
    } else {
        let mut roots = Vec::new();
        for d in &a.mark_under {
            roots.push(
                std::fs::canonicalize(d)
                    .map_err(|e| fail(AGENT_START, format!("--mark-under {}: {e}", d.display())))?,
            );
        }
        portcullis_agent::mounts::Scope::Under(roots)
    };
    let config = Config {
        policy: policy_path,
        computer,
        scope,
        excluded_fstypes: excluded,
        spool: portcullis_agent::spool::SpoolConfig {
            dir: a.spool.clone(),
            max_file_bytes: a.spool_file_mib.max(1) << 20,
            max_files: a.spool_files.max(1),
        },
        workers: a.workers.max(1),
        answer_timeout: Duration::from_millis(a.answer_timeout_ms.max(1)),
        overload: match a.overload {
            OverloadVerdict::Allow => Response::Allow,
            OverloadVerdict::Deny => Response::Deny,
        },
        interpreters,
        protect: !a.no_protect,
        exit_after: a.exit_after.map(Duration::from_secs),
        ready_file: a.ready_file.clone(),
        cache_capacity: 1 << 20,
    };
    let loader = |path: &std::path::Path| -> Result<portcullis_policy::Engine, String> {
        let loaded = load::policy(path).map_err(|e| e.to_string())?;
        load::engine(loaded.set).map_err(|e| e.to_string())
    };
    match portcullis_agent::run(config, &loader) {
        Ok(summary) => {
            let s = &summary.stats;
            let n = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
            let answers = n(&s.worker_answers).max(1);
            tracing::info!(
                "stopped: {} events ({} own), {} judged as code, {} denied, {} overload, {} files hashed, {} ignore marks; mean {:.1} µs judging, {:.1} µs from read to answer",
                n(&s.events),
                n(&s.own),
                n(&s.judged),
                n(&s.denied),
                n(&s.overload),
                n(&s.hashed),
                n(&s.ignore_marks),
                n(&s.judge_ns) as f64 / answers as f64 / 1e3,
                n(&s.answer_ns) as f64 / answers as f64 / 1e3
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e @ (AgentError::Policy(_) | AgentError::Computer(_))) => Err(fail(BAD_POLICY, e.to_string())),
        Err(e) => Err(fail(AGENT_START, e.to_string())),
    }
}
