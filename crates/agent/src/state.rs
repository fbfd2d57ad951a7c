//! The agent's state, at the bottom of its modules: its configuration and errors, its
//! counters, the policy in force, and what every thread shares.

use crate::fencing::Fencing;
use crate::identity::Cache;
use crate::locks::{Unpoisoned, UnpoisonedRw};
use crate::mounts::Scope;
use crate::process::Users;
use portcullis_events::spool::SpoolConfig;
use portcullis_events::{PolicyHit, Record};
use portcullis_fanotify::{Event, Group, Mask, Response};
use portcullis_policy::{Engine, FenceDenial, FileFacts, ProcessFacts, RingfenceProfile, Target, Timestamp};
use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, mpsc};
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
    /// The verdicts for events that cannot be judged in time (full queue, deadline passed)
    /// or at all (an unreadable file), by what they are.
    pub overload: Overload,
    /// Load the kernel guard: programs started from a filesystem the agent does not watch
    /// (yet) are stopped before their first instruction in Secured mode and reported in the
    /// others; where BPF LSM loads, executable mappings of unapproved content are too.
    pub guard: bool,
    /// Enforce a whole-system Secured policy even when it would deny the host's essentials
    /// ([`crate::lockout`]).
    pub force_secured: bool,
    /// The root whose package database (dpkg) the agent trusts — `/` for the host, a
    /// container's or a chroot's root for theirs; `None`: no package trust.
    pub package_root: Option<PathBuf>,
    /// Programs that map other programs themselves (valgrind's tools, qemu-user, box64), by
    /// path: known by content hash as well as by name, so an ELF program they open is
    /// judged as code.
    pub self_loaders: Vec<PathBuf>,
    /// Script interpreters, by path; the agent recognizes them by content hash.
    pub interpreters: Vec<PathBuf>,
    /// Make the agent's binary and policy immutable while it runs.
    pub protect: bool,
    /// Leave the policy file writable even when protecting (a signed bundle that the sync
    /// thread replaces; its signature, checked on every load, protects it instead).
    pub policy_writable: bool,
    /// Counts policy matches, for the server's hit counts.
    pub hits: Option<Arc<PolicyHits>>,
    /// Receives the installed packages each time they are read, for the server.
    pub inventory: Option<Arc<PackageInventory>>,
    /// Offline bypass codes, when the agent has a key shared with its server.
    pub bypass: Option<crate::bypass::BypassConfig>,
    /// The captures of Installation windows the server's bundles do not carry yet (kept in
    /// the state directory); none: kept in memory.
    pub captures: Option<Arc<crate::install::Captures>>,
    /// The drop box where users who are not root leave approval requests (with a server).
    pub user_box: Option<Arc<crate::userbox::UserBox>>,
    /// Stop by itself after this long (tests).
    pub exit_after: Option<Duration>,
    /// Written once every mark is in place.
    pub ready_file: Option<PathBuf>,
    /// File versions kept in the identity cache.
    pub cache_capacity: usize,
    /// Counts the events the spool could not keep (shared with whoever reports them).
    pub events_lost: Arc<AtomicU64>,
    /// The Prometheus endpoint, if one is wanted.
    pub metrics: Option<crate::metrics::MetricsConfig>,
    /// DNS server for ringfence domains; `None` uses `/etc/resolv.conf`.
    pub resolver: Option<std::net::SocketAddr>,
}

/// What an event that cannot be judged in time, or at all, is answered: code fails closed,
/// data fails open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Overload {
    /// An exec or a library load in Secured mode or an Installation window (a program padded to gigabytes must not run
    /// because hashing it took longer than the answer deadline).
    pub code_secured: Response,
    /// Everything else: plain reads, and code in the modes that never block.
    pub other: Response,
}

impl Default for Overload {
    fn default() -> Overload {
        Overload { code_secured: Response::Deny, other: Response::Allow }
    }
}

impl Overload {
    /// The verdict for an event that is code (or not), in a mode that enforces (or not).
    pub fn verdict(&self, code: bool, enforcing: bool) -> Response {
        if code && enforcing { self.code_secured } else { self.other }
    }
}

/// Why a policy could not be loaded: the loader's own error (a file that cannot be read, a
/// bundle whose signature fails, problems with their places…), kept whole.
pub type LoadError = Box<dyn std::error::Error + Send + Sync>;

/// Loads and compiles the policy file.
pub type PolicyLoader = dyn Fn(&Path) -> Result<Engine, LoadError> + Send + Sync;

/// Why the agent could not run. Each variant keeps the error that caused it as its source,
/// so that `caused by:` lines show it.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The policy could not be loaded.
    #[error("the policy {0} does not load")]
    Policy(String, #[source] LoadError),
    /// The computer is not in the policy.
    #[error("the computer to enforce for is not in the policy")]
    Computer(#[from] portcullis_policy::UnknownComputer),
    /// fanotify could not be set up.
    #[error("cannot start fanotify; the agent needs root (CAP_SYS_ADMIN) and a kernel with fanotify permission events")]
    Fanotify(#[source] io::Error),
    /// A filesystem that was asked for by name could not be marked.
    #[error("cannot watch {}", path.display())]
    Mark {
        /// The mount point.
        path: PathBuf,
        /// Why.
        #[source]
        error: io::Error,
    },
    /// The metrics endpoint could not listen.
    #[error("cannot serve metrics on {listen}; give a free address with --metrics-listen")]
    Metrics {
        /// The address asked for.
        listen: std::net::SocketAddr,
        /// Why.
        #[source]
        error: io::Error,
    },
    /// The spool could not be opened.
    #[error("cannot open the event spool {}; give a writable directory with --spool", path.display())]
    Spool {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        error: io::Error,
    },
    /// A whole-system Secured policy would deny the host's essentials.
    #[error(
        "the policy would deny what this host cannot run without, so it is not enforced in whole-system Secured mode: {}; \
         permit these files (or their packages), use Monitor or Learning mode, or pass --force-secured",
        .0.iter().map(|l| format!("{} ({})", l.path.display(), l.reason)).collect::<Vec<_>>().join("; ")
    )]
    Lockout(Vec<crate::lockout::Lockout>),
    /// Something else the agent needs failed.
    #[error("{what}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        #[source]
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
    /// Facts asked for and found in the cache (the misses are `hashed`).
    pub cache_hits: AtomicU64,
    /// Records the spool could not keep (its filesystem full or failing); shared with the
    /// spool writer, which holds no other part of the agent's state.
    pub spool_dropped: Arc<AtomicU64>,
    /// Worker answers by access and verdict.
    pub decisions: Decisions,
    /// Time from reading an event to answering it, for worker answers.
    pub answer_latency: Latency,
}

/// Worker answers counted by access and verdict.
#[derive(Debug, Default)]
pub struct Decisions([[AtomicU64; 2]; ACCESS_SLOTS]);

const ACCESS_SLOTS: usize = portcullis_events::Access::ALL.len();

impl Decisions {
    /// Count one answer; one given before the access was known (or of an unknown access)
    /// counts as an `open`.
    pub fn count(&self, access: Option<portcullis_events::Access>, deny: bool) {
        use portcullis_events::Access;
        let position = |a: Access| Access::ALL.iter().position(|x| *x == a);
        let slot = access.and_then(position).or_else(|| position(Access::Open)).unwrap_or(0);
        self.0[slot][usize::from(deny)].fetch_add(1, Ordering::Relaxed);
    }

    /// Every (access, verdict, count).
    pub fn counts(&self) -> Vec<(portcullis_events::Access, portcullis_events::Verdict, u64)> {
        use portcullis_events::Verdict;
        let rows = portcullis_events::Access::ALL.iter().zip(&self.0);
        rows.flat_map(|(access, row)| {
            [(Verdict::Allow, &row[0]), (Verdict::Deny, &row[1])]
                .map(|(verdict, n)| (*access, verdict, n.load(Ordering::Relaxed)))
        })
        .collect()
    }
}

/// A histogram of durations with fixed buckets, lock-free (workers add to it while they
/// answer).
#[derive(Debug, Default)]
pub struct Latency {
    buckets: [AtomicU64; LATENCY_BOUNDS_US.len()],
    count: AtomicU64,
    sum_ns: AtomicU64,
}

/// The upper bounds of [`Latency`]'s buckets, in microseconds (the last bucket is `+Inf`).
pub const LATENCY_BOUNDS_US: [u64; 16] =
    [10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000, 5_000_000];

impl Latency {
    /// Count one duration.
    pub fn observe(&self, d: std::time::Duration) {
        let us = d.as_micros().min(u128::from(u64::MAX)) as u64;
        if let Some(i) = LATENCY_BOUNDS_US.iter().position(|b| us <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(d.as_nanos().min(u128::from(u64::MAX)) as u64, Ordering::Relaxed);
    }

    /// (sum in seconds, count, per-bucket counts as (upper bound in seconds, count)), the
    /// last bucket unbounded (`f64::MAX`, which the encoder writes as `+Inf`).
    pub fn snapshot(&self) -> (f64, u64, Vec<(f64, u64)>) {
        let count = self.count.load(Ordering::Relaxed);
        let mut bounded = 0;
        let mut out = Vec::with_capacity(LATENCY_BOUNDS_US.len() + 1);
        for (b, n) in LATENCY_BOUNDS_US.iter().zip(&self.buckets) {
            let n = n.load(Ordering::Relaxed);
            bounded += n;
            out.push((*b as f64 / 1e6, n));
        }
        // Read apart from the buckets: never fewer in all than in the buckets.
        let count = count.max(bounded);
        out.push((f64::MAX, count - bounded));
        (self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9, count, out)
    }
}

/// The installed packages not yet reported to the server: the agent sets them each time it
/// reads the package database, the sync thread takes and reports them.
#[derive(Debug, Default)]
pub struct PackageInventory(Mutex<Option<Vec<portcullis_packages::Package>>>);

impl PackageInventory {
    pub(crate) fn publish(&self, db: &portcullis_packages::PackageDb) {
        *self.0.lock_ok() = Some(db.packages().to_vec());
    }

    /// Take the list to report, if it changed since it was last taken.
    pub fn take(&self) -> Option<Vec<portcullis_packages::Package>> {
        self.0.lock_ok().take()
    }

    /// Put back a list that could not be reported, unless a newer one came meanwhile.
    pub fn restore(&self, packages: Vec<portcullis_packages::Package>) {
        self.0.lock_ok().get_or_insert(packages);
    }
}

/// Matches per policy since they were last taken: the agent counts, the sync thread reports.
#[derive(Debug, Default)]
pub struct PolicyHits(Mutex<std::collections::HashMap<String, (u64, i64)>>);

impl PolicyHits {
    pub(crate) fn record(&self, policy: &str) {
        let now_ms =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
        let mut map = self.0.lock_ok();
        match map.get_mut(policy) {
            Some(e) => *e = (e.0 + 1, now_ms),
            None => {
                map.insert(policy.to_owned(), (1, now_ms));
            }
        }
    }

    /// Take the counts.
    pub fn take(&self) -> Vec<PolicyHit> {
        let mut map = self.0.lock_ok();
        map.drain().map(|(policy, (count, last_ms))| PolicyHit { policy, count, last_ms }).collect()
    }

    /// Put back counts that could not be reported.
    pub fn restore(&self, counts: Vec<PolicyHit>) {
        let mut map = self.0.lock_ok();
        for PolicyHit { policy, count, last_ms } in counts {
            let e = map.entry(policy).or_insert((0, last_ms));
            *e = (e.0.saturating_add(count), e.1.max(last_ms));
        }
    }
}

/// The policy in force, with what the agent derives from it once per load.
pub(crate) struct PolicyState {
    pub(crate) engine: Engine,
    pub(crate) target: Target,
    pub(crate) script_control: bool,
    /// Profiles that some policy ringfences with: while there are any, files they restrict
    /// and programs never become ignore marks (the kernel's marks cannot tell ringfenced
    /// processes from others).
    pub(crate) fences: Vec<RingfenceProfile>,
    /// The counter of the offline bypass code in force, if one is: Secured is enforced as
    /// Monitor until it ends.
    pub(crate) bypass: Option<u64>,
    /// The newest bundle version saved before this policy was loaded (it is at least that):
    /// the agent's own captures are looked up as of it ([`crate::install::Captures::lookup`]),
    /// so a worker still judging with the previous policy keeps seeing the captures the
    /// new one carries.
    pub(crate) bundle_version: i64,
}

impl PolicyState {
    /// Whether some ringfence is in force.
    pub(crate) fn fencing(&self) -> bool {
        !self.fences.is_empty()
    }

    /// Whether some ringfence in force limits `path` (it must then keep reaching the agent).
    pub(crate) fn restricts(&self, path: &str) -> bool {
        self.fences.iter().any(|f| f.files.restricts(path))
    }

    /// Whether some ringfence in force may refuse to let its tree start this program (it must
    /// then keep reaching the agent): `deny` unless it is a listed application, `no-shells`
    /// when it is a shell or an interpreter (by name, or by content: `interpreter`).
    pub(crate) fn some_fence_could_refuse_start(
        &self,
        path: &str,
        file: &FileFacts,
        process: &ProcessFacts,
        interpreter: bool,
    ) -> bool {
        self.fences.iter().any(|f| self.child_denial(f, path, file, process, interpreter).is_some())
    }

    /// Whether `profile` lets its tree start the program `file`: a listed application, or
    /// by its default for the rest (a shell or interpreter known by name, or by content).
    pub(crate) fn child_denial(
        &self,
        profile: &RingfenceProfile,
        path: &str,
        file: &FileFacts,
        process: &ProcessFacts,
        interpreter: bool,
    ) -> Option<FenceDenial> {
        let application = self.engine.matching_application(&profile.children.applications, file, process, &self.target);
        profile.check_child(path, application, interpreter)
    }
}

/// What every thread of the agent shares.
pub(crate) struct Shared {
    pub(crate) group: Group,
    pub(crate) cache: Cache,
    pub(crate) policy: RwLock<Arc<PolicyState>>,
    pub(crate) interpreters: RwLock<HashSet<[u8; 32]>>,
    /// Programs that map other programs themselves, by content hash.
    pub(crate) self_loaders: RwLock<HashSet<[u8; 32]>>,
    pub(crate) users: Users,
    pub(crate) config: Config,
    pub(crate) own_pid: i32,
    pub(crate) stats: Stats,
    pub(crate) stop: AtomicBool,
    /// Stops the ringfence threads first, while the responders still answer their opens.
    pub(crate) fence_stop: AtomicBool,
    pub(crate) records: Mutex<mpsc::Sender<Record>>,
    /// Loaded when a policy first ringfences something.
    pub(crate) fencing: std::sync::OnceLock<Fencing>,
    /// The kernel guard, when it loaded.
    pub(crate) guard: Option<portcullis_guard::Guard>,
    /// The guard saw a program from a filesystem the agent does not watch: look for mount
    /// namespaces now rather than at the next scan.
    pub(crate) rescan_namespaces: AtomicBool,
    /// The package database of [`Config::package_root`], re-read when it changes.
    pub(crate) packages: RwLock<Arc<portcullis_packages::PackageDb>>,
    /// The Installation window, followed from the mode in force.
    pub(crate) install: Arc<crate::install::Window>,
}

impl Shared {
    /// The policy in force now (a snapshot: a reload replaces it, never changes it).
    pub(crate) fn policy(&self) -> Arc<PolicyState> {
        self.policy.read_ok().clone()
    }

    /// Hand a record to the spool writer.
    pub(crate) fn record(&self, record: Record) {
        let _ = self.records.lock_ok().send(record);
    }

    /// The policy's mode now denies what no policy permits: Secured, or an Installation
    /// window (which enforces the rest of the host as Secured does: code fails closed on
    /// overload, memfd exec stays closed, the kernel guard enforces).
    pub(crate) fn enforcing(&self) -> bool {
        matches!(
            self.policy().target.mode().at(now()),
            portcullis_policy::Mode::Secured | portcullis_policy::Mode::Installation { .. }
        )
    }

    /// The verdict for an event that cannot be judged: code (an exec or a load) fails closed
    /// in Secured mode and Installation windows, the rest as configured.
    pub(crate) fn overload(&self, code: bool) -> Response {
        self.config.overload.verdict(code, self.enforcing())
    }
}

/// A permission event the kernel holds until it is answered.
pub(crate) struct Pending {
    pub(crate) event: Event,
    pub(crate) received: Instant,
    pub(crate) answered: AtomicBool,
    /// What classification made of it, once it has.
    pub(crate) access: std::sync::OnceLock<portcullis_events::Access>,
}

impl Pending {
    pub(crate) fn new(event: Event) -> Pending {
        Pending {
            event,
            received: Instant::now(),
            answered: AtomicBool::new(false),
            access: std::sync::OnceLock::new(),
        }
    }

    /// Whether it is code: as classified, or, before classification, when it is an exec
    /// (a plain open not classified yet is taken as data).
    pub(crate) fn is_code(&self) -> bool {
        self.access.get().map_or_else(|| self.event.mask.intersects(Mask::OPEN_EXEC_PERM), |a| a.is_code())
    }

    /// Answer unless someone already did; true when this call answered.
    pub(crate) fn answer(&self, group: &Group, response: Response) -> bool {
        if self.answered.swap(true, Ordering::AcqRel) {
            return false;
        }
        if let Err(e) = group.respond(&self.event, response) {
            tracing::warn!("answering pid {}: {e}", self.event.pid);
        }
        true
    }
}

/// The events the agent marks for: execs and opens.
pub(crate) const CODE_MASK: Mask = Mask(Mask::OPEN_PERM.0 | Mask::OPEN_EXEC_PERM.0);

/// The time an event is recorded, RFC 3339 with milliseconds.
pub(crate) fn event_time() -> String {
    let now = jiff::Timestamp::now();
    now.round(jiff::Unit::Millisecond).unwrap_or(now).to_string()
}

/// Now, for the engine: the server's time as this computer knows it ([`crate::clock`]).
pub(crate) fn now() -> Timestamp {
    Timestamp(crate::clock::now_s())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_fails_closed_in_secured_mode_and_data_fails_open() {
        let o = Overload::default();
        assert_eq!(o.verdict(true, true), Response::Deny, "an exec or load in Secured mode");
        assert_eq!(o.verdict(false, true), Response::Allow, "a plain read");
        assert_eq!(o.verdict(true, false), Response::Allow, "Monitor and the learning modes never block");
        let configured = Overload { code_secured: Response::Allow, other: Response::Deny };
        assert_eq!(
            (configured.verdict(true, true), configured.verdict(false, false)),
            (Response::Allow, Response::Deny)
        );
    }
}
