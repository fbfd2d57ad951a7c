//! Kernel guard for what fanotify cannot see.
//!
//! fanotify judges opens and execs on the filesystems the agent marks. Two gaps remain, and
//! the BPF programs here (C in `src/bpf/`, a libbpf skeleton, CO-RE) close what the kernel
//! lets them:
//! - **Exec backstop** (a `tp_btf/sched_process_exec` tracepoint, loads on every kernel with
//!   BTF): a program started from a filesystem the agent has not marked yet — a tmpfs mounted
//!   a moment ago in a new mount namespace, a memfd — is killed before its first instruction
//!   ([`Mode::Enforce`]) or reported ([`Mode::Report`]). The agent keeps the watched
//!   superblocks in step with its marks ([`Guard::watch`]); in scoped mode only files below a
//!   scope directory count ([`Guard::scope_dir`]), in every mount namespace.
//! - **Executable mappings** (BPF LSM `mmap_file` and `file_mprotect`, where the kernel
//!   accepts trampolines): memory made executable from a file on an unwatched filesystem
//!   (`dlopen` of a memfd), from a file never permitted as code ([`Guard::approve`]), or
//!   through a descriptor open for writing is refused; with [`Config::deny_wx`], anonymous
//!   memory writable and executable at once as well.
//!
//! Every decision is in `src/bpf/guard_logic.h`, compiled into the programs and, for the unit
//! tests, for the host. This crate decides nothing about policy: the agent says which
//! filesystems it watches and which files it permitted.

use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{Link, MapCore, MapFlags, OpenObject, RingBufferBuilder};
use std::mem::MaybeUninit;
use std::time::Duration;

#[allow(clippy::all, unused_imports, unsafe_op_in_unsafe_fn, missing_docs, non_camel_case_types)]
mod skel {
    include!(concat!(env!("OUT_DIR"), "/guard.skel.rs"));
}

use skel::types::{guard_config, guard_inode};
use skel::{GuardSkel, GuardSkelBuilder};

const GUARD_REPORT: u32 = 1;
const GUARD_ENFORCE: u32 = 2;
const GUARD_SCOPED: u32 = 1;
const GUARD_DENY_WX: u32 = 2;

/// Why the guard could not be loaded or updated.
#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    /// Loading or attaching the BPF programs failed.
    #[error("loading the guard's BPF programs (needs root and BTF at /sys/kernel/btf/vmlinux)")]
    Load(#[source] libbpf_rs::Error),
    /// A map update failed (usually: the map is full).
    #[error("updating guard map {map}")]
    Map {
        /// The map.
        map: &'static str,
        /// What libbpf said.
        #[source]
        error: libbpf_rs::Error,
    },
}

fn map_err(map: &'static str) -> impl Fn(libbpf_rs::Error) -> GuardError {
    move |error| GuardError::Map { map, error }
}

/// What the guard does with what it catches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Nothing.
    Off,
    /// Report it (Monitor and the learning modes).
    Report,
    /// Stop it (Secured).
    Enforce,
}

/// The guard's settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// What to do.
    pub mode: Mode,
    /// Only files below a scope directory count.
    pub scoped: bool,
    /// LSM: refuse anonymous memory that is writable and executable at once (breaks JIT
    /// compilers that map W+X; off by default).
    pub deny_wx: bool,
}

impl Config {
    fn raw(self) -> guard_config {
        let mode = match self.mode {
            Mode::Off => 0,
            Mode::Report => GUARD_REPORT,
            Mode::Enforce => GUARD_ENFORCE,
        };
        let flags = if self.scoped { GUARD_SCOPED } else { 0 } | if self.deny_wx { GUARD_DENY_WX } else { 0 };
        guard_config { mode, flags }
    }
}

/// What the guard caught.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum What {
    /// A program started from a filesystem the agent does not watch.
    ExecUnwatched,
    /// An executable mapping of a file (LSM).
    MapExec,
    /// Memory made executable (LSM).
    ProtectExec,
}

/// Why a mapping was caught.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Why {
    /// The file's filesystem is not watched (a memfd, an unwatched mount).
    Unwatched,
    /// The file was never permitted as code.
    Unapproved,
    /// The descriptor is open for writing.
    Writable,
    /// Anonymous memory writable and executable at once.
    WritableAndExecutable,
}

impl Why {
    /// In words, for events.
    pub fn describe(self) -> &'static str {
        match self {
            Why::Unwatched => "its filesystem is not watched (a memfd, or a mount the agent has not seen yet)",
            Why::Unapproved => "the file was never permitted as code",
            Why::Writable => "the file is open for writing in the same descriptor",
            Why::WritableAndExecutable => "the memory would be writable and executable at once",
        }
    }
}

/// One stop (or, in [`Mode::Report`], one would-be stop).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuardEvent {
    /// The process (thread-group id).
    pub tgid: u32,
    /// What was caught.
    pub what: What,
    /// Why.
    pub why: Why,
    /// It was stopped (else only reported).
    pub enforced: bool,
    /// The file's superblock (kernel device number, `major << 20 | minor`) and inode.
    pub dev: u64,
    /// The file's inode.
    pub ino: u64,
    /// The task's command name.
    pub comm: String,
    /// The name execve was given (exec only; may be relative).
    pub path: String,
}

/// `struct guard_event`: tgid@0 what@4 mode@8 why@12 dev@16 ino@24 comm@32 path@48.
const EVENT_SIZE: usize = 48 + 256;

fn c_string(bytes: &[u8]) -> String {
    String::from_utf8_lossy(&bytes[..bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len())]).into_owned()
}

fn parse_event(data: &[u8]) -> Option<GuardEvent> {
    if data.len() < EVENT_SIZE {
        return None;
    }
    let u32_at = |o: usize| u32::from_ne_bytes(data[o..o + 4].try_into().expect("4 bytes"));
    let u64_at = |o: usize| u64::from_ne_bytes(data[o..o + 8].try_into().expect("8 bytes"));
    let what = match u32_at(4) {
        1 => What::ExecUnwatched,
        2 => What::MapExec,
        3 => What::ProtectExec,
        _ => return None,
    };
    let why = match u32_at(12) {
        2 => Why::Unapproved,
        3 => Why::Writable,
        4 => Why::WritableAndExecutable,
        _ => Why::Unwatched,
    };
    Some(GuardEvent {
        tgid: u32_at(0),
        what,
        why,
        enforced: u32_at(8) == GUARD_ENFORCE,
        dev: u64_at(16),
        ino: u64_at(24),
        comm: c_string(&data[32..48]),
        path: c_string(&data[48..EVENT_SIZE]),
    })
}

/// Reinterpret a plain `#[repr(C)]` map struct as bytes.
///
/// Every type passed here is one of the skeleton's map structs or an integer, none of which
/// has implicit padding (guard.h spells padding out as fields).
fn bytes<T: Copy>(value: &T) -> &[u8] {
    // SAFETY: T is plain data without padding (see above); the slice lives as long as value.
    unsafe { std::slice::from_raw_parts((value as *const T).cast::<u8>(), std::mem::size_of::<T>()) }
}

const LSM_PROGRAMS: &[&str] = &["guard_lsm_mmap", "guard_lsm_mprotect"];

fn open_and_load(lsm: bool) -> Result<GuardSkel<'static>, libbpf_rs::Error> {
    // The skeleton borrows its object storage for as long as it lives; the agent keeps one
    // Guard for its lifetime, so the storage (a few pointers) is leaked rather than tied to a
    // self-referential struct.
    let storage: &'static mut MaybeUninit<OpenObject> = Box::leak(Box::new(MaybeUninit::uninit()));
    let mut open = GuardSkelBuilder::default().open(storage)?;
    if !lsm {
        for mut prog in open.open_object_mut().progs_mut() {
            if LSM_PROGRAMS.contains(&prog.name().to_string_lossy().as_ref()) {
                prog.set_autoload(false);
            }
        }
    }
    open.load()
}

/// The loaded programs and their maps. Dropping it detaches everything.
pub struct Guard {
    skel: GuardSkel<'static>,
    _links: Vec<Link>,
    lsm: bool,
}

impl Guard {
    /// Load and attach the exec backstop, and the LSM mapping programs where the kernel
    /// accepts them (the probe is the load itself). The guard starts [`Mode::Off`].
    pub fn load() -> Result<Guard, GuardError> {
        let lsm_possible = std::fs::read_to_string("/sys/kernel/security/lsm")
            .map_or(true, |l| l.trim().split(',').any(|m| m == "bpf"));
        if lsm_possible && std::env::var_os("PORTCULLIS_GUARD_NO_LSM").is_none() {
            // The refusal is expected on many kernels: keep libbpf's own messages quiet.
            let print = libbpf_rs::set_print(None);
            let probed = open_and_load(true).and_then(Guard::attach_lsm);
            libbpf_rs::set_print(print);
            if let Ok(guard) = probed {
                return Ok(guard);
            }
        }
        let skel = open_and_load(false).map_err(GuardError::Load)?;
        let links = vec![skel.progs.guard_exec.attach().map_err(GuardError::Load)?];
        Ok(Guard { skel, _links: links, lsm: false })
    }

    fn attach_lsm(skel: GuardSkel<'static>) -> Result<Guard, libbpf_rs::Error> {
        let links = vec![
            skel.progs.guard_exec.attach()?,
            skel.progs.guard_lsm_mmap.attach_lsm()?,
            skel.progs.guard_lsm_mprotect.attach_lsm()?,
        ];
        Ok(Guard { skel, _links: links, lsm: true })
    }

    /// Whether the LSM mapping programs are in force (else only the exec backstop).
    pub fn lsm(&self) -> bool {
        self.lsm
    }

    /// Change what the guard does.
    pub fn configure(&self, config: Config) -> Result<(), GuardError> {
        let zero = 0u32;
        self.skel.maps.config.update(bytes(&zero), bytes(&config.raw()), MapFlags::ANY).map_err(map_err("config"))
    }

    /// The agent watches this superblock (kernel device number): fanotify judges its files.
    pub fn watch(&self, dev: u64) -> Result<(), GuardError> {
        self.skel.maps.watched.update(bytes(&dev), &[1], MapFlags::ANY).map_err(map_err("watched"))
    }

    /// A scope directory (kernel device number and inode): in scoped mode only files below
    /// one count.
    pub fn scope_dir(&self, dev: u64, ino: u64) -> Result<(), GuardError> {
        let key = guard_inode { dev, ino };
        self.skel.maps.scope_dirs.update(bytes(&key), &[1], MapFlags::ANY).map_err(map_err("scope_dirs"))
    }

    /// The agent permitted this file as code: it may be mapped executable (LSM).
    pub fn approve(&self, dev: u64, ino: u64) -> Result<(), GuardError> {
        let key = guard_inode { dev, ino };
        self.skel.maps.approved.update(bytes(&key), &[1], MapFlags::ANY).map_err(map_err("approved"))
    }

    /// Forget every approval (a new policy: files are approved again as they are judged).
    pub fn forget_approved(&self) {
        let keys: Vec<Vec<u8>> = self.skel.maps.approved.keys().collect();
        for key in keys {
            let _ = self.skel.maps.approved.delete(&key);
        }
    }

    /// Deliver what the guard catches to `on_event` until `keep_going` returns false (checked
    /// every `tick`).
    pub fn events(
        &self,
        tick: Duration,
        mut keep_going: impl FnMut() -> bool,
        mut on_event: impl FnMut(GuardEvent),
    ) -> Result<(), GuardError> {
        let mut builder = RingBufferBuilder::new();
        builder
            .add(&self.skel.maps.events, |data: &[u8]| {
                if let Some(e) = parse_event(data) {
                    on_event(e);
                }
                0
            })
            .map_err(map_err("events"))?;
        let ring = builder.build().map_err(map_err("events"))?;
        while keep_going() {
            if let Err(e) = ring.poll(tick)
                && e.kind() != libbpf_rs::ErrorKind::Interrupted
            {
                return Err(map_err("events")(e));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod logic_tests {
    //! The C decision logic of the exec backstop and the LSM programs, compiled for the host
    //! (src/bpf/logic_test.c) and driven from here: the LSM part cannot load on every machine.
    use super::*;

    unsafe extern "C" {
        fn guard_test_exec_verdict(cfg: *const guard_config, watched: i32, in_scope: i32) -> u32;
        fn guard_test_map_verdict(
            cfg: *const guard_config,
            has_file: i32,
            in_scope: i32,
            watched: i32,
            approved: i32,
            writable: i32,
            wants_write: i32,
            why: *mut u32,
        ) -> u32;
    }

    fn cfg(mode: Mode, scoped: bool, deny_wx: bool) -> guard_config {
        Config { mode, scoped, deny_wx }.raw()
    }

    fn exec(c: Option<guard_config>, watched: bool, in_scope: bool) -> u32 {
        let p = c.as_ref().map_or(std::ptr::null(), |c| c as *const guard_config);
        // SAFETY: p is null or points to a live config; the function only reads it.
        unsafe { guard_test_exec_verdict(p, i32::from(watched), i32::from(in_scope)) }
    }

    #[test]
    fn an_exec_from_an_unwatched_filesystem_is_stopped_in_secured_and_reported_otherwise() {
        let secured = cfg(Mode::Enforce, false, false);
        // (config, watched, in scope) -> verdict
        let table = [
            (Some(secured), true, true, 0),
            (Some(secured), false, true, GUARD_ENFORCE),
            (Some(secured), false, false, GUARD_ENFORCE), // not scoped: the scope does not matter
            (Some(cfg(Mode::Report, false, false)), false, true, GUARD_REPORT),
            (Some(cfg(Mode::Off, false, false)), false, true, 0),
            (Some(cfg(Mode::Enforce, true, false)), false, false, 0), // scoped, outside
            (Some(cfg(Mode::Enforce, true, false)), false, true, GUARD_ENFORCE),
            (Some(cfg(Mode::Enforce, true, false)), true, true, 0),
            (None, false, true, 0),
        ];
        for (i, (c, watched, in_scope, want)) in table.into_iter().enumerate() {
            assert_eq!(exec(c, watched, in_scope), want, "row {i}");
        }
    }

    #[test]
    fn an_executable_mapping_needs_a_watched_approved_file_not_open_for_writing() {
        let run = |c: guard_config, has_file, in_scope, watched, approved, writable, wants_write| {
            let mut why = 0u32;
            // SAFETY: pointers to live locals; the function reads c and writes why.
            let v = unsafe {
                guard_test_map_verdict(
                    &c,
                    i32::from(has_file),
                    i32::from(in_scope),
                    i32::from(watched),
                    i32::from(approved),
                    i32::from(writable),
                    i32::from(wants_write),
                    &mut why,
                )
            };
            (v, why)
        };
        let secured = cfg(Mode::Enforce, false, false);
        assert_eq!(run(secured, true, true, true, true, false, false), (0, 0), "an approved library");
        assert_eq!(run(secured, true, true, false, true, false, false), (GUARD_ENFORCE, 1), "a memfd");
        assert_eq!(run(secured, true, true, true, false, false, false), (GUARD_ENFORCE, 2), "never permitted");
        assert_eq!(run(secured, true, true, true, true, true, false), (GUARD_ENFORCE, 3), "open for writing");
        assert_eq!(run(secured, false, true, false, false, false, true), (0, 0), "a JIT's W+X, by default");
        assert_eq!(run(cfg(Mode::Enforce, false, true), false, true, false, false, false, true), (GUARD_ENFORCE, 4));
        assert_eq!(run(cfg(Mode::Enforce, false, true), false, true, false, false, false, false), (0, 0));
        assert_eq!(run(cfg(Mode::Report, false, false), true, true, false, false, false, false), (GUARD_REPORT, 1));
        assert_eq!(run(cfg(Mode::Enforce, true, false), true, false, false, false, false, false), (0, 0), "outside");
        assert_eq!(run(cfg(Mode::Off, false, true), true, true, false, false, true, true), (0, 0));
    }

    #[test]
    fn ring_buffer_records_are_read_field_by_field() {
        let mut data = vec![0u8; EVENT_SIZE];
        data[0..4].copy_from_slice(&42u32.to_ne_bytes());
        data[4..8].copy_from_slice(&1u32.to_ne_bytes());
        data[8..12].copy_from_slice(&GUARD_ENFORCE.to_ne_bytes());
        data[12..16].copy_from_slice(&1u32.to_ne_bytes());
        data[16..24].copy_from_slice(&((7u64 << 20) | 3).to_ne_bytes());
        data[24..32].copy_from_slice(&99u64.to_ne_bytes());
        data[32..36].copy_from_slice(b"evil");
        data[48..55].copy_from_slice(b"/tmp/x\0");
        let e = parse_event(&data).unwrap();
        assert_eq!((e.tgid, e.what, e.why, e.enforced), (42, What::ExecUnwatched, Why::Unwatched, true));
        assert_eq!((e.dev, e.ino, e.comm.as_str(), e.path.as_str()), ((7 << 20) | 3, 99, "evil", "/tmp/x"));
        assert!(parse_event(&data[..100]).is_none(), "short");
        data[4..8].copy_from_slice(&9u32.to_ne_bytes());
        assert!(parse_event(&data).is_none(), "unknown kind");
    }
}
