//! Installation windows ([`Mode::Installation`]): what a named installer's process tree
//! writes is captured into the window's application, so that it runs during the window and
//! after it, while the rest of the host stays Secured.
//!
//! How a file becomes captured:
//! 1. **Who writes** is known at the open, while the kernel holds the writer: a worker that
//!    judges an open for writing during a window asks procfs whether the opener, or an
//!    ancestor, is an installer ([`installer_of`]: run as root, its program or script named
//!    in [`portcullis_policy::INSTALLERS`]) and notes the file ([`Window::note_open`]).
//!    Later (when the file is closed) the writer may be gone, its ancestry with it.
//! 2. **What was written** is known when it is closed: a notification group (not the
//!    permission group: nothing waits on it) reports `FAN_CLOSE_WRITE` on every watched
//!    filesystem while a window is open; a noted file that looks like code (ELF, `#!`, an
//!    execute bit) and that no policy decides is hashed and captured ([`Captures`]).
//!    A package manager's payload under its temporary names (`.dpkg-new`, rpm's `;XXXXXXXX`)
//!    is not captured: package trust covers it once it is installed.
//! 3. **A run of a file still being captured** (written and run at once, before the close
//!    was read) is captured by the worker that judges the run.
//!
//! The agent's own record of captures (`captures.json` in its state directory) allows them
//! in Secured and Installation mode until the server's copy of the application has them: the
//! sync thread sends them, the server adds them to the application (and permits it at the
//! scope that opened the window), and the first bundle at or after that version replaces
//! the agent's record. An administrator who removes a captured hash from the application
//! then revokes it everywhere.

mod captures;

pub use captures::{CAPTURES_FILE, CAPTURES_JOURNAL, Captures};

use crate::facts::{compute_facts, fd_path, read_head};
use crate::identity::FileKey;
use crate::locks::Unpoisoned;
use crate::process;
use crate::shape::Shape;
use crate::state::{Shared, now};
use portcullis_fanotify::{Group, InitFlags, MarkFlags, Mask};
use portcullis_policy::{Basis, FileFacts, Mode, ProcessFacts};
use portcullis_protocol::CapturedFile;
use std::collections::{HashMap, HashSet};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Files noted as being written by an installer at most (a bigger install is captured as far
/// as this goes; the rest is denied and reported like any file no policy permits).
const WRITING_MAX: usize = 100_000;

/// The installer a process works for: itself or its nearest ancestor that runs as root and
/// whose program — or the script its interpreter runs — is named in
/// [`portcullis_policy::INSTALLERS`]. Its program or script path.
pub(crate) fn installer_of(pid: i32) -> Option<String> {
    for p in process::chain(pid, 32) {
        if p.uid != Some(0) {
            continue;
        }
        let Some(exe) = p.exe.as_deref() else { continue };
        let exe = exe.trim_end_matches(" (deleted)");
        let name = exe.rsplit('/').next().unwrap_or(exe);
        if portcullis_policy::is_installer_name(name) {
            return Some(exe.to_owned());
        }
        if crate::interpreters::is_interpreter_name(name)
            && let Some(script) = script_of(&process::arguments(p.pid))
            && portcullis_policy::is_installer_name(script.rsplit('/').next().unwrap_or(&script))
        {
            let cwd = process::cwd(p.pid);
            return Some(match cwd {
                Some(c) if !script.starts_with('/') => format!("{}/{}", c.trim_end_matches('/'), script),
                _ => script,
            });
        }
    }
    None
}

/// What a process runs: its program, and for an interpreter its command line.
fn running(pid: i32) -> Option<String> {
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok()?;
    let exe = exe.to_string_lossy().into_owned();
    let name = exe.rsplit('/').next().unwrap_or(&exe);
    if crate::interpreters::is_interpreter_name(name) {
        let args = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        return Some(format!("{exe}\0{}", String::from_utf8_lossy(&args)));
    }
    Some(exe)
}

/// The script (or module: `python3 -m pip`) an interpreter runs, from its arguments: the
/// first that is not an option. `-c` runs a command, not a file.
fn script_of(args: &[String]) -> Option<String> {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-c" => return None,
            "-m" => return it.next().cloned(),
            a if a.starts_with('-') => continue,
            a => return Some(a.to_owned()),
        }
    }
    None
}

/// A package manager's payload under a temporary name: it becomes the package's file when
/// the package is installed, and package trust covers it then.
pub(crate) fn is_package_payload(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    if name.ends_with(".dpkg-new") || name.ends_with(".dpkg-tmp") {
        return true;
    }
    // rpm writes `name;5f3e2a1b` and renames it.
    name.rsplit_once(';').is_some_and(|(_, tail)| tail.len() == 8 && tail.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The window in force, as the agent follows it.
#[derive(Debug)]
pub(crate) struct Window {
    /// A window is open: workers note installers' writes.
    open: AtomicBool,
    /// The application of the open window.
    application: Mutex<String>,
    /// Files being written by installers, by device and inode: the installer.
    writing: Mutex<HashMap<(u64, u64), String>>,
    /// The close-write watcher, while a window is open.
    watcher: Mutex<Option<Watcher>>,
    /// Installer trees by process and what it runs, for a moment: every open on the host
    /// asks during a window.
    trees: Mutex<HashMap<i32, Tree>>,
    pub(crate) captures: Arc<Captures>,
}

/// What a process runs, the installer it works for, and when that was asked.
type Tree = (String, Option<String>, std::time::Instant);

/// How long a process's tree is remembered.
const TREE_TTL: std::time::Duration = std::time::Duration::from_secs(2);

#[derive(Debug)]
struct Watcher {
    /// None: the group could not be made (said once); writes run at once are still captured.
    group: Option<Arc<Group>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    marked: HashSet<PathBuf>,
    captured: Arc<std::sync::atomic::AtomicUsize>,
}

impl Window {
    pub(crate) fn new(captures: Arc<Captures>) -> Window {
        Window {
            open: AtomicBool::new(false),
            application: Mutex::new(String::new()),
            writing: Mutex::new(HashMap::new()),
            watcher: Mutex::new(None),
            trees: Mutex::new(HashMap::new()),
            captures,
        }
    }

    /// Whether a window is open (the kernel must then keep asking about every open: an ignore
    /// mark would hide an installer's open for writing of a file read before).
    pub(crate) fn is_open(&self) -> bool {
        self.open.load(Ordering::Acquire)
    }

    /// The installer `pid` works for, remembered for [`TREE_TTL`] while the process runs the
    /// same program (an exec changes what it is: `bash -c "sh install.sh"` becomes the
    /// installer without a new pid, and the kernel may answer that exec by itself).
    fn tree_of(&self, pid: i32) -> Option<String> {
        let running = running(pid)?;
        if let Some((program, tree, at)) = self.trees.lock_ok().get(&pid)
            && *program == running
            && at.elapsed() < TREE_TTL
        {
            return tree.clone();
        }
        let tree = installer_of(pid);
        let mut trees = self.trees.lock_ok();
        if trees.len() > 10_000 {
            trees.retain(|_, (_, _, at)| at.elapsed() < TREE_TTL);
        }
        trees.insert(pid, (running, tree.clone(), std::time::Instant::now()));
        tree
    }

    /// An open (not an exec) judged by a worker: during a window, an open for writing by an
    /// installer's tree notes the file. Cheap when no window is open.
    pub(crate) fn note_open(&self, pid: i32, key: FileKey) {
        if !self.open.load(Ordering::Acquire) {
            return;
        }
        let Some(installer) = self.tree_of(pid) else { return };
        if !crate::fencing::opens_for_writing(pid) {
            return;
        }
        let mut writing = self.writing.lock_ok();
        if writing.len() >= WRITING_MAX && !writing.contains_key(&(key.dev, key.ino)) {
            tracing::warn!(
                "more than {WRITING_MAX} files written by installers in this window; {installer} writes more than is captured"
            );
            return;
        }
        writing.insert((key.dev, key.ino), installer);
    }

    /// The installer writing the file, if one is.
    fn writer(&self, key: FileKey) -> Option<String> {
        self.writing.lock_ok().get(&(key.dev, key.ino)).cloned()
    }

    /// The installer writing the file in the window open now (its close not read yet).
    pub(crate) fn installer_writing(&self, key: FileKey) -> Option<String> {
        if !self.open.load(Ordering::Acquire) {
            return None;
        }
        self.writer(key)
    }

    /// Keep the capture of a file an installer wrote and that ran before its close was read.
    pub(crate) fn keep(&self, facts: &FileFacts, application: &str, installer: &str) {
        if self.captures.add(captured_file(facts, application, installer)) {
            tracing::info!(
                "captured {} (sha256 {}) into {application:?} as it ran (written by {installer})",
                facts.path,
                captures::hex(&facts.sha256)
            );
        }
    }

    /// Follow the mode in force: open the watcher when an Installation window starts, mark
    /// the filesystems watched since, close it when the window ends.
    pub(crate) fn tick(self: &Arc<Self>, shared: &Arc<Shared>, paths: &[PathBuf]) {
        let mode = shared.policy().target.mode().at(now());
        let mut watcher = self.watcher.lock_ok();
        match (&mode, watcher.as_mut()) {
            (Mode::Installation { until, capture_into }, None) => {
                let group = match Group::new(
                    InitFlags::NOTIFY | InitFlags::NONBLOCK,
                    libc::O_RDONLY | libc::O_LARGEFILE | libc::O_CLOEXEC,
                ) {
                    Ok(g) => Some(Arc::new(g)),
                    Err(e) => {
                        tracing::error!(
                            "Installation mode: cannot watch what installers write ({e}); only what they write and \
                             run at once is captured"
                        );
                        None
                    }
                };
                *self.application.lock_ok() = capture_into.clone();
                let stop = Arc::new(AtomicBool::new(false));
                let captured = Arc::new(std::sync::atomic::AtomicUsize::new(0));
                let thread = group.as_ref().and_then(|group| {
                    let (group, stop, shared, window, captured) =
                        (group.clone(), stop.clone(), shared.clone(), self.clone(), captured.clone());
                    std::thread::Builder::new()
                        .name("install-capture".into())
                        .spawn(move || watch(&group, &stop, &shared, &window, &captured))
                        .ok()
                });
                let mut w = Watcher { group, stop, thread, marked: HashSet::new(), captured };
                mark(&mut w, paths);
                *watcher = Some(w);
                self.open.store(true, Ordering::Release);
                // What the kernel answers by itself (ignore marks) would hide an installer's
                // open for writing of a file opened before: it asks again while the window
                // is open.
                if let Err(e) = shared.group.flush_inode_marks() {
                    tracing::error!("flushing ignore marks for the Installation window: {e}");
                }
                tracing::warn!(
                    "Installation window open until {}: what {} write (as root) is captured into {capture_into:?}; \
                     everything else is enforced as in Secured mode",
                    until.date(),
                    portcullis_policy::INSTALLERS.join(", ")
                );
            }
            (Mode::Installation { .. }, Some(w)) => mark(w, paths),
            (_, _) if self.open.load(Ordering::Acquire) => {
                self.open.store(false, Ordering::Release);
                let count = watcher.take().map(|mut w| {
                    w.stop.store(true, Ordering::Release);
                    if let Some(t) = w.thread.take() {
                        let _ = t.join();
                    }
                    w.captured.load(Ordering::Relaxed)
                });
                self.writing.lock_ok().clear();
                self.trees.lock_ok().clear();
                tracing::warn!(
                    "Installation window closed ({} mode now): {} file(s) captured into {:?} by this window",
                    mode.name(),
                    count.unwrap_or(0),
                    self.application.lock_ok()
                );
            }
            _ => {}
        }
    }
}

fn mark(w: &mut Watcher, paths: &[PathBuf]) {
    let Some(group) = &w.group else { return };
    for p in paths {
        if w.marked.contains(p) {
            continue;
        }
        w.marked.insert(p.clone());
        if let Err(e) = group.mark_path(MarkFlags::ADD | MarkFlags::FILESYSTEM, Mask::CLOSE_WRITE, p) {
            tracing::warn!("Installation mode: cannot follow writes on {}: {e}", p.display());
        }
    }
}

/// The capture of a file as the server is told it.
fn captured_file(facts: &FileFacts, application: &str, installer: &str) -> CapturedFile {
    CapturedFile {
        sha256: captures::hex(&facts.sha256),
        path: facts.path.clone(),
        size: facts.size,
        application: application.to_owned(),
        installer: installer.to_owned(),
        at_ms: now().0 * 1000,
    }
}

/// Read close-write events until the window ends; capture what installers wrote.
fn watch(
    group: &Group,
    stop: &AtomicBool,
    shared: &Shared,
    window: &Window,
    captured: &std::sync::atomic::AtomicUsize,
) {
    let mut buf = vec![0u8; 64 * 1024];
    while !stop.load(Ordering::Acquire) && !shared.stop.load(Ordering::Acquire) {
        if crate::sys::poll(group.as_fd(), libc::POLLIN, 100).is_none() {
            continue;
        }
        let events = match group.read(&mut buf) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => {
                tracing::error!("reading close-write events: {e}");
                std::thread::sleep(std::time::Duration::from_millis(100));
                continue;
            }
        };
        for event in events {
            let Ok(event) = event else { continue };
            if event.mask.intersects(Mask::Q_OVERFLOW) {
                tracing::warn!(
                    "Installation mode: the kernel dropped close-write events (too many writes at once); files \
                     written then are captured only if they run during the window"
                );
                continue;
            }
            if event.pid == shared.own_pid {
                continue;
            }
            let Some(fd) = event.fd.as_ref() else { continue };
            if let Some(file) = consider(shared, window, fd.as_fd()) {
                let (path, app, sha) = (file.path.clone(), file.application.clone(), file.sha256.clone());
                if window.captures.add(file) {
                    captured.fetch_add(1, Ordering::Relaxed);
                    tracing::info!("captured {path} (sha256 {sha}) into {app:?}");
                }
            }
            // Captured (or not): the file is no longer being written by the installer.
            if let Ok(st) = crate::identity::fstat(fd.as_fd()) {
                window.writing.lock_ok().remove(&(st.key.dev, st.key.ino));
            }
        }
    }
}

/// Whether a file closed after writing is an installer's code that no policy decides; its
/// capture if it is.
fn consider(shared: &Shared, window: &Window, fd: std::os::fd::BorrowedFd<'_>) -> Option<CapturedFile> {
    let raw = crate::sys::fstat(fd).ok()?;
    let st = crate::identity::fstat(fd).ok()?;
    if !st.regular || st.key.size == 0 {
        return None;
    }
    let installer = window.writer(st.key)?;
    let executable = raw.st_mode & 0o111 != 0;
    let shape = read_head(fd).ok()?;
    if !executable && !matches!(shape, Shape::Elf(_) | Shape::Shebang) {
        return None;
    }
    let path = fd_path(fd);
    if is_package_payload(&path) || path.starts_with("(unknown)") {
        return None;
    }
    let facts = match compute_facts(shared, fd, &path, st.key.size) {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!("Installation mode: cannot capture {path}: {}", portcullis_policy::with_causes(&e));
            return None;
        }
    };
    let policy = shared.policy();
    let Mode::Installation { capture_into, .. } = policy.target.mode().at(now()) else { return None };
    let mut file = (*facts).clone();
    file.path.clone_from(&path);
    // A policy or blocklist decides it (package trust, a publisher, a deny): nothing to capture.
    let decision = policy.engine.decide(&file, &ProcessFacts::default(), &policy.target, now());
    if !matches!(decision.basis, Basis::Mode { .. }) {
        return None;
    }
    Some(captured_file(&file, &capture_into, &installer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpreters_run_the_script_or_module_named_first() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(script_of(&args(&["-x", "install.sh", "--prefix"])), Some("install.sh".into()));
        assert_eq!(script_of(&args(&["-m", "pip", "install", "x"])), Some("pip".into()));
        assert_eq!(script_of(&args(&["-c", "install.sh"])), None);
        assert_eq!(script_of(&args(&[])), None);
    }

    #[test]
    fn package_payload_names_are_not_captured() {
        assert!(is_package_payload("/usr/bin/tool.dpkg-new"));
        assert!(is_package_payload("/usr/lib/x.so.dpkg-tmp"));
        assert!(is_package_payload("/usr/bin/bash;6571a2bc"));
        assert!(!is_package_payload("/usr/bin/a;b"));
        assert!(!is_package_payload("/opt/vendor/bin/tool"));
    }

    #[test]
    fn this_test_is_no_installer_but_a_root_shell_running_install_sh_is() {
        assert_eq!(installer_of(std::process::id() as i32), None);
        if unsafe { libc::geteuid() } != 0 {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("install.sh");
        // A builtin that waits: no child outlives the shell.
        std::fs::write(&script, "read line\n").unwrap();
        let mut child = std::process::Command::new("sh")
            .arg(&script)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // The shell is the installer; a child it starts is in its tree.
        let mut found = None;
        for _ in 0..50 {
            found = installer_of(child.id() as i32);
            if found.is_some() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(found.as_deref(), script.to_str());
    }
}
