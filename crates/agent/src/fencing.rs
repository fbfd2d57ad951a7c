//! Ringfencing in the agent: which (policy, profile) pair each kernel tag stands for, the
//! network allow-lists the kernel enforces (addresses, resolved domains, DNS servers), and
//! what a ringfenced process asked for when it opened a file.
//!
//! The kernel side is `portcullis-fence`; the judgements are the policy crate's
//! [`RingfenceProfile`] methods. This module connects them and keeps them current.

use crate::dns;
use crate::locks::{Unpoisoned, UnpoisonedRw};
use portcullis_fence::{Fence, NetAllow, Tag};
use portcullis_policy::{Engine, Fenced, RingfenceProfile};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

/// What a kernel tag stands for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ringfence {
    /// The kernel's tag.
    pub tag: Tag,
    /// The policy that put it on.
    pub policy: String,
    /// The profile.
    pub profile: String,
}

#[derive(Clone, Debug)]
struct Resolved {
    addrs: Vec<IpAddr>,
    refresh_at: Instant,
}

/// The agent's ringfencing state.
pub struct Fencing {
    kernel: Fence,
    /// Tag id - 1 indexes this; ids are never reused, so tags in the kernel stay meaningful
    /// across policy reloads.
    registry: RwLock<Vec<Ringfence>>,
    domains: Mutex<HashMap<String, Resolved>>,
    resolver: Option<SocketAddr>,
}

/// Shortest and longest time a resolved domain is kept before it is asked again.
const MIN_TTL: Duration = Duration::from_secs(1);
const MAX_TTL: Duration = Duration::from_secs(3600);
/// After a failed lookup, ask again this soon (the old addresses stay meanwhile).
const RETRY: Duration = Duration::from_secs(5);

impl Fencing {
    /// Load the kernel programs. `resolver` overrides `/etc/resolv.conf`'s first server for
    /// ringfence domains.
    pub fn load(resolver: Option<SocketAddr>) -> Result<Fencing, portcullis_fence::FenceError> {
        let kernel = Fence::load()?;
        Ok(Fencing { kernel, registry: RwLock::new(Vec::new()), domains: Mutex::new(HashMap::new()), resolver })
    }

    /// The kernel enforcement path in use.
    pub fn enforcement(&self) -> portcullis_fence::Enforcement {
        self.kernel.enforcement()
    }

    /// The kernel handle.
    pub fn kernel(&self) -> &Fence {
        &self.kernel
    }

    /// What a tag stands for.
    pub fn describe(&self, tag: Tag) -> Option<Ringfence> {
        let registry = self.registry.read_ok();
        registry.get(tag.id.checked_sub(1)? as usize).cloned()
    }

    /// The ringfence of a running process.
    pub fn of_process(&self, tgid: i32) -> Option<Ringfence> {
        self.describe(self.kernel.tag_of(tgid as u32)?)
    }

    /// The tag for a decision's ringfence, registering it (and its network rules) the first
    /// time it is seen.
    pub fn tag_for(&self, fenced: &Fenced<'_>, engine: &Engine) -> Tag {
        let known = |registry: &[Ringfence]| {
            registry
                .iter()
                .find(|r| r.tag.enforce == fenced.enforce && r.policy == fenced.policy && r.profile == fenced.profile)
                .map(|r| r.tag)
        };
        if let Some(tag) = known(&self.registry.read_ok()) {
            return tag;
        }
        let mut registry = self.registry.write_ok();
        if let Some(tag) = known(&registry) {
            return tag;
        }
        let tag = Tag { id: registry.len() as u32 + 1, enforce: fenced.enforce };
        // Installed before the id is handed out: no process carries a tag whose rules are not
        // in the kernel yet.
        self.install_network(tag.id, engine.ringfence(fenced.profile));
        registry.push(Ringfence { tag, policy: fenced.policy.to_string(), profile: fenced.profile.to_string() });
        tag
    }

    /// A new policy: re-install every known ringfence's network rules under it, and forget
    /// executables and denied files judged under the old one.
    pub fn apply(&self, engine: &Engine) {
        let registry = self.registry.read_ok().clone();
        for r in &registry {
            self.install_network(r.tag.id, engine.ringfence(&r.profile));
        }
        let _ = self.kernel.forget_executables();
        self.kernel.forget_denied_files();
    }

    fn install_network(&self, id: u32, profile: Option<&RingfenceProfile>) {
        let allow = profile.and_then(|p| p.network.as_ref()).map(|net| {
            let mut list: Vec<NetAllow> = net
                .allow
                .iter()
                .map(|r| NetAllow {
                    addr: r.net.addr,
                    prefix: r.net.prefix,
                    ports: r.ports.iter().map(|p| (p.first, p.last)).collect(),
                })
                .collect();
            let domains = self.domains.lock_ok();
            for d in &net.domains {
                for addr in domains.get(&d.name).map(|r| r.addrs.as_slice()).unwrap_or_default() {
                    let prefix = if addr.is_ipv4() { 32 } else { 128 };
                    list.push(NetAllow {
                        addr: *addr,
                        prefix,
                        ports: d.ports.iter().map(|p| (p.first, p.last)).collect(),
                    });
                }
            }
            if net.dns {
                for server in self.dns_servers() {
                    let prefix = if server.is_ipv4() { 32 } else { 128 };
                    list.push(NetAllow { addr: server.ip(), prefix, ports: vec![(53, 53)] });
                }
            }
            list
        });
        if let Err(e) = self.kernel.set_network(id, allow.as_deref()) {
            tracing::error!("ringfence network rules for {:?}: {e}", profile.map(|p| p.name.as_str()));
        }
    }

    fn dns_servers(&self) -> Vec<SocketAddr> {
        match self.resolver {
            Some(r) => vec![r],
            None => dns::nameservers(&std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default()),
        }
    }

    /// Resolve the domains of every ringfence in force (`fences`) whose addresses expired,
    /// and re-install the rules of registered ringfences whose domains changed. Returns how
    /// long until the next expiry (between 0.2 and 1 s).
    pub fn refresh_domains(&self, engine: &Engine, fences: &[RingfenceProfile]) -> Duration {
        let registry = self.registry.read_ok().clone();
        let mut names: Vec<String> = fences
            .iter()
            .filter_map(|f| f.network.as_ref())
            .flat_map(|n| n.domains.iter().map(|d| d.name.clone()))
            .collect();
        names.sort();
        names.dedup();
        let now = Instant::now();
        let mut changed = Vec::new();
        let server = self.dns_servers().into_iter().next();
        for name in &names {
            let due = self.domains.lock_ok().get(name).is_none_or(|r| r.refresh_at <= now);
            if !due {
                continue;
            }
            let Some(server) = server else {
                tracing::warn!("ringfence domain {name}: no DNS server in /etc/resolv.conf");
                continue;
            };
            // Asked without holding the lock: workers read the addresses while registering tags.
            let answer = dns::resolve(server, name, Duration::from_secs(2));
            let mut domains = self.domains.lock_ok();
            match answer {
                Ok(answer) => {
                    let ttl = Duration::from_secs(answer.ttl.into()).clamp(MIN_TTL, MAX_TTL);
                    let mut addrs = answer.addrs;
                    addrs.sort();
                    addrs.dedup();
                    let old = domains.insert(name.clone(), Resolved { addrs: addrs.clone(), refresh_at: now + ttl });
                    if old.is_none_or(|o| o.addrs != addrs) {
                        tracing::info!("ringfence domain {name}: {addrs:?} for {}s", ttl.as_secs());
                        changed.push(name.clone());
                    }
                }
                Err(e) => {
                    tracing::warn!("ringfence domain {name}: {e}; asking again in {}s", RETRY.as_secs());
                    let entry = domains.entry(name.clone()).or_insert(Resolved { addrs: Vec::new(), refresh_at: now });
                    entry.refresh_at = now + RETRY;
                }
            }
        }
        for r in &registry {
            let uses_changed = engine
                .ringfence(&r.profile)
                .and_then(|p| p.network.as_ref())
                .is_some_and(|n| n.domains.iter().any(|d| changed.contains(&d.name)));
            if uses_changed {
                self.install_network(r.tag.id, engine.ringfence(&r.profile));
            }
        }
        let domains = self.domains.lock_ok();
        let next = names
            .iter()
            .filter_map(|n| domains.get(n))
            .map(|r| r.refresh_at.saturating_duration_since(Instant::now()))
            .min();
        next.unwrap_or(Duration::from_secs(1)).clamp(Duration::from_millis(200), Duration::from_secs(1))
    }
}

/// Whether a thread of process `tgid` is in an open that asks for writing (or creating,
/// truncating, appending). Read from `/proc/<tgid>/task/*/syscall` while the kernel holds
/// the open. When no thread is seen in an open the syscall table names (io_uring, 32-bit
/// calls, a process that is gone), it counts as a write: the stricter reading.
pub fn opens_for_writing(tgid: i32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{tgid}/task")) else { return true };
    let mut seen_open = false;
    let mut writes = false;
    for t in tasks.flatten() {
        let Ok(text) = std::fs::read_to_string(t.path().join("syscall")) else { continue };
        if let Some(w) = syscall_open_writes(&text, |ptr| read_open_how_flags(&t.path(), ptr)) {
            seen_open = true;
            writes |= w;
        }
    }
    writes || !seen_open
}

fn read_open_how_flags(task: &std::path::Path, ptr: u64) -> Option<u64> {
    use std::os::unix::fs::FileExt;
    let mem = std::fs::File::open(task.join("mem")).ok()?;
    let mut buf = [0u8; 8];
    mem.read_exact_at(&mut buf, ptr).ok()?;
    Some(u64::from_ne_bytes(buf))
}

const WRITE_FLAGS: u64 = (libc::O_WRONLY | libc::O_RDWR | libc::O_CREAT | libc::O_TRUNC | libc::O_APPEND) as u64;

#[cfg(target_arch = "x86_64")]
mod nr {
    pub const OPEN: u64 = 2;
    pub const CREAT: u64 = 85;
    pub const OPENAT: u64 = 257;
}
#[cfg(not(target_arch = "x86_64"))]
mod nr {
    pub const OPEN: u64 = u64::MAX;
    pub const CREAT: u64 = u64::MAX - 1;
    pub const OPENAT: u64 = 56;
}
const OPENAT2: u64 = 437;

/// Judge one `/proc/<tid>/syscall` line (`nr arg0 arg1 …` in hex, or `running`): `None`
/// when the thread is not in an open, else whether the open asks for writing (an `openat2`
/// whose flags cannot be read counts as writing).
fn syscall_open_writes(line: &str, open_how_flags: impl Fn(u64) -> Option<u64>) -> Option<bool> {
    let mut fields = line.split_whitespace();
    let nr = fields.next().and_then(|n| n.parse::<u64>().ok())?;
    let args: Vec<u64> =
        fields.take(6).filter_map(|a| u64::from_str_radix(a.trim_start_matches("0x"), 16).ok()).collect();
    let flags = match nr {
        nr::OPEN => args.get(1).copied(),
        nr::OPENAT => args.get(2).copied(),
        nr::CREAT => return Some(true),
        OPENAT2 => Some(args.get(2).and_then(|&p| open_how_flags(p)).unwrap_or(WRITE_FLAGS)),
        _ => return None,
    };
    Some(flags.is_none_or(|f| f & WRITE_FLAGS != 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn syscall_lines() {
        let none = |_: u64| None;
        fn w(line: &str, flags: impl Fn(u64) -> Option<u64>) -> Option<bool> {
            syscall_open_writes(line, flags)
        }
        assert_eq!(w("running", none), None);
        assert_eq!(w("257 0xffffff9c 0x7ffd1 0x0 0x0 0x0 0x0 0x7ffd 0x7f00", none), Some(false), "openat O_RDONLY");
        assert_eq!(w("257 0xffffff9c 0x7ffd1 0x241 0x1b6 0x0 0x0 0x7ffd 0x7f00", none), Some(true), "O_WRONLY|O_CREAT");
        assert_eq!(w("2 0x7ffd1 0x2 0x0 0x0 0x0 0x0 0x7ffd 0x7f00", none), Some(true), "open O_RDWR");
        assert_eq!(w("85 0x7ffd1 0x1a4 0x0 0x0 0x0 0x0 0x7ffd 0x7f00", none), Some(true), "creat");
        let how = "437 0xffffff9c 0x7ffd1 0x5000 0x18 0x0 0x0 0x7ffd 0x7f00";
        assert_eq!(w(how, |p| (p == 0x5000).then_some(1)), Some(true));
        assert_eq!(w(how, |_| Some(0)), Some(false));
        assert_eq!(w(how, none), Some(true), "unreadable flags count as writing");
        assert_eq!(w("0 0x3 0x7ffd1 0x400 0x0 0x0 0x0 0x7ffd 0x7f00", none), None, "read(2) is not an open");
        assert_eq!(w("426 0x3 0x1 0x0 0x0 0x0 0x0 0x7ffd 0x7f00", none), None, "io_uring_enter: unknown");
    }

    #[test]
    fn unknown_counts_as_writing() {
        // This test's own process: no thread is in an open while it runs, so nothing tells a
        // read from a write: the stricter reading.
        assert!(opens_for_writing(std::process::id() as i32));
        assert!(opens_for_writing(i32::MAX), "a process that is gone");
    }
}
