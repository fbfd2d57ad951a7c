//! The running agent: a responder thread that reads fanotify events and answers what it can at
//! once, workers that judge files, a deadline keeper that answers what is late, a mount
//! watcher and the spool writer.
//!
//! Invariants (see ARCHITECTURE.md):
//! - Every permission event is answered exactly once: by a worker, by the deadline keeper
//!   with the overload verdict, or by the kernel when the group closes.
//! - The responder thread never opens a file and never waits on a worker: events of the agent's
//!   own process are allowed at once, and a full queue is answered with the overload verdict.
//! - Workers read files only through the event's descriptor; files they open by path (the
//!   opener's executable, the policy, the spool) are opened while the responder runs, which
//!   answers those events of our own process at once.

use crate::classify::{self, Access, Opener};
use crate::fencing::{self, Fencing, Ringfence};
use crate::identity::{self, Cache, Entry, FileKey};
use crate::mounts::{self, Scope};
use crate::process::{self, Users};
use crate::shape::Shape;
use crate::{protect, sysctl};
use portcullis_events::spool::{Spool, SpoolConfig};
use portcullis_events::{EventKind, FileRecord, PolicyHit, ProcessRecord, Record, RingfenceRecord, SignerRecord};
use portcullis_fanotify::{Event, Group, InitFlags, MarkFlags, Mask, Response};
use portcullis_inspect::ExtraHashes;
use portcullis_policy::{
    Decision, Engine, FenceDenial, FileFacts, Mode, Os, ProcessFacts, RingfenceProfile, Target, Timestamp, Verdict,
};
use std::collections::{HashSet, VecDeque};
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// How the agent runs.
#[derive(Clone, Debug)]
pub struct Config {
    /// The policy file (read again on SIGHUP).
    pub policy: PathBuf,
    /// The computer name to decide for; `None` uses the organization's defaults.
    pub computer: Option<String>,
    /// Which filesystems are marked.
    pub scope: Scope,
    /// Filesystem types never marked.
    pub excluded_fstypes: Vec<String>,
    /// Where events go.
    pub spool: SpoolConfig,
    /// Shared worker threads, for events a lane's own worker is too busy to take (each CPU
    /// the agent may run on also has a responder and one worker pinned to it).
    pub workers: usize,
    /// An event not judged within this time gets the overload verdict.
    pub answer_timeout: Duration,
    /// The verdict for events that cannot be judged in time (full queue, deadline passed,
    /// unreadable file).
    pub overload: Response,
    /// Script interpreters, by path; the agent recognizes them by content hash.
    pub interpreters: Vec<PathBuf>,
    /// Make the agent's binary and policy immutable while it runs.
    pub protect: bool,
    /// Leave the policy file writable even when protecting (a signed bundle that the sync
    /// thread replaces; its signature, checked on every load, protects it instead).
    pub policy_writable: bool,
    /// Counts policy matches, for the server's hit counts.
    pub hits: Option<Arc<PolicyHits>>,
    /// Stop by itself after this long (tests).
    pub exit_after: Option<Duration>,
    /// Written once every mark is in place.
    pub ready_file: Option<PathBuf>,
    /// File versions kept in the identity cache.
    pub cache_capacity: usize,
    /// DNS server for ringfence domains; `None` uses `/etc/resolv.conf`.
    pub resolver: Option<std::net::SocketAddr>,
}

/// Loads and compiles the policy file.
pub type PolicyLoader = dyn Fn(&Path) -> Result<Engine, String> + Send + Sync;

/// Why the agent could not run.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The policy could not be loaded.
    #[error("{0}")]
    Policy(String),
    /// The computer is not in the policy.
    #[error("{0}")]
    Computer(String),
    /// fanotify could not be set up.
    #[error(
        "cannot start fanotify ({0}); the agent needs root (CAP_SYS_ADMIN) and a kernel with fanotify permission events"
    )]
    Fanotify(io::Error),
    /// A filesystem that was asked for by name could not be marked.
    #[error("cannot watch {path}: {error}")]
    Mark {
        /// The mount point.
        path: PathBuf,
        /// Why.
        error: io::Error,
    },
    /// The spool could not be opened.
    #[error("cannot open the event spool {path}: {error}; give a writable directory with --spool")]
    Spool {
        /// The directory.
        path: PathBuf,
        /// Why.
        error: io::Error,
    },
    /// Something else the agent needs failed.
    #[error("{what}: {error}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        error: io::Error,
    },
}

/// Counters, reported when the agent stops.
#[derive(Debug, Default)]
pub struct Stats {
    /// Permission events read.
    pub events: AtomicU64,
    /// Events of the agent itself, allowed at once.
    pub own: AtomicU64,
    /// Opens judged as code.
    pub judged: AtomicU64,
    /// Denied.
    pub denied: AtomicU64,
    /// Answered with the overload verdict.
    pub overload: AtomicU64,
    /// Ignore marks added.
    pub ignore_marks: AtomicU64,
    /// Files hashed.
    pub hashed: AtomicU64,
    /// Time workers spent judging, in nanoseconds (from taking an event to answering it).
    pub judge_ns: AtomicU64,
    /// Time from reading an event to answering it, in nanoseconds, summed over worker answers.
    pub answer_ns: AtomicU64,
    /// Events answered by workers.
    pub worker_answers: AtomicU64,
}

/// Matches per policy since they were last taken: the agent counts, the sync thread reports.
#[derive(Debug, Default)]
pub struct PolicyHits(Mutex<std::collections::HashMap<String, (u64, i64)>>);

impl PolicyHits {
    fn record(&self, policy: &str) {
        let now_ms =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match map.get_mut(policy) {
            Some(e) => *e = (e.0 + 1, now_ms),
            None => {
                map.insert(policy.to_owned(), (1, now_ms));
            }
        }
    }

    /// Take the counts.
    pub fn take(&self) -> Vec<PolicyHit> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.drain().map(|(policy, (count, last_ms))| PolicyHit { policy, count, last_ms }).collect()
    }

    /// Put back counts that could not be reported.
    pub fn restore(&self, counts: Vec<PolicyHit>) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        for PolicyHit { policy, count, last_ms } in counts {
            let e = map.entry(policy).or_insert((0, last_ms));
            *e = (e.0.saturating_add(count), e.1.max(last_ms));
        }
    }
}

struct PolicyState {
    engine: Engine,
    target: Target,
    script_control: bool,
    /// Profiles that some policy ringfences with: while there are any, files they restrict
    /// and programs never become ignore marks (the kernel's marks cannot tell ringfenced
    /// processes from others).
    fences: Vec<RingfenceProfile>,
}

impl PolicyState {
    fn fencing(&self) -> bool {
        !self.fences.is_empty()
    }

    /// Whether some ringfence in force limits `path` (it must then keep reaching the agent).
    fn restricts(&self, path: &str) -> bool {
        self.fences.iter().any(|f| f.files.restricts(path))
    }

    /// Whether some ringfence in force may refuse to let its tree start this program (it must
    /// then keep reaching the agent): `deny` unless it is a listed application, `no-shells`
    /// when it is a shell or an interpreter (by name or by content).
    fn some_fence_could_refuse_start(
        &self,
        path: &str,
        file: &FileFacts,
        process: &ProcessFacts,
        shared: &Shared,
    ) -> bool {
        self.fences.iter().any(|f| self.child_denial(f, path, file, process, shared).is_some())
    }

    /// Whether `profile` lets its tree start the program `file`: a listed application, or
    /// by its default for the rest (a shell or interpreter known by name or by content).
    fn child_denial(
        &self,
        profile: &RingfenceProfile,
        path: &str,
        file: &FileFacts,
        process: &ProcessFacts,
        shared: &Shared,
    ) -> Option<FenceDenial> {
        let application = self.engine.matching_application(&profile.children.applications, file, process, &self.target);
        let interpreter = shared.interpreters.read().unwrap_or_else(|p| p.into_inner()).contains(&file.sha256);
        profile.check_child(path, application, interpreter)
    }
}

struct Shared {
    group: Group,
    cache: Cache,
    policy: RwLock<Arc<PolicyState>>,
    interpreters: RwLock<HashSet<[u8; 32]>>,
    users: Users,
    config: Config,
    own_pid: i32,
    stats: Stats,
    stop: AtomicBool,
    /// Stops the ringfence threads first, while the responders still answer their opens.
    fence_stop: AtomicBool,
    records: Mutex<mpsc::Sender<Record>>,
    /// Loaded when a policy first ringfences something.
    fencing: std::sync::OnceLock<Fencing>,
}

struct Pending {
    event: Event,
    received: Instant,
    answered: AtomicBool,
}

impl Pending {
    /// Answer unless someone already did; true when this call answered.
    fn answer(&self, group: &Group, response: Response) -> bool {
        if self.answered.swap(true, Ordering::AcqRel) {
            return false;
        }
        if let Err(e) = group.respond(&self.event, response) {
            tracing::warn!("answering pid {}: {e}", self.event.pid);
        }
        true
    }
}

/// The time an event is recorded, RFC 3339 with milliseconds.
fn event_time() -> String {
    let now = jiff::Timestamp::now();
    now.round(jiff::Unit::Millisecond).unwrap_or(now).to_string()
}

fn now() -> Timestamp {
    Timestamp(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64))
}

const CODE_MASK: Mask = Mask(Mask::OPEN_PERM.0 | Mask::OPEN_EXEC_PERM.0);

/// Reads through a descriptor at an offset of its own, so the descriptor's file position (and
/// whoever else reads it) is left alone.
struct PRead<'a> {
    fd: BorrowedFd<'a>,
    offset: u64,
}

impl Read for PRead<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: the kernel writes at most buf.len() bytes into buf.
        let n = unsafe { libc::pread(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), self.offset as i64) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        self.offset += n as u64;
        Ok(n as usize)
    }
}

fn read_head(fd: BorrowedFd<'_>) -> io::Result<Shape> {
    Shape::read(|offset, len| {
        let mut buf = Vec::with_capacity(len);
        PRead { fd, offset }.take(len as u64).read_to_end(&mut buf)?;
        Ok(buf)
    })
}

fn fd_path(fd: BorrowedFd<'_>) -> String {
    std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .map_or_else(|_| "(unknown)".into(), |p| p.to_string_lossy().into_owned())
}

fn compute_facts(shared: &Shared, fd: BorrowedFd<'_>, path: &str, size: u64) -> Result<Arc<FileFacts>, String> {
    let engine = &shared.policy.read().unwrap_or_else(|p| p.into_inner()).engine;
    let opts = portcullis_inspect::Options {
        // SHA-1 and MD5 only when a policy lists them: SHA-256 alone is the fast path.
        extra_hashes: ExtraHashes { sha1: engine.needs_flat_sha1(), md5: engine.needs_md5() },
        max_parse_size: 64 << 20,
        max_unpacked_bytes: 256 << 20,
        max_depth: 1,
        ..portcullis_inspect::Options::default()
    };
    let facts = portcullis_inspect::inspect_reader(path, &mut PRead { fd, offset: 0 }, size, &opts)
        .map_err(|e| format!("cannot read {path}: {e}"))?;
    shared.stats.hashed.fetch_add(1, Ordering::Relaxed);
    Ok(Arc::new(portcullis_inspect::policy_facts(&facts)))
}

/// The opening process, looked at lazily.
struct ProcOpener<'a> {
    shared: &'a Shared,
    pid: i32,
    exe: Option<Option<(Arc<Entry>, FileKey)>>,
}

impl ProcOpener<'_> {
    fn exe(&mut self) -> Option<(Arc<Entry>, FileKey)> {
        if self.exe.is_none() {
            let link = format!("/proc/{}/exe", self.pid);
            let found = identity::stat_path(&link).ok().and_then(|st| {
                // Opening the executable by its /proc link is an open on a marked filesystem:
                // fine here, in a worker; the responder allows our own events at once.
                let entry = self
                    .shared
                    .cache
                    .entry(st.key, || {
                        let f = std::fs::File::open(&link)?;
                        read_head(f.as_fd())
                    })
                    .ok()?;
                Some((entry, st.key))
            });
            self.exe = Some(found);
        }
        self.exe.clone().flatten()
    }
}

impl ProcOpener<'_> {
    /// The facts of the process's executable (hashed once per file version).
    fn exe_facts(&mut self) -> Option<Arc<FileFacts>> {
        let (entry, key) = self.exe()?;
        let link = format!("/proc/{}/exe", self.pid);
        let facts = entry.facts.get_or_init(|| {
            let f = std::fs::File::open(&link).map_err(|e| e.to_string())?;
            compute_facts(self.shared, f.as_fd(), &link, key.size)
        });
        facts.as_ref().ok().cloned()
    }
}

impl Opener for ProcOpener<'_> {
    fn is_loader(&mut self) -> bool {
        self.exe().and_then(|(e, _)| e.shape.elf()).is_some_and(|e| e.can_be_loader())
    }

    fn is_interpreter(&mut self) -> bool {
        if self.exe().is_none() {
            return false;
        }
        let interpreters = &self.shared.interpreters;
        if self.exe_facts().is_some_and(|f| interpreters.read().unwrap_or_else(|p| p.into_inner()).contains(&f.sha256))
        {
            return true;
        }
        let link = format!("/proc/{}/exe", self.pid);
        // An interpreter installed elsewhere (pyenv, /opt, a venv) is known by its name; a
        // renamed copy of one of the host's interpreters is known by its hash above.
        std::fs::read_link(&link).is_ok_and(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(is_interpreter_name))
    }

    fn names_on_command_line(&mut self, path: &str) -> bool {
        let args = process::arguments(self.pid);
        process::named_in(path, &args, process::cwd(self.pid).as_deref())
    }
}

/// What a worker concluded about one event.
struct Outcome {
    response: Response,
    ignore: Option<Mask>,
    report: Option<Report>,
}

struct Report {
    event: EventKind,
    access: Access,
    decision: Option<Decision>,
    reason: Option<String>,
    facts: Option<Arc<FileFacts>>,
    path: String,
    key: FileKey,
    process: process::ProcessInfo,
    /// Read before answering: once answered, a denied process and its parent may be gone.
    ancestors: Vec<process::ProcessInfo>,
    /// A ringfence refused it (or would have).
    fence: Option<(Ringfence, FenceDenial)>,
}

impl Outcome {
    fn allow() -> Outcome {
        Outcome { response: Response::Allow, ignore: None, report: None }
    }
}

fn judge(shared: &Shared, pending: &Pending) -> Outcome {
    let Some(fd) = pending.event.fd.as_ref().map(|f| f.as_fd()) else { return Outcome::allow() };
    let policy = shared.policy.read().unwrap_or_else(|p| p.into_inner()).clone();
    let Ok(stat) = identity::fstat(fd) else {
        return Outcome { response: shared.config.overload, ignore: None, report: None };
    };
    if !stat.regular {
        // Directories, devices and pipes hold no code: let the kernel stop asking.
        return Outcome { response: Response::Allow, ignore: Some(CODE_MASK), report: None };
    }
    let exec = pending.event.mask.intersects(Mask::OPEN_EXEC_PERM);
    // Who is ringfenced is asked only when the answer can matter (a restricted path, code).
    let fence_of = || shared.fencing.get().and_then(|f| f.of_process(pending.event.pid));
    let entry = match shared.cache.entry(stat.key, || read_head(fd)) {
        Ok(e) => e,
        Err(_) => return Outcome { response: shared.config.overload, ignore: None, report: None },
    };
    let path_cell = std::cell::OnceCell::new();
    let lazy_path = || path_cell.get_or_init(|| fd_path(fd)).clone();
    let mut opener = ProcOpener { shared, pid: pending.event.pid, exe: None };
    let access = classify::classify(exec, entry.shape, &lazy_path, policy.script_control, &mut opener);
    if !access.is_code() {
        let mut cacheable = classify::read_is_process_independent(entry.shape, policy.script_control);
        if policy.fencing() {
            let path = lazy_path();
            let restricted = policy.restricts(&path);
            if restricted
                && let Some(rf) = fence_of()
                && let Some(profile) = policy.engine.ringfence(&rf.profile)
                && let Some(denial) = profile.check_open(&path, fencing::opens_for_writing(pending.event.pid))
            {
                let any_open = profile.check_open(&path, false).is_some();
                return fence_outcome(shared, pending, (rf, denial, any_open), access, None, path, stat.key);
            }
            // A hard link can put a restricted file under an open path.
            cacheable &= !restricted && stat.nlink <= 1;
        }
        return Outcome { response: Response::Allow, ignore: cacheable.then_some(Mask::OPEN_PERM), report: None };
    }
    let fence = if policy.fencing() { fence_of() } else { None };
    shared.stats.judged.fetch_add(1, Ordering::Relaxed);
    let path = lazy_path();
    let proc_info = process::info(pending.event.pid);
    let facts = entry.facts.get_or_init(|| compute_facts(shared, fd, &path, stat.key.size)).clone();
    let facts = match facts {
        Ok(f) => f,
        Err(reason) => {
            return Outcome {
                response: shared.config.overload,
                ignore: None,
                report: Some(Report {
                    event: EventKind::Overload,
                    access,
                    decision: None,
                    reason: Some(reason),
                    facts: None,
                    path,
                    key: stat.key,
                    ancestors: proc_info.ppid.map(|pp| process::chain(pp, 32)).unwrap_or_default(),
                    process: proc_info,
                    fence: None,
                }),
            };
        }
    };
    let mut file = (*facts).clone();
    file.path.clone_from(&path);
    let process_facts =
        ProcessFacts { parent_path: proc_info.exe.clone(), user: proc_info.uid.map(|u| shared.users.name(u)) };
    let decision = policy.engine.decide(&file, &process_facts, &policy.target, now());
    if let (Some(hits), Some(name)) = (&shared.config.hits, decision.policy()) {
        hits.record(name);
    }
    let allow = decision.verdict == Verdict::Allow;
    // A program started directly, or through a loader run directly (`ld.so ./program`).
    let elf = entry.shape.elf();
    let starts_program = match access {
        Access::Exec => !elf.is_some_and(|e| e.can_be_loader()),
        Access::Load => elf.is_some_and(|e| !e.is_shared_object()),
        _ => false,
    };
    if allow
        && let Some(rf) = &fence
        && let Some(profile) = policy.engine.ringfence(&rf.profile)
    {
        let denial = if starts_program {
            let own_exe = opener.exe().is_some_and(|(_, key)| key.dev == stat.key.dev && key.ino == stat.key.ino);
            // Its own re-exec is the same application.
            if own_exe { None } else { policy.child_denial(profile, &path, &file, &process_facts, shared) }
        } else if access != Access::Exec {
            profile.check_open(&path, false)
        } else {
            None
        };
        if let Some(denial) = denial {
            let any_open = !starts_program;
            return fence_outcome(shared, pending, (rf.clone(), denial, any_open), access, Some(facts), path, stat.key);
        }
    }
    if allow
        && starts_program
        && let (Some(fenced), Some(fencing)) = (decision.fence(), shared.fencing.get())
    {
        // Both before the answer, since the exec completes only after it. The executable, for
        // the kernel's exec hook (a tree started later from it); and the process making this
        // exec itself, which is what a script (the hook sees its interpreter) and a filesystem
        // whose stat device differs from the kernel's (btrfs subvolumes, overlayfs) need. A
        // process that is already ringfenced keeps its tag.
        let tag = fencing.tag_for(&fenced, &policy.engine);
        let kernel = fencing.kernel();
        let mut tagged = Ok(());
        if access == Access::Exec {
            tagged = kernel.tag_executable(portcullis_fence::kernel_dev(stat.key.dev), stat.key.ino, tag);
        }
        if fence.is_none() {
            tagged = tagged.and(kernel.tag_process(pending.event.pid as u32, tag));
        }
        if let Err(e) = tagged {
            tracing::error!("ringfencing {path}: {e}");
        }
    }
    let event = if !allow {
        Some(EventKind::Deny)
    } else if decision.would_deny() {
        Some(EventKind::WouldDeny)
    } else if decision.is_learning_candidate() || decision.capture_into().is_some() {
        Some(EventKind::Candidate)
    } else {
        None
    };
    // Only a plain permit is handed to the kernel: denies must be asked again (the kernel
    // drops nothing for them), and Monitor/Learning outcomes must be recorded every time.
    let plain_permit = event.is_none() && decision.monitor_hits.is_empty() && !decision.depends_on_process;
    // While ringfences are in force, a program that some ringfenced tree may not start must
    // keep reaching the agent (an ignore mark answers every process alike), as must files a
    // ringfence restricts.
    let ignore = (plain_permit
        && (!policy.fencing()
            || (decision.fence().is_none()
                && stat.nlink <= 1
                && !policy.restricts(&path)
                && (elf.is_some_and(|e| e.is_shared_object())
                    || !policy.some_fence_could_refuse_start(&path, &file, &process_facts, shared)))))
    .then_some(CODE_MASK);
    Outcome {
        response: if allow { Response::Allow } else { Response::Deny },
        ignore,
        report: event.map(|event| Report {
            event,
            access,
            decision: Some(decision),
            reason: None,
            facts: Some(facts),
            path,
            key: stat.key,
            ancestors: proc_info.ppid.map(|pp| process::chain(pp, 32)).unwrap_or_default(),
            process: proc_info,
            fence: None,
        }),
    }
}

/// A ringfence refused an open or a program start: deny it (or, report-only, allow it) and
/// say which profile and rule. `any_open` when every open of the file by the tree is refused
/// (not only writing, not only starting it), so the LSM path may refuse repeats in the kernel.
fn fence_outcome(
    shared: &Shared,
    pending: &Pending,
    (rf, denial, any_open): (Ringfence, FenceDenial, bool),
    access: Access,
    facts: Option<Arc<FileFacts>>,
    path: String,
    key: FileKey,
) -> Outcome {
    let enforce = rf.tag.enforce;
    if enforce
        && any_open
        && let Some(f) = shared.fencing.get()
        && f.enforcement() == portcullis_fence::Enforcement::Lsm
    {
        // The LSM path denies repeats in the kernel; the fallback asks again every time.
        let _ = f.kernel().remember_denied_file(rf.tag.id, portcullis_fence::kernel_dev(key.dev), key.ino);
    }
    let proc_info = process::info(pending.event.pid);
    Outcome {
        response: if enforce { Response::Deny } else { Response::Allow },
        ignore: None,
        report: Some(Report {
            event: if enforce { EventKind::RingfenceDeny } else { EventKind::RingfenceWouldDeny },
            access,
            decision: None,
            reason: Some(denial.reason.clone()),
            facts,
            path,
            key,
            ancestors: proc_info.ppid.map(|pp| process::chain(pp, 32)).unwrap_or_default(),
            process: proc_info,
            fence: Some((rf, denial)),
        }),
    }
}

/// The configured overload verdict, as events name it.
fn overload_verdict(shared: &Shared) -> portcullis_events::Verdict {
    answered(shared.config.overload)
}

/// A kernel answer as events name it.
fn answered(response: Response) -> portcullis_events::Verdict {
    if response == Response::Allow { portcullis_events::Verdict::Allow } else { portcullis_events::Verdict::Deny }
}

/// What an event says about its file: the hash and kind, and what the file says it is.
fn file_record(path: String, key: FileKey, facts: Option<&FileFacts>) -> FileRecord {
    FileRecord {
        path,
        sha256: facts.map(|f| portcullis_inspect::hex(&f.sha256)).unwrap_or_default(),
        size: key.size,
        kind: facts.map(|f| f.kind.name().to_owned()).unwrap_or_default(),
        dev: key.dev,
        ino: key.ino,
        original_filename: facts.and_then(|f| f.original_filename.clone()),
        product_name: facts.and_then(|f| f.product_name.clone()),
        company_name: facts.and_then(|f| f.company_name.clone()),
        signer: facts.and_then(|f| f.signer.as_ref()).map(|s| SignerRecord {
            subject: s.subject.clone(),
            issuer: s.issuer.clone(),
            cert_sha256: portcullis_inspect::hex(&s.cert_sha256),
            verified: s.verified,
        }),
    }
}

fn process_record(shared: &Shared, info: process::ProcessInfo, ancestors: Vec<process::ProcessInfo>) -> ProcessRecord {
    ProcessRecord {
        pid: info.pid,
        user: info.uid.map(|u| shared.users.name(u)),
        exe: info.exe,
        uid: info.uid,
        ancestors,
    }
}

fn record_of(shared: &Shared, report: Report) -> Record {
    let policy = shared.policy.read().unwrap_or_else(|p| p.into_inner()).clone();
    let mode = policy.target.mode().at(now());
    let (verdict, policy_name, reason) = match (&report.decision, &report.fence) {
        (Some(d), _) => (
            answered(if d.verdict == Verdict::Allow { Response::Allow } else { Response::Deny }),
            d.policy().map(str::to_owned),
            d.explain(),
        ),
        (None, Some((rf, _))) if report.event != EventKind::Overload => (
            answered(if rf.tag.enforce { Response::Deny } else { Response::Allow }),
            Some(rf.policy.clone()),
            report.reason.unwrap_or_default(),
        ),
        (None, _) => (overload_verdict(shared), None, report.reason.unwrap_or_default()),
    };
    // Answered by the deadline keeper: the ringfence did not decide.
    let fence = if report.event == EventKind::Overload { None } else { report.fence };
    Record {
        time: event_time(),
        event: report.event,
        access: report.access,
        verdict,
        mode: mode.name().to_owned(),
        policy: policy_name,
        reason,
        file: file_record(report.path, report.key, report.facts.as_deref()),
        process: process_record(shared, report.process, report.ancestors),
        ringfence: fence.map(|(rf, denial)| RingfenceRecord {
            profile: rf.profile,
            rule: denial.rule,
            enforced: rf.tag.enforce,
            destination: None,
        }),
    }
}

/// Events queued to a lane's own worker and not yet finished.
type Depth = Arc<std::sync::atomic::AtomicUsize>;

fn worker(shared: Arc<Shared>, rx: Arc<Mutex<Receiver<Arc<Pending>>>>, depth: Option<Depth>) {
    loop {
        let next = rx.lock().unwrap_or_else(|p| p.into_inner()).recv_timeout(Duration::from_millis(100));
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
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| judge(&shared, &pending)));
        let outcome = outcome.unwrap_or_else(|_| {
            tracing::error!("judging an event of pid {} failed; answered with the overload verdict", pending.event.pid);
            Outcome { response: shared.config.overload, ignore: None, report: None }
        });
        if let (Some(mask), Some(fd)) = (outcome.ignore, pending.event.fd.as_ref()) {
            // Evictable and dropped on modification: a rewritten file is asked about again.
            match shared.group.mark_fd(MarkFlags::ADD | MarkFlags::IGNORE | MarkFlags::EVICTABLE, mask, fd.as_fd()) {
                Ok(()) => {
                    shared.stats.ignore_marks.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => tracing::debug!("ignore mark: {e}"),
            }
        }
        let answered = pending.answer(&shared.group, outcome.response);
        shared.stats.judge_ns.fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        shared.stats.answer_ns.fetch_add(pending.received.elapsed().as_nanos() as u64, Ordering::Relaxed);
        shared.stats.worker_answers.fetch_add(1, Ordering::Relaxed);
        if answered && outcome.response == Response::Deny {
            shared.stats.denied.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(mut report) = outcome.report {
            if !answered {
                // The deadline keeper answered first, with the overload verdict.
                report.event = EventKind::Overload;
            }
            let record = record_of(&shared, report);
            let _ = shared.records.lock().unwrap_or_else(|p| p.into_inner()).send(record);
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
struct Dispatch {
    lane: SyncSender<Arc<Pending>>,
    lane_depth: Depth,
    pool: SyncSender<Arc<Pending>>,
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

fn responder(shared: Arc<Shared>, work: Dispatch, pending: Arc<Mutex<VecDeque<Arc<Pending>>>>) {
    let mut buf = vec![0u8; 64 * 1024];
    let fd = shared.group.as_fd().as_raw_fd();
    while !shared.stop.load(Ordering::Acquire) {
        let mut p = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut p, 1, 100) } <= 0 {
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
            let item = Arc::new(Pending { event, received: Instant::now(), answered: AtomicBool::new(false) });
            match work.send(item.clone()) {
                Ok(()) => pending.lock().unwrap_or_else(|p| p.into_inner()).push_back(item),
                Err(item) => {
                    shared.stats.overload.fetch_add(1, Ordering::Relaxed);
                    item.answer(&shared.group, shared.config.overload);
                }
            }
        }
    }
}

fn deadline_keeper(shared: Arc<Shared>, pending: Arc<Mutex<VecDeque<Arc<Pending>>>>) {
    let timeout = shared.config.answer_timeout;
    while !shared.stop.load(Ordering::Acquire) {
        std::thread::sleep(Duration::from_millis(20).min(timeout / 2));
        let mut late = Vec::new();
        let mut list = pending.lock().unwrap_or_else(|p| p.into_inner());
        list.retain(|p| {
            if p.answered.load(Ordering::Acquire) {
                return false;
            }
            if p.received.elapsed() >= timeout {
                if p.answer(&shared.group, shared.config.overload) {
                    shared.stats.overload.fetch_add(1, Ordering::Relaxed);
                    late.push(p.clone());
                }
                return false;
            }
            true
        });
        drop(list);
        for p in late {
            let record = overload_record(&shared, &p, timeout);
            tracing::warn!("{}", record.summary());
            let _ = shared.records.lock().unwrap_or_else(|p| p.into_inner()).send(record);
        }
    }
}

/// The event for an open answered by the deadline keeper: what is known without judging it.
fn overload_record(shared: &Shared, p: &Pending, timeout: Duration) -> Record {
    let fd = p.event.fd.as_ref().map(|f| f.as_fd());
    let stat = fd.and_then(|fd| identity::fstat(fd).ok());
    let info = process::info(p.event.pid);
    let ancestors = info.ppid.map(|pp| process::chain(pp, 32)).unwrap_or_default();
    let verdict = overload_verdict(shared);
    let policy = shared.policy.read().unwrap_or_else(|p| p.into_inner()).clone();
    Record {
        time: event_time(),
        event: EventKind::Overload,
        access: if p.event.mask.intersects(Mask::OPEN_EXEC_PERM) { Access::Exec } else { Access::Open },
        verdict,
        mode: policy.target.mode().at(now()).name().into(),
        policy: None,
        reason: format!(
            "not judged within {} ms; answered {verdict} (the configured overload verdict)",
            timeout.as_millis()
        ),
        file: FileRecord {
            path: fd.map_or_else(|| "(unknown)".into(), fd_path),
            size: stat.map_or(0, |s| s.key.size),
            dev: stat.map_or(0, |s| s.key.dev),
            ino: stat.map_or(0, |s| s.key.ino),
            ..FileRecord::default()
        },
        process: process_record(shared, info, ancestors),
        ringfence: None,
    }
}

fn spool_writer(mut spool: Spool, rx: Receiver<Record>) {
    for record in rx {
        match serde_json::to_string(&record) {
            Ok(line) => {
                if let Err(e) = spool.append(&line) {
                    tracing::error!("event spool: {e}; the event is in this log only");
                }
            }
            Err(e) => tracing::error!("event spool: {e}"),
        }
        if record.event.denied() {
            tracing::warn!("{}", record.summary());
        } else {
            tracing::info!("{}", record.summary());
        }
    }
    let _ = spool.sync();
}

fn load_policy(config: &Config, load: &PolicyLoader) -> Result<PolicyState, AgentError> {
    let engine = load(&config.policy).map_err(AgentError::Policy)?;
    let target =
        engine.target(config.computer.as_deref(), Os::Linux).map_err(|e| AgentError::Computer(e.to_string()))?;
    let script_control = engine.policy_set().organization.script_control;
    let fences = engine.ringfences_in_force().into_iter().cloned().collect();
    Ok(PolicyState { engine, target, script_control, fences })
}

/// Load the ringfence programs the first time a policy ringfences something.
fn ensure_fencing(shared: &Shared) {
    let wanted = shared.policy.read().unwrap_or_else(|p| p.into_inner()).fencing();
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
fn scan_running(shared: &Arc<Shared>) -> Option<std::thread::JoinHandle<()>> {
    if shared.fencing.get().is_none() || !shared.policy.read().unwrap_or_else(|p| p.into_inner()).fencing() {
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
    let policy = shared.policy.read().unwrap_or_else(|p| p.into_inner()).clone();
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
        let Some(facts) = (ProcOpener { shared, pid, exe: None }).exe_facts() else { continue };
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
fn fence_events(shared: Arc<Shared>) {
    let keep_going = || !shared.fence_stop.load(Ordering::Acquire);
    while keep_going() {
        let Some(fencing) = shared.fencing.get() else {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        };
        let result = fencing.kernel().watch(Duration::from_millis(100), keep_going, |e| {
            let record = net_record(&shared, fencing, e);
            let _ = shared.records.lock().unwrap_or_else(|p| p.into_inner()).send(record);
        });
        if let Err(e) = result {
            tracing::error!("ringfence events: {e}");
            std::thread::sleep(Duration::from_secs(1));
        }
    }
}

fn net_record(shared: &Shared, fencing: &Fencing, e: portcullis_fence::NetEvent) -> Record {
    let rf = fencing.describe(e.tag);
    let info = process::info(e.tgid as i32);
    let ancestors = info.ppid.map(|pp| process::chain(pp, 32)).unwrap_or_default();
    let proto = if e.protocol.is_empty() { "ip".to_string() } else { e.protocol.clone() };
    let destination = format!("{proto}://{}", std::net::SocketAddr::new(e.addr, e.port));
    let profile = rf.as_ref().map_or_else(|| format!("#{}", e.tag.id), |r| r.profile.clone());
    let mode = shared.policy.read().unwrap_or_else(|p| p.into_inner()).target.mode().at(now());
    let verb = if e.tag.enforce { "does not allow" } else { "would not allow (report only)" };
    Record {
        time: event_time(),
        event: if e.tag.enforce { EventKind::RingfenceDeny } else { EventKind::RingfenceWouldDeny },
        access: match e.op {
            portcullis_fence::NetOp::Connect => Access::Connect,
            portcullis_fence::NetOp::Send => Access::Send,
        },
        verdict: answered(if e.tag.enforce { Response::Deny } else { Response::Allow }),
        mode: mode.name().to_owned(),
        policy: rf.as_ref().map(|r| r.policy.clone()),
        reason: format!("ringfence {profile:?} {verb} {} to {destination} (by {}; network.allow)", e.op.name(), e.comm),
        file: FileRecord { path: destination.clone(), ..FileRecord::default() },
        process: process_record(shared, info, ancestors),
        ringfence: Some(RingfenceRecord {
            profile,
            rule: "network.allow".into(),
            enforced: e.tag.enforce,
            destination: Some(destination),
        }),
    }
}

/// Resolve ringfence domains before enforcing, so that a ringfenced application's first
/// connects already find them.
fn refresh_domains_now(shared: &Shared) {
    if let Some(f) = shared.fencing.get() {
        let policy = shared.policy.read().unwrap_or_else(|p| p.into_inner()).clone();
        f.refresh_domains(&policy.engine, &policy.fences);
    }
}

/// Keep ringfence domains resolved within their TTL.
fn fence_domains(shared: Arc<Shared>) {
    while !shared.fence_stop.load(Ordering::Acquire) {
        let wait = match shared.fencing.get() {
            Some(f) => {
                let policy = shared.policy.read().unwrap_or_else(|p| p.into_inner()).clone();
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

/// Know the interpreters by hash when the policy judges scripts (only then are they asked
/// about), and forget them otherwise: hashing them all is start-up work.
fn refresh_interpreters(shared: &Shared) {
    // Ringfences that keep shells out know renamed copies of them by hash, too.
    let judged = {
        let p = shared.policy.read().unwrap_or_else(|p| p.into_inner());
        p.script_control || p.fencing()
    };
    let set = if judged { hash_interpreters(&shared.config.interpreters) } else { HashSet::new() };
    *shared.interpreters.write().unwrap_or_else(|p| p.into_inner()) = set;
}

fn hash_interpreters(paths: &[PathBuf]) -> HashSet<[u8; 32]> {
    let mut out = HashSet::new();
    for p in paths {
        let Ok(real) = std::fs::canonicalize(p) else { continue };
        match std::fs::File::open(&real).and_then(|f| portcullis_inspect::hash_reader(f, ExtraHashes::default())) {
            Ok((h, _)) => {
                out.insert(h.sha256);
            }
            Err(e) => tracing::debug!("interpreter {}: {e}", real.display()),
        }
    }
    out
}

const INTERPRETER_NAMES: &[&str] = &[
    "sh", "bash", "dash", "zsh", "ksh", "mksh", "csh", "tcsh", "fish", "busybox", "python", "pypy", "perl", "ruby",
    "node", "nodejs", "php", "lua", "luajit", "tclsh", "wish", "awk", "gawk", "mawk", "Rscript", "pwsh",
];

/// Whether a file name is an interpreter's, versions included (`python3.11`, `perl5.36.0`).
pub fn is_interpreter_name(name: &str) -> bool {
    let base = name.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.');
    INTERPRETER_NAMES.contains(&name) || INTERPRETER_NAMES.contains(&base)
}

/// Interpreters found on this host: shells, Python, Perl, Ruby, Node, PHP, Lua, Tcl, awk.
pub fn default_interpreters() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for dir in ["/usr/bin", "/bin", "/usr/local/bin"] {
        let Ok(entries) = std::fs::read_dir(dir) else { continue };
        for e in entries.flatten() {
            if is_interpreter_name(&e.file_name().to_string_lossy()) {
                out.push(e.path());
            }
        }
    }
    out
}

/// The CPUs this process may run on.
fn lane_cpus() -> Vec<usize> {
    // SAFETY: cpu_set_t is plain data filled by the kernel.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer and size.
    let ok = unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) } == 0;
    // SAFETY: CPU_ISSET reads the set.
    let cpus: Vec<usize> =
        (0..libc::CPU_SETSIZE as usize).filter(|&c| ok && unsafe { libc::CPU_ISSET(c, &set) }).collect();
    if cpus.is_empty() { vec![0] } else { cpus }
}

/// Pin the calling thread to one CPU (best effort: without it the lane still works).
fn pin_to(cpu: usize) {
    // SAFETY: as above; sched_setaffinity(0) applies to the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// Why the agent stopped.
#[derive(Debug)]
pub struct Summary {
    /// The counters.
    pub stats: Stats,
}

fn signal_set() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data, initialized by sigemptyset.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: valid set pointer.
    unsafe {
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGHUP);
    }
    set
}

/// Block, in the calling thread and the threads it starts from now on, the signals the agent
/// waits for (SIGTERM, SIGINT, SIGHUP). [`run`] does it; call it yourself before starting
/// threads of your own beside the agent, or a signal meant for the agent may land in one of
/// them and end the process.
pub fn block_handled_signals() {
    let set = signal_set();
    // SAFETY: blocking signals for this thread; threads spawned later inherit the mask.
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
}

/// Run the agent until SIGTERM or SIGINT (or `exit_after`). SIGHUP reloads the policy.
///
/// Must be called before other threads exist (or after [`block_handled_signals`]): it
/// blocks the signals it handles for every thread it starts.
pub fn run(config: Config, load: &PolicyLoader) -> Result<Summary, AgentError> {
    let started = Instant::now();
    let set = signal_set();
    block_handled_signals();

    let policy = load_policy(&config, load)?;
    let spool = Spool::open(config.spool.clone())
        .map_err(|error| AgentError::Spool { path: config.spool.dir.clone(), error })?;
    let group = Group::new(InitFlags::PERMISSION | InitFlags::NONBLOCK, libc::O_RDONLY | libc::O_LARGEFILE)
        .map_err(AgentError::Fanotify)?;
    let (records_tx, records_rx) = mpsc::channel();
    let shared = Arc::new(Shared {
        group,
        cache: Cache::new(config.cache_capacity),
        policy: RwLock::new(Arc::new(policy)),
        interpreters: RwLock::new(HashSet::new()),
        users: Users::default(),
        own_pid: std::process::id() as i32,
        stats: Stats::default(),
        stop: AtomicBool::new(false),
        fence_stop: AtomicBool::new(false),
        records: Mutex::new(records_tx),
        fencing: std::sync::OnceLock::new(),
        config,
    });
    let config = &shared.config;
    // Before any mark: loading reads BTF and the cgroup tree, neither on a watched filesystem.
    ensure_fencing(&shared);
    refresh_domains_now(&shared);

    let pending = Arc::new(Mutex::new(VecDeque::new()));
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
    for cpu in lane_cpus() {
        let (lane_tx, lane_rx) = mpsc::sync_channel::<Arc<Pending>>(1024);
        let depth: Depth = Arc::default();
        let dispatch = Dispatch { lane: lane_tx, lane_depth: depth.clone(), pool: pool_tx.clone() };
        let (s, p) = (shared.clone(), pending.clone());
        threads.push(spawn(
            &format!("responder-{cpu}"),
            Box::new(move || {
                pin_to(cpu);
                responder(s, dispatch, p)
            }),
        )?);
        let (s, r) = (shared.clone(), Arc::new(Mutex::new(lane_rx)));
        threads.push(spawn(
            &format!("lane-{cpu}"),
            Box::new(move || {
                pin_to(cpu);
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
    let spool_thread = spawn("spool", Box::new(move || spool_writer(spool, records_rx)))?;
    {
        let s = shared.clone();
        fence_threads.push(spawn("fence-events", Box::new(move || fence_events(s)))?);
        let s = shared.clone();
        fence_threads.push(spawn("fence-domains", Box::new(move || fence_domains(s)))?);
    }

    refresh_interpreters(&shared);

    // Marks.
    let mut marked: Vec<String> = Vec::new();
    let mark_new = |marked: &mut Vec<String>, strict: bool| -> Result<(), AgentError> {
        let all =
            mounts::current().map_err(|error| AgentError::Io { what: "reading /proc/self/mountinfo".into(), error })?;
        for m in mounts::select(&all, &config.scope, &config.excluded_fstypes, marked) {
            match shared.group.mark_path(MarkFlags::ADD | MarkFlags::FILESYSTEM, CODE_MASK, &m.mount_point) {
                Ok(()) => {
                    tracing::info!("watching {} ({}, {})", m.mount_point.display(), m.fstype, m.device);
                    marked.push(m.device.clone());
                }
                Err(error) if strict => return Err(AgentError::Mark { path: m.mount_point.clone(), error }),
                Err(error) => {
                    tracing::warn!("cannot watch {} ({}): {error}", m.mount_point.display(), m.fstype);
                    marked.push(m.device.clone());
                }
            }
        }
        Ok(())
    };
    let cleanup = |shared: &Arc<Shared>| {
        shared.stop.store(true, Ordering::Release);
    };
    if let Err(e) = mark_new(&mut marked, matches!(config.scope, Scope::Under(_))) {
        cleanup(&shared);
        return Err(e);
    }

    let secured = |s: &Shared| {
        let p = s.policy.read().unwrap_or_else(|p| p.into_inner());
        p.target.mode().at(now()) == Mode::Secured
    };
    let mut memfd = if secured(&shared) {
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
        let p = shared.policy.read().unwrap_or_else(|p| p.into_inner());
        tracing::info!(
            "enforcing {} ({} mode{}; {} hashes indexed; scripts {}; {} filesystem(s) watched)",
            config.policy.display(),
            p.target.mode().at(now()).name(),
            if memfd.enforced() { ", memfd exec closed" } else { "" },
            p.engine.hash_count(),
            if p.script_control { "judged" } else { "not judged" },
            marked.len()
        );
    }

    let mountinfo = std::fs::File::open("/proc/self/mountinfo").ok();
    loop {
        if let Some(m) = &mountinfo
            && mounts::wait_for_change(m, 0)
        {
            let _ = mark_new(&mut marked, false);
        }
        let timeout = libc::timespec { tv_sec: 0, tv_nsec: 100_000_000 };
        // SAFETY: valid set and timeout; no siginfo wanted.
        let sig = unsafe { libc::sigtimedwait(&set, std::ptr::null_mut(), &timeout) };
        if sig == libc::SIGTERM || sig == libc::SIGINT {
            tracing::info!("stopping on signal {sig}");
            break;
        }
        if sig == libc::SIGHUP {
            match load_policy(config, load) {
                Ok(state) => {
                    *shared.policy.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(state);
                    // Decisions the kernel remembers were made under the old policy.
                    if let Err(e) = shared.group.flush_inode_marks() {
                        tracing::error!("flushing ignore marks: {e}");
                    }
                    refresh_interpreters(&shared);
                    ensure_fencing(&shared);
                    if let Some(f) = shared.fencing.get() {
                        f.apply(&shared.policy.read().unwrap_or_else(|p| p.into_inner()).engine);
                    }
                    refresh_domains_now(&shared);
                    fence_threads.extend(scan_running(&shared));
                    if secured(&shared) && !memfd.enforced() {
                        memfd = sysctl::MemfdNoexec::enforce().unwrap_or_else(|_| sysctl::MemfdNoexec::untouched());
                    }
                    tracing::info!("policy reloaded from {}", config.policy.display());
                }
                Err(e) => tracing::error!("policy not reloaded, the old one stays in force: {e}"),
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
