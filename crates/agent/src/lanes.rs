//! The threads that answer the kernel: responders read permission events, workers gather
//! facts, ask the judge ([`crate::judge`]) and apply its outcome, the deadline keeper answers
//! what is late.
//!
//! One *lane* per CPU the agent may run on: a responder and a worker pinned to that CPU, the
//! responders all reading the one fanotify group, plus a shared pool of workers. A responder
//! hands an event to its lane's worker when that worker is idle, else to the pool. Why lanes:
//! on these VMs a cross-CPU wake-up costs more than the rest of a round trip; the CPU of a
//! process the kernel holds is idle, so the lane pinned there takes the event.
//!
//! Invariants: every permission event is answered exactly once (a worker, the deadline
//! keeper with the overload verdict, or the kernel when the group closes); the responders
//! never touch a file and answer the agent's own pid at once; a worker's panic answers with
//! the overload verdict.

use crate::classify;
use crate::facts::{EventCase, read_head};
use crate::identity;
use crate::judge::{self, Outcome, Seen};
use crate::locks::Unpoisoned;
use crate::records::{self, Judged};
use crate::state::{Pending, Shared, now};
use portcullis_fanotify::{MarkFlags, Mask, Response};
use std::collections::VecDeque;
use std::io;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Events queued to a lane's own worker and not yet finished.
pub(crate) type Depth = Arc<AtomicUsize>;

/// Events read and not yet answered, for the deadline keeper.
pub(crate) type PendingList = Arc<Mutex<VecDeque<Arc<Pending>>>>;

/// Gather, judge, and say what was seen: the outcome, and what the worker must know to
/// apply it. Nothing here acts on the kernel but reading.
fn decide<'a>(shared: &'a Shared, pending: &'a Pending) -> (Outcome, Option<Applied<'a>>) {
    let Some(fd) = pending.event.fd.as_ref().map(|f| f.as_fd()) else {
        return (Outcome::answer(Response::Allow), None);
    };
    let Ok(stat) = identity::fstat(fd) else { return (Outcome::answer(shared.overload(pending.is_code())), None) };
    if !stat.regular {
        return (judge::not_a_regular_file(), None);
    }
    let policy = shared.policy();
    let Ok(entry) = shared.cache.entry(stat.key, || read_head(fd)) else {
        return (Outcome::answer(shared.overload(pending.is_code())), None);
    };
    let exec = pending.event.mask.intersects(Mask::OPEN_EXEC_PERM);
    if !exec {
        // An Installation window notes what installers open for writing (nothing otherwise).
        shared.install.note_open(pending.event.pid, stat.key);
    }
    let mut case = EventCase::new(shared, pending.event.pid, fd, entry.clone(), stat.key);
    let path_cell = std::cell::OnceCell::new();
    let lazy_path = || path_cell.get_or_init(|| crate::facts::fd_path(fd)).clone();
    let access = classify::classify(exec, entry.shape, &lazy_path, policy.script_control, &mut case.opener);
    // The judge sees the path classification saw: one read of the link, not two that a
    // rename in between could make disagree.
    if let Some(path) = path_cell.into_inner() {
        case.know_path(path);
    }
    // From here the deadline keeper knows which overload verdict an answer too late gets.
    let _ = pending.access.set(access);
    if access.is_code() {
        shared.stats.judged.fetch_add(1, Ordering::Relaxed);
    }
    let seen = Seen { access, shape: entry.shape, nlink: stat.nlink };
    let outcome = judge::judge(&policy, seen, &mut case, now(), shared.overload(access.is_code()));
    (outcome, Some(Applied { case, key: stat.key, access }))
}

/// What applying an outcome needs beyond it.
struct Applied<'a> {
    case: EventCase<'a>,
    key: identity::FileKey,
    access: portcullis_events::Access,
}

/// Apply an outcome before the answer: count the policy's hit, put a ringfence's tags on,
/// let the kernel repeat a ringfence's refusal, hand a permit to the kernel as an ignore
/// mark, and read what a report needs about the process (once answered, it may be gone).
fn act_before_answer(
    shared: &Shared,
    pending: &Pending,
    outcome: &Outcome,
    applied: &mut Option<Applied<'_>>,
) -> Option<(portcullis_events::ProcessInfo, Vec<portcullis_events::ProcessInfo>)> {
    if let (Some(hits), Some(name)) = (&shared.config.hits, outcome.decision.as_ref().and_then(|d| d.policy())) {
        hits.record(name);
    }
    let fencing = shared.fencing.get();
    if let (Some(request), Some(fenced), Some(fencing), Some(a)) =
        (outcome.tag, outcome.decision.as_ref().and_then(|d| d.fence()), fencing, applied.as_ref())
    {
        // Both before the answer, since the exec completes only after it.
        let tag = fencing.tag_for(&fenced, &shared.policy().engine);
        let kernel = fencing.kernel();
        let mut tagged = Ok(());
        if request.executable {
            tagged = kernel.tag_executable(portcullis_fence::kernel_dev(a.key.dev), a.key.ino, tag);
        }
        if request.process {
            tagged = tagged.and(kernel.tag_process(pending.event.pid as u32, tag));
        }
        if let Err(e) = tagged {
            tracing::error!("ringfencing pid {}: {e}", pending.event.pid);
        }
    }
    if let (Some(id), Some(fencing), Some(a)) = (outcome.remember_denied, fencing, applied.as_ref())
        && fencing.enforcement() == portcullis_fence::Enforcement::Lsm
    {
        // The LSM path denies repeats in the kernel; the fallback asks again every time.
        let _ = fencing.kernel().remember_denied_file(id, portcullis_fence::kernel_dev(a.key.dev), a.key.ino);
    }
    // Code permitted: the LSM guard lets it be mapped executable (before the answer, since
    // the mapping follows it).
    if let (Some(guard), Some(a)) = (shared.guard.as_ref().filter(|g| g.lsm()), applied.as_ref())
        && a.access.is_code()
        && outcome.response == Response::Allow
        && let Err(e) = guard.approve(portcullis_fence::kernel_dev(a.key.dev), a.key.ino)
    {
        tracing::error!("the kernel guard cannot approve a permitted file: {}", portcullis_policy::with_causes(&e));
    }
    // A capture made as the file runs: kept before the answer, so the next run finds it.
    if let Some(c) = &outcome.capture {
        shared.install.keep(&c.facts, &c.application, &c.installer);
    }
    // No ignore marks while an Installation window is open (see `install::Window::tick`).
    if let (Some(mask), Some(fd), false) = (outcome.ignore, pending.event.fd.as_ref(), shared.install.is_open()) {
        // Evictable and dropped on modification: a rewritten file is asked about again.
        match shared.group.mark_fd(MarkFlags::ADD | MarkFlags::IGNORE | MarkFlags::EVICTABLE, mask, fd.as_fd()) {
            Ok(()) => {
                shared.stats.ignore_marks.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => tracing::debug!("ignore mark: {e}"),
        }
    }
    let a = applied.as_mut().filter(|_| outcome.report.is_some())?;
    let info = a.case.info();
    let ancestors = records::ancestors(&info);
    Some((info, ancestors))
}

/// Take events from `rx`, judge and answer them, until the agent stops.
pub(crate) fn worker(shared: Arc<Shared>, rx: Arc<Mutex<Receiver<Arc<Pending>>>>, depth: Option<Depth>) {
    loop {
        let next = rx.lock_ok().recv_timeout(Duration::from_millis(100));
        let pending = match next {
            Ok(p) => p,
            Err(RecvTimeoutError::Timeout) if !shared.stop.load(Ordering::Acquire) => continue,
            Err(_) => return,
        };
        let _done = depth.as_ref().map(|d| DepthGuard(d.clone()));
        if pending.answered.load(Ordering::Acquire) {
            continue;
        }
        let started = Instant::now();
        let handled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let (outcome, mut applied) = decide(&shared, &pending);
            let who = act_before_answer(&shared, &pending, &outcome, &mut applied);
            let answered = pending.answer(&shared.group, outcome.response);
            let record = match (outcome.report, who, applied) {
                (Some(report), Some((process, ancestors)), Some(a)) => Some(records::record_of(
                    &shared,
                    Judged {
                        report,
                        decision: outcome.decision,
                        access: a.access,
                        key: a.key,
                        process,
                        ancestors,
                        answered_late: !answered,
                    },
                )),
                _ => None,
            };
            (outcome.response, answered, record)
        }));
        let (response, answered, record) = handled.unwrap_or_else(|_| {
            tracing::error!("judging an event of pid {} failed; answered with the overload verdict", pending.event.pid);
            let response = shared.overload(pending.is_code());
            (response, pending.answer(&shared.group, response), None)
        });
        shared.stats.judge_ns.fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        let waited = pending.received.elapsed();
        shared.stats.answer_ns.fetch_add(waited.as_nanos() as u64, Ordering::Relaxed);
        shared.stats.worker_answers.fetch_add(1, Ordering::Relaxed);
        if answered {
            shared.stats.answer_latency.observe(waited);
            shared.stats.decisions.count(pending.access.get().copied(), response == Response::Deny);
        }
        if answered && response == Response::Deny {
            shared.stats.denied.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(record) = record {
            shared.record(record);
        }
    }
}

/// Counts an event as finished by its lane's worker, however the worker leaves it.
struct DepthGuard(Depth);

impl Drop for DepthGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Where a responder sends events: its lane's worker (same CPU) when that worker is idle,
/// else the shared pool, so one slow file never holds up the events queued behind it.
pub(crate) struct Dispatch {
    pub(crate) lane: SyncSender<Arc<Pending>>,
    pub(crate) lane_depth: Depth,
    pub(crate) pool: SyncSender<Arc<Pending>>,
}

impl Dispatch {
    fn send(&self, item: Arc<Pending>) -> Result<(), Arc<Pending>> {
        let unsent = |e: TrySendError<Arc<Pending>>| match e {
            TrySendError::Full(i) | TrySendError::Disconnected(i) => i,
        };
        let mut item = item;
        if self.lane_depth.load(Ordering::Acquire) == 0 {
            self.lane_depth.fetch_add(1, Ordering::AcqRel);
            match self.lane.try_send(item) {
                Ok(()) => return Ok(()),
                Err(e) => {
                    self.lane_depth.fetch_sub(1, Ordering::AcqRel);
                    item = unsent(e);
                }
            }
        }
        self.pool.try_send(item).map_err(unsent)
    }
}

/// Read permission events and hand them out; never touches a file.
pub(crate) fn responder(shared: Arc<Shared>, work: Dispatch, pending: PendingList) {
    let mut buf = vec![0u8; 64 * 1024];
    while !shared.stop.load(Ordering::Acquire) {
        if crate::sys::poll(shared.group.as_fd(), libc::POLLIN, 100).is_none() {
            continue;
        }
        let events = match shared.group.read(&mut buf) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => {
                tracing::error!("reading fanotify events: {e}");
                continue;
            }
        };
        for event in events {
            let Ok(event) = event else { continue };
            if !event.needs_answer() {
                continue;
            }
            shared.stats.events.fetch_add(1, Ordering::Relaxed);
            if event.pid == shared.own_pid {
                shared.stats.own.fetch_add(1, Ordering::Relaxed);
                let _ = shared.group.respond(&event, Response::Allow);
                continue;
            }
            let item = Arc::new(Pending::new(event));
            match work.send(item.clone()) {
                Ok(()) => pending.lock_ok().push_back(item),
                Err(item) => {
                    shared.stats.overload.fetch_add(1, Ordering::Relaxed);
                    item.answer(&shared.group, shared.overload(item.is_code()));
                }
            }
        }
    }
}

/// Answer with the overload verdict what no worker answered in time.
pub(crate) fn deadline_keeper(shared: Arc<Shared>, pending: PendingList) {
    let timeout = shared.config.answer_timeout;
    while !shared.stop.load(Ordering::Acquire) {
        std::thread::sleep(Duration::from_millis(20).min(timeout / 2));
        let mut late = Vec::new();
        let mut list = pending.lock_ok();
        list.retain(|p| {
            if p.answered.load(Ordering::Acquire) {
                return false;
            }
            if p.received.elapsed() >= timeout {
                if p.answer(&shared.group, shared.overload(p.is_code())) {
                    shared.stats.overload.fetch_add(1, Ordering::Relaxed);
                    late.push(p.clone());
                }
                return false;
            }
            true
        });
        drop(list);
        for p in late {
            let record = records::overload_record(&shared, &p, timeout);
            tracing::warn!("{}", record.summary());
            shared.record(record);
        }
    }
}
