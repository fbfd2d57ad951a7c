//! Keeping the agent's own files unwritable while it runs.
//!
//! fanotify cannot tell a write-open from a read-open, so the files are protected with the
//! inode's immutable flag (`chattr +i`): no process, root included, can write, truncate,
//! rename, link or delete them until the flag is cleared, which takes `CAP_LINUX_IMMUTABLE`.
//! The agent clears the flags it set when it stops cleanly; after a crash they stay, which
//! keeps the files protected while systemd restarts it.

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

const FS_IMMUTABLE_FL: libc::c_long = 0x10;

fn flags(file: &File) -> io::Result<libc::c_long> {
    crate::sys::inode_flags(file.as_fd())
}

fn set_flags(file: &File, f: libc::c_long) -> io::Result<()> {
    crate::sys::set_inode_flags(file.as_fd(), f)
}

/// Files made immutable by this agent, to be released on a clean stop.
#[derive(Debug, Default)]
pub struct Protected {
    set_by_us: Vec<PathBuf>,
}

impl Protected {
    /// Make `path` immutable. A file that already was stays so after release.
    pub fn protect(&mut self, path: &Path) -> io::Result<()> {
        let file = File::open(path)?;
        let f = flags(&file)?;
        if f & FS_IMMUTABLE_FL == 0 {
            set_flags(&file, f | FS_IMMUTABLE_FL)?;
            self.set_by_us.push(path.to_owned());
        }
        Ok(())
    }

    /// Clear the flags this agent set.
    pub fn release(&mut self) -> Vec<(PathBuf, io::Error)> {
        let mut failures = Vec::new();
        for path in self.set_by_us.drain(..) {
            let r = File::open(&path).and_then(|file| {
                let f = flags(&file)?;
                set_flags(&file, f & !FS_IMMUTABLE_FL)
            });
            if let Err(e) = r {
                failures.push((path, e));
            }
        }
        failures
    }
}
