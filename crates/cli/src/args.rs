//! Command-line flags. This surface is a public contract: keep it stable.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "portcullis", version, about = "Application control: scan files and installers, extract hashes, check policies.", long_about = None)]
#[command(after_help = "Exit status: 0 success; 1 internal error; 2 bad command line; 3 a file could not be read; \
4 the policy file is invalid; 5 lint found warnings; 6 the agent could not start; 7 the server could not start; \
8 the agent refused a policy that would lock the host out; 10 `check` denied at least one file.")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Inspect files, folders and installers: hashes, format, VERSIONINFO, signatures, MSI/CAB contents.
    Scan(ScanArgs),
    /// Work with hash lists.
    Hashes {
        #[command(subcommand)]
        command: HashesCommand,
    },
    /// Would these files run? Prints each verdict with its one-line reason.
    Check(CheckArgs),
    /// Validate and inspect policy files.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Enforce a policy on this Linux host with fanotify (root; runs in the foreground).
    Agent(Box<AgentArgs>),
    /// Show the agent's denies, would-denies and learning candidates from its spool.
    Events(EventsArgs),
    /// Enter an offline bypass code from the console: Monitor mode for the time it gives
    /// (root; the agent must run with --server).
    Bypass(BypassArgs),
    /// Ask for a denied program: the request goes to the console's approvers; `--status`
    /// shows their decisions (root; the agent must run with --server).
    Request(RequestArgs),
    /// Run the management server (REST API; console and agent sync to follow).
    Server(ServerArgs),
    /// Export a group's policy for the engine another system trusts (AppLocker, App Control,
    /// Santa, fapolicyd), with a report on every rule: exported, approximated or not
    /// expressible.
    Export(ExportArgs),
    /// Import what another engine enforces (AppLocker XML, App Control XML, Santa rules,
    /// fapolicyd rules or trust) as Portcullis applications and policies, with a report on
    /// every rule.
    Import(ImportArgs),
    /// Write the manual pages into a directory (for packagers): man1/portcullis.1 and one page
    /// per command, man8/portcullis-agent.8.
    #[command(hide = true)]
    Man(ManArgs),
}

#[derive(Args)]
pub struct ManArgs {
    /// The directory (man1/ and man8/ are made in it).
    pub out: PathBuf,
}

#[derive(Args)]
pub struct ImportArgs {
    /// The engine the file is from: applocker, appcontrol, santa or fapolicyd.
    #[arg(value_parser = ["applocker", "appcontrol", "santa", "fapolicyd"])]
    pub format: String,
    /// The file (`Get-AppLockerPolicy -Xml`, a SiPolicy XML, `santactl rule --export`, a
    /// fapolicyd rules or trust file).
    pub file: PathBuf,
    /// What the names of the applications and policies made start with.
    #[arg(long, default_value = "Imported")]
    pub prefix: String,
    /// Write the applications and policies as a policy file (TOML) here, to review and merge.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// The report (and the document) as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct ExportArgs {
    /// The engine: applocker, appcontrol, santa or fapolicyd.
    #[arg(value_parser = ["applocker", "appcontrol", "santa", "fapolicyd"])]
    pub format: String,
    /// The policy file (TOML or YAML).
    #[arg(long)]
    pub policy: PathBuf,
    /// The group whose computers the export is for (a path: `Workstations/Finance`); without
    /// it, computers in no group.
    #[arg(long)]
    pub group: Option<String>,
    /// Write the engine's files into this directory (created if missing); without it they
    /// are only reported.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// The report as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Export as of this time (RFC 3339 or a date) instead of now: expiries and deadlines.
    #[arg(long)]
    pub at: Option<String>,
    /// fapolicyd only: files or folders (walked) on this computer to judge as `portcullis
    /// check` does; each one the group's policy permits by a rule fapolicyd's rules cannot
    /// express is pinned by path, size and SHA-256 in `trust.d/40-portcullis.trust`.
    /// Repeatable.
    #[arg(long, value_name = "PATH")]
    pub trust_from: Vec<PathBuf>,
    /// With --trust-from: trust no installed package (as `check --no-package-trust`).
    #[arg(long)]
    pub no_package_trust: bool,
}

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ServerArgs {
    #[command(subcommand)]
    pub command: Option<ServerCommand>,
    /// The database: sqlite://PATH (created on first start) or postgres://USER:PASSWORD@HOST/DB.
    #[arg(
        long,
        global = true,
        env = "PORTCULLIS_DATABASE_URL",
        default_value = "sqlite:///var/lib/portcullis/server.db"
    )]
    pub database_url: String,
    /// Address to listen on.
    #[arg(long, env = "PORTCULLIS_LISTEN", default_value = "127.0.0.1:8443")]
    pub listen: String,
    /// Serve Prometheus metrics at http://ADDR:PORT/metrics, apart from the console (plain
    /// HTTP, no login: keep it on loopback or a management network) [default: none].
    #[arg(long, value_name = "ADDR:PORT", env = "PORTCULLIS_METRICS_LISTEN")]
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Let organizations forward events to loopback, private and other internal addresses
    /// (refused by default: a destination is an organization admin's input, and the server
    /// would connect wherever it points).
    #[arg(long, env = "PORTCULLIS_FORWARD_TO_PRIVATE")]
    pub forward_to_private: bool,
    /// TLS certificate (PEM). Without it, one is generated on first start into --tls-dir.
    #[arg(long, env = "PORTCULLIS_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, env = "PORTCULLIS_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
    /// Where the generated certificate is kept.
    #[arg(long, env = "PORTCULLIS_TLS_DIR", default_value = "/var/lib/portcullis/tls")]
    pub tls_dir: std::path::PathBuf,
    /// Serve plain HTTP (behind a TLS-terminating proxy only).
    #[arg(long, conflicts_with_all = ["tls_cert", "tls_key"])]
    pub plain_http: bool,
    /// The server's secret keys, which seal the organizations' bundle signing keys in the
    /// database: one per line, the first seals, all unseal; readable by the server only.
    /// Default: the PORTCULLIS_SECRET_KEY environment variable (keys separated by commas),
    /// else, with SQLite, secret.key beside the database (made on first start). With
    /// PostgreSQL give one, the same on every server.
    #[arg(long, global = true, value_name = "FILE", env = "PORTCULLIS_SECRET_KEY_FILE")]
    pub secret_key_file: Option<PathBuf>,
    /// Log level on stderr: error, warn, info, debug.
    #[arg(long, global = true, env = "PORTCULLIS_LOG", default_value = "info")]
    pub log: String,
}

#[derive(Subcommand)]
pub enum ServerCommand {
    /// Create an organization (if new) and its first admin; the password is read from stdin.
    CreateAdmin {
        /// The organization.
        #[arg(long)]
        organization: String,
        /// The admin's user name.
        #[arg(long)]
        user: String,
    },
    /// Put a new secret key first in --secret-key-file (made if missing, mode 0600): the next
    /// start seals every bundle signing key with it. Then the older keys can be removed.
    NewSecretKey {
        /// Several servers share the database: add the key second (it unseals, it does not
        /// seal yet). Copy the file to every server and restart each; then
        /// `promote-secret-key` and restart again. No server is ever given a seed it cannot open.
        #[arg(long)]
        standby: bool,
    },
    /// Put the second key of --secret-key-file first (after `new-secret-key --standby` has
    /// reached every server): the next start seals with it.
    PromoteSecretKey,
    /// Copy the SQLite database into FILE (a new file, 0600) while the server runs: a
    /// consistent copy as of one moment. The secret key is not in it: keep a copy of that
    /// apart. For PostgreSQL use pg_dump (see the README).
    Backup {
        /// Where to write the copy (must not exist).
        file: PathBuf,
    },
    /// Put a backup in place of the SQLite database (the server stopped; the database it
    /// replaces is kept beside it), and move every organization's model version past
    /// anything its agents hold, so that they take the restored policy. With
    /// --versions-only, only that (after `pg_restore` into PostgreSQL).
    Restore {
        /// The backup made by `portcullis server backup`.
        #[arg(required_unless_present = "versions_only", conflicts_with = "versions_only")]
        file: Option<PathBuf>,
        /// Only continue the model versions of the database as it is (after pg_restore).
        #[arg(long)]
        versions_only: bool,
    },
    /// Give an organization a new bundle signing key that no earlier key endorses, when its
    /// key cannot be opened (a lost secret key, a damaged or forged row) or must not be
    /// trusted any more. Enrolled agents keep their last policy and report newer bundles as
    /// refused until they enroll again.
    ResetBundleKey {
        /// The organization.
        #[arg(long)]
        organization: String,
    },
}

#[derive(Args)]
pub struct AgentArgs {
    /// The policy file (TOML or YAML) to enforce; SIGHUP reads it again.
    #[arg(long, env = "PORTCULLIS_POLICY", required_unless_present = "server", conflicts_with = "server")]
    pub policy: Option<PathBuf>,
    /// Take the policy from this Portcullis server (https://HOST:PORT): enroll on first start,
    /// then follow its signed bundles and deliver events to it. The last bundle is kept in
    /// --state-dir and enforced while the server cannot be reached.
    #[arg(long, value_name = "URL", env = "PORTCULLIS_SERVER")]
    pub server: Option<String>,
    /// The enrollment token of the computer group to join (first start; given again, enrolls
    /// anew, proving the current credential). Any local user can read a command line in /proc:
    /// prefer --enroll-token-file or the PORTCULLIS_ENROLL_TOKEN environment variable.
    #[arg(long, value_name = "TOKEN", requires = "server", conflicts_with = "enroll_token_file")]
    pub enroll_token: Option<String>,
    /// Read the enrollment token from this file (e.g. one only root can read).
    #[arg(long, value_name = "FILE", env = "PORTCULLIS_ENROLL_TOKEN_FILE", requires = "server")]
    pub enroll_token_file: Option<PathBuf>,
    /// Allow a plain http:// server URL (the token, the credential and the bundle key then
    /// cross the network in the clear): for tests on loopback only.
    #[arg(long, requires = "server")]
    pub insecure_http: bool,
    /// The CA certificate (PEM) that signed the server's certificate, e.g. the server's
    /// self-signed cert.pem. Default: the Mozilla roots.
    #[arg(long, value_name = "PEM", env = "PORTCULLIS_SERVER_CA", requires = "server")]
    pub server_ca: Option<PathBuf>,
    /// Where the enrollment, the last bundle and the delivery cursor are kept.
    #[arg(long, value_name = "DIR", env = "PORTCULLIS_STATE_DIR", default_value = "/var/lib/portcullis-agent")]
    pub state_dir: PathBuf,
    /// Where users who are not root read their own denies and leave approval requests
    /// (`portcullis request` as any user; with --server).
    #[arg(long, value_name = "DIR", default_value = "/run/portcullis")]
    pub user_dir: PathBuf,
    /// Decide as this computer of the policy (default: this host's name if the policy lists it,
    /// else the organization's defaults).
    #[arg(long)]
    pub computer: Option<String>,
    /// Watch only filesystems mounted at or below DIR (repeatable), including ones mounted
    /// there later. Default: every filesystem that can hold programs.
    #[arg(long = "mark-under", value_name = "DIR")]
    pub mark_under: Vec<PathBuf>,
    /// Also skip this filesystem type (repeatable), besides the built-in pseudo filesystems.
    #[arg(long = "exclude-fstype", value_name = "TYPE")]
    pub exclude_fstype: Vec<String>,
    /// Directory of the event spool.
    #[arg(long, env = "PORTCULLIS_SPOOL", default_value = "/var/lib/portcullis-agent/events")]
    pub spool: PathBuf,
    /// Rotate a spool file at this many MiB.
    #[arg(long, default_value_t = 16)]
    pub spool_file_mib: u64,
    /// Keep at most this many spool files.
    #[arg(long, default_value_t = 16)]
    pub spool_files: usize,
    /// Shared worker threads for slow files (each CPU also gets a responder and a worker of its own).
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// Answer any event not judged within this many milliseconds with the overload verdict.
    #[arg(long, default_value_t = 5000)]
    pub answer_timeout_ms: u64,
    /// The verdict for events that cannot be judged in time or at all: plain reads, and
    /// every event outside Secured mode and Installation windows.
    #[arg(long, value_enum, default_value = "allow")]
    pub overload: OverloadVerdict,
    /// The verdict, in Secured mode and Installation windows, for an exec or a library load
    /// that cannot be judged in time or at all (a program padded to gigabytes): code fails
    /// closed.
    #[arg(long, value_enum, default_value = "deny")]
    pub overload_code: OverloadVerdict,
    /// Do not load the kernel guard (the BPF exec tracepoint that stops programs started from
    /// a filesystem the agent does not watch yet, and, where BPF LSM loads, executable
    /// mappings of unapproved content).
    #[arg(long)]
    pub no_guard: bool,
    /// Enforce a whole-system Secured policy even when it would deny the host's essentials
    /// (init, the shells, the package manager, sshd, sudo, the agent itself, and their ELF
    /// interpreter). Without it such a policy is refused (exit status 8 at start; on a reload
    /// the old policy stays) and the files are named.
    #[arg(long)]
    pub force_secured: bool,
    /// The root whose package database (dpkg) the agent trusts: a file is part of a package
    /// (`package = "dpkg:openssh-server"`, the built-in "Distribution packages") only when
    /// the package lists it and its content matches the package's md5sums. `/` for the host;
    /// a container's or chroot's root for theirs.
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub package_root: PathBuf,
    /// Trust no package database.
    #[arg(long)]
    pub no_package_trust: bool,
    /// A program that maps other programs itself (repeatable), in addition to the ones found
    /// on this host: valgrind's tools, qemu-user, box64/box86. An ELF program such a process
    /// opens is judged as code; copies are known by content.
    #[arg(long = "self-loader", value_name = "PATH")]
    pub self_loaders: Vec<PathBuf>,
    /// An extra script interpreter (repeatable); shells, Python, Perl, Ruby, Node, PHP, Lua,
    /// Tcl and awk in /usr/bin, /bin and /usr/local/bin are found by themselves.
    #[arg(long = "interpreter", value_name = "PATH")]
    pub interpreters: Vec<PathBuf>,
    /// Do not make the agent's binary and policy file immutable while it runs.
    #[arg(long)]
    pub no_protect: bool,
    /// Serve Prometheus metrics at http://ADDR:PORT/metrics (plain HTTP, no login: keep it on
    /// loopback or a management network) [default: no endpoint].
    #[arg(long, value_name = "ADDR:PORT", env = "PORTCULLIS_METRICS_LISTEN")]
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// DNS server (address:port) the agent asks for ringfence domains [default: the first
    /// nameserver in /etc/resolv.conf, port 53].
    #[arg(long, value_name = "ADDR:PORT")]
    pub resolver: Option<std::net::SocketAddr>,
    /// Stop after this many seconds (for tests and trials).
    #[arg(long, value_name = "SECONDS")]
    pub exit_after: Option<u64>,
    /// Write the agent's pid to this file once every filesystem is watched.
    #[arg(long, value_name = "PATH")]
    pub ready_file: Option<PathBuf>,
    /// Log level: error, warn, info, debug.
    #[arg(long, env = "PORTCULLIS_LOG", default_value = "info")]
    pub log: String,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum OverloadVerdict {
    Allow,
    Deny,
}

#[derive(Args)]
pub struct RequestArgs {
    /// The denied file: its path, or the start of its SHA-256 (8 hex digits at least).
    #[arg(conflicts_with_all = ["last", "status"])]
    pub event: Option<String>,
    /// The last program denied here.
    #[arg(long, conflicts_with = "status")]
    pub last: bool,
    /// Why it is needed (what the approvers read).
    #[arg(long, required_unless_present = "status")]
    pub reason: Option<String>,
    /// Show how the requests made here were decided instead.
    #[arg(long)]
    pub status: bool,
    /// The agent's event spool (its --spool).
    #[arg(long, value_name = "DIR", env = "PORTCULLIS_SPOOL", default_value = "/var/lib/portcullis-agent/events")]
    pub spool: PathBuf,
    /// The agent's state directory (its --state-dir).
    #[arg(long, value_name = "DIR", env = "PORTCULLIS_STATE_DIR", default_value = "/var/lib/portcullis-agent")]
    pub state_dir: PathBuf,
    /// The agent's user directory (its --user-dir), used by users who are not root.
    #[arg(long, value_name = "DIR", default_value = "/run/portcullis")]
    pub user_dir: PathBuf,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct BypassArgs {
    /// The code, as the console shows it (12-60-493821-ABCD-EFGH-JKMN-PQRS).
    #[arg(required_unless_present = "status")]
    pub code: Option<String>,
    /// Show whether a bypass is in force instead.
    #[arg(long, conflicts_with = "code")]
    pub status: bool,
    /// The agent's state directory (its --state-dir).
    #[arg(long, value_name = "DIR", env = "PORTCULLIS_STATE_DIR", default_value = "/var/lib/portcullis-agent")]
    pub state_dir: PathBuf,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// How long to wait for the agent to take the code, in seconds.
    #[arg(long, default_value_t = 10)]
    pub wait: u64,
}

#[derive(Args)]
pub struct EventsArgs {
    /// Directory of the event spool.
    #[arg(long, env = "PORTCULLIS_SPOOL", default_value = "/var/lib/portcullis-agent/events")]
    pub spool: PathBuf,
    /// Keep printing new events as they arrive.
    #[arg(long, short)]
    pub follow: bool,
    /// Print the spool's JSON lines as they are.
    #[arg(long)]
    pub json: bool,
    /// Only the last N events (before following).
    #[arg(long, short = 'n')]
    pub last: Option<usize>,
    /// Only events of this kind: deny, would-deny, candidate, overload, ringfence-deny,
    /// ringfence-would-deny.
    #[arg(long, value_parser = event_kind)]
    pub only: Option<portcullis_events::EventKind>,
}

/// An event kind by its name, every kind the schema has.
fn event_kind(text: &str) -> Result<portcullis_events::EventKind, String> {
    portcullis_events::EventKind::from_name(text).ok_or_else(|| {
        let names: Vec<&str> = portcullis_events::EventKind::ALL.iter().map(|k| k.name()).collect();
        format!("use one of: {}", names.join(", "))
    })
}

#[derive(Subcommand)]
pub enum HashesCommand {
    /// Extract MD5, SHA-1 and SHA-256 hashes from any text (a report, a CSV, a vendor table).
    Extract(ExtractArgs),
}

#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Report unreachable or shadowed policies, permits above the denies they override, and unused pieces.
    Lint(PolicyArgs),
    /// Validate a policy file and show the order in which policies are evaluated.
    Compile(PolicyArgs),
    /// List the built-in applications that policies can name.
    Apps(AppsArgs),
}

#[derive(Args)]
pub struct ScanArgs {
    /// Files or folders to scan (folders are walked recursively; symlinks are not followed).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    pub json: bool,
    /// PEM file of trusted root certificates; signatures are then judged against it.
    #[arg(long, value_name = "PEM")]
    pub trust_store: Option<PathBuf>,
    /// Also compute flat SHA-1 and MD5.
    #[arg(long)]
    pub all_hashes: bool,
    /// Worker threads (default: one per core).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum ExtractFormat {
    /// One lower-case hash per line.
    Plain,
    /// One JSON document with hashes, counts and what was skipped.
    Json,
    /// A blocklist package for a policy file (TOML).
    Package,
}

#[derive(Args)]
pub struct ExtractArgs {
    /// Text file to read; `-` or nothing reads standard input.
    pub input: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "plain")]
    pub format: ExtractFormat,
    /// Package name (with --format package).
    #[arg(long, default_value = "Imported hashes")]
    pub name: String,
    /// Approve the package at this scope (with --format package): `organization`, `group:<path>`, `computer:<name>`.
    #[arg(long, value_name = "SCOPE")]
    pub approve: Vec<String>,
}

#[derive(Args)]
pub struct CheckArgs {
    /// The policy file (TOML or YAML).
    #[arg(long, value_name = "POLICY")]
    pub policy: PathBuf,
    /// Files to decide on.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// One JSON object per line.
    #[arg(long)]
    pub json: bool,
    /// Decide as this computer of the policy file (default: organization-wide policies and mode).
    #[arg(long, value_name = "NAME")]
    pub computer: Option<String>,
    /// Path of the process that would start or load the files.
    #[arg(long, value_name = "PATH")]
    pub parent: Option<String>,
    /// User the process would run as.
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    /// Decide as of this moment (RFC 3339 or YYYY-MM-DD) instead of now.
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,
    /// PEM file of trusted root certificates, for rules that require a verified signature.
    #[arg(long, value_name = "PEM")]
    pub trust_store: Option<PathBuf>,
    /// Also decide on each file inside installers and cabinets.
    #[arg(long)]
    pub contents: bool,
    /// The root whose package database (dpkg, rpm) is trusted, as the agent's
    /// --package-root: a file counts as a package's only when it is listed and unchanged.
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub package_root: PathBuf,
    /// Trust no package database.
    #[arg(long)]
    pub no_package_trust: bool,
}

#[derive(Args)]
pub struct PolicyArgs {
    /// The policy file (TOML or YAML).
    pub policy: PathBuf,
    /// JSON output.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct AppsArgs {
    /// JSON output.
    #[arg(long)]
    pub json: bool,
}
