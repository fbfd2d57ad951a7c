//! Kernel side of Portcullis ringfencing.
//!
//! BPF programs written in C (`src/bpf/`, compiled by clang into a libbpf skeleton, CO-RE)
//! keep a map of ringfenced processes by thread-group id: a process is tagged when it
//! executes a file the agent registered ([`Fence::tag_executable`]) or when the agent tags it
//! directly ([`Fence::tag_process`]); children inherit the tag at fork, threads share it, and
//! it goes when the last thread exits. Tagged processes' connects and datagrams are judged
//! in the kernel against their ringfence's allow-list ([`Fence::set_network`]); every refusal
//! (or, for a report-only ringfence, every would-be refusal) arrives as a [`NetEvent`].
//!
//! Two enforcement paths, chosen by [`Fence::load`]'s probe:
//! - [`Enforcement::Lsm`]: BPF LSM programs (`bprm_check_security`, `socket_connect`,
//!   `socket_sendmsg`, `file_open`), where the kernel accepts trampolines.
//! - [`Enforcement::Fallback`]: `tp_btf` exec tracepoint and cgroup `connect4/6`,
//!   `sendmsg4/6` programs on the cgroup-v2 root. Kernels that refuse LSM programs (EPERM)
//!   get this one.
//!
//! File opens and program starts by ringfenced processes are judged by the agent's fanotify
//! groups, which ask [`Fence::tag_of`] who is ringfenced. This crate decides nothing about
//! files: it holds the tags and the network allow-lists.

use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{Link, MapCore, MapFlags, OpenObject, RingBufferBuilder};
use std::collections::HashMap;
use std::mem::MaybeUninit;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

#[allow(clippy::all, unused_imports, unsafe_op_in_unsafe_fn, missing_docs, non_camel_case_types)]
mod skel {
    include!(concat!(env!("OUT_DIR"), "/fence.skel.rs"));
}

use skel::types::{fence_exe, fence_file, fence_net_key, fence_ports, fence_profile, fence_tag};
use skel::{FenceSkel, FenceSkelBuilder};

/// Most port ranges one allowed prefix can carry (the kernel map's fixed array).
pub const MAX_PORT_RANGES: usize = 16;

const ENFORCE: u32 = 1;
const NET_RESTRICTED: u32 = 1;

/// Why the kernel programs could not be loaded or updated.
#[derive(Debug, thiserror::Error)]
pub enum FenceError {
    /// Loading or attaching the BPF programs failed.
    #[error(
        "loading the ringfence BPF programs: {0} (needs root, BTF at /sys/kernel/btf/vmlinux and a cgroup-v2 mount)"
    )]
    Load(String),
    /// No cgroup-v2 hierarchy is mounted.
    #[error("no cgroup2 filesystem is mounted (looked in /proc/self/mountinfo); mount one, e.g. at /sys/fs/cgroup")]
    NoCgroup2,
    /// A map update failed (usually: the map is full).
    #[error("updating ringfence map {map}: {message}")]
    Map {
        /// The map.
        map: &'static str,
        /// What the kernel said.
        message: String,
    },
    /// An allowed prefix needs more port ranges than the kernel map holds.
    #[error("{net}/{prefix} allows {count} port ranges; at most {MAX_PORT_RANGES} fit: merge them into wider ranges")]
    TooManyPorts {
        /// The prefix's address.
        net: IpAddr,
        /// Its length.
        prefix: u8,
        /// Ranges it would need.
        count: usize,
    },
}

/// Which kernel mechanism enforces the network part and tags execs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Enforcement {
    /// BPF LSM programs.
    Lsm,
    /// Tracepoints and cgroup socket programs (kernels that refuse BPF LSM).
    Fallback,
}

impl Enforcement {
    /// `lsm` or `fallback`, for logs and events.
    pub fn name(self) -> &'static str {
        match self {
            Enforcement::Lsm => "lsm",
            Enforcement::Fallback => "fallback",
        }
    }
}

/// A ringfence as the kernel knows it: an id the agent gives each (policy, profile) pair, and
/// whether it denies or only reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Tag {
    /// The agent's id for the ringfence.
    pub id: u32,
    /// Deny; otherwise report what would have been denied.
    pub enforce: bool,
}

impl Tag {
    fn raw(self) -> fence_tag {
        fence_tag { id: self.id, flags: if self.enforce { ENFORCE } else { 0 } }
    }

    fn from_raw(raw: &fence_tag) -> Tag {
        Tag { id: raw.id, enforce: raw.flags & ENFORCE != 0 }
    }
}

/// Addresses a ringfenced process may reach: a prefix and its ports (empty: every port).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetAllow {
    /// The network address.
    pub addr: IpAddr,
    /// Prefix length (32 or 128 for one host).
    pub prefix: u8,
    /// Inclusive port ranges; empty allows every port.
    pub ports: Vec<(u16, u16)>,
}

/// What a ringfenced process tried on the network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetOp {
    /// `connect` (TCP, or UDP/ICMP connected sockets).
    Connect,
    /// A datagram sent to an address (`sendto`/`sendmsg`).
    Send,
}

impl NetOp {
    /// `connect` or `send`.
    pub fn name(self) -> &'static str {
        match self {
            NetOp::Connect => "connect",
            NetOp::Send => "send",
        }
    }
}

/// A connect or datagram a ringfence refused (or, when not enforced, would have refused).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetEvent {
    /// The process (thread-group id).
    pub tgid: u32,
    /// The ringfence.
    pub tag: Tag,
    /// What it tried.
    pub op: NetOp,
    /// The destination.
    pub addr: IpAddr,
    /// The destination port.
    pub port: u16,
    /// `tcp`, `udp` or the protocol number (0 when the LSM path does not know it).
    pub protocol: String,
    /// The task's command name.
    pub comm: String,
}

/// The loaded programs and their maps. Dropping it detaches everything: the kernel forgets
/// every tag.
pub struct Fence {
    skel: FenceSkel<'static>,
    _links: Vec<Link>,
    enforcement: Enforcement,
    /// The trie keys installed per ringfence id, to replace them as a whole.
    net_keys: Mutex<HashMap<u32, Vec<fence_net_key>>>,
}

/// Reinterpret a plain `#[repr(C)]` map struct as bytes.
///
/// Every type passed here is one of the skeleton's map structs, which have no implicit
/// padding (fence.h spells padding out as fields).
fn bytes<T: Copy>(value: &T) -> &[u8] {
    // SAFETY: T is plain data without padding (see above); the slice lives as long as value.
    unsafe { std::slice::from_raw_parts((value as *const T).cast::<u8>(), std::mem::size_of::<T>()) }
}

fn map_err(map: &'static str) -> impl Fn(libbpf_rs::Error) -> FenceError {
    move |e| FenceError::Map { map, message: e.to_string() }
}

/// The kernel's device number (`s_dev`: major << 20 | minor) for a `stat` `st_dev`.
pub fn kernel_dev(st_dev: u64) -> u64 {
    (u64::from(libc::major(st_dev)) << 20) | u64::from(libc::minor(st_dev))
}

/// Where the cgroup-v2 hierarchy is mounted, from `/proc/self/mountinfo`.
pub fn cgroup2_root() -> Option<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        if right.split(' ').next() != Some("cgroup2") {
            return None;
        }
        left.split(' ').nth(4).map(PathBuf::from)
    })
}

const LSM_PROGRAMS: &[&str] = &["fence_lsm_exec", "fence_lsm_connect", "fence_lsm_sendmsg", "fence_lsm_open"];
const FALLBACK_PROGRAMS: &[&str] =
    &["fence_exec", "fence_connect4", "fence_connect6", "fence_sendmsg4", "fence_sendmsg6"];

fn open_and_load(lsm: bool) -> Result<FenceSkel<'static>, libbpf_rs::Error> {
    // The skeleton borrows its object storage for as long as it lives; the agent keeps one
    // Fence for its lifetime, so the storage (a few pointers) is leaked rather than tied to a
    // self-referential struct.
    let storage: &'static mut MaybeUninit<OpenObject> = Box::leak(Box::new(MaybeUninit::uninit()));
    let mut open = FenceSkelBuilder::default().open(storage)?;
    let (skip, _) = if lsm { (FALLBACK_PROGRAMS, LSM_PROGRAMS) } else { (LSM_PROGRAMS, FALLBACK_PROGRAMS) };
    for mut prog in open.open_object_mut().progs_mut() {
        let name = prog.name().to_string_lossy().into_owned();
        if skip.contains(&name.as_str()) {
            prog.set_autoload(false);
        }
    }
    open.load()
}

impl Fence {
    /// Load and attach the programs: BPF LSM when the kernel accepts it (the probe is the
    /// load itself), otherwise the tracepoint and cgroup fallback on the cgroup-v2 root.
    pub fn load() -> Result<Fence, FenceError> {
        // securityfs is not always mounted: when the list cannot be read, the load decides.
        let lsm_possible = std::fs::read_to_string("/sys/kernel/security/lsm")
            .map_or(true, |l| l.trim().split(',').any(|m| m == "bpf"));
        if lsm_possible && std::env::var_os("PORTCULLIS_FENCE_FALLBACK").is_none() {
            // The refusal is expected on many kernels: keep libbpf's own messages about it quiet.
            let print = libbpf_rs::set_print(None);
            let probed = open_and_load(true);
            libbpf_rs::set_print(print);
            match probed {
                Ok(skel) => match Fence::attach(skel, Enforcement::Lsm) {
                    Ok(fence) => return Ok(fence),
                    Err(e) => tracing_free_note(&format!("BPF LSM attach refused ({e}); using the fallback")),
                },
                Err(e) => tracing_free_note(&format!("BPF LSM programs refused ({e}); using the fallback")),
            }
        }
        let skel = open_and_load(false).map_err(|e| FenceError::Load(e.to_string()))?;
        Fence::attach(skel, Enforcement::Fallback)
    }

    fn attach(skel: FenceSkel<'static>, enforcement: Enforcement) -> Result<Fence, FenceError> {
        let load = |e: libbpf_rs::Error| FenceError::Load(e.to_string());
        let mut links =
            vec![skel.progs.fence_fork.attach().map_err(load)?, skel.progs.fence_exit.attach().map_err(load)?];
        match enforcement {
            Enforcement::Lsm => {
                for prog in [
                    &skel.progs.fence_lsm_exec,
                    &skel.progs.fence_lsm_connect,
                    &skel.progs.fence_lsm_sendmsg,
                    &skel.progs.fence_lsm_open,
                ] {
                    links.push(prog.attach_lsm().map_err(load)?);
                }
            }
            Enforcement::Fallback => {
                links.push(skel.progs.fence_exec.attach().map_err(load)?);
                let root = cgroup2_root().ok_or(FenceError::NoCgroup2)?;
                let dir = std::fs::File::open(&root)
                    .map_err(|e| FenceError::Load(format!("opening {}: {e}", root.display())))?;
                for prog in [
                    &skel.progs.fence_connect4,
                    &skel.progs.fence_connect6,
                    &skel.progs.fence_sendmsg4,
                    &skel.progs.fence_sendmsg6,
                ] {
                    links.push(prog.attach_cgroup(dir.as_raw_fd()).map_err(load)?);
                }
            }
        }
        Ok(Fence { skel, _links: links, enforcement, net_keys: Mutex::new(HashMap::new()) })
    }

    /// The path the probe chose.
    pub fn enforcement(&self) -> Enforcement {
        self.enforcement
    }

    /// Ringfence whatever executes this file from now on (by the kernel's device number, see
    /// [`kernel_dev`], and inode). A process that is already ringfenced keeps its tag.
    pub fn tag_executable(&self, dev: u64, ino: u64, tag: Tag) -> Result<(), FenceError> {
        let key = fence_exe { dev, ino };
        self.skel.maps.exes.update(bytes(&key), bytes(&tag.raw()), MapFlags::ANY).map_err(map_err("exes"))
    }

    /// Forget every registered executable (a new policy: they are registered again as
    /// they are judged). Running processes keep their tags.
    pub fn forget_executables(&self) -> Result<(), FenceError> {
        let keys: Vec<Vec<u8>> = self.skel.maps.exes.keys().collect();
        for key in keys {
            let _ = self.skel.maps.exes.delete(&key);
        }
        Ok(())
    }

    /// Ringfence a running process and, from now on, its children.
    pub fn tag_process(&self, tgid: u32, tag: Tag) -> Result<(), FenceError> {
        self.skel.maps.tags.update(bytes(&tgid), bytes(&tag.raw()), MapFlags::ANY).map_err(map_err("tags"))
    }

    /// The ringfence of a process, if it has one.
    pub fn tag_of(&self, tgid: u32) -> Option<Tag> {
        let value = self.skel.maps.tags.lookup(bytes(&tgid), MapFlags::ANY).ok()??;
        (value.len() == std::mem::size_of::<fence_tag>()).then(|| {
            // SAFETY: the kernel returned exactly one fence_tag's bytes; read_unaligned copes
            // with the Vec's alignment.
            let raw: fence_tag = unsafe { std::ptr::read_unaligned(value.as_ptr().cast()) };
            Tag::from_raw(&raw)
        })
    }

    /// Every ringfenced process.
    pub fn tagged(&self) -> Vec<(u32, Tag)> {
        let keys: Vec<Vec<u8>> = self.skel.maps.tags.keys().collect();
        keys.iter()
            .filter_map(|k| {
                let tgid = u32::from_ne_bytes(k.as_slice().try_into().ok()?);
                Some((tgid, self.tag_of(tgid)?))
            })
            .collect()
    }

    /// Set what a ringfence allows on the network: `None` leaves its network free, `Some`
    /// allows only the listed prefixes and ports. Replaces what was set before for `id`.
    pub fn set_network(&self, id: u32, allow: Option<&[NetAllow]>) -> Result<(), FenceError> {
        // Restricted first: if the entries cannot all be installed, the ringfence denies more,
        // never less.
        let restricted = fence_profile { flags: if allow.is_some() { NET_RESTRICTED } else { 0 } };
        if allow.is_some() {
            self.skel
                .maps
                .profiles
                .update(bytes(&id), bytes(&restricted), MapFlags::ANY)
                .map_err(map_err("profiles"))?;
        }
        let entries = match allow {
            Some(list) => merged(list)?,
            None => Vec::new(),
        };
        let mut installed = self.net_keys.lock().unwrap_or_else(|p| p.into_inner());
        let old = installed.remove(&id).unwrap_or_default();
        let mut new_keys = Vec::with_capacity(entries.len());
        for (key, ports) in entries {
            let key = fence_net_key { id, ..key };
            if let Err(e) = self.skel.maps.net_allow.update(bytes(&key), bytes(&ports), MapFlags::ANY) {
                // Keep tracking what did go in, so that the next call removes it.
                new_keys.extend(old);
                installed.insert(id, new_keys);
                return Err(map_err("net_allow")(e));
            }
            new_keys.push(key);
        }
        for key in old {
            if !new_keys.iter().any(|k| bytes(k) == bytes(&key)) {
                let _ = self.skel.maps.net_allow.delete(bytes(&key));
            }
        }
        installed.insert(id, new_keys);
        self.skel.maps.profiles.update(bytes(&id), bytes(&restricted), MapFlags::ANY).map_err(map_err("profiles"))
    }

    /// Remember that a ringfence denied a file, so that the LSM path's `file_open` denies
    /// repeats in the kernel (the fallback asks the agent every time; this is harmless there).
    pub fn remember_denied_file(&self, id: u32, dev: u64, ino: u64) -> Result<(), FenceError> {
        let key = fence_file { id, pad: 0, dev, ino };
        self.skel.maps.denied_files.update(bytes(&key), &[1], MapFlags::ANY).map_err(map_err("denied_files"))
    }

    /// Forget the files remembered by [`Fence::remember_denied_file`] (a new policy).
    pub fn forget_denied_files(&self) {
        let keys: Vec<Vec<u8>> = self.skel.maps.denied_files.keys().collect();
        for key in keys {
            let _ = self.skel.maps.denied_files.delete(&key);
        }
    }

    /// Deliver network events to `on_event` until `keep_going` returns false (checked every
    /// `tick`).
    pub fn watch(
        &self,
        tick: Duration,
        mut keep_going: impl FnMut() -> bool,
        mut on_event: impl FnMut(NetEvent),
    ) -> Result<(), FenceError> {
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

/// Without tracing in this crate's dependencies, the one note it makes goes to stderr.
fn tracing_free_note(message: &str) {
    eprintln!("portcullis-fence: {message}");
}

/// `struct fence_event`: tgid@0 id@4 flags@8 op@12 family@14 protocol@16 port@20 pad@22
/// addr@24 comm@40.
const EVENT_SIZE: usize = 56;

fn parse_event(data: &[u8]) -> Option<NetEvent> {
    if data.len() < EVENT_SIZE {
        return None;
    }
    let u32_at = |o: usize| u32::from_ne_bytes(data[o..o + 4].try_into().expect("4 bytes"));
    let u16_at = |o: usize| u16::from_ne_bytes(data[o..o + 2].try_into().expect("2 bytes"));
    let addr: [u8; 16] = data[24..40].try_into().ok()?;
    let v6 = Ipv6Addr::from(addr);
    let addr = match v6.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(v6),
    };
    let comm = &data[40..56];
    let comm = String::from_utf8_lossy(&comm[..comm.iter().position(|&b| b == 0).unwrap_or(16)]).into_owned();
    let protocol = match u32_at(16) {
        6 => "tcp".to_string(),
        17 => "udp".to_string(),
        0 => String::new(),
        n => n.to_string(),
    };
    Some(NetEvent {
        tgid: u32_at(0),
        tag: Tag { id: u32_at(4), enforce: u32_at(8) & ENFORCE != 0 },
        op: if u16_at(12) == 2 { NetOp::Send } else { NetOp::Connect },
        addr,
        port: u16_at(20),
        protocol,
        comm,
    })
}

fn mapped(addr: IpAddr) -> [u8; 16] {
    match addr {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// The prefix's bits within the 128-bit (IPv4-mapped) address space.
fn bits(allow: &NetAllow) -> u32 {
    match allow.addr {
        IpAddr::V4(_) => 96 + u32::from(allow.prefix.min(32)),
        IpAddr::V6(_) => u32::from(allow.prefix.min(128)),
    }
}

fn masked(addr: [u8; 16], bits: u32) -> [u8; 16] {
    let value = u128::from_be_bytes(addr);
    let mask = if bits == 0 { 0 } else { u128::MAX << (128 - bits) };
    (value & mask).to_be_bytes()
}

fn contains(outer: ([u8; 16], u32), inner: ([u8; 16], u32)) -> bool {
    outer.1 <= inner.1 && masked(inner.0, outer.1) == outer.0
}

/// Trie entries for an allow-list: the kernel answers with the longest matching prefix only,
/// so each prefix carries the ports of every listed prefix that contains it.
fn merged(list: &[NetAllow]) -> Result<Vec<(fence_net_key, fence_ports)>, FenceError> {
    let prefixes: Vec<([u8; 16], u32, &NetAllow)> =
        list.iter().map(|a| (masked(mapped(a.addr), bits(a)), bits(a), a)).collect();
    let mut out: Vec<(fence_net_key, fence_ports)> = Vec::new();
    for &(net, len, allow) in &prefixes {
        if out.iter().any(|(k, _)| k.prefixlen == 32 + len && k.addr == net) {
            continue;
        }
        let covering: Vec<&NetAllow> =
            prefixes.iter().filter(|&&(n, l, _)| contains((n, l), (net, len))).map(|&(_, _, a)| a).collect();
        let mut ports = fence_ports::default();
        if !covering.iter().any(|a| a.ports.is_empty()) {
            let ranges = coalesce(covering.iter().flat_map(|a| a.ports.iter().copied()).collect());
            if ranges.len() > MAX_PORT_RANGES {
                return Err(FenceError::TooManyPorts { net: allow.addr, prefix: allow.prefix, count: ranges.len() });
            }
            for (i, (lo, hi)) in ranges.iter().enumerate() {
                ports.lo[i] = *lo;
                ports.hi[i] = *hi;
            }
            ports.count = ranges.len() as u16;
        }
        out.push((fence_net_key { prefixlen: 32 + len, id: 0, addr: net }, ports));
    }
    Ok(out)
}

/// Sort and join overlapping or adjacent port ranges.
fn coalesce(mut ranges: Vec<(u16, u16)>) -> Vec<(u16, u16)> {
    ranges.iter_mut().for_each(|r| *r = (r.0.min(r.1), r.0.max(r.1)));
    ranges.sort_unstable();
    let mut out: Vec<(u16, u16)> = Vec::new();
    for (lo, hi) in ranges {
        match out.last_mut() {
            Some(last) if u32::from(lo) <= u32::from(last.1) + 1 => last.1 = last.1.max(hi),
            _ => out.push((lo, hi)),
        }
    }
    out
}

/// An IPv4 address for tests and callers that build allow-lists by hand.
pub fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

/// Whether this process may load BPF programs at all (root, or CAP_BPF and friends).
pub fn can_load() -> bool {
    // SAFETY: geteuid has no preconditions.
    (unsafe { libc::geteuid() } == 0) && Path::new("/sys/kernel/btf/vmlinux").exists()
}

#[cfg(test)]
mod logic_tests {
    //! The C decision logic shared by the fallback and the LSM programs, compiled for the
    //! host (src/bpf/logic_test.c) and driven from here.
    use super::*;

    unsafe extern "C" {
        fn fence_test_net_verdict(
            tag: *const fence_tag,
            profile: *const fence_profile,
            ports: *const fence_ports,
            port: u16,
            report: *mut i32,
        ) -> i32;
        fn fence_test_net_key_v4(key: *mut fence_net_key, id: u32, addr_be: u32);
        fn fence_test_fork_is_process(parent: u32, child: u32) -> i32;
        fn fence_test_group_dead(live: i32) -> i32;
        fn fence_test_exec_tag(current: *const fence_tag, of_exe: *const fence_tag) -> *const fence_tag;
        fn fence_test_kernel_dev(major: u32, minor: u32) -> u64;
    }

    fn verdict(tag: Option<Tag>, restricted: Option<bool>, ports: Option<&[(u16, u16)]>, port: u16) -> (bool, bool) {
        let tag = tag.map(Tag::raw);
        let profile = restricted.map(|r| fence_profile { flags: if r { NET_RESTRICTED } else { 0 } });
        let ports = ports.map(|list| {
            let mut p = fence_ports { count: list.len() as u16, ..Default::default() };
            for (i, (lo, hi)) in list.iter().enumerate() {
                p.lo[i] = *lo;
                p.hi[i] = *hi;
            }
            p
        });
        let mut report = -1;
        // SAFETY: pointers to locals or null, as the C function expects.
        let allow = unsafe {
            fence_test_net_verdict(
                tag.as_ref().map_or(std::ptr::null(), |t| t),
                profile.as_ref().map_or(std::ptr::null(), |p| p),
                ports.as_ref().map_or(std::ptr::null(), |p| p),
                port,
                &mut report,
            )
        };
        (allow == 1, report == 1)
    }

    const ENFORCED: Option<Tag> = Some(Tag { id: 3, enforce: true });
    const REPORTING: Option<Tag> = Some(Tag { id: 3, enforce: false });

    #[test]
    fn untagged_processes_and_unrestricted_profiles_pass_without_a_report() {
        assert_eq!(verdict(None, Some(true), None, 443), (true, false));
        assert_eq!(verdict(ENFORCED, Some(false), None, 443), (true, false));
        assert_eq!(verdict(ENFORCED, None, None, 443), (true, false));
    }

    #[test]
    fn enforced_ringfence_denies_outside_its_prefixes_and_ports() {
        assert_eq!(verdict(ENFORCED, Some(true), None, 443), (false, true), "no matching prefix");
        assert_eq!(verdict(ENFORCED, Some(true), Some(&[(443, 443)]), 443), (true, false));
        assert_eq!(verdict(ENFORCED, Some(true), Some(&[(443, 443)]), 444), (false, true));
        assert_eq!(verdict(ENFORCED, Some(true), Some(&[(80, 80), (5060, 5090)]), 5075), (true, false));
        assert_eq!(verdict(ENFORCED, Some(true), Some(&[]), 9), (true, false), "count 0 is every port");
    }

    #[test]
    fn reporting_ringfence_lets_through_but_reports() {
        assert_eq!(verdict(REPORTING, Some(true), None, 443), (true, true));
        assert_eq!(verdict(REPORTING, Some(true), Some(&[(443, 443)]), 443), (true, false));
    }

    #[test]
    fn ipv4_keys_are_ipv4_mapped_and_match_the_loader() {
        let mut key = fence_net_key { prefixlen: 0, id: 0, addr: [0; 16] };
        let addr_be = u32::from_ne_bytes([10, 1, 2, 3]);
        // SAFETY: valid out-pointer.
        unsafe { fence_test_net_key_v4(&mut key, 9, addr_be) };
        assert_eq!(key.prefixlen, 160);
        assert_eq!(key.id, 9);
        assert_eq!(key.addr, mapped(v4(10, 1, 2, 3)));
    }

    #[test]
    fn tree_rules_threads_exit_and_exec() {
        // SAFETY: plain values in and out.
        unsafe {
            assert_eq!(fence_test_fork_is_process(100, 100), 0, "a thread shares its group's tag");
            assert_eq!(fence_test_fork_is_process(100, 101), 1);
            assert_eq!(fence_test_group_dead(1), 0, "a leader exiting before its threads keeps the tag");
            assert_eq!(fence_test_group_dead(0), 1);
            let mine = Tag { id: 1, enforce: true }.raw();
            let exe = Tag { id: 2, enforce: true }.raw();
            assert_eq!(fence_test_exec_tag(&mine, &exe), &mine as *const _, "a ringfenced tree keeps its tag");
            assert_eq!(fence_test_exec_tag(std::ptr::null(), &exe), &exe as *const _);
            assert!(fence_test_exec_tag(std::ptr::null(), std::ptr::null()).is_null());
            assert_eq!(fence_test_kernel_dev(8, 1), (8 << 20) | 1);
        }
        let st_dev = libc::makedev(259, 3);
        assert_eq!(kernel_dev(st_dev), (259 << 20) | 3);
    }

    #[test]
    fn nested_prefixes_carry_the_ports_of_those_around_them() {
        let list = [
            NetAllow { addr: v4(10, 0, 0, 0), prefix: 8, ports: vec![(443, 443)] },
            NetAllow { addr: v4(10, 1, 2, 3), prefix: 32, ports: vec![(5060, 5061), (5062, 5090)] },
            NetAllow { addr: v4(10, 1, 2, 3), prefix: 32, ports: vec![(22, 22)] },
        ];
        let entries = merged(&list).unwrap();
        assert_eq!(entries.len(), 2, "one entry per distinct prefix");
        let host = entries.iter().find(|(k, _)| k.prefixlen == 160).unwrap();
        let ranges: Vec<_> = (0..host.1.count as usize).map(|i| (host.1.lo[i], host.1.hi[i])).collect();
        assert_eq!(ranges, vec![(22, 22), (443, 443), (5060, 5090)]);
        let net = entries.iter().find(|(k, _)| k.prefixlen == 32 + 96 + 8).unwrap();
        assert_eq!(net.0.addr, mapped(v4(10, 0, 0, 0)));
        let any = merged(&[NetAllow { addr: v4(0, 0, 0, 0), prefix: 0, ports: vec![] }]).unwrap();
        assert_eq!(any[0].1.count, 0, "every port");
        let many: Vec<(u16, u16)> = (0..20).map(|i| (i * 10, i * 10)).collect();
        assert!(matches!(
            merged(&[NetAllow { addr: v4(1, 1, 1, 1), prefix: 32, ports: many }]),
            Err(FenceError::TooManyPorts { count: 20, .. })
        ));
    }
}
