//! The kernel-program threads beside the lanes: loading the ringfence BPF programs when a
//! policy first ringfences something, tagging processes already running, turning the
//! kernel's network refusals and the guard's stops into events, and keeping ringfence
//! domains resolved. They open files (procfs, /etc, executables), so they are stopped and
//! joined before the responders stop.

use crate::facts::ProcOpener;
use crate::fencing::Fencing;
use crate::process;
use crate::records;
use crate::state::{Shared, now};
use portcullis_policy::{ProcessFacts, Verdict};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Load the ringfence programs the first time a policy ringfences something.
pub(crate) fn ensure_fencing(shared: &Shared) {
    let wanted = shared.policy().fencing();
    if !wanted || shared.fencing.get().is_some() {
        return;
    }
    match Fencing::load(shared.config.resolver) {
        Ok(f) => {
            tracing::info!("ringfencing with {} BPF programs", f.enforcement().name());
            let _ = shared.fencing.set(f);
        }
        Err(e) => tracing::error!("ringfences cannot be enforced, the applications they limit run unlimited: {e}"),
    }
}

/// Ringfence running processes in the background: hashing every running program takes
/// longer than the start-up window should.
pub(crate) fn scan_running(shared: &Arc<Shared>) -> Option<std::thread::JoinHandle<()>> {
    if shared.fencing.get().is_none() || !shared.policy().fencing() {
        return None;
    }
    let s = shared.clone();
    std::thread::Builder::new()
        .name("fence-scan".into())
        .spawn(move || tag_running(&s))
        .map_err(|e| tracing::error!("starting the scan for running ringfenced processes: {e}"))
        .ok()
}

/// Ringfence processes that were already running when their policy arrived, and their
/// descendants (new ones are tagged as they start).
fn tag_running(shared: &Shared) {
    let Some(fencing) = shared.fencing.get() else { return };
    let policy = shared.policy();
    if !policy.fencing() {
        return;
    }
    let Ok(dir) = std::fs::read_dir("/proc") else { return };
    let pids: Vec<i32> = dir.flatten().filter_map(|e| e.file_name().to_str()?.parse().ok()).collect();
    let mut tags: std::collections::HashMap<i32, portcullis_fence::Tag> =
        fencing.kernel().tagged().into_iter().map(|(p, t)| (p as i32, t)).collect();
    let mut parents = std::collections::HashMap::new();
    for &pid in &pids {
        if shared.fence_stop.load(Ordering::Acquire) {
            return;
        }
        if pid == shared.own_pid {
            continue;
        }
        let info = process::info(pid);
        if let Some(pp) = info.ppid {
            parents.insert(pid, pp);
        }
        if tags.contains_key(&pid) {
            continue;
        }
        let Some(facts) = ProcOpener::new(shared, pid).exe_facts() else { continue };
        let mut file = (*facts).clone();
        file.path = info.exe.clone().unwrap_or_default();
        let parent = info.ppid.map(process::info).and_then(|p| p.exe);
        let process_facts = ProcessFacts { parent_path: parent, user: info.uid.map(|u| shared.users.name(u)) };
        let decision = policy.engine.decide(&file, &process_facts, &policy.target, now());
        if decision.verdict == Verdict::Allow
            && let Some(fenced) = decision.fence()
        {
            tags.insert(pid, fencing.tag_for(&fenced, &policy.engine));
        }
    }
    for &pid in &pids {
        let mut up = parents.get(&pid).copied();
        let mut hops = 0;
        let mut inherited = tags.get(&pid).copied();
        while inherited.is_none()
            && let Some(p) = up
            && hops < 64
        {
            inherited = tags.get(&p).copied();
            up = parents.get(&p).copied();
            hops += 1;
        }
        if let Some(tag) = inherited
            && fencing.kernel().tag_of(pid as u32).is_none()
        {
            tracing::info!("ringfencing running process {pid}");
            let _ = fencing.kernel().tag_process(pid as u32, tag);
        }
    }
}

/// Turn the kernel's network refusals into events.
pub(crate) fn fence_events(shared: Arc<Shared>) {
    let keep_going = || !shared.fence_stop.load(Ordering::Acquire);
    while keep_going() {
        let Some(fencing) = shared.fencing.get() else {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        };
        let result = fencing.kernel().watch(Duration::from_millis(100), keep_going, |e| {
            shared.record(records::net_record(&shared, fencing, e));
        });
        if let Err(e) = result {
            tracing::error!("ringfence events: {e}");
            std::thread::sleep(Duration::from_secs(1));
        }
    }
}

/// Resolve ringfence domains before enforcing, so that a ringfenced application's first
/// connects already find them.
pub(crate) fn refresh_domains_now(shared: &Shared) {
    if let Some(f) = shared.fencing.get() {
        let policy = shared.policy();
        f.refresh_domains(&policy.engine, &policy.fences);
    }
}

/// Keep ringfence domains resolved within their TTL.
pub(crate) fn fence_domains(shared: Arc<Shared>) {
    while !shared.fence_stop.load(Ordering::Acquire) {
        let wait = match shared.fencing.get() {
            Some(f) => {
                let policy = shared.policy();
                f.refresh_domains(&policy.engine, &policy.fences)
            }
            None => Duration::from_millis(200),
        };
        // In small steps, so that a stop is seen at once.
        let until = Instant::now() + wait;
        while Instant::now() < until && !shared.fence_stop.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Turn what the kernel guard stops (or reports) into events; a program started from a
/// filesystem not watched yet also sends the mount-namespace scan looking at once.
pub(crate) fn guard_events(shared: Arc<Shared>) {
    let Some(guard) = shared.guard.as_ref() else { return };
    let result = guard.events(
        Duration::from_millis(100),
        || !shared.fence_stop.load(Ordering::Acquire),
        |e| {
            if e.what == portcullis_guard::What::ExecUnwatched {
                shared.rescan_namespaces.store(true, Ordering::Release);
            }
            shared.record(records::guard_record(&shared, &e));
        },
    );
    if let Err(e) = result {
        tracing::error!("reading the kernel guard's events: {}", portcullis_policy::with_causes(&e));
    }
}
