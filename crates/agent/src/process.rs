//! What the agent learns about a process from procfs (never marked, so never an event).

use crate::locks::Unpoisoned;
pub use portcullis_events::ProcessInfo;
use std::collections::HashMap;
use std::sync::Mutex;

/// Read a process's exe, uid and parent. Missing pieces (the process exited, or is a kernel
/// thread) are `None`.
pub fn info(pid: i32) -> ProcessInfo {
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok().map(|p| p.to_string_lossy().into_owned());
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status.lines().find_map(|l| l.strip_prefix(name)).and_then(|v| v.split_whitespace().next().map(str::to_owned))
    };
    ProcessInfo {
        pid,
        exe,
        uid: field("Uid:").and_then(|v| v.parse().ok()),
        ppid: field("PPid:").and_then(|v| v.parse().ok()),
    }
}

/// The process and its ancestors up to init, nearest first (at most `limit`).
pub fn chain(pid: i32, limit: usize) -> Vec<ProcessInfo> {
    let mut out = Vec::new();
    let mut next = Some(pid);
    while let Some(p) = next {
        if p <= 0 || out.len() >= limit {
            break;
        }
        let i = info(p);
        next = i.ppid.filter(|&pp| pp != p && pp > 0);
        out.push(i);
    }
    out
}

/// The arguments after argv\[0\].
pub fn arguments(pid: i32) -> Vec<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    raw.split(|&b| b == 0).skip(1).filter(|a| !a.is_empty()).map(|a| String::from_utf8_lossy(a).into_owned()).collect()
}

/// The process's working directory.
pub fn cwd(pid: i32) -> Option<String> {
    std::fs::read_link(format!("/proc/{pid}/cwd")).ok().map(|p| p.to_string_lossy().into_owned())
}

/// Whether `path` (absolute, as the kernel resolved it) is named by one of `args` run in
/// `cwd`: by the same absolute path, relative to `cwd`, or by the same file name.
pub fn named_in(path: &str, args: &[String], cwd: Option<&str>) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    args.iter().any(|a| {
        if a.starts_with('-') {
            return false;
        }
        let joined;
        let full = if a.starts_with('/') {
            a.as_str()
        } else if let Some(c) = cwd {
            joined = format!("{}/{}", c.trim_end_matches('/'), a.trim_start_matches("./"));
            joined.as_str()
        } else {
            a.as_str()
        };
        full == path || a.rsplit('/').next() == Some(name)
    })
}

/// User names by uid, read from `/etc/passwd` once and on a miss.
#[derive(Default, Debug)]
pub struct Users {
    names: Mutex<HashMap<u32, String>>,
}

impl Users {
    /// The name of `uid`, or its number as text.
    pub fn name(&self, uid: u32) -> String {
        let mut names = self.names.lock_ok();
        if let Some(n) = names.get(&uid) {
            return n.clone();
        }
        let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
        for line in passwd.lines() {
            let mut f = line.split(':');
            if let (Some(n), _, Some(id)) = (f.next(), f.next(), f.next())
                && let Ok(id) = id.parse::<u32>()
            {
                names.insert(id, n.to_owned());
            }
        }
        names.entry(uid).or_insert_with(|| uid.to_string()).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_own_process_and_its_ancestors_are_read_from_procfs() {
        let me = info(std::process::id() as i32);
        assert_eq!(me.exe.as_deref(), std::env::current_exe().ok().as_deref().and_then(|p| p.to_str()));
        assert_eq!(me.uid, Some(unsafe { libc::getuid() }));
        let c = chain(std::process::id() as i32, 64);
        assert_eq!(c[0], me);
        assert!(c.len() >= 2, "a test runs under some parent: {c:?}");
        assert_eq!(c.last().unwrap().ppid.unwrap_or(0), 0, "the chain ends at init");
        assert!(arguments(std::process::id() as i32).iter().all(|a| !a.is_empty()));
    }

    #[test]
    fn a_script_is_named_by_path_relative_path_or_file_name() {
        let args = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(named_in("/t/x.sh", &args(&["/t/x.sh"]), None));
        assert!(named_in("/t/x.sh", &args(&["./x.sh"]), Some("/t")));
        assert!(named_in("/t/sub/x.sh", &args(&["-e", "sub/x.sh"]), Some("/elsewhere")));
        assert!(!named_in("/t/x.sh", &args(&["-x.sh", "y.sh"]), Some("/t")));
        assert_eq!(Users::default().name(0), "root");
    }
}
