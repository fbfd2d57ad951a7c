//! Running the agent: start the lanes and the helper threads, mark the filesystems, then
//! wait for signals (SIGHUP reloads the policy, SIGTERM and SIGINT stop) and watch for new
//! mounts; on the way out, release what was protected and stop every thread in order.
//!
//! Invariants (see ARCHITECTURE.md): every permission event is answered exactly once; the
//! responders never open a file; anything the agent opens on a watched filesystem is opened
//! while the responders run, never after they stopped.

use crate::fence_threads::{
    ensure_fencing, fence_domains, fence_events, guard_events, refresh_domains_now, scan_running,
};
use crate::interpreters::{refresh_interpreters, refresh_self_loaders};
use crate::lanes::{Depth, Dispatch, PendingList, deadline_keeper, responder, worker};
use crate::locks::{Unpoisoned, UnpoisonedRw};
use crate::marks::Marks;
use crate::mounts::Scope;
use crate::process::Users;
use crate::records::spool_writer;
use crate::state::{AgentError, Config, Pending, PolicyLoader, PolicyState, Shared, Stats, now};
use crate::{identity::Cache, lockout, protect, sys, sysctl};
use portcullis_events::spool::Spool;
use portcullis_fanotify::{Group, InitFlags};
use portcullis_packages::PackageDb;
use portcullis_policy::{Mode, Os};
use std::collections::HashSet;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// Why the agent stopped.
#[derive(Debug)]
pub struct Summary {
    /// The counters.
    pub stats: Stats,
}

/// Block, in the calling thread and the threads it starts from now on, the signals the agent
/// waits for (SIGTERM, SIGINT, SIGHUP). [`run`] does it; call it yourself before starting
/// threads of your own beside the agent, or a signal meant for the agent may land in one of
/// them and end the process.
pub fn block_handled_signals() {
    sys::block_signals(&sys::handled_signals());
}

/// Run the agent until SIGTERM or SIGINT (or `exit_after`). SIGHUP reloads the policy.
///
/// Must be called before other threads exist (or after [`block_handled_signals`]): it
/// blocks the signals it handles for every thread it starts.
pub fn run(config: Config, load: &PolicyLoader) -> Result<Summary, AgentError> {
    let started = Instant::now();
    let set = sys::handled_signals();
    block_handled_signals();

    let packages = Arc::new(load_packages(&config));
    // A bundle from the server that would lock the host out is enforced in Monitor mode at
    // start (exiting would leave the host unenforced, restart after restart); a policy file
    // given by hand is refused, so that its author sees why at once.
    let mut bypass_state = match &config.bypass {
        Some(b) => crate::bypass::BypassState::load(&b.state_dir).unwrap_or_else(|e| {
            tracing::error!("bypass state unreadable ({e}); no bypass is in force");
            crate::bypass::BypassState::default()
        }),
        None => crate::bypass::BypassState::default(),
    };
    // The bypass the policy in force was loaded with (it is loaded again when that changes).
    let mut bypass_loaded = bypass_state.active(now().0);
    let policy = load_policy(&config, load, &packages, config.policy_writable, bypass_loaded, 0)?;
    let spool = Spool::open(config.spool.clone())
        .map_err(|error| AgentError::Spool { path: config.spool.dir.clone(), error })?;
    let metrics = match &config.metrics {
        Some(m) => Some(crate::metrics::bind(m).map_err(|error| AgentError::Metrics { listen: m.listen, error })?),
        None => None,
    };
    let group = Group::new(InitFlags::PERMISSION | InitFlags::NONBLOCK, libc::O_RDONLY | libc::O_LARGEFILE)
        .map_err(AgentError::Fanotify)?;
    let (records_tx, records_rx) = mpsc::channel();
    // Before any mark: loading reads BTF, not on a watched filesystem.
    let guard = config.guard.then(load_guard).flatten();
    let shared = Arc::new(Shared {
        group,
        cache: Cache::new(config.cache_capacity),
        policy: RwLock::new(Arc::new(policy)),
        interpreters: RwLock::new(HashSet::new()),
        users: Users::default(),
        own_pid: std::process::id() as i32,
        stats: Stats { spool_dropped: config.events_lost.clone(), ..Stats::default() },
        stop: AtomicBool::new(false),
        fence_stop: AtomicBool::new(false),
        records: Mutex::new(records_tx),
        fencing: std::sync::OnceLock::new(),
        guard,
        self_loaders: RwLock::new(HashSet::new()),
        rescan_namespaces: AtomicBool::new(false),
        packages: RwLock::new(packages),
        install: Arc::new(crate::install::Window::new(
            config.captures.clone().unwrap_or_else(|| Arc::new(crate::install::Captures::in_memory())),
        )),
        config,
    });
    let config = &shared.config;
    // Before any mark: loading reads BTF and the cgroup tree, neither on a watched filesystem.
    ensure_fencing(&shared);
    refresh_domains_now(&shared);

    let pending: PendingList = Arc::default();
    let mut threads = Vec::new();
    // Ringfence threads open files too (procfs, /etc, executables): they stop before anything
    // else, while the responders answer those opens.
    let mut fence_threads: Vec<std::thread::JoinHandle<()>> = Vec::new();
    let spawn = |name: &str, f: Box<dyn FnOnce() + Send>| {
        std::thread::Builder::new()
            .name(name.into())
            .spawn(f)
            .map_err(|error| AgentError::Io { what: format!("starting the {name} thread"), error })
    };
    // One lane per CPU: a responder and its workers pinned to that CPU, all responders
    // reading the same group. The opener's CPU goes idle while the kernel holds it, so the
    // lane pinned there usually takes the event, and every wake-up stays on one CPU: on a VM a
    // cross-CPU wake-up costs more than the rest of the round trip (see BENCHMARKS.md).
    // Responders first: from the first mark on, every event needs them.
    let (pool_tx, pool_rx) = mpsc::sync_channel::<Arc<Pending>>(16_384);
    let pool_rx = Arc::new(Mutex::new(pool_rx));
    for cpu in sys::allowed_cpus() {
        let (lane_tx, lane_rx) = mpsc::sync_channel::<Arc<Pending>>(1024);
        let depth: Depth = Arc::default();
        let dispatch = Dispatch { lane: lane_tx, lane_depth: depth.clone(), pool: pool_tx.clone() };
        let (s, p) = (shared.clone(), pending.clone());
        threads.push(spawn(
            &format!("responder-{cpu}"),
            Box::new(move || {
                sys::pin_thread_to(cpu);
                responder(s, dispatch, p)
            }),
        )?);
        let (s, r) = (shared.clone(), Arc::new(Mutex::new(lane_rx)));
        threads.push(spawn(
            &format!("lane-{cpu}"),
            Box::new(move || {
                sys::pin_thread_to(cpu);
                worker(s, r, Some(depth))
            }),
        )?);
    }
    drop(pool_tx);
    for i in 0..config.workers.max(1) {
        let (s, r) = (shared.clone(), pool_rx.clone());
        threads.push(spawn(&format!("worker-{i}"), Box::new(move || worker(s, r, None)))?);
    }
    {
        let (s, p) = (shared.clone(), pending.clone());
        threads.push(spawn("deadlines", Box::new(move || deadline_keeper(s, p)))?);
    }
    if let Some(server) = metrics {
        let s = shared.clone();
        threads.push(spawn("metrics", Box::new(move || crate::metrics::serve(s, server)))?);
    }
    let user_box = config.user_box.clone();
    let spool_thread = {
        let dropped = shared.stats.spool_dropped.clone();
        spawn("spool", Box::new(move || spool_writer(dropped, spool, records_rx, user_box)))
    }?;
    {
        let s = shared.clone();
        fence_threads.push(spawn("fence-events", Box::new(move || fence_events(s)))?);
        let s = shared.clone();
        fence_threads.push(spawn("fence-domains", Box::new(move || fence_domains(s)))?);
        let s = shared.clone();
        fence_threads.push(spawn("guard-events", Box::new(move || guard_events(s)))?);
    }

    refresh_interpreters(&shared);
    refresh_self_loaders(&shared);

    // Marks, in this mount namespace and every other; the guard learns each one, and starts
    // stopping programs only once they are all in place (before, every filesystem is one it
    // has not been told about).
    let mut marks = Marks::new();
    let cleanup = |shared: &Arc<Shared>| {
        shared.stop.store(true, Ordering::Release);
    };
    if let Err(e) = marks.mark_own(&shared, matches!(config.scope, Scope::Under(_))) {
        cleanup(&shared);
        return Err(e);
    }
    marks.tick(&shared, None);
    let mut guard_mode = configure_guard(&shared, None);

    let mut memfd = if shared.enforcing() {
        match sysctl::MemfdNoexec::enforce() {
            Ok(g) => g,
            Err(e) => {
                tracing::warn!("cannot set vm.memfd_noexec=2 ({e}): memfd execution stays open");
                sysctl::MemfdNoexec::untouched()
            }
        }
    } else {
        sysctl::MemfdNoexec::untouched()
    };

    let mut protected = protect::Protected::default();
    if config.protect {
        let exe = std::fs::read_link("/proc/self/exe").ok();
        let policy = (!config.policy_writable).then_some(&config.policy);
        for path in exe.iter().chain(policy) {
            if let Err(e) = protected.protect(path) {
                tracing::warn!("cannot make {} immutable: {e}", path.display());
            }
        }
    }

    fence_threads.extend(scan_running(&shared));
    if let Some(ready) = &config.ready_file {
        let _ = std::fs::write(ready, format!("{}\n", std::process::id()));
    }
    {
        let p = shared.policy();
        tracing::info!(
            "enforcing {} ({} mode{}; {} hashes indexed; scripts {}; {} filesystem(s) watched; kernel guard {})",
            config.policy.display(),
            p.target.mode().at(now()).name(),
            if memfd.enforced() { ", memfd exec closed" } else { "" },
            p.engine.hash_count(),
            if p.script_control { "judged" } else { "not judged" },
            marks.watched(),
            match &shared.guard {
                Some(g) if g.lsm() => "on, with BPF LSM mappings",
                Some(_) => "on (exec backstop)",
                None => "off",
            }
        );
    }

    let mountinfo = std::fs::File::open("/proc/self/mountinfo").ok();
    let mut reload_failing = false;
    loop {
        marks.tick(&shared, mountinfo.as_ref());
        // A Learning mode that ends turns into Monitor, an Installation mode into Secured, without a reload.
        guard_mode = configure_guard(&shared, guard_mode);
        follow_packages(&shared);
        shared.install.tick(&shared, marks.paths());
        if let Some(b) = &config.user_box {
            b.tick(&shared.users);
        }
        let sig = sys::wait_signal(&set, Duration::from_millis(100)).unwrap_or(0);
        if sig == libc::SIGTERM || sig == libc::SIGINT {
            tracing::info!("stopping on signal {sig}");
            break;
        }
        // A bypass code taken, or the bypass in force ended: the mode changes.
        let mut bypass_changed = false;
        if let Some(b) = &config.bypass {
            if let Some(r) = crate::bypass::take_request(b, &mut bypass_state, now().0) {
                match (&r.error, r.until_s) {
                    (None, Some(until)) => {
                        tracing::warn!(
                            "offline bypass code {} accepted: Monitor mode until {until} (Unix time)",
                            r.counter.unwrap_or(0)
                        );
                        bypass_changed = true;
                    }
                    (e, _) => tracing::warn!("offline bypass code refused: {}", e.as_deref().unwrap_or("")),
                }
            }
            if bypass_loaded != bypass_state.active(now().0) {
                bypass_changed = true;
            }
        }
        if sig == libc::SIGHUP || bypass_changed {
            let packages = shared.packages.read_ok().clone();
            // What the reload loads is at least this bundle (the sync thread saves first).
            let bundle_seen = shared.install.captures.seen();
            let previous = bypass_loaded;
            bypass_loaded = bypass_state.active(now().0);
            match load_policy(config, load, &packages, false, bypass_loaded, bundle_seen) {
                Ok(state) => {
                    *shared.policy.write_ok() = Arc::new(state);
                    shared.install.captures.bundle_applied(bundle_seen);
                    // Decisions the kernel remembers were made under the old policy.
                    if let Err(e) = shared.group.flush_inode_marks() {
                        tracing::error!("flushing ignore marks: {e}");
                    }
                    if let Some(g) = &shared.guard {
                        g.forget_approved();
                    }
                    guard_mode = configure_guard(&shared, guard_mode);
                    refresh_interpreters(&shared);
                    ensure_fencing(&shared);
                    if let Some(f) = shared.fencing.get() {
                        f.apply(&shared.policy().engine);
                    }
                    refresh_domains_now(&shared);
                    fence_threads.extend(scan_running(&shared));
                    if shared.enforcing() && !memfd.enforced() {
                        memfd = sysctl::MemfdNoexec::enforce().unwrap_or_else(|_| sysctl::MemfdNoexec::untouched());
                    }
                    tracing::info!("policy reloaded from {}", config.policy.display());
                    reload_failing = false;
                }
                Err(e) => {
                    // A bypass that ended while the policy does not load is tried again
                    // each tick: the old policy in force is the bypassed one.
                    if bypass_changed {
                        bypass_loaded = previous;
                    }
                    if !bypass_changed || !reload_failing {
                        tracing::error!(
                            "policy not reloaded, the old one stays in force: {}",
                            portcullis_policy::with_causes(&e)
                        );
                    }
                    reload_failing = true;
                }
            }
        }
        if config.exit_after.is_some_and(|d| started.elapsed() >= d) {
            tracing::info!("stopping: --exit-after reached");
            break;
        }
    }

    // File work first, while the responder still answers our own opens: the protected files
    // may sit on a watched filesystem, and with no responder an open of them would wait forever.
    for (path, e) in protected.release() {
        tracing::error!("clearing the immutable flag of {}: {e}", path.display());
    }
    if let Err(e) = memfd.restore() {
        tracing::error!("restoring vm.memfd_noexec: {e}");
    }
    shared.fence_stop.store(true, Ordering::Release);
    for t in fence_threads {
        let _ = t.join();
    }
    cleanup(&shared);
    for t in threads {
        let _ = t.join();
    }
    let shared = Arc::into_inner(shared).ok_or_else(|| AgentError::Io {
        what: "stopping".into(),
        error: io::Error::other("threads still hold the agent state"),
    })?;
    let Shared { group, stats, records, .. } = shared;
    // Closing the group allows anything still pending and ends all events, so the spool
    // writer can open its next file safely while it drains.
    drop(group);
    drop(records);
    let _ = spool_thread.join();
    Ok(Summary { stats })
}

/// The package database the agent trusts at start; an unreadable one trusts nothing (and
/// says so).
fn load_packages(config: &Config) -> PackageDb {
    let Some(root) = &config.package_root else { return PackageDb::default() };
    match read_packages(root) {
        Ok(db) => {
            if let Some(inventory) = &config.inventory {
                inventory.publish(&db);
            }
            db
        }
        Err(e) => {
            tracing::error!("no package is trusted: {e}");
            PackageDb::default()
        }
    }
}

fn read_packages(root: &Path) -> Result<PackageDb, String> {
    let db = PackageDb::load(root).map_err(|e| portcullis_policy::with_causes(&e))?;
    tracing::info!(
        "package trust: {} packages, {} listed files, below {}",
        db.packages().len(),
        db.file_count(),
        root.display()
    );
    for w in db.warnings() {
        tracing::warn!("package trust: {w}");
    }
    Ok(db)
}

/// Follow package installs, upgrades and removals: when the database changed, read it again
/// and forget what is known about files (their package may have changed) and what the kernel
/// was told to let through. Called each tick, and before a file's facts are computed, so that
/// a program run the moment its package was installed (`apt-get install x && x`) is judged
/// against the database that lists it. One thread reads at a time; the others wait for it.
pub(crate) fn follow_packages(shared: &Shared) {
    static LAST_ERROR: Mutex<String> = Mutex::new(String::new());
    static READING: Mutex<Option<Instant>> = Mutex::new(None);
    let Some(root) = &shared.config.package_root else { return };
    if !shared.packages.read_ok().changed(root) {
        return;
    }
    let mut failed_at = READING.lock_ok();
    // Read by another thread while this one waited; or unreadable a moment ago (tried again
    // each second, not for every file judged meanwhile).
    if !shared.packages.read_ok().changed(root) || failed_at.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
        return;
    }
    // A database that cannot be read now keeps the one in force (read again next tick):
    // an empty one would deny every packaged program.
    let db = match read_packages(root) {
        Ok(db) => db,
        Err(e) => {
            *failed_at = Some(Instant::now());
            let mut last = LAST_ERROR.lock_ok();
            if *last != e {
                tracing::error!("the package database changed but cannot be read; the one read before stays: {e}");
                *last = e;
            }
            return;
        }
    };
    *failed_at = None;
    if let Some(inventory) = &shared.config.inventory {
        inventory.publish(&db);
    }
    *shared.packages.write_ok() = Arc::new(db);
    shared.cache.clear();
    if let Err(e) = shared.group.flush_inode_marks() {
        tracing::error!("flushing ignore marks after a package change: {e}");
    }
}

/// Load and check the policy. One that would lock the host out ([`lockout`]) is refused, or,
/// with `monitor_on_lockout`, enforced in Monitor mode.
fn load_policy(
    config: &Config,
    load: &PolicyLoader,
    packages: &PackageDb,
    monitor_on_lockout: bool,
    bypass: Option<u64>,
    bundle_version: i64,
) -> Result<PolicyState, AgentError> {
    let engine = load(&config.policy).map_err(|e| AgentError::Policy(config.policy.display().to_string(), e))?;
    let mut target = engine.target(config.computer.as_deref(), Os::Linux)?;
    // Whole-system Secured mode must not deny what the host cannot run without.
    if matches!(config.scope, Scope::All) && !config.force_secured && lockout::secures(&target, now()) {
        let files = lockout::essentials(Path::new("/"));
        let trust = config.package_root.as_deref().map(|r| (packages, r));
        let denied = lockout::would_lock_out(&engine, &target, now(), &files, trust);
        if !denied.is_empty() {
            let refusal = AgentError::Lockout(denied);
            if !monitor_on_lockout {
                return Err(refusal);
            }
            tracing::error!("enforcing in Monitor mode instead of Secured: {refusal}");
            target = target.with_mode(portcullis_policy::Mode::Monitor);
        }
    }
    // An offline bypass: what would be denied is allowed and recorded, as in Monitor mode.
    // Learning stays Learning (it records more); an enforced Deny still denies.
    let bypass = bypass.filter(|_| matches!(target.mode().at(now()), Mode::Secured | Mode::Installation { .. }));
    if let Some(counter) = bypass {
        tracing::warn!("offline bypass {counter} in force: enforcing in Monitor mode");
        target = target.with_mode(Mode::Monitor);
    }
    let script_control = engine.policy_set().organization.script_control;
    let fences = engine.ringfences_in_force().into_iter().cloned().collect();
    Ok(PolicyState { engine, target, script_control, fences, bypass, bundle_version })
}

/// Load the kernel guard; without it the agent still enforces, with the gaps it closes open.
fn load_guard() -> Option<portcullis_guard::Guard> {
    match portcullis_guard::Guard::load() {
        Ok(g) => Some(g),
        Err(e) => {
            tracing::error!(
                "the kernel guard cannot load: programs started from a filesystem the agent does not watch yet are not \
                 stopped: {}",
                portcullis_policy::with_causes(&e)
            );
            None
        }
    }
}

/// Tell the guard the mode — it stops in Secured mode and reports in the others — when it
/// differs from `current` (the first time, with the scope's directories in scoped mode).
/// Returns the mode in force.
fn configure_guard(shared: &Shared, current: Option<portcullis_guard::Mode>) -> Option<portcullis_guard::Mode> {
    let guard = shared.guard.as_ref()?;
    let mode = if shared.enforcing() { portcullis_guard::Mode::Enforce } else { portcullis_guard::Mode::Report };
    if current == Some(mode) {
        return current;
    }
    let scoped = match &shared.config.scope {
        Scope::All => false,
        Scope::Under(roots) => {
            use std::os::unix::fs::MetadataExt;
            for root in roots.iter().filter(|_| current.is_none()) {
                let known = match std::fs::metadata(root) {
                    Ok(m) => guard
                        .scope_dir(portcullis_fence::kernel_dev(m.dev()), m.ino())
                        .map_err(|e| portcullis_policy::with_causes(&e)),
                    Err(e) => Err(e.to_string()),
                };
                if let Err(e) = known {
                    tracing::error!("the kernel guard does not know the scope {}: {e}", root.display());
                }
            }
            true
        }
    };
    match guard.configure(portcullis_guard::Config { mode, scoped, deny_wx: false }) {
        Ok(()) => Some(mode),
        Err(e) => {
            tracing::error!("configuring the kernel guard: {}", portcullis_policy::with_causes(&e));
            current
        }
    }
}
