//! The exec backstop in the running kernel: programs started from a filesystem not in the
//! watched set are killed before their first instruction (or only reported), in this mount
//! namespace and in a new one, and nothing outside the scope is touched.
//!
//! Scoped to a tmpfs the test mounts: an unscoped guard in Enforce mode would stop every
//! program on the host started from a filesystem nobody watches. Needs root and BTF (the CI
//! runs as root).

use portcullis_guard::{Config, Guard, Mode, What};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn kernel_dev(st_dev: u64) -> u64 {
    (u64::from(libc::major(st_dev)) << 20) | u64::from(libc::minor(st_dev))
}

struct Mounts(Vec<std::path::PathBuf>);

impl Mounts {
    fn tmpfs(&mut self, at: &Path) {
        std::fs::create_dir_all(at).unwrap();
        let ok = Command::new("mount").args(["-t", "tmpfs", "tmpfs"]).arg(at).status().unwrap().success();
        assert!(ok, "mount tmpfs at {} (needs root)", at.display());
        self.0.push(at.to_owned());
    }
}

impl Drop for Mounts {
    fn drop(&mut self) {
        for m in self.0.iter().rev() {
            let _ = Command::new("umount").arg("-l").arg(m).status();
        }
    }
}

/// The exit status `sh -c script` reports for its last command.
fn sh(script: &str) -> Option<i32> {
    let out = Command::new("timeout").args(["-s", "KILL", "20", "sh", "-c", script]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines().find_map(|l| l.strip_prefix("status=")).and_then(|v| v.trim().parse().ok())
}

#[test]
fn a_program_from_an_unwatched_filesystem_is_stopped_before_it_runs_only_inside_the_scope() {
    let dir = tempfile::tempdir().unwrap();
    let scope = dir.path().join("scope");
    let mut mounts = Mounts(Vec::new());
    mounts.tmpfs(&scope);
    let guard = Guard::load().expect("the exec backstop loads wherever BTF is (tp_btf)");
    let meta = std::fs::metadata(&scope).unwrap();
    guard.scope_dir(kernel_dev(meta.dev()), meta.ino()).unwrap();
    // The scope's own filesystem is watched; a second one mounted below it is not.
    guard.watch(kernel_dev(meta.dev())).unwrap();
    let inner = scope.join("inner");
    mounts.tmpfs(&inner);
    for d in [&scope, &inner] {
        std::fs::copy("/bin/true", d.join("t")).unwrap();
    }
    let outside = dir.path().join("t");
    std::fs::copy("/bin/true", &outside).unwrap();

    let events = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let guard = Arc::new(guard);
    let reader = {
        let (g, e, s) = (guard.clone(), events.clone(), stop.clone());
        std::thread::spawn(move || {
            g.events(Duration::from_millis(20), || !s.load(Ordering::Acquire), |ev| e.lock().unwrap().push(ev)).unwrap()
        })
    };
    let run = |p: &Path| sh(&format!("{}; echo status=$?", p.display()));

    // Off: nothing happens.
    assert_eq!(run(&inner.join("t")), Some(0));
    guard.configure(Config { mode: Mode::Enforce, scoped: true, deny_wx: false }).unwrap();
    assert_eq!(run(&scope.join("t")), Some(0), "a watched filesystem: fanotify's to judge");
    assert_eq!(run(&outside), Some(0), "outside the scope");
    assert_eq!(run(&inner.join("t")), Some(128 + 9), "unwatched, in scope: killed before it ran");
    // The same directory in a new mount namespace, with a filesystem only that one has.
    let ns = sh(&format!(
        "unshare -m --propagation private sh -c 'mount -t tmpfs none {0}; cp /bin/true {0}/t; {0}/t; echo status=$?'",
        inner.display()
    ));
    assert_eq!(ns, Some(128 + 9), "the scope is known by inode, in every namespace");
    // Report: it runs, and is reported.
    guard.configure(Config { mode: Mode::Report, scoped: true, deny_wx: false }).unwrap();
    assert_eq!(run(&inner.join("t")), Some(0));
    // Watched now: nothing to report.
    guard.watch(kernel_dev(std::fs::metadata(&inner).unwrap().dev())).unwrap();
    guard.configure(Config { mode: Mode::Enforce, scoped: true, deny_wx: false }).unwrap();
    assert_eq!(run(&inner.join("t")), Some(0));

    let t0 = Instant::now();
    while events.lock().unwrap().len() < 3 && t0.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Release);
    reader.join().unwrap();
    let events = events.lock().unwrap();
    let of = |enforced: bool| events.iter().filter(|e| e.what == What::ExecUnwatched && e.enforced == enforced).count();
    assert_eq!((of(true), of(false)), (2, 1), "{events:#?}");
    let inner_t = inner.join("t");
    let first = events.iter().find(|e| e.enforced).unwrap();
    assert_eq!(first.path, inner_t.to_str().unwrap());
    assert_eq!(first.ino, std::fs::metadata(&inner_t).unwrap().ino());
    drop(mounts);
}
