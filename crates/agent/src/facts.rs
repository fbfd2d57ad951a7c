//! Gathering what the judge asks about an event: the file through the event's descriptor,
//! the process through procfs, the ringfence through the kernel's tag map. Each fact is read
//! at most once per event, and only when asked ([`EventCase`]).
//!
//! Workers read event files only through the event's descriptor (`pread`); the opener's
//! executable is opened by its `/proc` link, which is an open on a watched filesystem: fine
//! in a worker, since the responders allow the agent's own opens at once.

use crate::classify::Opener;
use crate::fencing::{self, Ringfence};
use crate::identity::{self, Entry, FileKey, Unreadable};
use crate::interpreters::{is_interpreter_name, is_self_loader_path};
use crate::locks::UnpoisonedRw;
use crate::process::{self, ProcessInfo};
use crate::shape::Shape;
use crate::state::Shared;
use portcullis_inspect::ExtraHashes;
use portcullis_policy::{FileFacts, ProcessFacts};
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// Reads through a descriptor at an offset of its own, so the descriptor's file position (and
/// whoever else reads it) is left alone.
pub(crate) struct PRead<'a> {
    pub(crate) fd: BorrowedFd<'a>,
    pub(crate) offset: u64,
}

impl Read for PRead<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = crate::sys::pread(self.fd, buf, self.offset)?;
        self.offset += n as u64;
        Ok(n)
    }
}

/// The shape of a file from its first bytes (and its dynamic section).
pub(crate) fn read_head(fd: BorrowedFd<'_>) -> io::Result<Shape> {
    Shape::read(|offset, len| {
        let mut buf = Vec::with_capacity(len);
        PRead { fd, offset }.take(len as u64).read_to_end(&mut buf)?;
        Ok(buf)
    })
}

/// The path of an open descriptor, as the kernel resolved it.
pub(crate) fn fd_path(fd: BorrowedFd<'_>) -> String {
    std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .map_or_else(|_| "(unknown)".into(), |p| p.to_string_lossy().into_owned())
}

/// Inspect and hash a file through its descriptor, with the hashes the policy needs.
pub(crate) fn compute_facts(
    shared: &Shared,
    fd: BorrowedFd<'_>,
    path: &str,
    size: u64,
) -> Result<Arc<FileFacts>, Unreadable> {
    let policy = shared.policy();
    // A package installed a moment ago is read before its files are judged (a few stat
    // calls when nothing changed).
    crate::run::follow_packages(shared);
    let packages = shared.packages.read_ok().clone();
    let root = shared.config.package_root.as_deref();
    // MD5 or SHA-1 too for a file a package lists with one: trusted only if it still has it.
    let packaged = root.map(|r| crate::packaged::needs(&packages, r, path)).unwrap_or_default();
    let opts = portcullis_inspect::Options {
        // SHA-1 and MD5 only when a policy lists them: SHA-256 alone is the fast path.
        extra_hashes: ExtraHashes {
            sha1: policy.engine.needs_flat_sha1() || packaged.sha1,
            md5: policy.engine.needs_md5() || packaged.md5,
        },
        max_parse_size: 64 << 20,
        max_unpacked_bytes: 256 << 20,
        max_depth: 1,
        ..portcullis_inspect::Options::default()
    };
    let facts = portcullis_inspect::inspect_reader(path, &mut PRead { fd, offset: 0 }, size, &opts)
        .map_err(|e| Unreadable { path: path.to_owned(), error: Arc::new(e) })?;
    shared.stats.hashed.fetch_add(1, Ordering::Relaxed);
    let mut facts = portcullis_inspect::policy_facts(&facts);
    if let Some(r) = root {
        crate::packaged::apply(&packages, r, &mut facts);
    }
    Ok(Arc::new(facts))
}

/// An entry's facts, computed by `compute` the first time they are asked for; a later ask
/// counts as a cache hit.
fn cached_facts<'e>(
    shared: &Shared,
    entry: &'e Entry,
    compute: impl FnOnce() -> Result<Arc<FileFacts>, Unreadable>,
) -> &'e Result<Arc<FileFacts>, Unreadable> {
    if let Some(known) = entry.facts.get() {
        shared.stats.cache_hits.fetch_add(1, Ordering::Relaxed);
        return known;
    }
    entry.facts.get_or_init(compute)
}

/// The opening process, looked at lazily.
pub(crate) struct ProcOpener<'a> {
    pub(crate) shared: &'a Shared,
    pub(crate) pid: i32,
    exe: Option<Option<(Arc<Entry>, FileKey)>>,
}

impl<'a> ProcOpener<'a> {
    pub(crate) fn new(shared: &'a Shared, pid: i32) -> ProcOpener<'a> {
        ProcOpener { shared, pid, exe: None }
    }

    /// The process's executable: its cache entry and version.
    pub(crate) fn exe(&mut self) -> Option<(Arc<Entry>, FileKey)> {
        if self.exe.is_none() {
            let link = format!("/proc/{}/exe", self.pid);
            let found = identity::stat_path(&link).ok().and_then(|st| {
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

    /// The facts of the process's executable (hashed once per file version).
    pub(crate) fn exe_facts(&mut self) -> Option<Arc<FileFacts>> {
        let (entry, key) = self.exe()?;
        let link = format!("/proc/{}/exe", self.pid);
        let facts = cached_facts(self.shared, &entry, || {
            let f = std::fs::File::open(&link).map_err(|e| Unreadable { path: link.clone(), error: Arc::new(e) })?;
            // Under its own path, not the /proc link: these facts are the file version's,
            // cached for its own exec too, and package trust looks the path up.
            let path = crate::facts::fd_path(f.as_fd());
            compute_facts(self.shared, f.as_fd(), &path, key.size)
        });
        facts.as_ref().ok().cloned()
    }

    fn is_known_interpreter(&self, sha256: &[u8; 32]) -> bool {
        self.shared.interpreters.read_ok().contains(sha256)
    }
}

impl Opener for ProcOpener<'_> {
    fn is_loader(&mut self) -> bool {
        if self.exe().and_then(|(e, _)| e.shape.elf()).is_some_and(|e| e.can_be_loader()) {
            return true;
        }
        // A program that maps other programs itself: a renamed copy of one of the host's is
        // known by its hash, one installed elsewhere by its name.
        if self.exe().is_none() {
            return false;
        }
        let known = !self.shared.self_loaders.read_ok().is_empty()
            && self.exe_facts().is_some_and(|f| self.shared.self_loaders.read_ok().contains(&f.sha256));
        known || std::fs::read_link(format!("/proc/{}/exe", self.pid)).is_ok_and(|p| is_self_loader_path(&p))
    }

    fn is_interpreter(&mut self) -> bool {
        if self.exe().is_none() {
            return false;
        }
        if self.exe_facts().is_some_and(|f| self.is_known_interpreter(&f.sha256)) {
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

/// One event's facts for the judge, each gathered when first asked.
pub(crate) struct EventCase<'a> {
    pub(crate) opener: ProcOpener<'a>,
    fd: BorrowedFd<'a>,
    entry: Arc<Entry>,
    key: FileKey,
    path: Option<String>,
    info: Option<ProcessInfo>,
    fence: Option<Option<Ringfence>>,
}

impl<'a> EventCase<'a> {
    pub(crate) fn new(shared: &'a Shared, pid: i32, fd: BorrowedFd<'a>, entry: Arc<Entry>, key: FileKey) -> Self {
        EventCase { opener: ProcOpener::new(shared, pid), fd, entry, key, path: None, info: None, fence: None }
    }

    /// The file's path as already read (by classification): the judge asks no more.
    pub(crate) fn know_path(&mut self, path: String) {
        self.path = Some(path);
    }

    /// The process behind the event, read once (procfs).
    pub(crate) fn info(&mut self) -> ProcessInfo {
        let pid = self.opener.pid;
        self.info.get_or_insert_with(|| process::info(pid)).clone()
    }
}

impl crate::judge::Case for EventCase<'_> {
    fn path(&mut self) -> String {
        let fd = self.fd;
        self.path.get_or_insert_with(|| fd_path(fd)).clone()
    }

    fn ringfence(&mut self) -> Option<Ringfence> {
        let (shared, pid) = (self.opener.shared, self.opener.pid);
        self.fence.get_or_insert_with(|| shared.fencing.get().and_then(|f| f.of_process(pid))).clone()
    }

    fn opens_for_writing(&mut self) -> bool {
        fencing::opens_for_writing(self.opener.pid)
    }

    fn facts(&mut self) -> Result<Arc<FileFacts>, Unreadable> {
        let path = self.path();
        let (shared, fd, size) = (self.opener.shared, self.fd, self.key.size);
        cached_facts(shared, &self.entry, || compute_facts(shared, fd, &path, size)).clone()
    }

    fn process(&mut self) -> ProcessFacts {
        let info = self.info();
        let shared = self.opener.shared;
        ProcessFacts { parent_path: info.exe, user: info.uid.map(|u| shared.users.name(u)) }
    }

    fn is_own_executable(&mut self) -> bool {
        let key = self.key;
        self.opener.exe().is_some_and(|(_, exe)| exe.dev == key.dev && exe.ino == key.ino)
    }

    fn is_interpreter(&mut self, sha256: &[u8; 32]) -> bool {
        self.opener.is_known_interpreter(sha256)
    }

    fn captured(&mut self, sha256: &[u8; 32], as_of: i64) -> Option<String> {
        self.opener.shared.install.captures.lookup(sha256, as_of)
    }

    fn installer_writing(&mut self) -> Option<String> {
        self.opener.shared.install.installer_writing(self.key)
    }
}
