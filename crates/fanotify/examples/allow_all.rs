//! The floor of a fanotify permission round trip on this machine, for three threading
//! designs: `direct` (one thread reads and answers), `percpu` (a reader pinned to each CPU,
//! all reading the same group, each answering what it read) and `handoff` (a pinned reader per
//! CPU handing each event to a worker pinned to the same CPU, which answers).
//!
//! `cargo run --release --example allow_all -p portcullis-fanotify -- MOUNTPOINT SECONDS MODE`

use portcullis_fanotify::{Event, Group, InitFlags, MarkFlags, Mask, Response};
use std::os::fd::{AsFd, AsRawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

fn pin(cpu: usize) {
    // SAFETY: cpu_set_t is plain data; sched_setaffinity on the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

fn reader(group: &Group, end: Instant, mut each: impl FnMut(Event)) {
    let mut buf = vec![0u8; 64 * 1024];
    while Instant::now() < end {
        let mut p = libc::pollfd { fd: group.as_fd().as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut p, 1, 100) } <= 0 {
            continue;
        }
        let Ok(events) = group.read(&mut buf) else { continue };
        for e in events.flatten() {
            if e.needs_answer() {
                each(e);
            }
        }
    }
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (path, secs, mode) = (&args[1], args[2].parse::<u64>().unwrap_or(10), args.get(3).map_or("direct", |s| s));
    let group = Arc::new(Group::new(InitFlags::PERMISSION | InitFlags::NONBLOCK, libc::O_RDONLY | libc::O_LARGEFILE)?);
    group.mark_path(MarkFlags::ADD | MarkFlags::FILESYSTEM, Mask::OPEN_PERM | Mask::OPEN_EXEC_PERM, path)?;
    let end = Instant::now() + Duration::from_secs(secs);
    let n = Arc::new(AtomicU64::new(0));
    let cpus = std::thread::available_parallelism().map_or(1, |c| c.get());
    let mut threads = Vec::new();
    match mode {
        "direct" => reader(&group, end, |e| {
            let _ = group.respond(&e, Response::Allow);
            n.fetch_add(1, Ordering::Relaxed);
        }),
        "percpu" | "handoff" => {
            for cpu in 0..cpus {
                let (g, n) = (group.clone(), n.clone());
                let handoff = mode == "handoff";
                threads.push(std::thread::spawn(move || {
                    pin(cpu);
                    let (tx, rx) = std::sync::mpsc::channel::<Event>();
                    let worker = handoff.then(|| {
                        let (g, n) = (g.clone(), n.clone());
                        std::thread::spawn(move || {
                            pin(cpu);
                            let mark = std::env::var_os("MARK").is_some();
                            let head = std::env::var_os("HEAD").is_some();
                            let (mut t_mark, mut t_head, mut t_resp) = (0u128, 0u128, 0u128);
                            for e in rx {
                                let t0 = Instant::now();
                                if head {
                                    let mut buf = vec![0u8; 4096];
                                    // SAFETY: reading into our buffer.
                                    unsafe { libc::pread(e.raw_fd(), buf.as_mut_ptr().cast(), 4096, 0) };
                                    let mut st: libc::stat = unsafe { std::mem::zeroed() };
                                    // SAFETY: valid fd and pointer.
                                    unsafe { libc::fstat(e.raw_fd(), &mut st) };
                                }
                                let t1 = Instant::now();
                                if mark {
                                    let _ = g.mark_fd(
                                        MarkFlags::ADD | MarkFlags::IGNORE | MarkFlags::EVICTABLE,
                                        Mask::OPEN_PERM,
                                        e.fd.as_ref().unwrap().as_fd(),
                                    );
                                }
                                let t2 = Instant::now();
                                let _ = g.respond(&e, Response::Allow);
                                let t3 = Instant::now();
                                drop(e);
                                t_head += (t1 - t0).as_nanos();
                                t_mark += (t2 - t1).as_nanos();
                                t_resp += (t3 - t2).as_nanos();
                                n.fetch_add(1, Ordering::Relaxed);
                            }
                            let c = n.load(Ordering::Relaxed).max(1) as u128;
                            eprintln!(
                                "cpu {cpu}: head {} ns, mark {} ns, respond {} ns (means over all lanes' count)",
                                t_head / c,
                                t_mark / c,
                                t_resp / c
                            );
                        })
                    });
                    reader(&g, end, |e| {
                        if handoff {
                            let _ = tx.send(e);
                        } else {
                            let _ = g.respond(&e, Response::Allow);
                            n.fetch_add(1, Ordering::Relaxed);
                        }
                    });
                    drop(tx);
                    if let Some(w) = worker {
                        let _ = w.join();
                    }
                }));
            }
        }
        other => panic!("unknown mode {other}"),
    }
    for t in threads {
        let _ = t.join();
    }
    eprintln!("{mode}: {} events allowed", n.load(Ordering::Relaxed));
    Ok(())
}
