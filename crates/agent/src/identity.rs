//! File identity and the cache of what is known about each file version.

use crate::locks::Unpoisoned;
use crate::shape::Shape;
use portcullis_policy::FileFacts;
use std::collections::HashMap;
use std::io;
use std::os::fd::BorrowedFd;
use std::sync::{Arc, Mutex, OnceLock};

/// One version of one file: a rewrite changes size, mtime or ctime, and with them the key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FileKey {
    /// `st_dev`.
    pub dev: u64,
    /// `st_ino`.
    pub ino: u64,
    /// `st_size`.
    pub size: u64,
    /// `st_mtime` in nanoseconds.
    pub mtime_ns: i128,
    /// `st_ctime` in nanoseconds.
    pub ctime_ns: i128,
}

/// What `fstat` says about an open file.
#[derive(Clone, Copy, Debug)]
pub struct Stat {
    /// The identity of this version.
    pub key: FileKey,
    /// Whether it is a regular file.
    pub regular: bool,
    /// Hard links to it.
    pub nlink: u64,
}

fn stat_from(st: &libc::stat) -> Stat {
    let ns = |s: i64, n: i64| i128::from(s) * 1_000_000_000 + i128::from(n);
    Stat {
        key: FileKey {
            dev: st.st_dev,
            ino: st.st_ino,
            size: st.st_size as u64,
            mtime_ns: ns(st.st_mtime, st.st_mtime_nsec),
            ctime_ns: ns(st.st_ctime, st.st_ctime_nsec),
        },
        regular: st.st_mode & libc::S_IFMT == libc::S_IFREG,
        nlink: st.st_nlink,
    }
}

/// `fstat` an open descriptor (no open, so safe on a marked filesystem).
pub fn fstat(fd: BorrowedFd<'_>) -> io::Result<Stat> {
    crate::sys::fstat(fd).map(|st| stat_from(&st))
}

/// `stat` a path, following symlinks (a path lookup, not an open: no fanotify event).
pub fn stat_path(path: &str) -> io::Result<Stat> {
    let st = crate::sys::stat(path)?;
    Ok(stat_from(&st))
}

/// What is known about one file version. Facts are computed at most once, when the file is
/// first opened as code.
#[derive(Debug)]
pub struct Entry {
    /// Its shape, from the first bytes.
    pub shape: Shape,
    /// Its facts for the engine (the path is the one first seen; callers put the event's own).
    pub facts: OnceLock<Result<Arc<FileFacts>, Unreadable>>,
}

/// A file whose content could not be read to judge it.
#[derive(Clone, Debug, thiserror::Error)]
#[error("cannot read {path}")]
pub struct Unreadable {
    /// The file.
    pub path: String,
    /// Why (shared: the cache hands the same answer to every event on this file version).
    #[source]
    pub error: Arc<std::io::Error>,
}

/// The identity cache: file version → [`Entry`]. Bounded: when full it starts over, which
/// costs re-hashing, never a wrong answer.
#[derive(Debug)]
pub struct Cache {
    map: Mutex<HashMap<FileKey, Arc<Entry>>>,
    capacity: usize,
}

impl Cache {
    /// A cache of at most `capacity` file versions.
    pub fn new(capacity: usize) -> Cache {
        Cache { map: Mutex::new(HashMap::new()), capacity: capacity.max(1) }
    }

    /// The entry for `key`, made from `shape()` if there is none.
    pub fn entry(&self, key: FileKey, shape: impl FnOnce() -> io::Result<Shape>) -> io::Result<Arc<Entry>> {
        if let Some(e) = self.lock().get(&key) {
            return Ok(e.clone());
        }
        // Read outside the lock: a slow file must not stall other workers.
        let entry = Arc::new(Entry { shape: shape()?, facts: OnceLock::new() });
        let mut map = self.lock();
        if map.len() >= self.capacity {
            map.clear();
        }
        Ok(map.entry(key).or_insert(entry).clone())
    }

    /// Forget every file version (what is known about files changed: the package database).
    pub fn clear(&self) {
        self.lock().clear();
    }

    /// The entry for `key`, if known.
    pub fn get(&self, key: &FileKey) -> Option<Arc<Entry>> {
        self.lock().get(key).cloned()
    }

    /// How many file versions are known.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether nothing is known.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<FileKey, Arc<Entry>>> {
        // A worker that panicked while holding the lock left a consistent map behind (inserts
        // are single calls), so poisoning is ignored.
        self.map.lock_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsFd;

    #[test]
    fn a_rewrite_changes_the_key_and_a_second_look_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"one").unwrap();
        let first = fstat(std::fs::File::open(&p).unwrap().as_fd()).unwrap();
        assert!(first.regular);
        let q = p.clone();
        assert_eq!(stat_path(q.to_str().unwrap()).unwrap().key, first.key);
        // Same size, rewritten in place: ctime moves even if mtime were reset.
        std::thread::sleep(std::time::Duration::from_millis(10));
        std::fs::OpenOptions::new().write(true).open(&q).unwrap().write_all(b"two").unwrap();
        assert_ne!(stat_path(q.to_str().unwrap()).unwrap().key, first.key);
    }

    #[test]
    fn the_cache_computes_a_shape_once_and_stays_bounded() {
        let cache = Cache::new(2);
        let key = |ino| FileKey { dev: 1, ino, size: 0, mtime_ns: 0, ctime_ns: 0 };
        let mut calls = 0;
        for _ in 0..3 {
            cache
                .entry(key(1), || {
                    calls += 1;
                    Ok(Shape::Other)
                })
                .unwrap();
        }
        assert_eq!(calls, 1);
        cache.entry(key(2), || Ok(Shape::Other)).unwrap();
        cache.entry(key(3), || Ok(Shape::Other)).unwrap();
        assert!(cache.len() <= 2);
        assert!(cache.get(&key(3)).is_some());
    }
}
