//! The programs loaded into this machine's kernel: a copy of bash registered as ringfenced is
//! tagged at exec, its subshells inherit the tag, its connects outside the allow-list fail
//! with EPERM and arrive as events; the untagged original connects freely. Only loopback is
//! used, and only processes this test starts are ever tagged.

use portcullis_fence::{Fence, NetAllow, NetOp, Tag, kernel_dev, v4};
use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn bash(program: &std::path::Path, script: &str) -> (bool, String) {
    let out = Command::new("timeout").arg("10").arg(program).arg("-c").arg(script).output().expect("run bash");
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn ringfenced_tree_is_limited_to_its_allow_list_and_reported() {
    if !portcullis_fence::can_load() {
        panic!("this test loads BPF programs: run it as root on a kernel with BTF (CI does)");
    }
    let fence = Arc::new(Fence::load().expect("load the ringfence programs"));
    eprintln!("enforcement: {}", fence.enforcement().name());

    let dir = std::env::temp_dir().join(format!("fence-kernel-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let fenced = dir.join("fenced-bash");
    std::fs::copy("/bin/bash", &fenced).unwrap();
    let meta = std::fs::metadata(&fenced).unwrap();
    let tag = Tag { id: 41, enforce: true };
    fence.tag_executable(kernel_dev(meta.dev()), meta.ino(), tag).unwrap();

    let allowed = TcpListener::bind("127.0.0.1:0").unwrap();
    let other = TcpListener::bind("127.0.0.1:0").unwrap();
    let (allowed_port, other_port) = (allowed.local_addr().unwrap().port(), other.local_addr().unwrap().port());
    fence
        .set_network(
            41,
            Some(&[NetAllow { addr: v4(127, 0, 0, 1), prefix: 32, ports: vec![(allowed_port, allowed_port)] }]),
        )
        .unwrap();

    let events = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (fence, events, stop) = (fence.clone(), events.clone(), stop.clone());
        std::thread::spawn(move || {
            fence
                .watch(Duration::from_millis(50), || !stop.load(Ordering::Acquire), |e| events.lock().unwrap().push(e))
                .unwrap()
        })
    };

    let connect = |port: u16| format!("exec 3<>/dev/tcp/127.0.0.1/{port}");
    let (ok, err) = bash(&fenced, &connect(allowed_port));
    assert!(ok, "the allowed port must connect: {err}");
    let (ok, err) = bash(&fenced, &connect(other_port));
    assert!(!ok && err.contains("Operation not permitted"), "another port must fail with EPERM: {err}");
    // A subshell is a forked child: it inherits the tag.
    let (ok, err) = bash(&fenced, &format!("( {} ) && echo child-connected", connect(other_port)));
    assert!(!ok && err.contains("Operation not permitted"), "the child must be denied too: {err}");
    // UDP datagrams to an address are judged too (sendmsg); bash's /dev/udp connects first.
    let (ok, err) = bash(&fenced, &format!("echo x > /dev/udp/127.0.0.1/{other_port}"));
    assert!(!ok && err.contains("Operation not permitted"), "UDP must be denied: {err}");
    // The original bash is not ringfenced.
    let (ok, err) = bash(std::path::Path::new("/bin/bash"), &connect(other_port));
    assert!(ok, "an untagged process connects freely: {err}");

    // Report-only: the same profile, not enforced, lets the connect through and reports it.
    fence.tag_executable(kernel_dev(meta.dev()), meta.ino(), Tag { id: 41, enforce: false }).unwrap();
    let (ok, err) = bash(&fenced, &connect(other_port));
    assert!(ok, "a report-only ringfence lets it through: {err}");

    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Release);
    watcher.join().unwrap();
    let events = events.lock().unwrap().clone();
    let denied: Vec<_> = events.iter().filter(|e| e.tag.enforce && e.port == other_port).collect();
    assert!(denied.len() >= 3, "every denial is an event: {events:?}");
    assert!(denied.iter().all(|e| e.tag.id == 41 && e.addr == v4(127, 0, 0, 1) && e.comm.starts_with("fenced-bash")));
    assert!(denied.iter().any(|e| e.op == NetOp::Connect && e.protocol == "tcp"));
    assert!(denied.iter().any(|e| e.protocol == "udp"));
    assert!(events.iter().any(|e| !e.tag.enforce && e.port == other_port), "report-only is reported: {events:?}");
    assert!(!events.iter().any(|e| e.port == allowed_port), "allowed connects are not events");
    // Every tagged process has exited: the exit program removed their tags.
    std::thread::sleep(Duration::from_millis(100));
    assert!(fence.tagged().iter().all(|(_, t)| t.id != 41), "tags of exited processes are gone: {:?}", fence.tagged());
    std::fs::remove_dir_all(&dir).unwrap();
}
