//! Which filesystems the agent watches.
//!
//! Every superblock that can hold executable content is marked once (a `FAN_MARK_FILESYSTEM`
//! mark covers every mount of it). Pseudo filesystems that cannot hold a program are excluded
//! by type: [`DEFAULT_EXCLUDED`]. New mounts are picked up when `/proc/self/mountinfo`
//! changes.

use std::path::PathBuf;

/// Filesystem types never marked: kernel interfaces that hold no files a program could be
/// run or loaded from. tmpfs, ramfs, devtmpfs, overlay, FUSE and network filesystems are
/// marked.
pub const DEFAULT_EXCLUDED: &[&str] = &[
    "proc",
    "sysfs",
    "cgroup",
    "cgroup2",
    "devpts",
    "mqueue",
    "debugfs",
    "tracefs",
    "securityfs",
    "pstore",
    "bpf",
    "configfs",
    "fusectl",
    "binfmt_misc",
    "autofs",
    "nsfs",
    "efivarfs",
    "selinuxfs",
    "rpc_pipefs",
    "nfsd",
];

/// One line of mountinfo.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    /// `major:minor` of the superblock.
    pub device: String,
    /// Where it is mounted.
    pub mount_point: PathBuf,
    /// Filesystem type.
    pub fstype: String,
}

fn unescape(field: &str) -> String {
    // mountinfo writes space, tab, newline and backslash as \ooo.
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && let Some(v) = std::str::from_utf8(&b[i + 1..i + 4]).ok().and_then(|d| u8::from_str_radix(d, 8).ok())
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parse `/proc/self/mountinfo`.
pub fn parse(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let l: Vec<&str> = left.split(' ').collect();
            let fstype = right.split(' ').next()?;
            Some(Mount {
                device: l.get(2)?.to_string(),
                mount_point: unescape(l.get(4)?).into(),
                fstype: fstype.into(),
            })
        })
        .collect()
}

/// Which mounts to watch.
#[derive(Clone, Debug)]
pub enum Scope {
    /// Every filesystem not excluded by type.
    All,
    /// Only filesystems mounted at or below these directories (tests, staged roll-outs).
    Under(Vec<PathBuf>),
}

/// The mounts to mark: one per superblock, in mountinfo order, skipping excluded types and
/// superblocks in `already`.
pub fn select<'m>(mounts: &'m [Mount], scope: &Scope, excluded: &[String], already: &[String]) -> Vec<&'m Mount> {
    let mut seen: Vec<&str> = already.iter().map(String::as_str).collect();
    let mut out = Vec::new();
    for m in mounts {
        if excluded.iter().any(|e| e == &m.fstype) || seen.contains(&m.device.as_str()) {
            continue;
        }
        let inside = match scope {
            Scope::All => true,
            Scope::Under(roots) => roots.iter().any(|r| m.mount_point.starts_with(r)),
        };
        if inside {
            seen.push(&m.device);
            out.push(m);
        }
    }
    out
}

/// Read the current mount table.
pub fn current() -> std::io::Result<Vec<Mount>> {
    Ok(parse(&std::fs::read_to_string("/proc/self/mountinfo")?))
}

/// Wait up to `timeout_ms` for the mount table to change (mountinfo signals `POLLPRI`).
pub fn wait_for_change(mountinfo: &std::fs::File, timeout_ms: i32) -> bool {
    use std::os::fd::AsFd;
    crate::sys::poll(mountinfo.as_fd(), libc::POLLPRI, timeout_ms)
        .is_some_and(|revents| revents & (libc::POLLPRI | libc::POLLERR) != 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const SAMPLE: &str = "\
22 27 0:21 / /proc rw,relatime - proc proc rw
24 27 0:6 / /dev rw,relatime - devtmpfs devtmpfs rw,size=12334492k
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard
28 27 0:25 / /mnt/my\\040disk ro,nosuid shared:5 master:1 - tmpfs none ro,size=4k
29 27 254:0 /srv /srv rw - ext4 /dev/vda rw
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn mountinfo_is_parsed_with_optional_fields_and_escapes() {
        let m = parse(SAMPLE);
        assert_eq!(m.len(), 6);
        assert_eq!(m[3], Mount { device: "0:25".into(), mount_point: "/mnt/my disk".into(), fstype: "tmpfs".into() });
    }

    #[test]
    fn each_superblock_is_marked_once_and_pseudo_filesystems_never() {
        let m = parse(SAMPLE);
        let excluded: Vec<String> = DEFAULT_EXCLUDED.iter().map(|s| s.to_string()).collect();
        let all: Vec<&str> =
            select(&m, &Scope::All, &excluded, &[]).iter().map(|m| m.mount_point.to_str().unwrap()).collect();
        assert_eq!(all, ["/dev", "/", "/mnt/my disk"], "/srv is the same superblock as /");
        let under = select(&m, &Scope::Under(vec!["/mnt".into()]), &excluded, &[]);
        assert_eq!(under.len(), 1);
        assert!(select(&m, &Scope::All, &excluded, &["254:0".into(), "0:6".into(), "0:25".into()]).is_empty());
    }

    #[test]
    fn this_machine_has_a_root_filesystem_to_mark() {
        let m = current().unwrap();
        let excluded: Vec<String> = DEFAULT_EXCLUDED.iter().map(|s| s.to_string()).collect();
        assert!(select(&m, &Scope::All, &excluded, &[]).iter().any(|m| m.mount_point == Path::new("/")));
    }
}
