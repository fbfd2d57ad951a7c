//! The agent enforcing for real: fanotify on a tmpfs that each test mounts and marks alone
//! (one whole-system test runs in Monitor mode). Every agent runs under a watchdog that kills
//! it, and every command under `timeout`: when the agent dies, the kernel allows what was
//! pending, so nothing here can hang the machine.
//!
//! Needs root. The programs and libraries are built by gcc from `tests/agent_src`.

use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::{Duration, Instant};

const AGENT_WATCHDOG: Duration = Duration::from_secs(90);

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_portcullis")
}

/// Test programs, built once per run into a directory outside any marked filesystem.
struct Built {
    dir: PathBuf,
}

fn built() -> &'static Built {
    static B: OnceLock<Built> = OnceLock::new();
    B.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("portcullis-agent-tests-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/agent_src");
        let gcc = |args: &[&str]| {
            let out = Command::new("gcc").args(args).current_dir(&dir).output().expect("gcc is installed by ./x deps");
            assert!(out.status.success(), "gcc {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        };
        let s = |f: &str| src.join(f).to_string_lossy().into_owned();
        gcc(&["-O2", "-DNAME=\"good\"", "-o", "good", &s("program.c")]);
        gcc(&["-O2", "-DNAME=\"blocked\"", "-o", "blocked", &s("program.c")]);
        gcc(&["-O2", "-o", "loader", &s("loader.c"), "-ldl"]);
        gcc(&["-O2", "-o", "memfd_exec", &s("memfd_exec.c")]);
        gcc(&["-O2", "-pthread", "-o", "fenced", &s("fenced.c")]);
        gcc(&["-O2", "-shared", "-fPIC", "-DNAME=\"libgood\"", "-o", "libgood.so", &s("lib.c")]);
        gcc(&["-O2", "-shared", "-fPIC", "-DNAME=\"libevil\"", "-o", "libevil.so", &s("lib.c")]);
        Built { dir }
    })
}

fn sha256(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap().to_owned()
}

/// A policy permitting the named built files by hash.
fn policy(mode: &str, permitted: &[&str], extra: &str) -> String {
    let hashes: Vec<String> = permitted.iter().map(|f| format!("\"{}\"", sha256(&built().dir.join(f)))).collect();
    format!(
        r#"[organization]
name = "Agent tests"
mode = "{mode}"
{extra}

[[applications]]
name = "Test programs"
rules = [{{ sha256 = [{}] }}]

[[policies]]
name = "Permit test programs"
position = 100
applications = ["Test programs"]
action = "permit"
"#,
        hashes.join(", ")
    )
}

struct Sandbox {
    dir: tempfile::TempDir,
    mnt: PathBuf,
    /// Environment of the agent (and of the commands run as its host's tools).
    agent_env: Vec<(String, String)>,
    agent: Option<Child>,
    watchdog: Option<mpsc::Sender<()>>,
    stderr_log: PathBuf,
    mounts: Vec<PathBuf>,
}

fn mount_tmpfs(at: &Path) {
    std::fs::create_dir_all(at).unwrap();
    let st = Command::new("mount").args(["-t", "tmpfs", "-o", "size=512m", "tmpfs"]).arg(at).status().unwrap();
    assert!(st.success(), "mount tmpfs at {} (the tests need root)", at.display());
}

impl Sandbox {
    /// A fresh tmpfs holding copies of the built files.
    fn new() -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        let mnt = dir.path().join("mnt");
        mount_tmpfs(&mnt);
        for f in ["good", "blocked", "loader", "memfd_exec", "libgood.so", "libevil.so"] {
            std::fs::copy(built().dir.join(f), mnt.join(f)).unwrap();
        }
        let stderr_log = dir.path().join("agent.log");
        Sandbox { mounts: vec![mnt.clone()], dir, mnt, agent_env: Vec::new(), agent: None, watchdog: None, stderr_log }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.mnt.join(name)
    }

    fn spool(&self) -> PathBuf {
        self.dir.path().join("spool")
    }

    /// Start the agent on this sandbox's tmpfs with `policy_text` and wait until it watches.
    fn start(&mut self, policy_text: &str, extra_args: &[&str]) {
        let policy = self.dir.path().join("policy.toml");
        std::fs::write(&policy, policy_text).unwrap();
        let mnt = self.mnt.to_str().unwrap().to_owned();
        self.start_with(&policy, &["--mark-under", &mnt, "--no-protect"], extra_args);
    }

    fn start_with(&mut self, policy: &Path, scope_args: &[&str], extra_args: &[&str]) {
        let source = ["--policy".to_owned(), policy.to_string_lossy().into_owned()];
        self.start_from(&source, scope_args, extra_args);
    }

    /// Start the agent with its policy from `source` (`--policy FILE` or `--server URL …`).
    fn start_from(&mut self, source: &[String], scope_args: &[&str], extra_args: &[&str]) {
        let ready = self.dir.path().join("ready");
        let _ = std::fs::remove_file(&ready);
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.stderr_log).unwrap();
        let child = Command::new(bin())
            .arg("agent")
            .args(source)
            .args(scope_args)
            .args(["--spool", self.spool().to_str().unwrap(), "--ready-file", ready.to_str().unwrap()])
            .args(["--exit-after", &AGENT_WATCHDOG.as_secs().to_string(), "--log", "debug"])
            .args(extra_args)
            .envs(self.agent_env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        // The watchdog: kill -9 the agent if the test has not stopped it in time.
        let (tx, rx) = mpsc::channel::<()>();
        std::thread::spawn(move || {
            if rx.recv_timeout(AGENT_WATCHDOG + Duration::from_secs(5)) == Err(mpsc::RecvTimeoutError::Timeout) {
                // SAFETY: signalling a child process id.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        });
        self.agent = Some(child);
        self.watchdog = Some(tx);
        let t0 = Instant::now();
        while !ready.exists() {
            if let Some(status) = self.agent.as_mut().unwrap().try_wait().unwrap() {
                panic!("agent exited with {status} before it was ready:\n{}", self.log());
            }
            assert!(t0.elapsed() < Duration::from_secs(60), "agent not ready in 60 s:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stop the agent with SIGTERM and return its exit status.
    fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.agent.take().expect("agent running");
        // SAFETY: signalling our child.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let t0 = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if t0.elapsed() > Duration::from_secs(20) {
                let _ = child.kill();
                panic!("agent did not stop on SIGTERM within 20 s:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        if let Some(w) = self.watchdog.take() {
            let _ = w.send(());
        }
        status
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr_log).unwrap_or_default()
    }

    /// Run a command with a hard time limit.
    fn run(&self, program: impl AsRef<std::ffi::OsStr>, args: &[&str], env: &[(&str, &str)]) -> Output {
        let out = Command::new("timeout")
            .args(["-s", "KILL", "20"])
            .arg(program)
            .args(args)
            .envs(env.iter().copied())
            .current_dir(&self.mnt)
            .output()
            .unwrap();
        assert_ne!(out.status.code(), Some(137), "command hit the 20 s limit:\n{}", self.log());
        out
    }

    fn events(&self) -> Vec<Value> {
        let out = Command::new(bin()).args(["events", "--json", "--spool"]).arg(self.spool()).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    /// Events for a file, waiting briefly for the spool writer.
    fn events_for(&self, path: &Path, kind: &str) -> Vec<Value> {
        let t0 = Instant::now();
        loop {
            let found: Vec<Value> = self
                .events()
                .into_iter()
                .filter(|e| e["file"]["path"] == path.to_str().unwrap() && e["event"] == kind)
                .collect();
            if !found.is_empty() || t0.elapsed() > Duration::from_secs(5) {
                return found;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        // A clean stop when possible, so that the agent restores what it changed on the host
        // (vm.memfd_noexec); SIGKILL if it does not stop in time.
        if let Some(mut c) = self.agent.take() {
            // SAFETY: signalling our child.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let t0 = Instant::now();
            while c.try_wait().ok().flatten().is_none() && t0.elapsed() < Duration::from_secs(10) {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        for m in self.mounts.iter().rev() {
            let _ = Command::new("umount").arg("-l").arg(m).status();
        }
    }
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

#[track_caller]
fn assert_ran(o: &Output, expect: &str) {
    assert!(
        o.status.success() && text(o).contains(expect),
        "expected success with {expect:?}, got {:?}: {}",
        o.status,
        text(o)
    );
}

#[track_caller]
fn assert_blocked(o: &Output) {
    assert!(!o.status.success(), "expected a block, but it ran: {}", text(o));
    assert!(text(o).contains("Operation not permitted") || text(o).contains("Permission denied"), "{}", text(o));
    assert!(!text(o).contains("blocked ran") && !text(o).contains("libevil constructor ran"), "{}", text(o));
}

fn copy_mode(from: &Path, to: &Path) {
    std::fs::copy(from, to).unwrap();
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn secured_denies_an_unlisted_program_and_records_who_ran_it() {
    let mut s = Sandbox::new();
    s.start(&policy("secured", &["good", "loader"], ""), &[]);
    assert_ran(&s.run(s.path("good"), &[], &[]), "good ran");
    let o = s.run(s.path("blocked"), &[], &[]);
    assert_blocked(&o);
    assert_eq!(o.status.code(), Some(126), "timeout reports an exec that failed with EPERM as 126");
    let events = s.events_for(&s.path("blocked"), "deny");
    let e = &events[0];
    assert_eq!(e["access"], "exec");
    assert_eq!(e["verdict"], "deny");
    assert_eq!(e["mode"], "secured");
    assert_eq!(e["file"]["sha256"], sha256(&s.path("blocked")));
    assert!(e["reason"].as_str().unwrap().contains("Secured mode"), "{e}");
    assert!(e["process"]["exe"].as_str().unwrap().ends_with("/timeout"), "the process that called execve: {e}");
    assert_eq!(e["process"]["user"], "root");
    let ancestors = e["process"]["ancestors"].as_array().unwrap();
    assert!(ancestors.iter().any(|a| a["pid"] == std::process::id()), "the chain reaches this test: {e}");
    assert!(s.stop().success());
    // The person's view of the same event.
    let out = Command::new(bin()).args(["events", "--spool"]).arg(s.spool()).output().unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains("DENY") && shown.contains("exec") && shown.contains(s.path("blocked").to_str().unwrap()));
    assert!(shown.contains("Secured mode"), "{shown}");
}

#[test]
fn ld_so_run_directly_cannot_start_a_blocked_program() {
    let mut s = Sandbox::new();
    s.start(&policy("secured", &["good"], ""), &[]);
    let ld = "/lib64/ld-linux-x86-64.so.2";
    assert_ran(&s.run(ld, &[s.path("good").to_str().unwrap()], &[]), "good ran");
    assert_blocked(&s.run(ld, &[s.path("blocked").to_str().unwrap()], &[]));
    let e = &s.events_for(&s.path("blocked"), "deny")[0];
    assert_eq!(e["access"], "load", "ld.so opens the program as a plain open: judged as a load: {e}");
    assert!(e["process"]["exe"].as_str().unwrap().contains("ld-linux"), "{e}");
}

#[test]
fn memfd_exec_is_closed_in_secured_mode_and_the_sysctl_restored() {
    let before = std::fs::read_to_string("/proc/sys/vm/memfd_noexec").unwrap();
    let mut s = Sandbox::new();
    s.start(&policy("secured", &["good", "memfd_exec"], ""), &[]);
    assert_eq!(std::fs::read_to_string("/proc/sys/vm/memfd_noexec").unwrap().trim(), "2");
    let o = s.run(s.path("memfd_exec"), &[s.path("blocked").to_str().unwrap()], &[]);
    assert!(!text(&o).contains("blocked ran"), "memfd exec ran the blocked program: {}", text(&o));
    assert!(text(&o).contains("fexecve: Permission denied"), "{}", text(&o));
    assert!(s.stop().success());
    assert_eq!(std::fs::read_to_string("/proc/sys/vm/memfd_noexec").unwrap(), before, "restored on exit");
}

#[test]
fn copies_renames_hard_links_and_symlinks_of_a_blocked_file_stay_blocked() {
    let mut s = Sandbox::new();
    s.start(&policy("secured", &["good"], ""), &[]);
    let blocked = s.path("blocked");
    // A copy made while the agent runs (reading a program is not running it).
    let cp = s.run("cp", &[blocked.to_str().unwrap(), s.path("copy").to_str().unwrap()], &[]);
    assert!(cp.status.success(), "cp: {}", text(&cp));
    std::fs::rename(s.path("copy"), s.path("renamed")).unwrap();
    std::fs::hard_link(&blocked, s.path("hardlink")).unwrap();
    std::os::unix::fs::symlink(&blocked, s.path("symlink")).unwrap();
    // Same bytes under a new name, written by a program rather than copied by cp.
    copy_mode(&blocked, &s.path("rewritten-copy"));
    for name in ["renamed", "hardlink", "symlink", "rewritten-copy"] {
        let o = s.run(s.path(name), &[], &[]);
        assert_blocked(&o);
    }
    assert_ran(&s.run(s.path("good"), &[], &[]), "good ran");
}

#[test]
fn a_permitted_file_rewritten_in_place_is_judged_again() {
    let mut s = Sandbox::new();
    s.start(&policy("secured", &["good"], ""), &[]);
    let target = s.path("good");
    for _ in 0..3 {
        assert_ran(&s.run(&target, &[], &[]), "good ran");
    }
    // Same inode, new content: the kernel drops the ignore mark on modification and the
    // identity key (size, mtime, ctime) changes.
    let evil = std::fs::read(s.path("blocked")).unwrap();
    std::fs::write(&target, evil).unwrap();
    assert_blocked(&s.run(&target, &[], &[]));
    assert!(s.stop().success());
    let log = s.log();
    assert!(log.contains("1 ignore marks") || log.contains("ignore marks"), "{log}");
}

#[test]
fn ld_preload_and_dlopen_of_an_unapproved_library_are_denied() {
    let mut s = Sandbox::new();
    s.start(&policy("secured", &["good", "loader", "libgood.so"], ""), &[]);
    let good = s.path("good");
    let preload_ok = s.run(&good, &[], &[("LD_PRELOAD", s.path("libgood.so").to_str().unwrap())]);
    assert_ran(&preload_ok, "libgood constructor ran");
    let preload_evil = s.run(&good, &[], &[("LD_PRELOAD", s.path("libevil.so").to_str().unwrap())]);
    // ld.so skips a preload it cannot open and runs the program: the library never loads.
    assert!(!text(&preload_evil).contains("libevil constructor ran"), "{}", text(&preload_evil));
    assert!(text(&preload_evil).contains("cannot be preloaded"), "{}", text(&preload_evil));
    let loader = s.path("loader");
    assert_ran(&s.run(&loader, &[s.path("libgood.so").to_str().unwrap()], &[]), "libgood constructor ran");
    let dl = s.run(&loader, &[s.path("libevil.so").to_str().unwrap()], &[]);
    assert!(text(&dl).contains("dlopen failed") && text(&dl).contains("Operation not permitted"), "{}", text(&dl));
    assert!(!text(&dl).contains("libevil constructor ran"));
    let e = &s.events_for(&s.path("libevil.so"), "deny")[0];
    assert_eq!(e["access"], "load");
    assert_eq!(e["file"]["kind"], "library");
}

#[test]
fn scripts_fed_to_interpreters_are_judged_when_the_policy_says_so() {
    let mut s = Sandbox::new();
    std::fs::write(s.path("x.sh"), "#!/bin/sh\necho script ran\n").unwrap();
    std::fs::set_permissions(s.path("x.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(s.path("x.py"), "print('script ran')\n").unwrap();
    std::fs::write(s.path("payload"), "echo script ran\n").unwrap();
    std::fs::write(s.path("ok.sh"), "echo permitted script ran\n").unwrap();
    // Without script control, an interpreter reading a file is a read.
    let hashes_of =
        |names: &[&str]| names.iter().map(|n| format!("\"{}\"", sha256(&s.path(n)))).collect::<Vec<_>>().join(", ");
    let ok_app = format!(
        "\n[[applications]]\nname = \"Approved scripts\"\nrules = [{{ sha256 = [{}] }}]\n\n[[policies]]\nname = \"Permit approved scripts\"\nposition = 50\napplications = [\"Approved scripts\"]\naction = \"permit\"\n",
        hashes_of(&["ok.sh"])
    );
    s.start(&(policy("secured", &["good"], "") + &ok_app), &[]);
    assert_ran(&s.run("bash", &["x.sh"], &[]), "script ran");
    s.stop();
    s.start(&(policy("secured", &["good"], "script_control = true") + &ok_app), &[]);
    for (interpreter, script) in [("bash", "x.sh"), ("python3", "x.py"), ("sh", "x.sh"), ("bash", "payload")] {
        let o = s.run(interpreter, &[script], &[]);
        assert!(!o.status.success() && !text(&o).contains("script ran"), "{interpreter} {script}: {}", text(&o));
    }
    // Run directly through its #! line: the exec itself is judged, in any case.
    assert_blocked(&s.run(s.path("x.sh"), &[], &[]));
    assert_ran(&s.run("bash", &["ok.sh"], &[]), "permitted script ran");
    let e = &s.events_for(&s.path("x.py"), "deny")[0];
    assert_eq!(e["access"], "script");
    assert!(e["process"]["exe"].as_str().unwrap().contains("python3"), "{e}");
}

#[test]
fn a_filesystem_mounted_after_start_is_watched_too() {
    let mut s = Sandbox::new();
    s.start(&policy("secured", &["good"], ""), &[]);
    let second = s.path("second");
    mount_tmpfs(&second);
    s.mounts.push(second.clone());
    copy_mode(&built().dir.join("blocked"), &second.join("blocked"));
    copy_mode(&built().dir.join("good"), &second.join("good"));
    // The mount is picked up within the agent's 100 ms poll (a program started from it before
    // that is stopped by the kernel guard: see the mount-namespace tests).
    let t0 = Instant::now();
    while !s.log().contains(&format!("watching {}", second.display())) {
        assert!(t0.elapsed() < Duration::from_secs(5), "second tmpfs never watched:\n{}", s.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_blocked(&s.run(second.join("blocked"), &[], &[]));
    assert_ran(&s.run(second.join("good"), &[], &[]), "good ran");
}

#[test]
fn monitor_records_would_deny_learning_records_candidates_and_an_enforced_deny_still_denies() {
    let mut s = Sandbox::new();
    let deny_evil = format!(
        "\n[[applications]]\nname = \"Evil\"\nrules = [{{ sha256 = [\"{}\"] }}]\n\n[[policies]]\nname = \"Deny evil\"\nposition = 10\napplications = [\"Evil\"]\naction = \"deny\"\n",
        sha256(&built().dir.join("libevil.so"))
    );
    s.start(&(policy("monitor", &["good", "loader"], "") + &deny_evil), &[]);
    assert_ran(&s.run(s.path("blocked"), &[], &[]), "blocked ran");
    let e = &s.events_for(&s.path("blocked"), "would-deny")[0];
    assert_eq!(e["verdict"], "allow");
    assert_eq!(e["mode"], "monitor");
    let dl = s.run(s.path("loader"), &[s.path("libevil.so").to_str().unwrap()], &[]);
    assert!(text(&dl).contains("Operation not permitted"), "an enforced deny denies in Monitor mode: {}", text(&dl));
    assert_eq!(s.events_for(&s.path("libevil.so"), "deny")[0]["policy"], "Deny evil");
    s.stop();
    s.start(&policy("learning\"\nuntil = \"2099-01-01", &["good"], ""), &[]);
    assert_ran(&s.run(s.path("blocked"), &[], &[]), "blocked ran");
    let c = &s.events_for(&s.path("blocked"), "candidate")[0];
    assert_eq!(c["mode"], "learning");
    assert!(s.stop().success());
}

#[test]
fn the_3cx_pattern_a_permitted_app_loading_a_blocklisted_library() {
    // 3CX: the signed, permitted application loads a trojanized library. The library is
    // blocklisted by hash; the application stays permitted.
    let mut s = Sandbox::new();
    std::fs::copy(built().dir.join("loader"), s.path("3CXDesktopApp")).unwrap();
    std::fs::copy(built().dir.join("libevil.so"), s.path("ffmpeg.so")).unwrap();
    let blocklist = format!(
        "\n[[blocklists]]\nname = \"3CX DesktopApp\"\nsha256 = [\"{}\"]\napproved = [\"organization\"]\n",
        sha256(&s.path("ffmpeg.so"))
    );
    let policy_text = |mode: &str| policy(mode, &["loader", "libgood.so", "libevil.so"], "") + &blocklist;
    for mode in ["monitor", "secured"] {
        s.start(&policy_text(mode), &[]);
        let o = s.run(s.path("3CXDesktopApp"), &[s.path("ffmpeg.so").to_str().unwrap()], &[]);
        assert!(text(&o).contains("dlopen failed"), "{mode}: {}", text(&o));
        assert_ran(&s.run(s.path("3CXDesktopApp"), &[s.path("libgood.so").to_str().unwrap()], &[]), "libgood");
        let e = &s.events_for(&s.path("ffmpeg.so"), "deny")[0];
        assert!(e["reason"].as_str().unwrap().contains("3CX DesktopApp"), "{e}");
        s.stop();
        std::fs::remove_dir_all(s.spool()).unwrap();
    }
    // A blocklist approved in Monitor status only reports.
    let monitor_only = blocklist.replace("approved = ", "approved_monitor = ");
    s.start(&(policy("secured", &["loader", "libevil.so"], "") + &monitor_only), &[]);
    let o = s.run(s.path("3CXDesktopApp"), &[s.path("ffmpeg.so").to_str().unwrap()], &[]);
    assert!(text(&o).contains("libevil constructor ran"), "{}", text(&o));
    assert!(!s.events_for(&s.path("ffmpeg.so"), "would-deny").is_empty());
}

#[test]
fn one_hash_per_file_version_ignore_marks_and_a_reload_that_revokes() {
    let mut s = Sandbox::new();
    s.start(&policy("secured", &["good"], ""), &[]);
    for _ in 0..20 {
        assert_ran(&s.run(s.path("good"), &[], &[]), "good ran");
    }
    // SIGHUP with a policy that no longer permits `good`: the kernel's ignore marks go.
    std::fs::write(s.dir.path().join("policy.toml"), policy("secured", &["loader"], "")).unwrap();
    let pid = s.agent.as_ref().unwrap().id() as i32;
    // SAFETY: signalling our child.
    unsafe { libc::kill(pid, libc::SIGHUP) };
    let t0 = Instant::now();
    while !s.log().contains("policy reloaded") {
        assert!(t0.elapsed() < Duration::from_secs(10), "{}", s.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_blocked(&s.run(s.path("good"), &[], &[]));
    assert!(s.stop().success());
    let log = s.log();
    let stopped = log.lines().find(|l| l.contains("stopped:")).unwrap();
    // `good` was hashed once for 20 runs and its decision went to the kernel; blocked runs
    // after the reload reuse the cached facts.
    assert!(stopped.contains(" 1 files hashed"), "{stopped}");
    assert!(stopped.contains(" 1 ignore marks"), "{stopped}");
}

#[test]
fn the_agents_own_files_cannot_be_written_while_it_runs() {
    let mut s = Sandbox::new();
    let agent_copy = s.path("portcullis");
    copy_mode(Path::new(bin()), &agent_copy);
    let policy_path = s.path("policy.toml");
    std::fs::write(&policy_path, policy("monitor", &["good"], "")).unwrap();
    // Run the copy on the tmpfs, protected (no --no-protect).
    let ready = s.dir.path().join("ready");
    let child = Command::new(&agent_copy)
        .args(["agent", "--policy", policy_path.to_str().unwrap(), "--mark-under", s.mnt.to_str().unwrap()])
        .args(["--spool", s.spool().to_str().unwrap(), "--ready-file", ready.to_str().unwrap()])
        .args(["--exit-after", "60"])
        .stderr(std::fs::File::create(&s.stderr_log).unwrap())
        .spawn()
        .unwrap();
    s.agent = Some(child);
    let t0 = Instant::now();
    while !ready.exists() {
        assert!(t0.elapsed() < Duration::from_secs(60), "{}", s.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    for f in [&policy_path, &agent_copy] {
        let w = std::fs::OpenOptions::new().append(true).open(f);
        assert_eq!(w.unwrap_err().raw_os_error(), Some(libc::EPERM), "{} is writable", f.display());
        assert!(std::fs::remove_file(f).is_err());
        assert!(std::fs::rename(f, s.path("moved")).is_err());
    }
    assert!(s.stop().success());
    std::fs::OpenOptions::new().append(true).open(&policy_path).expect("writable again after a clean stop");
}

#[test]
fn events_survive_a_restart_and_follow_shows_new_ones() {
    let before_memfd = std::fs::read_to_string("/proc/sys/vm/memfd_noexec").unwrap();
    let mut s = Sandbox::new();
    s.start(&policy("secured", &["good"], ""), &[]);
    assert_blocked(&s.run(s.path("blocked"), &[], &[]));
    assert_eq!(s.events_for(&s.path("blocked"), "deny").len(), 1);
    // A crash: no clean stop.
    let mut child = s.agent.take().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    s.start(&policy("secured", &["good"], ""), &[]);
    let mut follow = Command::new(bin())
        .args(["events", "--follow", "--json", "--spool"])
        .arg(s.spool())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stdout = follow.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let first = rx.recv_timeout(Duration::from_secs(10)).expect("the earlier event is shown first");
    assert!(first.contains("\"deny\""));
    assert_blocked(&s.run(s.path("blocked"), &[], &[]));
    let next = rx.recv_timeout(Duration::from_secs(10)).expect("--follow shows the new event");
    let v: Value = serde_json::from_str(&next).unwrap();
    assert_eq!(v["file"]["path"], s.path("blocked").to_str().unwrap());
    let _ = follow.kill();
    let _ = follow.wait();
    assert_eq!(s.events_for(&s.path("blocked"), "deny").len(), 2, "nothing lost across the restart");
    // The killed agent could not restore vm.memfd_noexec; its successor restores the host's
    // value, not the 2 it found.
    assert!(s.stop().success());
    assert_eq!(std::fs::read_to_string("/proc/sys/vm/memfd_noexec").unwrap(), before_memfd);
}

#[test]
fn whole_system_in_monitor_mode_allows_everything_and_reports() {
    // Every filesystem of the host is watched, in Monitor mode only: nothing is denied.
    let mut s = Sandbox::new();
    let policy_path = s.dir.path().join("policy.toml");
    std::fs::write(&policy_path, policy("monitor", &["good"], "")).unwrap();
    s.start_with(&policy_path, &["--no-protect"], &[]);
    assert!(s.log().contains("watching / ("), "the root filesystem is watched:\n{}", s.log());
    let o = s.run("/usr/bin/env", &["true"], &[]);
    assert!(o.status.success());
    assert_ran(&s.run(s.path("blocked"), &[], &[]), "blocked ran");
    let ls = s.run("ls", &["/usr/lib"], &[]);
    assert!(ls.status.success());
    assert!(!s.events_for(Path::new("/usr/bin/env"), "would-deny").is_empty());
    assert!(!s.events_for(&s.path("blocked"), "would-deny").is_empty());
    assert!(s.stop().success());
}

/// A copy of `program` padded to `size` bytes with a hole (`truncate -s`): the kernel still
/// runs it, and it takes the agent as long to hash as a real file of that size.
fn padded(s: &Sandbox, program: &str, name: &str, size: u64) -> PathBuf {
    let path = s.path(name);
    copy_mode(&built().dir.join(program), &path);
    std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(size).unwrap();
    path
}

#[test]
fn a_program_padded_to_a_gigabyte_is_denied_until_judged_and_monitor_only_records_it() {
    // Padding is an evasion (ATT&CK T1027.001): hashing 1 GiB takes longer than the answer
    // deadline (shortened here so that it surely does). In Secured mode code that cannot be
    // judged in time is denied by default; once hashed, the policy decides.
    let mut s = Sandbox::new();
    let blocked = padded(&s, "blocked", "blocked-1g", 1 << 30);
    let good = padded(&s, "good", "good-1g", 1 << 30);
    let permit_by_path = format!(
        "\n[[applications]]\nname = \"Big\"\nrules = [{{ path = \"{}\" }}]\n\n[[policies]]\nname = \"Permit big\"\nposition = 20\napplications = [\"Big\"]\naction = \"permit\"\n",
        good.display()
    );
    s.start(&(policy("secured", &["good"], "") + &permit_by_path), &["--answer-timeout-ms", "50"]);
    assert_blocked(&s.run(&blocked, &[], &[]));
    let e = &s.events_for(&blocked, "overload")[0];
    assert_eq!((e["verdict"].as_str(), e["access"].as_str()), (Some("deny"), Some("exec")), "{e}");
    assert!(e["reason"].as_str().unwrap().contains("code fails closed"), "{e}");
    assert_blocked(&s.run(&good, &[], &[]));
    // The worker finishes hashing in the background; the cached facts then answer in time:
    // the padded blocked program stays denied, by the policy now, and the permitted one runs.
    let t0 = Instant::now();
    loop {
        let o = s.run(&good, &[], &[]);
        if o.status.success() {
            assert!(text(&o).contains("good ran"));
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "never allowed: {}\n{}", text(&o), s.log());
        std::thread::sleep(Duration::from_millis(200));
    }
    let t0 = Instant::now();
    while s.events_for(&blocked, "deny").is_empty() {
        assert_blocked(&s.run(&blocked, &[], &[]));
        assert!(t0.elapsed() < Duration::from_secs(30), "never judged:\n{}", s.log());
        std::thread::sleep(Duration::from_millis(200));
    }
    let judged = &s.events_for(&blocked, "deny")[0];
    assert!(judged["reason"].as_str().unwrap().contains("no policy"), "{judged}");
    assert!(s.stop().success());

    // Monitor: nothing is refused; the late answer and then the judgement are recorded.
    let mut m = Sandbox::new();
    let blocked = padded(&m, "blocked", "blocked-1g", 1 << 30);
    m.start(&policy("monitor", &["good"], ""), &["--answer-timeout-ms", "50"]);
    assert_ran(&m.run(&blocked, &[], &[]), "blocked ran");
    let e = &m.events_for(&blocked, "overload")[0];
    assert_eq!(e["verdict"], "allow", "{e}");
    let t0 = Instant::now();
    while m.events_for(&blocked, "would-deny").is_empty() {
        assert_ran(&m.run(&blocked, &[], &[]), "blocked ran");
        assert!(t0.elapsed() < Duration::from_secs(30), "never judged:\n{}", m.log());
    }
    assert!(m.stop().success());

    // An Installation window enforces the rest of the host as Secured does: code that
    // cannot be judged in time fails closed there too.
    let mut w = Sandbox::new();
    let blocked = padded(&w, "blocked", "blocked-1g", 1 << 30);
    let until = jiff::Timestamp::from_second(jiff::Timestamp::now().as_second() + 3600).unwrap();
    w.start(
        &policy("installation", &["good"], &format!("until = \"{until}\"\ncapture_into = \"Vendor\"")),
        &["--answer-timeout-ms", "50"],
    );
    assert_blocked(&w.run(&blocked, &[], &[]));
    let e = &w.events_for(&blocked, "overload")[0];
    assert_eq!(e["verdict"], "deny", "{e}");
    assert!(e["reason"].as_str().unwrap().contains("Installation mode: code fails closed"), "{e}");
    assert!(w.stop().success());
}

/// Run `script` with sh in a new mount namespace — as an unprivileged user in a user
/// namespace of its own (`unshare -Urm`, what any local user can do), or as root (`unshare
/// -m`, like a container runtime) — with a time limit; its output, where the script echoes
/// the exit statuses of what it ran.
fn in_new_namespace(s: &Sandbox, unprivileged: bool, script: &str) -> String {
    let mut c = Command::new("timeout");
    c.args(["-s", "KILL", "30"]);
    if unprivileged {
        c.args(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "unshare", "-Urm"]);
    } else {
        c.args(["unshare", "-m", "--propagation", "private"]);
    }
    let out = c.args(["sh", "-c", script]).current_dir("/").output().unwrap();
    assert_ne!(out.status.code(), Some(137), "the namespace script hit its 30 s limit:\n{}", s.log());
    text(&out)
}

/// The status a line `name=N` of a script's output gives.
fn status_of(output: &str, name: &str) -> i32 {
    output
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}=")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name}= in: {output}"))
}

/// A sandbox whose mount point an unprivileged user can reach, with `ns` made in it for the
/// namespace's own mount.
fn namespace_sandbox() -> (Sandbox, PathBuf) {
    let s = Sandbox::new();
    std::fs::set_permissions(s.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let ns = s.path("ns");
    std::fs::create_dir(&ns).unwrap();
    std::fs::set_permissions(&ns, std::fs::Permissions::from_mode(0o755)).unwrap();
    (s, ns)
}

/// What a local user does to escape every mark: a new mount namespace with a tmpfs of its
/// own. The program started at once is stopped by the kernel guard before its first
/// instruction (or, should the agent's scan have come first, denied); from then on the
/// namespace's filesystem is watched like any other and judged by the policy.
fn new_namespace_script(mnt: &Path, ns: &Path) -> String {
    let (mnt, ns) = (mnt.display(), ns.display());
    format!(
        "mount -t tmpfs none {ns} && cp {mnt}/blocked {mnt}/good {ns}/ && {ns}/blocked; echo first=$?; \
         sleep 3; {ns}/blocked; echo second=$?; {ns}/good; echo good=$?"
    )
}

#[test]
fn an_unprivileged_users_mount_namespace_is_watched_and_what_starts_before_that_is_stopped() {
    let (mut s, ns) = namespace_sandbox();
    s.start(&policy("secured", &["good"], ""), &[]);
    let out = in_new_namespace(&s, true, &new_namespace_script(&s.mnt, &ns));
    let first = status_of(&out, "first");
    assert!(first == 128 + 9 || first == 126, "stopped (SIGKILL) or denied, got {first}:\n{out}\n{}", s.log());
    assert_eq!(status_of(&out, "second"), 126, "{out}\n{}", s.log());
    assert_eq!(status_of(&out, "good"), 0, "the policy decides in the namespace too: {out}");
    assert!(out.contains("good ran") && !out.contains("blocked ran"), "{out}");
    let blocked_there = ns.join("blocked");
    let denies = s.events_for(&blocked_there, "deny");
    assert!(denies.iter().any(|e| e["reason"].as_str().unwrap().contains("no policy")), "{denies:?}");
    if first == 128 + 9 {
        let guard = denies.iter().find(|e| e["reason"].as_str().unwrap().contains("kernel guard"));
        let guard = guard.unwrap_or_else(|| panic!("no guard event: {denies:?}\n{}", s.log()));
        assert!(guard["reason"].as_str().unwrap().contains("stopped before its first instruction"), "{guard}");
        assert_eq!(guard["access"], "exec");
    }
    assert!(s.log().contains("in the mount namespace of /proc/"), "{}", s.log());
    assert!(s.stop().success());

    // Monitor: everything runs; the namespace's programs are recorded as would-deny.
    let (mut m, ns) = namespace_sandbox();
    m.start(&policy("monitor", &["good"], ""), &[]);
    let out = in_new_namespace(&m, true, &new_namespace_script(&m.mnt, &ns));
    assert_eq!((status_of(&out, "first"), status_of(&out, "second")), (0, 0), "{out}\n{}", m.log());
    assert!(!m.events_for(&ns.join("blocked"), "would-deny").is_empty(), "{}", m.log());
    assert!(m.stop().success());
}

#[test]
fn a_container_like_mount_namespace_made_after_the_agent_started_is_watched() {
    // A runtime's namespace: root, a private mount tree, a filesystem of its own. The scan
    // finds the namespace within a second and follows its mounts from then on.
    let (mut s, ns) = namespace_sandbox();
    s.start(&policy("secured", &["good"], ""), &[]);
    let (mnt, nsd) = (s.mnt.display().to_string(), ns.display().to_string());
    let script = format!(
        "sleep 2; mount -t tmpfs none {nsd} && cp {mnt}/blocked {mnt}/good {nsd}/ && sleep 1; \
         {nsd}/blocked; echo blocked=$?; {nsd}/good; echo good=$?"
    );
    let out = in_new_namespace(&s, false, &script);
    assert_eq!(status_of(&out, "blocked"), 126, "{out}\n{}", s.log());
    assert_eq!(status_of(&out, "good"), 0, "{out}");
    let e = &s.events_for(&ns.join("blocked"), "deny")[0];
    assert!(e["reason"].as_str().unwrap().contains("no policy"), "{e}");
    assert!(s.stop().success());

    let (mut m, ns) = namespace_sandbox();
    m.start(&policy("monitor", &["good"], ""), &[]);
    let script = script.replace(&mnt, &m.mnt.display().to_string()).replace(&nsd, &ns.display().to_string());
    let out = in_new_namespace(&m, false, &script);
    assert_eq!(status_of(&out, "blocked"), 0, "{out}\n{}", m.log());
    let e = &m.events_for(&ns.join("blocked"), "would-deny")[0];
    assert!(e["reason"].as_str().unwrap().contains("no policy"), "{e}");
    assert!(m.stop().success());
}

#[test]
fn valgrind_mapping_an_unapproved_program_itself_is_judged_as_code() {
    // valgrind's tool reads and maps the program without execve; the agent knows the tool
    // (by name and by content) and judges what it opens as code.
    let valgrind = ["/usr/bin/valgrind"];
    assert!(Path::new(valgrind[0]).exists(), "valgrind is installed by ./x deps");
    let mut s = Sandbox::new();
    s.start(&policy("secured", &["good"], ""), &[]);
    let o = s.run(valgrind[0], &["--tool=none", s.path("blocked").to_str().unwrap()], &[]);
    assert!(!o.status.success() && !text(&o).contains("blocked ran"), "{}", text(&o));
    let e = &s.events_for(&s.path("blocked"), "deny")[0];
    assert_eq!(e["access"], "load", "{e}");
    assert!(e["process"]["exe"].as_str().unwrap().contains("valgrind"), "{e}");
    assert!(e["reason"].as_str().unwrap().contains("no policy"), "{e}");
    let o = s.run(valgrind[0], &["--tool=none", s.path("good").to_str().unwrap()], &[]);
    assert_ran(&o, "good ran");
    assert!(s.stop().success());

    let mut m = Sandbox::new();
    m.start(&policy("monitor", &["good"], ""), &[]);
    let o = m.run(valgrind[0], &["--tool=none", m.path("blocked").to_str().unwrap()], &[]);
    assert_ran(&o, "blocked ran");
    let e = &m.events_for(&m.path("blocked"), "would-deny");
    assert!(e.iter().any(|e| e["access"] == "load"), "{e:?}");
    assert!(m.stop().success());
}

#[test]
fn the_shipped_systemd_unit_verifies_and_its_command_line_runs() {
    let packaging = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../packaging");
    let unit = std::fs::read_to_string(packaging.join("portcullis-agent.service")).unwrap();
    assert!(unit.contains("Restart=always") && unit.contains("RestartSec=0"), "restarted at once when it dies");
    let s = Sandbox::new();
    let unit_path = s.dir.path().join("portcullis-agent.service");
    std::fs::write(&unit_path, unit.replace("/usr/sbin/portcullis-agent", bin())).unwrap();
    let v = Command::new("systemd-analyze").arg("verify").arg(&unit_path).output().unwrap();
    assert!(v.status.success() && v.stderr.is_empty(), "systemd-analyze verify: {}", text(&v));
    // The unit's ExecStart with the shipped agent.conf, its paths pointed at this sandbox and
    // a local policy set, as an administrator would: starts and stops cleanly.
    let exec = unit.lines().find_map(|l| l.strip_prefix("ExecStart=")).unwrap();
    let policy_path = s.dir.path().join("policy.toml");
    std::fs::write(&policy_path, policy("monitor", &["good"], "")).unwrap();
    let conf = std::fs::read_to_string(packaging.join("agent.conf")).unwrap();
    let mut env: Vec<(String, String)> = conf
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains('='))
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap();
            (k.to_owned(), v.to_owned())
        })
        .collect();
    assert!(env.iter().any(|(k, _)| k == "PORTCULLIS_STATE_DIR"), "{conf}");
    for (k, v) in env.iter_mut() {
        match k.as_str() {
            "PORTCULLIS_STATE_DIR" => *v = s.dir.path().join("state").to_string_lossy().into_owned(),
            "PORTCULLIS_SPOOL" => *v = s.spool().to_string_lossy().into_owned(),
            _ => {}
        }
    }
    env.push(("PORTCULLIS_POLICY".into(), policy_path.to_string_lossy().into_owned()));
    let o = Command::new("timeout")
        .args(["-s", "KILL", "60", bin()])
        .args(exec.split_whitespace().skip(1))
        .args(["--mark-under", s.mnt.to_str().unwrap(), "--no-protect", "--exit-after", "1"])
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("enforcing") && text(&o).contains("stopped:"), "{}", text(&o));
    // Unconfigured (the package's agent.conf as shipped): a usage error (2), which the unit
    // does not retry.
    let o = Command::new(bin()).args(exec.split_whitespace().skip(1)).env_remove("PORTCULLIS_POLICY").output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(unit.contains("RestartPreventExitStatus=2 "), "{unit}");
}

// ----- with a server ------------------------------------------------------------------------

/// `portcullis server` on loopback over HTTPS (its self-signed certificate), on a SQLite file.
struct ServerProcess {
    child: Child,
    url: String,
    cert: PathBuf,
}

impl ServerProcess {
    /// Start on `port` (a restart on the port agents know); panics if it cannot listen there.
    fn start(dir: &Path, port: u16) -> ServerProcess {
        Self::try_start(dir, port, &[]).unwrap_or_else(|log| panic!("the server did not start on port {port}:\n{log}"))
    }

    /// Start on a free port, with `extra` arguments. Another test's process may take the
    /// port between the probe and the server's bind: then try another.
    fn start_anywhere(dir: &Path, extra: &[&str]) -> ServerProcess {
        let mut last = String::new();
        for _ in 0..5 {
            match Self::try_start(dir, free_port(), extra) {
                Ok(server) => return server,
                Err(log) => last = log,
            }
        }
        panic!("the server did not start on 5 free ports:\n{last}")
    }

    /// Ours is listening once it says so (a connection alone may reach another test's server
    /// that took the port); its log if it exits first.
    fn try_start(dir: &Path, port: u16, extra: &[&str]) -> Result<ServerProcess, String> {
        let db = format!("sqlite://{}/server.db", dir.display());
        let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("server.log")).unwrap();
        let out_path = dir.join(format!("server-{port}.out"));
        let out = std::fs::File::create(&out_path).unwrap();
        let mut child = Command::new(bin())
            .args(["server", "--database-url", &db, "--listen", &format!("127.0.0.1:{port}")])
            .args(["--tls-dir", dir.join("tls").to_str().unwrap()])
            .args(extra)
            .stdout(out)
            .stderr(log)
            .spawn()
            .unwrap();
        let t0 = Instant::now();
        while !std::fs::read_to_string(&out_path).unwrap_or_default().contains("listening on") {
            if let Ok(Some(status)) = child.try_wait() {
                let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
                return Err(format!("exited with {status}: {}", log.lines().last().unwrap_or("")));
            }
            assert!(t0.elapsed() < Duration::from_secs(30), "server not listening in 30 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(ServerProcess { child, url: format!("https://127.0.0.1:{port}"), cert: dir.join("tls/cert.pem") })
    }

    fn create_admin(dir: &Path) {
        let db = format!("sqlite://{}/server.db", dir.display());
        let mut c = Command::new(bin())
            .args(["server", "create-admin", "--database-url", &db, "--organization", "Acme", "--user", "admin"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        std::io::Write::write_all(&mut c.stdin.take().unwrap(), b"admin password\n").unwrap();
        assert!(c.wait().unwrap().success());
    }

    fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The console's REST API, as an administrator's session.
struct Console {
    http: ureq::Agent,
    url: String,
    cookie: String,
    csrf: String,
}

impl Console {
    fn login(server: &ServerProcess) -> Console {
        let pem = std::fs::read(&server.cert).unwrap();
        let certs: Vec<_> = ureq::tls::parse_pem(&pem)
            .filter_map(|i| match i.unwrap() {
                ureq::tls::PemItem::Certificate(c) => Some(c),
                _ => None,
            })
            .collect();
        let tls = ureq::tls::TlsConfig::builder()
            .unversioned_rustls_crypto_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
            .root_certs(ureq::tls::RootCerts::Specific(std::sync::Arc::new(certs)))
            .build();
        let http: ureq::Agent = ureq::Agent::config_builder()
            .tls_config(tls)
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(20)))
            .build()
            .into();
        let mut res = http
            .post(format!("{}/api/session", server.url))
            .send_json(serde_json::json!({"organization": "Acme", "user": "admin", "password": "admin password"}))
            .unwrap();
        assert_eq!(res.status().as_u16(), 200);
        let cookie = res.headers().get("set-cookie").unwrap().to_str().unwrap().split(';').next().unwrap().to_owned();
        let body: Value = res.body_mut().read_json().unwrap();
        Console { http, url: server.url.clone(), cookie, csrf: body["csrf_token"].as_str().unwrap().to_owned() }
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let url = format!("{}{path}", self.url);
        let mut res = match body {
            Some(b) => match method {
                "PUT" => self.http.put(&url),
                _ => self.http.post(&url),
            }
            .header("cookie", &self.cookie)
            .header("x-csrf-token", &self.csrf)
            .send_json(b)
            .unwrap(),
            None => {
                assert_eq!(method, "GET");
                self.http.get(&url).header("cookie", &self.cookie).call().unwrap()
            }
        };
        let status = res.status().as_u16();
        let text = res.body_mut().read_to_string().unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    fn post(&self, path: &str, body: Value) -> Value {
        let (status, reply) = self.call("POST", path, Some(body));
        assert!((200..300).contains(&status), "POST {path}: {status} {reply}");
        reply
    }

    /// Wait until `GET path` gives a list of at least `n` entries.
    fn wait_for_list(&self, path: &str, n: usize, within: Duration) -> Vec<Value> {
        let t0 = Instant::now();
        loop {
            let (_, v) = self.call("GET", path, None);
            let list = v.as_array().cloned().unwrap_or_default();
            if list.len() >= n || t0.elapsed() > within {
                return list;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A server with its admin logged in, the organization in `mode` (if given), a group with an
/// enrollment token, and the arguments an agent enrolls with (token in a root-only file, not
/// on the command line, which /proc shows).
/// Through the console: an application of the sandbox's files, permitted.
fn permit_sandbox(console: &Console, sb: &Sandbox) {
    let sandbox_glob = format!("{}/*", sb.mnt.display());
    console.post("/api/applications", serde_json::json!({"name": "Sandbox", "rules": [{"path": sandbox_glob}]}));
    console.post(
        "/api/policies",
        serde_json::json!({"name": "Permit sandbox", "position": 0, "applications": ["Sandbox"], "action": "permit"}),
    );
}

/// Through the console: the sandbox's `blocked` program by its hash, denied above everything.
fn deny_blocked_build(console: &Console, sb: &Sandbox) {
    let hash = sha256(&sb.path("blocked"));
    console.post("/api/applications", serde_json::json!({"name": "Blocked build", "rules": [{"sha256": [hash]}]}));
    let deny = console.post(
        "/api/policies",
        serde_json::json!({"name": "Deny blocked build", "position": 0, "applications": ["Blocked build"], "action": "deny"}),
    )["id"]
        .as_i64()
        .unwrap();
    console.post(&format!("/api/policies/{deny}/move"), serde_json::json!({"to": "top"}));
}

struct Fleet {
    server: ServerProcess,
    console: Console,
    state: PathBuf,
    token_file: PathBuf,
}

impl Fleet {
    fn start(dir: &Path, group: &str, mode: Option<&str>) -> Fleet {
        Self::start_with(dir, group, mode, &[])
    }

    /// [`Fleet::start`], the server started with more arguments.
    fn start_with(dir: &Path, group: &str, mode: Option<&str>, server_args: &[&str]) -> Fleet {
        ServerProcess::create_admin(dir);
        let server = ServerProcess::start_anywhere(dir, server_args);
        let console = Console::login(&server);
        if let Some(mode) = mode {
            let (status, body) = console.call("PUT", "/api/settings", Some(serde_json::json!({"mode": mode})));
            assert_eq!(status, 204, "{body}");
        }
        let group = console.post("/api/groups", serde_json::json!({"path": group}))["id"].as_i64().unwrap();
        let token = console.post(&format!("/api/groups/{group}/enrollment-token"), serde_json::json!({}))["token"]
            .as_str()
            .unwrap()
            .to_owned();
        let token_file = dir.join("enroll-token");
        std::fs::write(&token_file, format!("{token}\n")).unwrap();
        Fleet { server, console, state: dir.join("state"), token_file }
    }

    /// `--server`, `--server-ca`, `--state-dir` and, to enroll, `--enroll-token-file`.
    fn source(&self, enroll: bool) -> Vec<String> {
        let mut args = vec!["--server".to_owned(), self.server.url.clone(), "--server-ca".to_owned()];
        args.push(self.server.cert.to_string_lossy().into_owned());
        args.extend(["--state-dir".to_owned(), self.state.to_string_lossy().into_owned()]);
        args.extend(["--user-dir".to_owned(), self.user_dir().to_string_lossy().into_owned()]);
        if enroll {
            args.extend(["--enroll-token-file".to_owned(), self.token_file.to_string_lossy().into_owned()]);
        }
        args
    }

    /// The agent's user directory (not the host's /run/portcullis: tests run side by side).
    fn user_dir(&self) -> PathBuf {
        self.state.with_file_name("user")
    }

    /// The one enrolled computer: its name and id.
    fn computer(&self) -> (String, i64) {
        let (_, computers) = self.console.call("GET", "/api/computers", None);
        (computers[0]["name"].as_str().unwrap().to_owned(), computers[0]["id"].as_i64().unwrap())
    }
}

#[test]
fn an_enrolled_agent_enforces_a_console_change_within_two_seconds_and_keeps_enforcing_offline() {
    let mut sb = Sandbox::new();
    let dir = sb.dir.path().to_owned();
    let fleet = Fleet::start(&dir, "Linux", None);
    let sources = [fleet.source(false), fleet.source(true)];
    let source = |enroll: bool| sources[usize::from(enroll)].clone();
    let Fleet { server, console, state, .. } = fleet;
    let port: u16 = server.url.rsplit(':').next().unwrap().trim_end_matches('/').parse().unwrap();
    permit_sandbox(&console, &sb);

    let mnt = sb.mnt.to_str().unwrap().to_owned();
    sb.start_from(&source(true), &["--mark-under", &mnt, "--no-protect"], &[]);
    assert_ran(&sb.run(sb.path("blocked"), &[], &[]), "blocked ran");
    assert_ran(&sb.run(sb.path("good"), &[], &[]), "good ran");

    // The console denies the blocked build by hash, above the permit.
    deny_blocked_build(&console, &sb);
    let saved = Instant::now();
    let took = loop {
        let o = sb.run(sb.path("blocked"), &[], &[]);
        if !o.status.success() {
            assert_blocked(&o);
            break saved.elapsed();
        }
        assert!(saved.elapsed() < Duration::from_secs(10), "not enforced after 10 s:\n{}", sb.log());
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(took < Duration::from_secs(2), "enforced {took:?} after the change was saved");
    assert_ran(&sb.run(sb.path("good"), &[], &[]), "good ran");

    // The deny reaches the console, with the computer online and the policy counted.
    let events = console.wait_for_list("/api/events?verdict=deny&file=blocked", 1, Duration::from_secs(15));
    assert_eq!(events.first().map(|e| e["policy"].clone()), Some(Value::from("Deny blocked build")), "{}", sb.log());
    let (_, computers) = console.call("GET", "/api/computers", None);
    assert_eq!(computers[0]["online"], true);
    assert_eq!(computers[0]["host"]["os"], "linux");
    // The agent reported the host's installed packages, which the console shows.
    if Path::new("/var/lib/dpkg/status").exists() {
        let id = computers[0]["id"].as_i64().unwrap();
        let t0 = Instant::now();
        let bash = loop {
            let (_, list) = console.call("GET", &format!("/api/computers/{id}/packages?filter=dpkg:bash"), None);
            if let Some(b) = list["packages"].as_array().and_then(|l| l.iter().find(|p| p["name"] == "dpkg:bash")) {
                assert!(list["total"].as_i64().unwrap() > 10, "{list}");
                break b.clone();
            }
            assert!(t0.elapsed() < Duration::from_secs(15), "no package report:\n{}", sb.log());
            std::thread::sleep(Duration::from_millis(200));
        };
        let dpkg = Command::new("dpkg-query").args(["-W", "-f", "${Version}", "bash"]).output().unwrap();
        assert_eq!(bash["version"], String::from_utf8_lossy(&dpkg.stdout).as_ref(), "as dpkg-query says");
    }

    // The organization rotates its signing key: the running agent takes a bundle signed by
    // the new key (endorsed by the old one) and keeps the key; the offline restart below
    // loads that bundle. No re-enrollment.
    let (_, before) = console.call("GET", "/api/bundle-key", None);
    let rotated = console.post("/api/bundle-key/rotate", serde_json::json!({}));
    let new_key = rotated["public_key"].as_str().unwrap().to_owned();
    assert_ne!(before["public_key"], rotated["public_key"]);
    let t0 = Instant::now();
    loop {
        let enrollment: Value = serde_json::from_slice(&std::fs::read(state.join("enrollment.json")).unwrap()).unwrap();
        if enrollment["bundle_key"] == new_key.as_str() {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "the agent did not take the new key:\n{}", sb.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(sb.log().contains("bundle key is now"), "{}", sb.log());
    assert_blocked(&sb.run(sb.path("blocked"), &[], &[]));

    // The server goes away: the agent keeps its last bundle, across a restart too.
    server.stop();
    assert_blocked(&sb.run(sb.path("blocked"), &[], &[]));
    assert!(sb.stop().success());
    sb.start_from(&source(false), &["--mark-under", &mnt, "--no-protect"], &[]);
    assert_blocked(&sb.run(sb.path("blocked"), &[], &[]));
    assert_ran(&sb.run(sb.path("good"), &[], &[]), "good ran");
    let spooled = sb.events_for(&sb.path("blocked"), "deny").len();
    assert!(spooled >= 3, "denied online, offline and after the restart: {spooled}");

    // Back: every spooled deny arrives, none twice.
    let server = ServerProcess::start(&dir, port);
    let console = Console::login(&server);
    let delivered = console.wait_for_list("/api/events?verdict=deny&file=blocked", spooled, Duration::from_secs(20));
    assert_eq!(delivered.len(), spooled, "{}", sb.log());
    std::thread::sleep(Duration::from_millis(1500));
    let (_, again) = console.call("GET", "/api/events?verdict=deny&file=blocked", None);
    assert_eq!(again.as_array().unwrap().len(), spooled, "no event stored twice");
    assert!(sb.stop().success());

    // The organization's key is reset on the server (a lost secret key, a forged row): no
    // chain leads to the new key, so the agent keeps enforcing its last bundle and tells
    // the server why it refuses the new ones.
    let db = format!("sqlite://{}/server.db", dir.display());
    let reset = Command::new(bin())
        .args(["server", "reset-bundle-key", "--database-url", &db, "--organization", "Acme"])
        .output()
        .unwrap();
    assert!(reset.status.success(), "{}", String::from_utf8_lossy(&reset.stderr));
    assert!(String::from_utf8_lossy(&reset.stdout).contains("enroll again"));
    sb.start_from(&source(false), &["--mark-under", &mnt, "--no-protect"], &[]);
    let t0 = Instant::now();
    loop {
        let (_, computers) = console.call("GET", "/api/computers", None);
        let error = computers[0]["bundle_error"].as_str().unwrap_or_default().to_owned();
        if error.contains("bundle refused") {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(20), "no refusal reported ({error:?}):\n{}", sb.log());
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_blocked(&sb.run(sb.path("blocked"), &[], &[]));
    assert!(sb.stop().success());
    let (_, policies) = console.call("GET", "/api/policies", None);
    let deny_row = policies.as_array().unwrap().iter().find(|p| p["name"] == "Deny blocked build").unwrap();
    assert!(deny_row["hits"].as_i64().unwrap() >= 1, "{deny_row}");
}

/// Debian's Prometheus, scraping `targets` (job name, address) every second, on loopback;
/// killed when dropped (and by `timeout` whatever happens).
struct Prometheus {
    child: Child,
    url: String,
    log: PathBuf,
}

impl Prometheus {
    fn start(dir: &Path, targets: &[(&str, String)]) -> Prometheus {
        let mut config = String::from("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n");
        for (job, addr) in targets {
            config.push_str(&format!("  - job_name: {job}\n    static_configs:\n      - targets: ['{addr}']\n"));
        }
        std::fs::write(dir.join("prometheus.yml"), config).unwrap();
        let log = dir.join("prometheus.log");
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port();
            let child = Command::new("timeout")
                .args(["-s", "KILL", "180", "prometheus"])
                .arg(format!("--config.file={}", dir.join("prometheus.yml").display()))
                .arg(format!("--storage.tsdb.path={}", dir.join("tsdb").display()))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .expect("Debian's prometheus (./x test installs it)");
            let mut p = Prometheus { child, url: format!("http://127.0.0.1:{port}"), log: log.clone() };
            let t0 = Instant::now();
            while t0.elapsed() < Duration::from_secs(30) {
                if p.child.try_wait().unwrap().is_some() {
                    break;
                }
                if ureq::get(format!("{}/-/ready", p.url)).call().is_ok_and(|r| r.status() == 200) {
                    return p;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            last = std::fs::read_to_string(&p.log).unwrap_or_default();
        }
        panic!("prometheus did not start:\n{last}")
    }

    /// The value of an instant query that returns one series, once it does.
    fn value(&self, query: &str, within: Duration) -> f64 {
        let t0 = Instant::now();
        loop {
            let reply: Option<Value> = ureq::get(format!("{}/api/v1/query", self.url))
                .query("query", query)
                .call()
                .ok()
                .and_then(|mut r| r.body_mut().read_json().ok());
            let result = reply.as_ref().map(|r| r["data"]["result"].clone()).unwrap_or_default();
            if let Some([one]) = result.as_array().map(Vec::as_slice) {
                return one["value"][1].as_str().unwrap().parse().unwrap();
            }
            assert!(
                t0.elapsed() < within,
                "Prometheus has no single series for {query}: {reply:?}\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn prometheus_scrapes_the_server_and_an_enrolled_agent() {
    let mut sb = Sandbox::new();
    let dir = sb.dir.path().to_owned();
    let server_metrics = format!("127.0.0.1:{}", free_port());
    let agent_metrics = format!("127.0.0.1:{}", free_port());
    let fleet = Fleet::start_with(&dir, "Linux", None, &["--metrics-listen", &server_metrics]);
    permit_sandbox(&fleet.console, &sb);
    let mnt = sb.mnt.to_str().unwrap().to_owned();
    sb.start_from(&fleet.source(true), &["--mark-under", &mnt, "--no-protect"], &["--metrics-listen", &agent_metrics]);
    assert_ran(&sb.run(sb.path("good"), &[], &[]), "good ran");
    // A change the running agent catches up with: one propagation to measure.
    deny_blocked_build(&fleet.console, &sb);
    let t0 = Instant::now();
    while sb.run(sb.path("blocked"), &[], &[]).status.success() {
        assert!(t0.elapsed() < Duration::from_secs(10), "the deny did not arrive:\n{}", sb.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    // Denied again: judged from the identity cache, not hashed a second time.
    assert_blocked(&sb.run(sb.path("blocked"), &[], &[]));
    fleet.console.wait_for_list("/api/events?verdict=deny&file=blocked", 1, Duration::from_secs(15));

    // A path that is not /metrics, and a method that is not GET, on both endpoints.
    for addr in [&server_metrics, &agent_metrics] {
        let res = ureq::get(format!("http://{addr}/nope")).config().http_status_as_error(false).build().call();
        assert_eq!(res.unwrap().status(), 404, "{addr}");
    }
    let res = ureq::post(format!("http://{agent_metrics}/metrics"))
        .config()
        .http_status_as_error(false)
        .build()
        .send_empty()
        .unwrap();
    assert_eq!(res.status(), 405);

    let prometheus = Prometheus::start(&dir, &[("server", server_metrics.clone()), ("agent", agent_metrics.clone())]);
    let within = Duration::from_secs(30);
    assert_eq!(prometheus.value("up{job=\"server\"}", within), 1.0);
    assert_eq!(prometheus.value("up{job=\"agent\"}", within), 1.0);
    // The agent: decisions by access and verdict, answer latency, cache, marks, spool.
    let q = |metric: &str| prometheus.value(metric, within);
    assert!(q("portcullis_agent_decisions_total{access=\"exec\",verdict=\"deny\"}") >= 2.0);
    assert!(q("portcullis_agent_decisions_total{access=\"exec\",verdict=\"allow\"}") >= 1.0);
    assert!(q("portcullis_agent_answer_seconds_count") >= 3.0);
    assert!(q("portcullis_agent_answer_seconds_bucket{le=\"+Inf\"}") >= 3.0);
    assert!(q("portcullis_agent_cache_hits_total") >= 1.0);
    assert!(q("portcullis_agent_cache_misses_total") >= 2.0);
    assert!(q("portcullis_agent_ignore_marks_total") >= 1.0);
    assert_eq!(q("portcullis_agent_overloads_total"), 0.0);
    assert_eq!(q("portcullis_agent_spool_dropped_total"), 0.0);
    // Delivered: the backlog drains to nothing.
    let t0 = Instant::now();
    while q("portcullis_agent_spool_backlog_bytes") > 0.0 {
        assert!(t0.elapsed() < within, "the spool backlog did not drain:\n{}", sb.log());
        std::thread::sleep(Duration::from_millis(500));
    }
    // The server: agents, propagation, events, latency by route, the pool.
    assert_eq!(q("portcullis_server_agents{organization=\"Acme\",state=\"online\"}"), 1.0);
    assert_eq!(q("portcullis_server_agents{organization=\"Acme\",state=\"stale\"}"), 0.0);
    assert!(q("portcullis_server_bundle_propagation_seconds_count") >= 1.0);
    assert!(q("portcullis_server_bundle_propagation_seconds_sum") < 2.0, "the change took more than 2 s to leave");
    assert!(q("portcullis_server_events_total{outcome=\"stored\"}") >= 2.0);
    assert!(
        q("sum(portcullis_server_http_request_duration_seconds_count{route=\"/api/agent/poll\",status=\"200\"})")
            >= 2.0
    );
    assert!(q("sum(portcullis_server_http_request_duration_seconds_count{route=\"/api/policies/{id}/move\"})") >= 1.0);
    assert!(q("portcullis_server_db_connections_max") >= 1.0);
    assert!(q("portcullis_server_db_connections{state=\"idle\"}") >= 0.0);
    // Every scrape parsed: no target with an error.
    let targets: Value =
        ureq::get(format!("{}/api/v1/targets", prometheus.url)).call().unwrap().body_mut().read_json().unwrap();
    for t in targets["data"]["activeTargets"].as_array().unwrap() {
        assert_eq!(t["health"], "up", "{t}");
        assert_eq!(t["lastError"], "", "{t}");
    }
    assert!(sb.stop().success());
}

/// A DNS server on loopback for ringfence domains: answers A questions for any name with one
/// address (changeable while it runs) and a one-second TTL, AAAA with no data.
struct TestDns {
    addr: std::net::SocketAddr,
    answer: std::sync::Arc<std::sync::Mutex<[u8; 4]>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl TestDns {
    fn start(first: [u8; 4]) -> TestDns {
        use std::sync::atomic::Ordering;
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        let addr = socket.local_addr().unwrap();
        let answer = std::sync::Arc::new(std::sync::Mutex::new(first));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (a, st) = (answer.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            while !st.load(Ordering::Acquire) {
                let Ok((n, from)) = socket.recv_from(&mut buf) else { continue };
                let q = &buf[..n];
                // Question: the name ends at the first zero label after the 12-byte header.
                let Some(end) = q[12..].iter().position(|&b| b == 0).map(|p| 12 + p + 1) else { continue };
                let qtype = u16::from_be_bytes([q[end], q[end + 1]]);
                let mut r = q[..end + 4].to_vec();
                r[2] = 0x81;
                r[3] = 0x80;
                if qtype == 1 {
                    r[7] = 1;
                    r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 1, 0, 4]);
                    r.extend_from_slice(&*a.lock().unwrap());
                }
                let _ = socket.send_to(&r, from);
            }
        });
        TestDns { addr, answer, stop }
    }
}

impl Drop for TestDns {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Release);
    }
}

/// `who what result` lines of the fenced test program.
fn results(o: &Output) -> std::collections::HashMap<(String, String), String> {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            Some(((f.next()?.to_owned(), f.next()?.to_owned()), f.next()?.to_owned()))
        })
        .collect()
}

#[track_caller]
fn expect(o: &Output, who: &[&str], table: &[(&str, &str)]) {
    let got = results(o);
    for w in who {
        for (what, want) in table {
            let have = got.get(&(w.to_string(), what.to_string()));
            assert_eq!(have.map(String::as_str), Some(*want), "{w} {what}; all output:\n{}", text(o));
        }
    }
}

fn listener_pair(a: &str, b: &str) -> (std::net::TcpListener, std::net::TcpListener, u16) {
    for _ in 0..50 {
        let first = std::net::TcpListener::bind(format!("{a}:0")).unwrap();
        let port = first.local_addr().unwrap().port();
        if let Ok(second) = std::net::TcpListener::bind(format!("{b}:{port}")) {
            return (first, second, port);
        }
    }
    panic!("no port free on both {a} and {b}");
}

fn fence_policy(mnt: &Path, status: &str, allowed_port: u16, domain_port: u16) -> String {
    let m = mnt.display();
    format!(
        r#"[organization]
name = "Ringfence tests"
mode = "monitor"

[[applications]]
name = "Fenced app"
rules = [{{ path = "{m}/app/fenced" }}]

[[applications]]
name = "Free copy"
rules = [{{ path = "{m}/free/fenced" }}]

[[policies]]
name = "Ringfence the app"
position = 10
applications = ["Fenced app"]
action = "permit-ringfence"
ringfence = "app fence"
status = "{status}"

[[policies]]
name = "Permit the copy"
position = 20
applications = ["Free copy"]
action = "permit"

[[ringfences]]
name = "app fence"
[ringfences.files]
protected = ["{m}/secret/**"]
rules = [{{ path = "{m}/secret/shared.txt", access = "read" }}]
[ringfences.network]
allow = [{{ cidr = "127.0.0.1", ports = [{allowed_port}] }}]
domains = [{{ name = "portal.fence.test", ports = [{domain_port}] }}]
dns = false
[ringfences.children]
others = "no-shells"
"#
    )
}

#[test]
fn a_ringfenced_tree_is_limited_in_files_network_and_children_and_a_copy_is_not() {
    // Whole system watched (so that starting /bin/sh is seen) in Monitor mode: nothing but
    // the ringfence denies, and it only applies to the tree of <tmpfs>/app/fenced.
    let mut s = Sandbox::new();
    for d in ["app", "free", "secret"] {
        std::fs::create_dir_all(s.path(d)).unwrap();
    }
    copy_mode(&built().dir.join("fenced"), &s.path("app/fenced"));
    copy_mode(&built().dir.join("fenced"), &s.path("free/fenced"));
    std::fs::write(s.path("secret/shared.txt"), "shared\n").unwrap();
    std::fs::write(s.path("secret/key.pem"), "-----BEGIN PRIVATE KEY-----\n").unwrap();
    let allowed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let denied = std::net::TcpListener::bind("127.0.0.2:0").unwrap();
    let (ap, dp) = (allowed.local_addr().unwrap().port(), denied.local_addr().unwrap().port());
    let (_domain_old, _domain_new, cp) = listener_pair("127.0.0.3", "127.0.0.4");
    let dns = TestDns::start([127, 0, 0, 3]);
    let policy_path = s.dir.path().join("policy.toml");
    std::fs::write(&policy_path, fence_policy(&s.mnt, "enforce", ap, cp)).unwrap();
    let resolver = dns.addr.to_string();
    s.start_with(&policy_path, &["--no-protect"], &["--resolver", &resolver]);
    assert!(s.log().contains("ringfencing with fallback BPF programs"), "{}", s.log());

    let (a, d, secret) = (ap.to_string(), dp.to_string(), s.path("secret").to_string_lossy().into_owned());
    let fenced = s.path("app/fenced");
    let limited = [
        ("connect-allowed", "ok"),
        ("connect-denied", "EPERM"),
        ("udp-denied", "EPERM"),
        ("read-allowed", "ok"),
        ("read-protected", "EPERM"),
        ("write-read-only", "EPERM"),
        ("start-sh", "EPERM"),
        ("start-true", "ok"),
    ];
    let run = s.run(&fenced, &["run", &a, &d, &secret], &[]);
    expect(&run, &["main", "thread", "child"], &limited);
    let again = s.run(&fenced, &["reexec", &a, &d, &secret], &[]);
    expect(&again, &["main"], &limited);

    // Domains: resolved by the agent, refreshed when their TTL runs out.
    let port = cp.to_string();
    expect(&s.run(&fenced, &["connect", "127.0.0.3", &port], &[]), &["main"], &[("connect", "ok")]);
    expect(&s.run(&fenced, &["connect", "127.0.0.4", &port], &[]), &["main"], &[("connect", "EPERM")]);
    *dns.answer.lock().unwrap() = [127, 0, 0, 4];
    let t0 = Instant::now();
    while results(&s.run(&fenced, &["connect", "127.0.0.4", &port], &[])).values().next().map(String::as_str)
        != Some("ok")
    {
        assert!(t0.elapsed() < Duration::from_secs(10), "the new address was not allowed:\n{}", s.log());
        std::thread::sleep(Duration::from_millis(200));
    }
    expect(&s.run(&fenced, &["connect", "127.0.0.3", &port], &[]), &["main"], &[("connect", "EPERM")]);

    // The same binary elsewhere is not ringfenced.
    let free = s.run(s.path("free/fenced"), &["run", &a, &d, &secret], &[]);
    let all_ok: Vec<(&str, &str)> = limited.iter().map(|(w, _)| (*w, "ok")).collect();
    expect(&free, &["main", "thread", "child"], &all_ok);

    // Every denial is an event naming the profile and the rule.
    let t0 = Instant::now();
    let fence_events = loop {
        let evs: Vec<Value> = s.events().into_iter().filter(|e| e["event"] == "ringfence-deny").collect();
        if evs.len() >= 22 || t0.elapsed() > Duration::from_secs(5) {
            break evs;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(fence_events.iter().all(|e| e["ringfence"]["profile"] == "app fence" && e["verdict"] == "deny"));
    assert!(fence_events.iter().all(|e| e["policy"] == "Ringfence the app"));
    let net = fence_events
        .iter()
        .filter(|e| e["ringfence"]["destination"] == format!("tcp://127.0.0.2:{dp}"))
        .collect::<Vec<_>>();
    assert!(net.len() >= 4, "main, thread, child and the re-exec: {fence_events:#?}");
    assert!(net.iter().all(|e| e["ringfence"]["rule"] == "network.allow" && e["access"] == "connect"));
    assert!(fence_events.iter().any(|e| e["ringfence"]["destination"] == format!("udp://127.0.0.2:{dp}")));
    let key = s.path("secret/key.pem");
    let file = s.events_for(&key, "ringfence-deny");
    assert!(file.len() >= 4, "{file:#?}");
    let protected_rule = format!("files.protected \"{}/secret/**\" → none", s.mnt.display());
    assert!(file.iter().all(|e| e["ringfence"]["rule"] == protected_rule.as_str()), "{file:#?}");
    let write = s.events_for(&s.path("secret/shared.txt"), "ringfence-deny");
    assert!(write.iter().all(|e| e["ringfence"]["rule"].as_str().unwrap().ends_with("→ read")), "{write:#?}");
    let sh: Vec<&Value> =
        fence_events.iter().filter(|e| e["ringfence"]["rule"] == "children.others = no-shells").collect();
    assert!(sh.len() >= 4 && sh.iter().all(|e| e["access"] == "exec"), "{fence_events:#?}");
    assert!(s.stop().success());

    // Report-only: the same policy in Monitor status denies nothing and reports it all.
    std::fs::write(&policy_path, fence_policy(&s.mnt, "monitor", ap, cp)).unwrap();
    let _ = std::fs::remove_dir_all(s.spool());
    s.start_with(&policy_path, &["--no-protect"], &["--resolver", &resolver]);
    let run = s.run(&fenced, &["run", &a, &d, &secret], &[]);
    expect(&run, &["main", "thread", "child"], &all_ok);
    let t0 = Instant::now();
    let reported = loop {
        let evs: Vec<Value> = s.events().into_iter().filter(|e| e["event"] == "ringfence-would-deny").collect();
        if evs.len() >= 18 || t0.elapsed() > Duration::from_secs(5) {
            break evs;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    for rule in ["network.allow", protected_rule.as_str(), "children.others = no-shells"] {
        let n = reported.iter().filter(|e| e["ringfence"]["rule"] == rule).count();
        assert!(n >= 3, "{rule}: {n} reports in {reported:#?}");
    }
    assert!(reported.iter().all(|e| e["verdict"] == "allow" && e["ringfence"]["enforced"] == false));
    assert!(s.stop().success());
}

#[test]
fn the_shipped_3cx_advice_is_enforced_on_a_real_process_tree() {
    // dist/policies/3cx-ringfence.toml as shipped, with only what a test must change: the
    // application's path (the test program on this tmpfs), a protected directory on the
    // tmpfs, its domain answered by the test's DNS server, and Monitor mode for the computer
    // (the whole system is watched). No protected files, network only to its domains, no
    // child programs at all.
    let mut s = Sandbox::new();
    for d in ["app", "secret"] {
        std::fs::create_dir_all(s.path(d)).unwrap();
    }
    copy_mode(&built().dir.join("fenced"), &s.path("app/fenced"));
    std::fs::write(s.path("secret/shared.txt"), "shared\n").unwrap();
    std::fs::write(s.path("secret/key.pem"), "key\n").unwrap();
    let other = std::net::TcpListener::bind("127.0.0.2:0").unwrap();
    let (_own, _own2, cp) = listener_pair("127.0.0.3", "127.0.0.4");
    let dns = TestDns::start([127, 0, 0, 3]);
    let shipped = include_str!("../../../dist/policies/3cx-ringfence.toml");
    let m = s.mnt.display().to_string();
    let mut text = shipped.to_owned();
    for (from, to) in [
        ("mode = \"secured\"", "mode = \"monitor\"".to_owned()),
        ("{ path = \"/usr/lib/3cxdesktopapp/3CXDesktopApp\" }", format!("{{ path = \"{m}/app/fenced\" }}")),
        ("protected = [\"/home/**\"", format!("protected = [\"{m}/secret/**\", \"/home/**\"")),
        ("{ name = \"3cx.com\", ports = [443] }", format!("{{ name = \"portal.fence.test\", ports = [{cp}] }}")),
    ] {
        assert!(text.contains(from), "the shipped policy changed: {from} is gone");
        text = text.replace(from, &to);
    }
    let policy_path = s.dir.path().join("policy.toml");
    std::fs::write(&policy_path, text).unwrap();
    let resolver = dns.addr.to_string();
    s.start_with(&policy_path, &["--no-protect"], &["--resolver", &resolver]);

    let fenced = s.path("app/fenced");
    let (op, secret) =
        (other.local_addr().unwrap().port().to_string(), s.path("secret").to_string_lossy().into_owned());
    let run = s.run(&fenced, &["run", &op, &op, &secret], &[]);
    let nothing: Vec<(&str, &str)> = [
        "connect-allowed",
        "connect-denied",
        "udp-denied",
        "read-allowed",
        "read-protected",
        "write-read-only",
        "start-sh",
        "start-true",
    ]
    .iter()
    .map(|w| (*w, "EPERM"))
    .collect();
    expect(&run, &["main", "thread", "child"], &nothing);
    expect(&s.run(&fenced, &["connect", "127.0.0.3", &cp.to_string()], &[]), &["main"], &[("connect", "ok")]);
    let t0 = Instant::now();
    let events = loop {
        let evs: Vec<Value> = s.events().into_iter().filter(|e| e["event"] == "ringfence-deny").collect();
        if evs.len() >= 24 || t0.elapsed() > Duration::from_secs(5) {
            break evs;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(events.len() >= 24, "one event per denial: {events:#?}");
    assert!(events.iter().all(|e| e["policy"] == "Permit 3CX, ringfenced" && e["ringfence"]["profile"] == "3CX"));
    let started: Vec<&Value> = events.iter().filter(|e| e["ringfence"]["rule"] == "children.others = deny").collect();
    assert_eq!(started.len(), 6, "sh and true from main, thread and child: {events:#?}");
    assert!(s.stop().success());
}

/// Build a Debian package named `name` with `files` (path inside the package → source) with
/// dpkg-deb, its md5sums made as dh_md5sums makes them, and install it with Debian's own dpkg
/// into `root` (a directory on the sandbox's tmpfs; nothing of the host is touched).
fn install_deb(s: &Sandbox, root: &Path, name: &str, files: &[(&str, &Path)]) {
    let pkg = s.dir.path().join(format!("pkg-{name}"));
    for (inside, from) in files {
        let to = pkg.join(inside);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        copy_mode(from, &to);
    }
    std::fs::create_dir_all(pkg.join("DEBIAN")).unwrap();
    std::fs::write(
        pkg.join("DEBIAN/control"),
        format!(
            "Package: {name}\nVersion: 1.0\nArchitecture: all\nMaintainer: Tests <t@example.org>\nDescription: test\n"
        ),
    )
    .unwrap();
    let sums = Command::new("md5sum").args(files.iter().map(|(p, _)| *p)).current_dir(&pkg).output().unwrap();
    assert!(sums.status.success());
    std::fs::write(pkg.join("DEBIAN/md5sums"), &sums.stdout).unwrap();
    let deb = s.dir.path().join(format!("{name}.deb"));
    let built = Command::new("dpkg-deb").args(["--root-owner-group", "--build"]).arg(&pkg).arg(&deb).output().unwrap();
    assert!(built.status.success(), "{}", text(&built));
    for d in ["var/lib/dpkg/info", "var/lib/dpkg/updates", "var/lib/dpkg/triggers"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    for f in ["var/lib/dpkg/status", "var/lib/dpkg/available"] {
        if !root.join(f).exists() {
            std::fs::write(root.join(f), "").unwrap();
        }
    }
    let installed = Command::new("timeout")
        .args(["-s", "KILL", "60", "dpkg", "--force-bad-path", "--log=/dev/null"])
        .arg(format!("--root={}", root.display()))
        .arg("-i")
        .arg(&deb)
        .output()
        .unwrap();
    assert!(installed.status.success(), "dpkg -i: {}", text(&installed));
}

#[test]
fn installed_dpkg_packages_are_trusted_followed_while_running_and_a_changed_file_is_not() {
    let mut s = Sandbox::new();
    let root = s.path("root");
    let good = built().dir.join("good");
    install_deb(&s, &root, "portcullis-test-tool", &[("usr/bin/tool", &good), ("usr/bin/other", &good)]);
    let policy = format!(
        "[organization]\nname = \"Package trust\"\nmode = \"secured\"\n\n[[policies]]\nname = \"Permit packages\"\n\
         position = 100\napplications = [\"{}\"]\naction = \"permit\"\n",
        portcullis_catalog::DISTRIBUTION_PACKAGES
    );
    s.start(&policy, &["--package-root", root.to_str().unwrap()]);
    assert!(s.log().contains("package trust: 1 packages"), "{}", s.log());
    assert_ran(&s.run(root.join("usr/bin/tool"), &[], &[]), "good ran");
    // Default deny holds for what no package lists: the same program dropped loose.
    copy_mode(&good, &s.path("loose"));
    assert_blocked(&s.run(s.path("loose"), &[], &[]));

    // A package installed while the agent runs is trusted without a restart.
    install_deb(&s, &root, "portcullis-test-later", &[("opt/later/bin/later", &good)]);
    let later = root.join("opt/later/bin/later");
    let t0 = Instant::now();
    loop {
        let o = s.run(&later, &[], &[]);
        if o.status.success() {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(5), "the new package is not trusted: {}\n{}", text(&o), s.log());
        std::thread::sleep(Duration::from_millis(200));
    }

    // A packaged file changed after installation is not the package's any more.
    let other = root.join("usr/bin/other");
    std::fs::OpenOptions::new().append(true).open(&other).unwrap().write_all(b"\0").unwrap();
    assert_blocked(&s.run(&other, &[], &[]));
    let e = &s.events_for(&other, "deny")[0];
    let reason = e["reason"].as_str().unwrap();
    assert!(reason.contains("portcullis-test-tool") && reason.contains("changed since it was installed"), "{e}");
    assert_ran(&s.run(root.join("usr/bin/tool"), &[], &[]), "good ran");
    assert!(s.stop().success());
}

/// A Debian 12 root made by mmdebstrap from Debian's packages (bash, coreutils, apt, python3,
/// perl, gcc, man), as a tarball: built once (by `./x test` before the tests, or here with the
/// same arguments), then kept under `target/` for later runs.
fn debian_root_tar() -> PathBuf {
    static TAR: OnceLock<PathBuf> = OnceLock::new();
    TAR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/debian-root");
        let tar = dir.join("bookworm.tar");
        if tar.exists() {
            return tar;
        }
        std::fs::create_dir_all(&dir).unwrap();
        let partial = dir.join(format!("bookworm.{}.tar", std::process::id()));
        let out = Command::new("timeout")
            .args(["600", "mmdebstrap", "--quiet", "--variant=apt", "--include=python3,perl,gcc,libc6-dev,man-db"])
            .args(["bookworm"])
            .arg(&partial)
            .arg("http://deb.debian.org/debian")
            .output()
            .expect("mmdebstrap is installed by ./x deps");
        assert!(out.status.success(), "mmdebstrap (needs deb.debian.org): {}", text(&out));
        std::fs::rename(&partial, &tar).unwrap();
        tar
    })
    .clone()
}

/// The Debian root unpacked onto a tmpfs of its own at `root`, unmounted with the sandbox.
fn unpack_debian_root(s: &mut Sandbox, root: &Path) {
    let tar = debian_root_tar();
    std::fs::create_dir_all(root).unwrap();
    let st = Command::new("mount").args(["-t", "tmpfs", "-o", "size=2g", "tmpfs"]).arg(root).status().unwrap();
    assert!(st.success());
    s.mounts.push(root.to_owned());
    let st = Command::new("tar").arg("-C").arg(root).arg("-xpf").arg(&tar).status().unwrap();
    assert!(st.success());
}

/// The normal work of a Debian host: a shell, python3, perl, coreutils, gcc, man.
const DEBIAN_WORK: &str = r#"set -e
echo "bash $BASH_VERSION"
python3 -c 'import json, hashlib, sqlite3; print(json.dumps({"python": hashlib.sha256(b"x").hexdigest()[:8]}))'
perl -MPOSIX -e 'print "perl ", floor(2.5), "\n"'
ls / | sort | head -3; wc -l < /etc/passwd; sha256sum /bin/ls | cut -c1-8; tar --version | head -1
printf '#include <stdio.h>\nint main(void) { puts("compiled"); return 0; }\n' > /tmp/hello.c
gcc -O2 -o /tmp/hello /tmp/hello.c
man -P cat ls | grep -m1 -o 'list directory contents'
echo work done"#;

/// Run `script` with bash inside `root` (chroot, in a mount namespace of its own with /proc).
fn in_root(root: &Path, script: &str) -> Output {
    let r = root.to_str().unwrap();
    let out = Command::new("timeout")
        .args(["-s", "KILL", "120", "unshare", "--mount", "--propagation", "private", "sh", "-c"])
        .arg(r#"mount -t proc proc "$1/proc" && exec chroot "$1" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 /bin/bash -c "$2""#)
        .args(["sh", r, script])
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(137), "{script}: hit the 120 s limit");
    out
}

#[test]
fn a_debian_12_root_runs_its_normal_work_under_secured_mode_with_only_package_trust() {
    let mut s = Sandbox::new();
    let root = s.dir.path().join("debian");
    unpack_debian_root(&mut s, &root);

    // A local repository with one vendor package, for apt-get to install while enforced.
    let repo = root.join("srv/repo");
    let pkg = s.dir.path().join("pkg-demo");
    std::fs::create_dir_all(pkg.join("DEBIAN")).unwrap();
    std::fs::create_dir_all(pkg.join("usr/bin")).unwrap();
    copy_mode(&built().dir.join("good"), &pkg.join("usr/bin/portcullis-demo"));
    std::fs::write(
        pkg.join("DEBIAN/control"),
        "Package: portcullis-demo\nVersion: 1.0\nArchitecture: amd64\nMaintainer: Tests <t@example.org>\nDescription: demo\n",
    )
    .unwrap();
    let sums = Command::new("md5sum").arg("usr/bin/portcullis-demo").current_dir(&pkg).output().unwrap();
    std::fs::write(pkg.join("DEBIAN/md5sums"), &sums.stdout).unwrap();
    std::fs::create_dir_all(&repo).unwrap();
    let built_deb = Command::new("dpkg-deb")
        .args(["--root-owner-group", "--build"])
        .arg(&pkg)
        .arg(repo.join("portcullis-demo_1.0_amd64.deb"))
        .output()
        .unwrap();
    assert!(built_deb.status.success(), "{}", text(&built_deb));
    let index = Command::new("dpkg-scanpackages").args([".", "/dev/null"]).current_dir(&repo).output().unwrap();
    assert!(index.status.success(), "{}", text(&index));
    std::fs::write(repo.join("Packages"), &index.stdout).unwrap();
    std::fs::write(root.join("etc/apt/sources.list"), "deb [trusted=yes] file:/srv/repo ./\n").unwrap();
    // The only program on this root that no package lists: dropped in /tmp.
    copy_mode(&built().dir.join("good"), &root.join("tmp/dropped"));

    let policy = s.dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        format!(
            "[organization]\nname = \"Debian root\"\nmode = \"secured\"\n\n[[policies]]\nname = \"Permit packages\"\n\
             position = 100\napplications = [\"{}\"]\naction = \"permit\"\n",
            portcullis_catalog::DISTRIBUTION_PACKAGES
        ),
    )
    .unwrap();
    let r = root.to_str().unwrap().to_owned();
    let started = Instant::now();
    s.start_with(&policy, &["--mark-under", &r, "--no-protect"], &["--package-root", &r]);
    eprintln!("agent enforcing on the Debian root after {:?}", started.elapsed());
    let log = s.log();
    let packages = log.split("package trust: ").nth(1).and_then(|t| t.split(' ').next()).unwrap_or("0");
    assert!(packages.parse::<u32>().unwrap_or(0) > 100, "{log}");

    // Its normal work, every program and library trusted as its package's.
    let work = in_root(&root, DEBIAN_WORK);
    assert!(work.status.success() && text(&work).contains("work done"), "{}\n{}", text(&work), s.log());
    for expect in ["python", "perl 2", "list directory contents"] {
        assert!(text(&work).contains(expect), "{expect}: {}", text(&work));
    }

    // What gcc wrote is not a package's: default deny holds. So does a dropped program.
    for (program, path) in [("/tmp/hello", "tmp/hello"), ("/tmp/dropped", "tmp/dropped")] {
        let o = in_root(&root, program);
        assert_eq!(o.status.code(), Some(126), "{program} must be denied: {}", text(&o));
        let e = s.events_for(&root.join(path), "deny");
        assert!(!e.is_empty(), "no deny event for {program}:\n{}", s.log());
    }

    // apt-get installs a package while enforced; its program is trusted at once, even run
    // in the same breath as the install.
    let apt = in_root(
        &root,
        "apt-get -q -o APT::Sandbox::User=root update && apt-get -q -y -o APT::Sandbox::User=root install portcullis-demo \
         && portcullis-demo",
    );
    assert!(apt.status.success() && text(&apt).contains("good"), "{}\n{}", text(&apt), s.log());

    // Nothing of the normal work was denied.
    let denied: Vec<String> = s
        .events()
        .into_iter()
        .filter(|e| e["verdict"] == "deny")
        .map(|e| e["file"]["path"].as_str().unwrap_or_default().to_owned())
        .filter(|p| !p.ends_with("/tmp/hello") && !p.ends_with("/tmp/dropped"))
        .collect();
    assert!(denied.is_empty(), "denied in the normal work: {denied:?}");
    assert!(s.stop().success());
}

#[test]
fn learning_on_a_debian_root_becomes_an_accepted_baseline_and_secured_runs_the_same_work_with_no_deny() {
    // Not below /tmp: the baseline flags what runs from user-writable places, and the tests'
    // own temporary directory is one. Removed after the sandbox unmounted it (drop order).
    struct RemoveOnDrop(PathBuf);
    impl Drop for RemoveOnDrop {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let base = RemoveOnDrop(PathBuf::from(format!("/var/lib/portcullis-tests/learn-{}", std::process::id())));
    let mut s = Sandbox::new();
    let root = base.0.join("debian");
    unpack_debian_root(&mut s, &root);
    let vendor = root.join("opt/vendor/bin/tool");
    std::fs::create_dir_all(vendor.parent().unwrap()).unwrap();
    copy_mode(&built().dir.join("good"), &vendor);

    let dir = s.dir.path().to_owned();
    let fleet = Fleet::start(&dir, "Debian", None);
    let console = &fleet.console;
    let (status, _) = console.call(
        "PUT",
        "/api/settings",
        Some(serde_json::json!({"mode": "learning", "until": "2099-01-01T00:00:00Z"})),
    );
    assert_eq!(status, 204);
    let r = root.to_str().unwrap().to_owned();
    s.start_from(&fleet.source(true), &["--mark-under", &r, "--no-protect"], &["--package-root", &r]);

    // Learning: the normal work and the vendor's tool run and are recorded as candidates.
    let work = in_root(&root, DEBIAN_WORK);
    assert!(work.status.success() && text(&work).contains("work done"), "{}\n{}", text(&work), s.log());
    assert_ran(&in_root(&root, "/opt/vendor/bin/tool"), "good ran");
    let t0 = Instant::now();
    let mut seen = 0;
    loop {
        // Delivered when the count stops growing.
        let (_, list) = console.call("GET", "/api/events?verdict=candidate&limit=1000", None);
        let n = list.as_array().map_or(0, Vec::len);
        if n > 20 && n == seen {
            break;
        }
        seen = n;
        assert!(t0.elapsed() < Duration::from_secs(30), "candidates not delivered ({n}):\n{}", s.log());
        std::thread::sleep(Duration::from_millis(1500));
    }

    let (computer, id) = fleet.computer();
    let (status, proposal) = console.call("GET", &format!("/api/baseline?scope=computer:{computer}"), None);
    assert_eq!(status, 200, "{proposal}");
    let apps = proposal["applications"].as_array().unwrap();
    let keys: Vec<&str> = apps.iter().map(|a| a["key"].as_str().unwrap()).collect();
    for want in ["package:dpkg:bash", "package:dpkg:python3.11-minimal", "package:dpkg:perl-base", "package:dpkg:libc6"]
    {
        assert!(keys.contains(&want), "{want} not proposed: {keys:?}");
    }
    let vendor_app = apps.iter().find(|a| a["files"].to_string().contains("/opt/vendor/bin/tool")).unwrap();
    assert_eq!(vendor_app["basis"], "hash", "a root's /opt is below the host path: {vendor_app}");
    assert!(apps.iter().all(|a| a["flag"].is_null()), "nothing ran from a user-writable place: {proposal}");
    let take: Vec<Value> = keys.iter().map(|k| serde_json::json!({"key": k})).collect();
    let accepted = console.post(
        "/api/baseline",
        serde_json::json!({"scope": format!("computer:{computer}"), "take": take, "policy": "Debian baseline"}),
    );
    assert_eq!(accepted["policy"], "Debian baseline", "{accepted}");

    // Secured: the same work runs with no deny; what was never seen is denied.
    let (status, body) = console.call(
        "PUT",
        &format!("/api/computers/{id}"),
        Some(serde_json::json!({"name": computer, "group": "Debian", "mode": "secured"})),
    );
    assert_eq!(status, 204, "{body}");
    copy_mode(&built().dir.join("blocked"), &root.join("opt/vendor/bin/unseen"));
    let t0 = Instant::now();
    loop {
        let o = in_root(&root, "/opt/vendor/bin/unseen");
        if o.status.code() == Some(126) {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "not Secured after 10 s: {}\n{}", text(&o), s.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    let work = in_root(&root, DEBIAN_WORK);
    assert!(work.status.success() && text(&work).contains("work done"), "{}\n{}", text(&work), s.log());
    assert_ran(&in_root(&root, "/opt/vendor/bin/tool"), "good ran");
    let denied: Vec<String> = s
        .events()
        .into_iter()
        .filter(|e| e["verdict"] == "deny")
        .map(|e| e["file"]["path"].as_str().unwrap_or_default().to_owned())
        .filter(|p| !p.ends_with("/opt/vendor/bin/unseen"))
        .collect();
    assert!(denied.is_empty(), "denied after the baseline: {denied:?}");
    assert!(s.stop().success());
}

#[test]
fn an_offline_bypass_code_gives_monitor_mode_once_and_what_ran_reaches_the_console_marked() {
    let mut sb = Sandbox::new();
    let dir = sb.dir.path().to_owned();
    let fleet = Fleet::start(&dir, "Linux", Some("secured"));
    let source = fleet.source(true);
    let Fleet { server, console, state, .. } = fleet;
    let port: u16 = server.url.rsplit(':').next().unwrap().trim_end_matches('/').parse().unwrap();
    let sandbox_glob = format!("{}/good", sb.mnt.display());
    console.post("/api/applications", serde_json::json!({"name": "Good", "rules": [{"path": sandbox_glob}]}));
    console.post(
        "/api/policies",
        serde_json::json!({"name": "Permit good", "position": 0, "applications": ["Good"], "action": "permit"}),
    );
    let mnt = sb.mnt.to_str().unwrap().to_owned();
    sb.start_from(&source, &["--mark-under", &mnt, "--no-protect"], &["--no-package-trust"]);
    assert_blocked(&sb.run(sb.path("blocked"), &[], &[]));

    // The console issues a code once the agent registered its key.
    let (_, computers) = console.call("GET", "/api/computers", None);
    let id = computers[0]["id"].as_i64().unwrap();
    let t0 = Instant::now();
    let issued = loop {
        let (status, v) =
            console.call("POST", &format!("/api/computers/{id}/bypass-code"), Some(serde_json::json!({"minutes": 5})));
        if status == 201 {
            break v;
        }
        assert_eq!(status, 409, "{v}");
        assert!(t0.elapsed() < Duration::from_secs(10), "no bypass key registered: {v}\n{}", sb.log());
        std::thread::sleep(Duration::from_millis(200));
    };
    let code = issued["code"].as_str().unwrap().to_owned();
    let bypass = |code: &str| Command::new(bin()).args(["bypass", code, "--state-dir"]).arg(&state).output().unwrap();

    // Offline: the server is gone, the code works all the same.
    server.stop();
    let mut wrong = code.clone();
    let last = wrong.pop().unwrap();
    wrong.push(if last == 'A' { 'B' } else { 'A' });
    let o = bypass(&wrong);
    assert_eq!(o.status.code(), Some(12), "{}", text(&o));
    assert!(text(&o).contains("not valid for this computer"), "{}", text(&o));
    assert_blocked(&sb.run(sb.path("blocked"), &[], &[]));

    let o = bypass(&code);
    assert!(o.status.success(), "{}\n{}", text(&o), sb.log());
    assert!(text(&o).contains("Monitor mode until"), "{}", text(&o));
    assert_ran(&sb.run(sb.path("blocked"), &[], &[]), "blocked ran");
    let status =
        Command::new(bin()).args(["bypass", "--status", "--json", "--state-dir"]).arg(&state).output().unwrap();
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["active"], true, "{status}");
    let counter = issued["counter"].as_u64().unwrap();
    let during = sb.events_for(&sb.path("blocked"), "would-deny");
    assert_eq!(during.last().map(|e| e["bypass"].clone()), Some(Value::from(counter)), "{during:?}");

    // Single use, across an agent restart too.
    let o = bypass(&code);
    assert_eq!(o.status.code(), Some(12), "{}", text(&o));
    assert!(text(&o).contains("used already"), "{}", text(&o));
    assert!(sb.stop().success());
    let resume: Vec<String> = source[..6].to_vec();
    sb.start_from(&resume, &["--mark-under", &mnt, "--no-protect"], &["--no-package-trust"]);
    assert_ran(&sb.run(sb.path("blocked"), &[], &[]), "blocked ran"); // the bypass outlives a restart
    let o = bypass(&code);
    assert!(text(&o).contains("used already"), "{}", text(&o));

    // Back online: what ran during the bypass reaches the console, marked.
    let server = ServerProcess::start(&dir, port);
    let console = Console::login(&server);
    let events = console.wait_for_list("/api/events?verdict=would-deny&file=blocked", 1, Duration::from_secs(20));
    assert!(!events.is_empty(), "{}", sb.log());
    let (_, event) = console.call("GET", &format!("/api/events/{}", events[0]["id"]), None);
    assert_eq!(event["record"]["bypass"], counter, "{event}");
    // The console's audit log has the issue, not the code.
    let (_, audit) = console.call("GET", "/api/audit", None);
    let issue = audit.as_array().unwrap().iter().find(|e| e["action"] == "issue bypass code").unwrap().to_string();
    assert!(!issue.contains(&code[code.len() - 4..]), "{issue}");
    assert!(sb.stop().success());
}

#[test]
fn a_denied_user_asks_an_approver_decides_and_the_agent_allows_it_within_two_seconds() {
    let mut sb = Sandbox::new();
    let dir = sb.dir.path().to_owned();
    let fleet = Fleet::start(&dir, "Linux", Some("secured"));
    let (console, state, user_dir) = (&fleet.console, fleet.state.clone(), fleet.user_dir());
    let mnt = sb.mnt.to_str().unwrap().to_owned();
    sb.start_from(&fleet.source(true), &["--mark-under", &mnt, "--no-protect"], &["--no-package-trust"]);
    assert_blocked(&sb.run(sb.path("good"), &[], &[]));
    assert!(!sb.events_for(&sb.path("good"), "deny").is_empty());

    let request = |args: &[&str]| {
        Command::new(bin())
            .arg("request")
            .args(args)
            .arg("--spool")
            .arg(sb.spool())
            .arg("--state-dir")
            .arg(&state)
            .env("SUDO_USER", "ann")
            .output()
            .unwrap()
    };
    let o = request(&["--last"]);
    assert_eq!(o.status.code(), Some(2), "a reason is required: {}", text(&o));
    let o = request(&["/nowhere", "--reason", "x"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let o = request(&["--last", "--reason", "I run the nightly report with it"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains(&format!("{}/good", mnt)), "{}", text(&o));

    // The approver sees it with the file's facts and where it was denied (the deny itself
    // travels with the agent's events, which may reach the server after the request).
    let denies =
        console.wait_for_list(&format!("/api/events?verdict=deny&file={mnt}/good"), 1, Duration::from_secs(15));
    assert_eq!(denies.len(), 1, "{}", sb.log());
    let queue = console.wait_for_list("/api/requests?status=pending", 1, Duration::from_secs(15));
    assert_eq!(queue.len(), 1, "{}", sb.log());
    let r = &queue[0];
    assert_eq!(r["requester"], "ann");
    assert_eq!(r["reason"], "I run the nightly report with it");
    assert_eq!(r["event"]["file_sha256"], sha256(&sb.path("good")).as_str());
    assert_eq!(r["seen_on"], 1, "{r}");
    let o = request(&["--status", "--json"]);
    let status: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(status["requests"][0]["status"], "pending", "{status}");

    // Approved by hash for this computer: enforced within 2 s.
    let decided = Instant::now();
    let d = console.post(
        &format!("/api/requests/{}/decide", r["id"]),
        serde_json::json!({"decision": "permit-hash", "note": "ok for the report"}),
    );
    assert_eq!(d["status"], "approved", "{d}");
    let took = loop {
        if sb.run(sb.path("good"), &[], &[]).status.success() {
            break decided.elapsed();
        }
        assert!(decided.elapsed() < Duration::from_secs(10), "not allowed after 10 s:\n{}", sb.log());
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(took < Duration::from_secs(2), "allowed {took:?} after the approval");
    assert_blocked(&sb.run(sb.path("blocked"), &[], &[]));
    // The requester sees the outcome.
    let t0 = Instant::now();
    loop {
        let o = request(&["--status"]);
        if text(&o).contains("approved") {
            assert!(text(&o).contains("Approved good by hash"), "{}", text(&o));
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(15), "no outcome: {}\n{}", text(&o), sb.log());
        std::thread::sleep(Duration::from_millis(300));
    }
    let (_, audit) = console.call("GET", "/api/audit", None);
    let actions: Vec<&str> = audit.as_array().unwrap().iter().filter_map(|e| e["action"].as_str()).collect();
    assert!(actions.contains(&"approve request") && actions.contains(&"approved"), "{actions:?}");

    // A user who is not root asks too, through the agent's user directory.
    std::fs::set_permissions(sb.dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    std::fs::set_permissions(&sb.mnt, std::fs::Permissions::from_mode(0o755)).unwrap();
    copy_mode(&built().dir.join("blocked"), &sb.path("user-prog"));
    let user_dir = user_dir.to_str().unwrap().to_owned();
    let as_nobody = |program: &Path, args: &[&str]| {
        Command::new("timeout")
            .args(["-s", "KILL", "20", "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(program)
            .args(args)
            .output()
            .unwrap()
    };
    let ran = as_nobody(&sb.path("user-prog"), &[]);
    assert!(!ran.status.success(), "{}", text(&ran));
    let user_request = |args: &[&str]| {
        let mut all = vec!["request"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--user-dir", &user_dir]);
        as_nobody(Path::new(bin()), &all)
    };
    // Only what was denied to that user: root's denied program is not theirs to ask for.
    let t0 = Instant::now();
    loop {
        let o = user_request(&["--last", "--reason", "my build tool"]);
        if o.status.success() {
            assert!(text(&o).contains("user-prog"), "{}", text(&o));
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(5), "{}\n{}", text(&o), sb.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    let o = user_request(&[&format!("{mnt}/blocked"), "--reason", "not mine"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    // A forged drop naming root's denied file is refused by the agent, and the user told.
    let forged = as_nobody(
        Path::new("/bin/sh"),
        &[
            "-c",
            &format!("printf '{{\"file\":\"{}/blocked\",\"reason\":\"x\"}}' > {user_dir}/requests/forged.json", mnt),
        ],
    );
    assert!(forged.status.success(), "{}", text(&forged));
    let queue = console.wait_for_list("/api/requests?status=pending", 1, Duration::from_secs(15));
    assert_eq!(queue.len(), 1, "only the user's own request: {queue:?}");
    assert_eq!(queue[0]["requester"], "nobody", "{queue:?}");
    assert!(
        queue[0]["file_path"].as_str().unwrap_or_default().ends_with("/user-prog")
            || queue[0].to_string().contains("user-prog"),
        "{queue:?}"
    );
    let rid = queue[0]["id"].as_i64().unwrap();
    let d = console.post(&format!("/api/requests/{rid}/decide"), serde_json::json!({"decision": "permit-hash"}));
    assert_eq!(d["status"], "approved", "{d}");
    let t0 = Instant::now();
    while !as_nobody(&sb.path("user-prog"), &[]).status.success() {
        assert!(t0.elapsed() < Duration::from_secs(10), "not allowed:\n{}", sb.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    let t0 = Instant::now();
    loop {
        let o = user_request(&["--status"]);
        let t = text(&o);
        if t.contains("approved") {
            assert!(t.contains("refused") && t.contains("was denied to you"), "{t}");
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(20), "no outcome for the user: {t}\n{}", sb.log());
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(sb.stop().success());
}

#[test]
fn an_installation_window_captures_what_a_vendor_install_sh_and_dpkg_write_and_keeps_the_rest_enforced() {
    let mut s = Sandbox::new();
    let root = s.dir.path().join("debian");
    unpack_debian_root(&mut s, &root);
    // The vendor's installer: copies its program into /opt, writes a helper script, runs
    // the program at once (before the agent could have read the close), says it is done.
    let vendor = root.join("root/vendor");
    std::fs::create_dir_all(&vendor).unwrap();
    copy_mode(&built().dir.join("good"), &vendor.join("tool"));
    std::fs::write(
        vendor.join("install.sh"),
        "set -e\nmkdir -p /opt/vendor/bin\ncp /root/vendor/tool /opt/vendor/bin/tool\n\
         printf '#!/bin/sh\\necho helper ran\\n' > /opt/vendor/bin/helper\nchmod 755 /opt/vendor/bin/helper\n\
         /opt/vendor/bin/tool\necho installed\n",
    )
    .unwrap();
    // A Debian package whose maintainer script writes and runs a program no package lists.
    let pkg = s.dir.path().join("pkg-gen");
    std::fs::create_dir_all(pkg.join("DEBIAN")).unwrap();
    std::fs::create_dir_all(pkg.join("usr/share/doc/vendor-gen")).unwrap();
    std::fs::write(pkg.join("usr/share/doc/vendor-gen/README"), "vendor-gen\n").unwrap();
    std::fs::write(
        pkg.join("DEBIAN/control"),
        "Package: vendor-gen\nVersion: 1.0\nArchitecture: all\nMaintainer: Tests <t@example.org>\nDescription: gen\n",
    )
    .unwrap();
    std::fs::write(
        pkg.join("DEBIAN/postinst"),
        "#!/bin/sh\nset -e\nprintf '#!/bin/sh\\necho generated ran\\n' > /usr/local/bin/vendor-gen\n\
         chmod 755 /usr/local/bin/vendor-gen\n/usr/local/bin/vendor-gen\n",
    )
    .unwrap();
    std::fs::set_permissions(pkg.join("DEBIAN/postinst"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let deb = Command::new("dpkg-deb")
        .args(["--root-owner-group", "--build"])
        .arg(&pkg)
        .arg(root.join("root/vendor-gen_1.0_all.deb"))
        .output()
        .unwrap();
    assert!(deb.status.success(), "{}", text(&deb));
    // Not the installer's: another program, dropped by a plain shell during the window.
    copy_mode(&built().dir.join("blocked"), &root.join("root/dropper-source"));

    let dir = s.dir.path().to_owned();
    let fleet = Fleet::start(&dir, "Debian", Some("secured"));
    let (console, state) = (&fleet.console, fleet.state.clone());
    console.post(
        "/api/policies",
        serde_json::json!({"name": "Permit packages", "applications": [portcullis_catalog::DISTRIBUTION_PACKAGES],
                           "action": "permit", "position": 0}),
    );
    let r = root.to_str().unwrap().to_owned();
    s.start_from(&fleet.source(true), &["--mark-under", &r, "--no-protect"], &["--package-root", &r]);
    let (computer, id) = fleet.computer();
    assert_eq!(in_root(&root, "/root/vendor/tool").status.code(), Some(126), "Secured before the window");

    // The window: an hour on this computer, capturing into "Vendor install".
    let until = jiff::Timestamp::from_second(jiff::Timestamp::now().as_second() + 3600).unwrap().to_string();
    let (status, body) = console.call(
        "PUT",
        &format!("/api/computers/{id}"),
        Some(serde_json::json!({"name": computer, "group": "Debian", "mode": "installation", "until": until,
                                "capture_into": "Vendor install"})),
    );
    assert_eq!(status, 204, "{body}");
    let t0 = Instant::now();
    while !s.log().contains("Installation window open") {
        assert!(t0.elapsed() < Duration::from_secs(10), "the window did not open:\n{}", s.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    // The rest of the host stays enforced: a shell that is no installer drops a program.
    let dropped = in_root(&root, "cp /root/dropper-source /tmp/dropper && /tmp/dropper");
    assert_eq!(dropped.status.code(), Some(126), "{}", text(&dropped));
    // An installer's name is not enough: a user's "install.sh" is no installer.
    copy_mode(&built().dir.join("blocked"), &root.join("tmp/user-source"));
    std::fs::write(root.join("tmp/install.sh"), "cp /tmp/user-source /tmp/user-tool && /tmp/user-tool\n").unwrap();
    let user = in_root(&root, "setpriv --reuid=65534 --regid=65534 --clear-groups sh /tmp/install.sh");
    assert_eq!(user.status.code(), Some(126), "{}", text(&user));
    assert!(!s.events_for(&root.join("tmp/user-tool"), "deny").is_empty(), "{}", s.log());
    // The vendor's installer and dpkg run; what they wrote runs, during the install too.
    let ran = |script: &str, expect: &str| {
        let o = in_root(&root, script);
        assert!(
            o.status.success() && text(&o).contains(expect),
            "{script}: {}\nthe agent said:\n{}",
            text(&o),
            s.log()
        );
    };
    ran("cd /root/vendor && sh install.sh", "good ran");
    ran("dpkg -i /root/vendor-gen_1.0_all.deb", "generated ran");
    ran("/opt/vendor/bin/helper", "helper ran");
    if std::env::var_os("PORTCULLIS_TEST_SHOW_LOG").is_some() {
        eprintln!("{}", s.log());
    }

    // The server's application has them (by hash, each with where it came from).
    let t0 = Instant::now();
    let notes = loop {
        let (_, apps) = console.call("GET", "/api/applications", None);
        let notes: Vec<String> = apps
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["name"] == "Vendor install")
            .flat_map(|a| a["rules"].as_array().cloned().unwrap_or_default())
            .map(|r| r["note"].as_str().unwrap_or_default().to_owned())
            .collect();
        let want = ["/opt/vendor/bin/tool", "/opt/vendor/bin/helper", "/usr/local/bin/vendor-gen"];
        if want.iter().all(|w| notes.iter().any(|n| n.contains(w))) {
            break notes;
        }
        assert!(t0.elapsed() < Duration::from_secs(20), "captures not on the server: {notes:?}\n{}", s.log());
        std::thread::sleep(Duration::from_millis(300));
    };
    assert!(!notes.iter().any(|n| n.contains("dropper") || n.contains("user-tool")), "{notes:?}");
    assert!(notes.iter().any(|n| n.contains("install.sh")), "the installer is named: {notes:?}");
    assert!(notes.iter().any(|n| n.contains("dpkg")), "the installer is named: {notes:?}");
    assert!(notes.len() <= 4, "package files and the docs are not captured: {notes:?}");

    // The window closes: Secured. What was captured still runs — from the server's copy of
    // the application once the agent's own record is dropped — and nothing else does.
    let (status, body) = console.call(
        "PUT",
        &format!("/api/computers/{id}"),
        Some(serde_json::json!({"name": computer, "group": "Debian", "mode": "secured"})),
    );
    assert_eq!(status, 204, "{body}");
    let t0 = Instant::now();
    loop {
        let kept = std::fs::read_to_string(state.join("captures.json")).unwrap_or_default();
        if s.log().contains("Installation window closed") && kept.trim() == "[]" {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(15), "still kept by the agent: {kept}\n{}", s.log());
        std::thread::sleep(Duration::from_millis(200));
    }
    let t = in_root(&root, "/opt/vendor/bin/tool");
    assert_ran(&t, "good ran");
    assert_ran(&in_root(&root, "/opt/vendor/bin/helper"), "helper ran");
    assert_ran(&in_root(&root, "/usr/local/bin/vendor-gen"), "generated ran");
    assert_eq!(in_root(&root, "/tmp/dropper").status.code(), Some(126));
    // A captured file changed afterwards is not the captured file.
    std::fs::write(root.join("opt/vendor/bin/helper"), "#!/bin/sh\necho changed\n").unwrap();
    assert_eq!(in_root(&root, "/opt/vendor/bin/helper").status.code(), Some(126));
    let candidates = s.events_for(&root.join("opt/vendor/bin/tool"), "candidate");
    assert!(
        candidates
            .iter()
            .any(|e| e["reason"].as_str().unwrap_or_default().contains("captured it into \"Vendor install\"")),
        "{candidates:?}"
    );
    assert!(s.stop().success());
}

#[test]
fn a_restored_backup_reaches_an_enrolled_agent_that_holds_a_newer_version() {
    let mut sb = Sandbox::new();
    let dir = sb.dir.path().to_owned();
    let fleet = Fleet::start(&dir, "Linux", None);
    let source = fleet.source(true);
    let Fleet { server, console, .. } = fleet;
    let port: u16 = server.url.rsplit(':').next().unwrap().trim_end_matches('/').parse().unwrap();
    permit_sandbox(&console, &sb);
    let mnt = sb.mnt.to_str().unwrap().to_owned();
    sb.start_from(&source, &["--mark-under", &mnt, "--no-protect"], &[]);
    assert_ran(&sb.run(sb.path("blocked"), &[], &[]), "blocked ran");
    let server_cmd = |args: &[&str]| {
        let db = format!("sqlite://{}/server.db", dir.display());
        Command::new(bin()).arg("server").args(args).args(["--database-url", &db]).output().unwrap()
    };

    // A backup while the server serves.
    let backup = dir.join("backup.db");
    let o = server_cmd(&["backup", backup.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("wrote") && text(&o).contains("secret key"), "{}", text(&o));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&backup).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(server_cmd(&["backup", backup.to_str().unwrap()]).status.code(), Some(7), "never over a file");

    // Then the blocked build is denied, and the agent takes that newer version.
    deny_blocked_build(&console, &sb);
    let t0 = Instant::now();
    while sb.run(sb.path("blocked"), &[], &[]).status.success() {
        assert!(t0.elapsed() < Duration::from_secs(10), "the deny did not arrive:\n{}", sb.log());
        std::thread::sleep(Duration::from_millis(50));
    }

    // No restore under a running server; a file that is not a backup is refused.
    let o = server_cmd(&["restore", backup.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(7), "{}", text(&o));
    assert!(text(&o).contains("stop it first"), "{}", text(&o));
    server.stop();
    let bogus = dir.join("bogus.db");
    std::fs::write(&bogus, "not a database").unwrap();
    let o = server_cmd(&["restore", bogus.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));

    // The restore: the backup (before the deny) with versions moved past the agent's.
    let o = server_cmd(&["restore", backup.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("model version") && text(&o).contains("kept as"), "{}", text(&o));
    let _server = ServerProcess::start(&dir, port);
    let t0 = Instant::now();
    loop {
        let o = sb.run(sb.path("blocked"), &[], &[]);
        if o.status.success() {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(20), "the agent kept the newer, pre-restore policy:\n{}", sb.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(sb.stop().success());
}

/// libfaketime's environment: this process's clock `offset` away (`+1d`), the monotonic
/// clock and file times left alone.
fn faketime_env(offset: &str) -> Vec<(String, String)> {
    let lib = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";
    assert!(Path::new(lib).exists(), "Debian's faketime (./x test installs it)");
    [("LD_PRELOAD", lib), ("FAKETIME", offset), ("FAKETIME_DONT_FAKE_MONOTONIC", "1"), ("NO_FAKE_STAT", "1")]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

#[test]
fn an_agent_a_day_ahead_of_its_server_keeps_expiries_learning_deadlines_and_bypass_codes_on_the_servers_time() {
    let mut sb = Sandbox::new();
    sb.agent_env = faketime_env("+1d");
    let dir = sb.dir.path().to_owned();
    // Everything ends 30 s from now by the server's clock (this machine's), which is a day
    // before the agent's: judged by the agent's own clock, all of it would be over already.
    let deadline = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(30);
    let fleet = Fleet::start(&dir, "Linux", None);
    let settings = serde_json::json!({"mode": "learning", "until": deadline.to_string()});
    let (status, body) = fleet.console.call("PUT", "/api/settings", Some(settings));
    assert_eq!(status, 204, "{body}");
    let hash = sha256(&sb.path("blocked"));
    fleet
        .console
        .post("/api/applications", serde_json::json!({"name": "Blocked build", "rules": [{"sha256": [hash]}]}));
    fleet.console.post(
        "/api/policies",
        serde_json::json!({"name": "Deny blocked for now", "position": 0, "applications": ["Blocked build"],
            "action": "deny", "expires": deadline.to_string()}),
    );
    let mnt = sb.mnt.to_str().unwrap().to_owned();
    sb.start_from(&fleet.source(true), &["--mark-under", &mnt, "--no-protect"], &["--no-package-trust"]);
    assert!(sb.log().contains("s ahead of the server's"), "{}", sb.log());
    assert_eq!(fs_text(&fleet.state.join("clock-offset")).trim().parse::<i64>().unwrap().abs() / 100, 864);
    assert_blocked(&sb.run(sb.path("blocked"), &[], &[]));
    assert_ran(&sb.run(sb.path("good"), &[], &[]), "good ran");
    assert!(!sb.events_for(&sb.path("good"), "candidate").is_empty(), "Learning, by the server's clock");

    // A code usable within the hour (the server's), issued now.
    let (_, computers) = fleet.console.call("GET", "/api/computers", None);
    let id = computers[0]["id"].as_i64().unwrap();
    let t0 = Instant::now();
    let code = loop {
        let (status, v) = fleet.console.call(
            "POST",
            &format!("/api/computers/{id}/bypass-code"),
            Some(serde_json::json!({"minutes": 5, "valid_hours": 1})),
        );
        if status == 201 {
            break v["code"].as_str().unwrap().to_owned();
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "no bypass key registered: {v}\n{}", sb.log());
        std::thread::sleep(Duration::from_millis(200));
    };

    // Offline, after a restart: the difference kept from the last run still applies.
    let Fleet { server, state, .. } = fleet;
    let offline: Vec<String> = {
        let mut s = vec!["--server".to_owned(), server.url.clone(), "--server-ca".to_owned()];
        s.push(server.cert.to_string_lossy().into_owned());
        s.extend(["--state-dir".to_owned(), state.to_string_lossy().into_owned()]);
        s
    };
    server.stop();
    assert!(sb.stop().success());
    sb.start_from(&offline, &["--mark-under", &mnt, "--no-protect"], &["--no-package-trust"]);
    assert!(sb.log().contains("kept from the last run"), "{}", sb.log());
    assert_blocked(&sb.run(sb.path("blocked"), &[], &[]));

    // The server's deadline passes: the deny has expired and Learning is over (Monitor).
    let wait = deadline.duration_since(jiff::Timestamp::now()) + jiff::SignedDuration::from_secs(2);
    std::thread::sleep(Duration::try_from(wait).unwrap_or_default());
    assert_ran(&sb.run(sb.path("blocked"), &[], &[]), "blocked ran");
    assert!(!sb.events_for(&sb.path("blocked"), "would-deny").is_empty(), "Monitor after Learning:\n{}", sb.log());

    // The host's own tools share the host's clock, and the code is judged at the server's.
    let bypass =
        Command::new(bin()).args(["bypass", &code, "--state-dir"]).arg(&state).envs(sb.agent_env.clone()).output();
    let bypass = bypass.unwrap();
    assert!(bypass.status.success(), "{}\n{}", text(&bypass), sb.log());
    assert!(text(&bypass).contains("Monitor mode until"), "{}", text(&bypass));
    assert!(sb.stop().success());
}

fn fs_text(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn a_full_spool_filesystem_loses_events_not_enforcement_and_the_loss_reaches_the_console() {
    let mut sb = Sandbox::new();
    // The spool on a filesystem of its own, 256 KiB.
    let spool = sb.spool();
    std::fs::create_dir_all(&spool).unwrap();
    let st = Command::new("mount").args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"]).arg(&spool).status().unwrap();
    assert!(st.success());
    sb.mounts.push(spool.clone());
    let dir = sb.dir.path().to_owned();
    let fleet = Fleet::start(&dir, "Linux", Some("secured"));
    permit_sandbox(&fleet.console, &sb);
    deny_blocked_build(&fleet.console, &sb);
    let mnt = sb.mnt.to_str().unwrap().to_owned();
    sb.start_from(&fleet.source(true), &["--mark-under", &mnt, "--no-protect"], &["--no-package-trust"]);
    assert_blocked(&sb.run(sb.path("blocked"), &[], &[]));
    fleet.console.wait_for_list("/api/events?verdict=deny&file=blocked", 1, Duration::from_secs(15));

    // Fill it up.
    let filler = spool.join("filler");
    let dd = Command::new("dd").arg("if=/dev/zero").arg(format!("of={}", filler.display())).args(["bs=4k"]).output();
    assert!(!dd.unwrap().status.success(), "dd stops at a full filesystem");
    // The spool file's last page may still take a few records (tmpfs allocates whole pages),
    // so enough denies that some cannot be kept.
    const WHILE_FULL: i64 = 10;
    for _ in 0..WHILE_FULL {
        assert_blocked(&sb.run(sb.path("blocked"), &[], &[]));
        assert_ran(&sb.run(sb.path("good"), &[], &[]), "good ran");
    }
    let t0 = Instant::now();
    while !sb.log().contains("events are in this log only") {
        assert!(t0.elapsed() < Duration::from_secs(10), "no spool error logged:\n{}", sb.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    // The agent tells the server with its next poll (within half a minute); every deny so far
    // is then either delivered or counted as lost.
    let t0 = Instant::now();
    let lost = loop {
        let (_, computers) = fleet.console.call("GET", "/api/computers", None);
        let lost = computers[0]["events_lost"].as_i64().unwrap();
        let (_, delivered) = fleet.console.call("GET", "/api/events?verdict=deny&file=blocked", None);
        let delivered = delivered.as_array().unwrap().len() as i64;
        if lost >= 1 && delivered + lost == 1 + WHILE_FULL {
            break lost;
        }
        assert!(t0.elapsed() < Duration::from_secs(45), "events_lost {lost}, delivered {delivered}:\n{}", sb.log());
        std::thread::sleep(Duration::from_millis(500));
    };
    // No torn line was left behind: every line of the spool is an event.
    for f in portcullis_agent::spool::files(&spool).unwrap() {
        let text = std::fs::read_to_string(&f.1).unwrap();
        for line in text.lines() {
            assert!(serde_json::from_str::<Value>(line).is_ok(), "a torn line in {}: {line:?}", f.1.display());
        }
    }

    // Space again: events are kept and delivered; the loss stays counted, not doubled.
    std::fs::remove_file(&filler).unwrap();
    let before = fleet.console.call("GET", "/api/events?verdict=deny&file=blocked", None).1.as_array().unwrap().len();
    assert_blocked(&sb.run(sb.path("blocked"), &[], &[]));
    let after =
        fleet.console.wait_for_list("/api/events?verdict=deny&file=blocked", before + 1, Duration::from_secs(20));
    assert_eq!(after.len(), before + 1, "{}", sb.log());
    assert!(sb.log().contains("event spool writable again"), "{}", sb.log());
    std::thread::sleep(Duration::from_secs(2));
    let (_, computers) = fleet.console.call("GET", "/api/computers", None);
    assert_eq!(computers[0]["events_lost"].as_i64().unwrap(), lost);
    // Every deny is accounted for: delivered, or counted as lost (1 before, the ones while
    // full, 1 after).
    let (_, delivered) = fleet.console.call("GET", "/api/events?verdict=deny&file=blocked", None);
    assert_eq!(delivered.as_array().unwrap().len() as i64 + lost, 2 + WHILE_FULL, "{}", sb.log());
    assert!(sb.stop().success());
}

/// Every event the console holds, by paging through `/api/events`.
fn all_events(console: &Console, filter: &str) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    loop {
        let before = out.last().map(|e| format!("&before_id={}", e["id"])).unwrap_or_default();
        let (status, page) = console.call("GET", &format!("/api/events?limit=1000{filter}{before}"), None);
        assert_eq!(status, 200, "{page}");
        let page = page.as_array().unwrap().clone();
        if page.is_empty() {
            return out;
        }
        out.extend(page);
    }
}

/// A counter of the server's metrics text (0 if absent).
fn metric(addr: &str, line_start: &str) -> f64 {
    let text = ureq::get(format!("http://{addr}/metrics"))
        .call()
        .ok()
        .and_then(|mut r| r.body_mut().read_to_string().ok())
        .unwrap_or_default();
    text.lines().find_map(|l| l.strip_prefix(line_start)?.trim().parse().ok()).unwrap_or(0.0)
}

#[test]
fn a_server_killed_while_it_ingests_events_stores_every_event_exactly_once_after_its_restart() {
    const N: usize = 15_000;
    let mut sb = Sandbox::new();
    let dir = sb.dir.path().to_owned();
    let metrics = format!("127.0.0.1:{}", free_port());
    let fleet = Fleet::start_with(&dir, "Linux", None, &["--metrics-listen", &metrics]);
    let port: u16 = fleet.server.url.rsplit(':').next().unwrap().trim_end_matches('/').parse().unwrap();
    // A spool the agent finds at start: N distinct events waiting for delivery.
    std::fs::create_dir_all(sb.spool()).unwrap();
    let mut lines = String::new();
    for i in 0..N {
        let record = serde_json::json!({"time": "2026-12-01T10:00:00.000Z", "event": "would-deny", "access": "exec",
            "verdict": "allow", "mode": "monitor", "reason": "no policy matched",
            "file": {"path": format!("/opt/chaos/{i}"), "sha256": "ab".repeat(32), "size": 1, "kind": "elf-executable",
                "dev": 1, "ino": i}, "process": {"pid": 1, "ancestors": []}});
        lines.push_str(&record.to_string());
        lines.push('\n');
    }
    std::fs::write(sb.spool().join("events-00000001.jsonl"), lines).unwrap();
    let mnt = sb.mnt.to_str().unwrap().to_owned();
    sb.start_from(&fleet.source(true), &["--mark-under", &mnt, "--no-protect"], &[]);

    // kill -9 as soon as the first batch is in: the agent is still sending the rest.
    let stored = "portcullis_server_events_total{outcome=\"stored\"} ";
    let t0 = Instant::now();
    while metric(&metrics, stored) < 1.0 {
        assert!(t0.elapsed() < Duration::from_secs(30), "no event stored:\n{}", sb.log());
        std::thread::sleep(Duration::from_millis(10));
    }
    let Fleet { server, .. } = fleet;
    server.stop();
    let server = ServerProcess::start(&dir, port);
    let console = Console::login(&server);
    let t0 = Instant::now();
    let events = loop {
        let events = all_events(&console, "&file=/opt/chaos/");
        if events.len() >= N || t0.elapsed() > Duration::from_secs(120) {
            break events;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let paths: std::collections::BTreeSet<String> =
        events.iter().map(|e| e["file_path"].as_str().unwrap().to_owned()).collect();
    assert_eq!((events.len(), paths.len()), (N, N), "every event once, none twice:\n{}", sb.log());
    assert!(sb.log().contains("event delivery: "), "the kill interrupted the delivery:\n{}", sb.log());
    assert!(sb.stop().success());
}

#[test]
fn a_server_killed_in_the_middle_of_model_changes_keeps_each_change_whole_or_not_at_all() {
    const RULES: usize = 300;
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let fleet = Fleet::start(dir, "Linux", None);
    let port: u16 = fleet.server.url.rsplit(':').next().unwrap().trim_end_matches('/').parse().unwrap();
    // Two administrators add large applications, and policies using them, as fast as they can.
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let console = Console::login(&fleet.server);
            std::thread::spawn(move || {
                for i in 0.. {
                    let name = format!("App {w}-{i}");
                    let rules: Vec<Value> =
                        (0..RULES).map(|r| serde_json::json!({"path": format!("/opt/{w}/{i}/{r}/*")})).collect();
                    let body = serde_json::json!({"name": name, "rules": rules});
                    let Ok(mut res) = console.http.post(format!("{}/api/applications", console.url))
                        .header("cookie", &console.cookie)
                        .header("x-csrf-token", &console.csrf)
                        .send_json(body) else { return i };
                    let _ = res.body_mut().read_to_string();
                    let policy = serde_json::json!({"name": format!("Permit {name}"), "applications": [name], "action": "permit"});
                    let sent = console.http.post(format!("{}/api/policies", console.url))
                        .header("cookie", &console.cookie)
                        .header("x-csrf-token", &console.csrf)
                        .send_json(policy);
                    if sent.is_err() {
                        return i;
                    }
                }
                unreachable!()
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(2500));
    let Fleet { server, .. } = fleet;
    server.stop();
    let attempted: Vec<i32> = writers.into_iter().map(|w| w.join().unwrap()).collect();
    assert!(attempted.iter().all(|n| *n > 2), "the writers were under way: {attempted:?}");

    let server = ServerProcess::start(dir, port);
    let console = Console::login(&server);
    let (_, apps) = console.call("GET", "/api/applications", None);
    let custom: Vec<&Value> =
        apps.as_array().unwrap().iter().filter(|a| a["name"].as_str().unwrap().starts_with("App ")).collect();
    assert!(custom.len() >= 4, "{} applications kept", custom.len());
    for a in &custom {
        assert_eq!(a["rules"].as_array().map(Vec::len), Some(RULES), "{} is whole", a["name"]);
    }
    // Every change kept has its audit entry, and none that is not kept has one.
    let (_, audit) = console.call("GET", "/api/audit?limit=1000", None);
    let audited: std::collections::BTreeSet<String> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "create" && e["object"].as_str().unwrap().starts_with("application App "))
        .map(|e| e["object"].as_str().unwrap().trim_start_matches("application ").to_owned())
        .collect();
    let kept: std::collections::BTreeSet<String> =
        custom.iter().map(|a| a["name"].as_str().unwrap().to_owned()).collect();
    assert_eq!(audited, kept);
    let (_, policies) = console.call("GET", "/api/policies", None);
    for p in policies.as_array().unwrap().iter().filter(|p| p["name"].as_str().unwrap().starts_with("Permit App ")) {
        let app = p["applications"][0].as_str().unwrap();
        assert!(kept.contains(app), "{p} names an application that is kept");
    }
    // The model still compiles into bundles, and the next change goes through.
    let (status, doc) = console.call("GET", "/api/document", None);
    assert_eq!(status, 200, "{doc}");
    console.post("/api/applications", serde_json::json!({"name": "After", "rules": [{"path": "/opt/after"}]}));
}
