//! `portcullis agent`: flags → [`portcullis_agent::Config`], policy loading, logging.

use crate::args::{AgentArgs, OverloadVerdict};
use crate::exit::{AGENT_START, BAD_POLICY, OrExit, fail};
use crate::load;
use portcullis_agent::Response;
use portcullis_agent::{AgentError, Config};
use portcullis_protocol::PolicyHit;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
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

type Loader = Box<dyn Fn(&Path) -> Result<portcullis_policy::Engine, portcullis_agent::LoadError> + Send + Sync>;

/// Where the policy comes from: a file, or a server's bundles.
struct Source {
    policy: PathBuf,
    computer: Option<String>,
    loader: Loader,
    sync: Option<ServerSync>,
    bypass: Option<portcullis_agent::bypass::BypassConfig>,
    /// Where Installation windows keep their captures until the server has them.
    captures: Option<Arc<portcullis_agent::install::Captures>>,
    /// Where users who are not root leave approval requests.
    user_box: Option<Arc<portcullis_agent::userbox::UserBox>>,
}

/// The threads that follow the server.
struct ServerSync {
    poller: portcullis_sync::Poller,
    uploader: portcullis_sync::Uploader,
    /// Events the spool could not keep: counted by the agent, reported by the poller.
    events_lost: Arc<std::sync::atomic::AtomicU64>,
}

impl ServerSync {
    fn start(
        self,
        hits: Arc<portcullis_agent::PolicyHits>,
        inventory: Arc<portcullis_agent::PackageInventory>,
        captures: Arc<portcullis_agent::install::Captures>,
    ) {
        let (take, back) = (hits.clone(), hits);
        let counters = portcullis_sync::HitCounters {
            take: Box::new(move || take.take()),
            restore: Box::new(move |h: Vec<PolicyHit>| back.restore(h)),
        };
        let (take, back) = (inventory.clone(), inventory);
        let packages = portcullis_sync::PackageReports {
            take: Box::new(move || {
                take.take().map(|list| portcullis_protocol::PackageReport {
                    packages: list
                        .into_iter()
                        .map(|p| portcullis_protocol::InstalledPackage {
                            name: p.name,
                            version: p.version,
                            arch: p.architecture,
                        })
                        .collect(),
                })
            }),
            restore: Box::new(move |r: portcullis_protocol::PackageReport| {
                back.restore(
                    r.packages
                        .into_iter()
                        .map(|p| portcullis_packages::Package {
                            name: p.name,
                            version: p.version,
                            architecture: p.arch,
                        })
                        .collect(),
                )
            }),
        };
        let (send, ack) = (captures.clone(), captures.clone());
        let captured = portcullis_sync::CaptureQueue {
            take: Box::new(move || send.unsent(portcullis_protocol::limits::CAPTURES)),
            done: Box::new(move |files, version| match version {
                Some(v) => ack.acknowledged(&files, v),
                None => ack.refused(&files),
            }),
        };
        // The agent's main loop reloads on SIGHUP, as for a policy file; the captures the
        // bundle carries are forgotten once it is loaded.
        let reload = move |version: i64| {
            captures.bundle_seen(version);
            // SAFETY: kill(2) on our own pid with a signal the agent blocks and waits for.
            unsafe {
                libc::kill(libc::getpid(), libc::SIGHUP);
            }
        };
        let (poller, uploader) = (self.poller, self.uploader);
        // The sync threads must not take the agent's signals (SIGHUP's default ends the process).
        portcullis_agent::block_handled_signals();
        let _ = std::thread::Builder::new().name("sync-poll".into()).spawn(move || poller.run(reload));
        let _ = std::thread::Builder::new()
            .name("sync-upload".into())
            .spawn(move || uploader.run(counters, packages, captured));
    }
}

/// Judge policies at the server's time: the difference kept from the last run at once, then
/// the one measured at each answer (kept again when it moves).
fn follow_server_clock(poller: &mut portcullis_sync::Poller, state: &Path) {
    use portcullis_agent::clock;
    let kept = clock::load(state);
    if kept != 0 {
        clock::set_offset(kept);
        tracing::warn!(
            "judging policies at the server's time: this computer's clock is {} (kept from the last run)",
            skew_text(kept)
        );
    }
    let state = state.to_owned();
    poller.on_server_time(move |server_s| {
        let offset = clock::offset_between(server_s, clock::local_s());
        if clock::set_offset(offset) {
            if offset == 0 {
                tracing::info!("this computer's clock agrees with the server's again");
            } else {
                tracing::warn!(
                    "this computer's clock is {}; expiries, Learning and Installation deadlines and bypass codes follow \
                     the server's time",
                    skew_text(offset)
                );
            }
            if let Err(e) = clock::save(&state, offset) {
                tracing::warn!("keeping the clock difference in {}: {e}", state.display());
            }
        }
    });
}

/// "3600 s behind the server's" / "… ahead of …".
fn skew_text(offset: i64) -> String {
    if offset > 0 {
        format!("{offset} s behind the server's")
    } else {
        format!("{} s ahead of the server's", offset.unsigned_abs())
    }
}

/// This agent's key for offline bypass codes: made once (random), kept in the state directory
/// for root only, sent to the server at each start.
fn bypass_key(state: &Path) -> anyhow::Result<[u8; 32]> {
    use portcullis_agent::bypass::KEY_FILE;
    let path = state.join(KEY_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let key = portcullis_protocol::BypassKey { key: text.trim().to_owned() };
            key.bytes().ok_or_else(|| {
                fail(AGENT_START, format!("{} is not 64 hex digits: remove it to make a new key", path.display()))
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut key = [0u8; 32];
            getrandom::fill(&mut key)
                .map_err(|e| fail(AGENT_START, format!("no randomness for the bypass key: {e}")))?;
            let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
            portcullis_agent::bypass::write_private(&path, hex.as_bytes())
                .or_exit(AGENT_START, format!("writing {}", path.display()))?;
            Ok(key)
        }
        Err(e) => Err(e).or_exit(AGENT_START, format!("reading {}", path.display())),
    }
}

fn file_source(a: &AgentArgs) -> anyhow::Result<Source> {
    let policy = a.policy.as_ref().ok_or_else(|| fail(2, "give --policy FILE or --server URL"))?;
    // Load once here so that a bad policy fails before anything is marked, with file:line:col.
    let loaded = load::policy(policy)?;
    let computer = a
        .computer
        .clone()
        .or_else(|| host_name().filter(|h| loaded.set.computers.iter().any(|c| c.name.eq_ignore_ascii_case(h))));
    let policy = std::fs::canonicalize(policy).or_exit(crate::exit::UNREADABLE, policy.display().to_string())?;
    let loader: Loader = Box::new(|path: &Path| Ok(load::engine(load::policy(path)?.set)?));
    // With a policy file, captures last as long as the agent (the spool has their events).
    Ok(Source { policy, computer, loader, sync: None, bypass: None, captures: None, user_box: None })
}

/// The environment variable an enrollment token may be given in.
pub const ENROLL_TOKEN_ENV: &str = "PORTCULLIS_ENROLL_TOKEN";

/// The enrollment token: from --enroll-token, --enroll-token-file or the environment.
fn enroll_token(a: &AgentArgs) -> anyhow::Result<Option<String>> {
    if let Some(t) = &a.enroll_token {
        tracing::warn!("--enroll-token is readable by every local user in /proc; prefer --enroll-token-file");
        return Ok(Some(t.trim().to_owned()));
    }
    if let Some(path) = &a.enroll_token_file {
        let text = std::fs::read_to_string(path)
            .or_exit(crate::exit::UNREADABLE, format!("--enroll-token-file {}", path.display()))?;
        let token = text.trim();
        if token.is_empty() {
            return Err(fail(2, format!("--enroll-token-file {}: the file is empty", path.display())));
        }
        return Ok(Some(token.to_owned()));
    }
    Ok(std::env::var(ENROLL_TOKEN_ENV).ok().map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()))
}

/// Parse a verified bundle's policy with the agent's loader and build its engine.
fn bundle_engine(verified: &portcullis_sync::Verified) -> Result<portcullis_policy::Engine, portcullis_sync::Cause> {
    Ok(portcullis_policy_file::compile(&verified.policy_json, portcullis_policy_file::Format::Json)?)
}

/// Enroll if needed, make sure a verified bundle is on disk, and prepare the sync threads.
fn server_source(a: &AgentArgs, server: &str) -> anyhow::Result<Source> {
    portcullis_sync::check_server_url(server, a.insecure_http).map_err(|e| fail(2, e.to_string()))?;
    let state = &a.state_dir;
    std::fs::create_dir_all(state).or_exit(AGENT_START, format!("--state-dir {}", state.display()))?;
    let ca_pem = match &a.server_ca {
        Some(p) => {
            Some(std::fs::read_to_string(p).or_exit(crate::exit::UNREADABLE, format!("--server-ca {}", p.display()))?)
        }
        None => None,
    };
    let host = portcullis_sync::host_facts(env!("CARGO_PKG_VERSION"));
    let saved_enrollment =
        portcullis_sync::Enrollment::load(state).or_exit(AGENT_START, "the saved enrollment cannot be read")?;
    let enrollment = match (saved_enrollment, enroll_token(a)?) {
        (current, Some(token)) => {
            let e = portcullis_sync::enroll(server, ca_pem.as_deref(), &token, &host, current.as_ref())
                .or_exit(AGENT_START, "enrollment failed")?;
            e.save(state).or_exit(AGENT_START, "the enrollment cannot be saved")?;
            if e.pending {
                tracing::warn!(
                    "the name {:?} is taken in organization {:?}: this enrollment waits for an administrator to accept it (console: Computers → Pending enrollments)",
                    e.computer,
                    e.organization
                );
            } else {
                tracing::info!("enrolled as {:?} in organization {:?}", e.computer, e.organization);
            }
            e
        }
        (Some(e), None) => e,
        (None, None) => {
            return Err(fail(
                AGENT_START,
                format!(
                    "this agent is not enrolled yet ({} has no {}): give --enroll-token-file with a token from the console (Computers → group → enrollment token), or set {ENROLL_TOKEN_ENV}",
                    state.display(),
                    portcullis_sync::ENROLLMENT_FILE
                ),
            ));
        }
    };
    let bundle_path = state.join(portcullis_sync::BUNDLE_FILE);
    // The saved bundle is enforced only if it still verifies, is this computer's and loads.
    let saved = match portcullis_sync::load_bundle(&bundle_path, &enrollment).and_then(|v| {
        bundle_engine(&v)
            .map(|_| v.version)
            .map_err(|error| portcullis_sync::SyncError::Load { version: v.version, error })
    }) {
        Ok(v) => Some(v),
        Err(portcullis_sync::SyncError::File { error, .. }) if error.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            tracing::warn!("the saved bundle is refused ({}); fetching a new one", portcullis_policy::with_causes(&e));
            None
        }
    };
    let check: portcullis_sync::BundleCheck = Box::new(|v| bundle_engine(v).map(|_| ()));
    let mut poller = portcullis_sync::Poller::new(enrollment.clone(), state, saved.unwrap_or(0), host, check)
        .or_exit(AGENT_START, "cannot follow the server")?;
    follow_server_clock(&mut poller, state);
    if saved.is_none() {
        // Nothing to enforce yet: the first bundle must come now (after an administrator
        // accepted a pending enrollment, if it is one).
        let mut said_pending = false;
        loop {
            match poller.poll_once(std::time::Duration::ZERO) {
                Ok(Some(v)) => {
                    tracing::info!("policy bundle version {} received", v.version);
                    break;
                }
                Ok(None) => return Err(fail(AGENT_START, format!("{server} sent no policy bundle"))),
                Err(e) if e.is_pending() => {
                    if !said_pending {
                        tracing::warn!("waiting for an administrator to accept this enrollment in the console");
                        said_pending = true;
                    }
                    std::thread::sleep(std::time::Duration::from_secs(2));
                }
                Err(e) => {
                    return Err(e).or_exit(AGENT_START, "no saved policy bundle and none from the server");
                }
            }
        }
    }
    let bypass_key = bypass_key(state).or_exit(AGENT_START, "the offline bypass key cannot be kept")?;
    let mut uploader = portcullis_sync::Uploader::new(enrollment.clone(), &a.spool, state)
        .or_exit(AGENT_START, "cannot deliver events to the server")?;
    uploader.register_bypass_key(bypass_key);
    // The bundle on disk now loads: either the saved one was checked above, or the poller
    // saved a new one only after it loaded. Nothing is marked before that.
    let loader_enrollment = enrollment.clone();
    let loader: Loader =
        Box::new(move |path: &Path| bundle_engine(&portcullis_sync::load_bundle(path, &loader_enrollment)?));
    Ok(Source {
        policy: bundle_path,
        computer: Some(enrollment.computer.clone()),
        loader,
        sync: Some({
            let events_lost = Arc::new(std::sync::atomic::AtomicU64::new(0));
            poller.report_losses(events_lost.clone());
            ServerSync { poller, uploader, events_lost }
        }),
        captures: Some(Arc::new(portcullis_agent::install::Captures::open(state))),
        // Requests go to the server: without one there is nobody to ask.
        user_box: match portcullis_agent::userbox::UserBox::open(&a.user_dir, state) {
            Ok(b) => Some(Arc::new(b)),
            Err(e) => {
                tracing::warn!("users who are not root cannot ask for denied programs: {e}");
                None
            }
        },
        bypass: Some(portcullis_agent::bypass::BypassConfig {
            state_dir: state.to_owned(),
            key: bypass_key,
            computer: enrollment.computer.clone(),
        }),
    })
}

pub fn run(a: AgentArgs) -> anyhow::Result<ExitCode> {
    crate::log_to_stderr(&a.log)?;

    let source = if let Some(server) = &a.server { server_source(&a, server)? } else { file_source(&a)? };
    let hits = std::sync::Arc::new(portcullis_agent::PolicyHits::default());
    let inventory = std::sync::Arc::new(portcullis_agent::PackageInventory::default());

    let mut excluded: Vec<String> = portcullis_agent::mounts::DEFAULT_EXCLUDED.iter().map(|s| s.to_string()).collect();
    excluded.extend(a.exclude_fstype.iter().cloned());
    let mut interpreters = portcullis_agent::default_interpreters();
    interpreters.extend(a.interpreters.iter().cloned());
    let scope = if a.mark_under.is_empty() {
        portcullis_agent::mounts::Scope::All
    } else {
        let mut roots = Vec::new();
        for d in &a.mark_under {
            roots.push(std::fs::canonicalize(d).or_exit(AGENT_START, format!("--mark-under {}", d.display()))?);
        }
        portcullis_agent::mounts::Scope::Under(roots)
    };
    let config = Config {
        policy: source.policy.clone(),
        computer: source.computer.clone(),
        policy_writable: source.sync.is_some(),
        hits: source.sync.is_some().then(|| hits.clone()),
        inventory: source.sync.is_some().then(|| inventory.clone()),
        bypass: source.bypass.clone(),
        captures: source.captures.clone(),
        user_box: source.user_box.clone(),
        scope,
        excluded_fstypes: excluded,
        spool: portcullis_agent::spool::SpoolConfig {
            dir: a.spool.clone(),
            max_file_bytes: a.spool_file_mib.max(1) << 20,
            max_files: a.spool_files.max(1),
        },
        workers: a.workers.max(1),
        answer_timeout: Duration::from_millis(a.answer_timeout_ms.max(1)),
        overload: portcullis_agent::Overload { code_secured: verdict(a.overload_code), other: verdict(a.overload) },
        guard: !a.no_guard,
        force_secured: a.force_secured,
        package_root: if a.no_package_trust {
            None
        } else {
            Some(
                std::fs::canonicalize(&a.package_root)
                    .or_exit(AGENT_START, format!("--package-root {}", a.package_root.display()))?,
            )
        },
        self_loaders: {
            let mut loaders = portcullis_agent::default_self_loaders();
            loaders.extend(a.self_loaders.iter().cloned());
            loaders
        },
        interpreters,
        protect: !a.no_protect,
        exit_after: a.exit_after.map(Duration::from_secs),
        ready_file: a.ready_file.clone(),
        cache_capacity: 1 << 20,
        resolver: a.resolver,
        events_lost: source.sync.as_ref().map_or_else(Default::default, |s| s.events_lost.clone()),
        metrics: a.metrics_listen.map(|listen| portcullis_agent::metrics::MetricsConfig {
            listen,
            backlog: source.sync.is_some().then(|| {
                let (spool, state) = (a.spool.clone(), a.state_dir.clone());
                Arc::new(move || portcullis_sync::backlog(&spool, &state).ok()) as portcullis_agent::metrics::Backlog
            }),
        }),
    };
    if let Some(sync) = source.sync {
        let captures =
            source.captures.clone().unwrap_or_else(|| Arc::new(portcullis_agent::install::Captures::in_memory()));
        sync.start(hits, inventory, captures);
    }
    let loader = source.loader;
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
        Err(e @ AgentError::Lockout(_)) => {
            Err(e).or_exit(crate::exit::LOCKOUT, "the agent refused to lock this host out")
        }
        Err(e @ (AgentError::Policy(..) | AgentError::Computer(_))) => {
            Err(e).or_exit(BAD_POLICY, "the agent has no policy to enforce")
        }
        Err(e) => Err(e).or_exit(AGENT_START, "the agent could not start enforcing"),
    }
}

fn verdict(v: OverloadVerdict) -> Response {
    match v {
        OverloadVerdict::Allow => Response::Allow,
        OverloadVerdict::Deny => Response::Deny,
    }
}
