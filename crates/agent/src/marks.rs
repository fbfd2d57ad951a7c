//! The filesystems the agent watches, in every mount namespace.
//!
//! Each superblock that can hold programs is marked once: a `FAN_MARK_FILESYSTEM` mark covers
//! every mount of it, in every namespace. The agent's own mounts come from
//! `/proc/self/mountinfo`. Other mount namespaces — containers, `unshare -m`, unprivileged
//! user namespaces — are found by their `/proc/PID/ns/mnt` links, read from one member's
//! `/proc/PID/mountinfo` and reached through `/proc/PID/root`. A namespace's mountinfo signals
//! a change of its mounts (`POLLPRI`), so every known namespace is followed as the agent's
//! own is; new namespaces are found by a scan every second, and at once when the kernel guard
//! stops a program started from a filesystem not watched yet (the race a scan cannot win).
//!
//! Every superblock marked is handed to the kernel guard, which stops (Secured) or reports
//! programs started from any other.

use crate::mounts::{self, Mount};
use crate::state::{AgentError, CODE_MASK, Shared};
use portcullis_fanotify::MarkFlags;
use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// How often `/proc` is scanned for new mount namespaces.
const NAMESPACE_SCAN: Duration = Duration::from_secs(1);

/// A mount namespace other than the agent's, followed through one of its processes.
struct Namespace {
    pid: i32,
    mountinfo: File,
}

/// What the agent marked, and the namespaces it follows.
pub(crate) struct Marks {
    /// Superblocks marked, or given up on, by `major:minor`.
    devices: Vec<String>,
    /// How many of them are watched.
    watched: usize,
    /// Where each watched one was marked (an Installation window marks them too).
    paths: Vec<PathBuf>,
    own: Option<u64>,
    others: HashMap<u64, Namespace>,
    scanned: Option<Instant>,
}

/// The mount namespace of `/proc/<who>`, by its inode (`mnt:[4026531840]`).
fn namespace_of(who: &str) -> Option<u64> {
    let link = std::fs::read_link(format!("/proc/{who}/ns/mnt")).ok()?;
    link.to_str()?.strip_prefix("mnt:[")?.strip_suffix(']')?.parse().ok()
}

/// `major:minor` as the kernel's device number (`s_dev`), as the guard knows superblocks.
fn kernel_dev(device: &str) -> Option<u64> {
    let (major, minor) = device.split_once(':')?;
    Some((major.parse::<u64>().ok()? << 20) | minor.parse::<u64>().ok()?)
}

impl Marks {
    pub(crate) fn new() -> Marks {
        Marks {
            devices: Vec::new(),
            watched: 0,
            paths: Vec::new(),
            own: namespace_of("self"),
            others: HashMap::new(),
            scanned: None,
        }
    }

    /// How many filesystems are watched.
    pub(crate) fn watched(&self) -> usize {
        self.watched
    }

    /// Where the watched filesystems were marked.
    pub(crate) fn paths(&self) -> &[PathBuf] {
        &self.paths
    }

    /// Mark what is new in the agent's own namespace; `strict`: a filesystem that cannot be
    /// marked stops the start (the ones asked for by name, at start).
    pub(crate) fn mark_own(&mut self, shared: &Shared, strict: bool) -> Result<(), AgentError> {
        let all =
            mounts::current().map_err(|error| AgentError::Io { what: "reading /proc/self/mountinfo".into(), error })?;
        self.mark_all(shared, &all, None, strict)
    }

    /// One turn of the main loop: follow the agent's own mounts when they changed, every
    /// known namespace's when they changed, and look for new namespaces when the scan is
    /// due or the guard asked for it.
    pub(crate) fn tick(&mut self, shared: &Shared, own_mountinfo: Option<&File>) {
        if let Some(m) = own_mountinfo
            && mounts::wait_for_change(m, 0)
        {
            let _ = self.mark_own(shared, false);
        }
        let changed: Vec<u64> =
            self.others.iter().filter(|(_, ns)| mounts::wait_for_change(&ns.mountinfo, 0)).map(|(id, _)| *id).collect();
        for id in changed {
            if let Some(ns) = self.others.remove(&id) {
                self.follow(shared, id, ns.pid);
            }
        }
        let asked = shared.rescan_namespaces.swap(false, Ordering::AcqRel);
        if asked || self.scanned.is_none_or(|t| t.elapsed() >= NAMESPACE_SCAN) {
            self.scan(shared);
        }
    }

    /// Find every mount namespace with a process in it; mark what is new in the ones not
    /// known yet, and forget the ones that are gone.
    fn scan(&mut self, shared: &Shared) {
        self.scanned = Some(Instant::now());
        let Ok(dir) = std::fs::read_dir("/proc") else { return };
        let mut found: HashMap<u64, i32> = HashMap::new();
        for entry in dir.flatten() {
            let name = entry.file_name();
            let Some(pid) = name.to_str().and_then(|n| n.parse::<i32>().ok()) else { continue };
            if pid == shared.own_pid {
                continue;
            }
            if let Some(ns) = namespace_of(&pid.to_string())
                && Some(ns) != self.own
            {
                found.entry(ns).or_insert(pid);
            }
        }
        self.others.retain(|id, _| found.contains_key(id));
        for (id, pid) in found {
            if !self.others.contains_key(&id) {
                self.follow(shared, id, pid);
            }
        }
    }

    /// Read namespace `id` through `pid`, mark what is new in it, and keep following it.
    fn follow(&mut self, shared: &Shared, id: u64, pid: i32) {
        let path = format!("/proc/{pid}/mountinfo");
        let mut text = String::new();
        // The process may be gone: the next scan finds another member, if any is left.
        let Ok(mut mountinfo) = File::open(&path) else { return };
        if mountinfo.read_to_string(&mut text).is_err() || namespace_of(&pid.to_string()) != Some(id) {
            return;
        }
        let all = mounts::parse(&text);
        let root = PathBuf::from(format!("/proc/{pid}/root"));
        let _ = self.mark_all(shared, &all, Some(&root), false);
        self.others.insert(id, Namespace { pid, mountinfo });
    }

    /// Mark the mounts of `all` that are in scope and new; `root` reaches another
    /// namespace's mount points (`/proc/PID/root`).
    fn mark_all(
        &mut self,
        shared: &Shared,
        all: &[Mount],
        root: Option<&Path>,
        strict: bool,
    ) -> Result<(), AgentError> {
        let new: Vec<Mount> = mounts::select(all, &shared.config.scope, &shared.config.excluded_fstypes, &self.devices)
            .into_iter()
            .cloned()
            .collect();
        for m in new {
            let path = match root {
                Some(r) => r.join(m.mount_point.strip_prefix("/").unwrap_or(&m.mount_point)),
                None => m.mount_point.clone(),
            };
            let whose = root.map_or_else(String::new, |r| format!(" in the mount namespace of {}", r.display()));
            self.devices.push(m.device.clone());
            match shared.group.mark_path(MarkFlags::ADD | MarkFlags::FILESYSTEM, CODE_MASK, &path) {
                Ok(()) => {
                    tracing::info!("watching {} ({}, {}){whose}", m.mount_point.display(), m.fstype, m.device);
                    self.watched += 1;
                    self.paths.push(path.clone());
                    if let (Some(guard), Some(dev)) = (shared.guard.as_ref(), kernel_dev(&m.device))
                        && let Err(e) = guard.watch(dev)
                    {
                        tracing::error!(
                            "the kernel guard does not know {} is watched: {}",
                            m.mount_point.display(),
                            portcullis_policy::with_causes(&e)
                        );
                    }
                }
                Err(error) if strict => return Err(AgentError::Mark { path: m.mount_point.clone(), error }),
                Err(error) => tracing::warn!(
                    "cannot watch {} ({}){whose}: {error}; in Secured mode the kernel guard stops programs started \
                     from it",
                    m.mount_point.display(),
                    m.fstype
                ),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_become_the_kernels_numbers_and_namespaces_their_inodes() {
        assert_eq!(kernel_dev("254:0"), Some(254 << 20));
        assert_eq!(kernel_dev("0:58"), Some(58));
        assert_eq!(kernel_dev("nonsense"), None);
        assert!(namespace_of("self").is_some(), "this process has a mount namespace");
    }
}
