//! What several test files share: a Debian 12 root of their own on a tmpfs, made from the
//! mmdebstrap tarball `./x test` builds once per run.

#![allow(dead_code)] // each test file uses its part

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Standard output and error, for messages.
pub fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// The workspace's target directory.
pub fn target() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target")
}

/// A tmpfs with the Debian root on it, unmounted when dropped.
pub struct Root {
    _dir: tempfile::TempDir,
    pub path: PathBuf,
}

impl Root {
    pub fn new() -> Root {
        let tar = target().join("debian-root/bookworm.tar");
        assert!(tar.exists(), "the Debian root is missing: `./x test` makes it ({})", tar.display());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("root");
        std::fs::create_dir_all(&path).unwrap();
        let st = Command::new("mount").args(["-t", "tmpfs", "-o", "size=2g", "tmpfs"]).arg(&path).status().unwrap();
        assert!(st.success(), "mount a tmpfs (the test needs root)");
        let root = Root { _dir: dir, path };
        let st = Command::new("tar").arg("-C").arg(&root.path).arg("-xpf").arg(&tar).status().unwrap();
        assert!(st.success());
        root
    }

    /// Unpack a package's files into the root, without its maintainer scripts (`dpkg-deb
    /// -x`, but keeping the merged /usr's /lib → usr/lib symlinks, which libraries packaged
    /// under /lib would otherwise replace with directories).
    pub fn unpack(&self, deb: &Path) {
        let o = Command::new("sh")
            .args(["-c", "dpkg-deb --fsys-tarfile \"$1\" | tar -x --keep-directory-symlink -C \"$2\"", "sh"])
            .arg(deb)
            .arg(&self.path)
            .output()
            .unwrap();
        assert!(o.status.success(), "unpacking {}: {}", deb.display(), text(&o));
    }

    /// A path inside the root.
    pub fn join(&self, p: &str) -> PathBuf {
        self.path.join(p.trim_start_matches('/'))
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-R").arg("-l").arg(&self.path).status();
    }
}

/// The `.deb` files in `dir`, by name.
pub fn debs(dir: &Path) -> Vec<PathBuf> {
    let mut debs: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "deb"))
        .collect();
    debs.sort();
    debs
}

/// The lines of a namespace script's output after `== name`, up to the next such line.
pub fn section(log: &str, name: &str) -> String {
    let header = format!("== {name}");
    log.lines()
        .skip_while(|l| *l != header)
        .skip(1)
        .take_while(|l| !l.starts_with("== "))
        .map(|l| format!("{l}\n"))
        .collect()
}
