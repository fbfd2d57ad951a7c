//! Every raw system call of the agent, in one place: each wraps one `libc` call, says why it
//! is sound, and turns failures into `io::Error`s. Everything else in the agent is safe
//! code (the fanotify calls live in `portcullis-fanotify`, the BPF ones in `portcullis-fence`).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// `pread(2)`: read at `offset` without moving the descriptor's own position (the event's
/// descriptor may be read by several threads, and by nobody else's position).
pub fn pread(fd: BorrowedFd<'_>, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    // SAFETY: the kernel writes at most buf.len() bytes into buf.
    let n = unsafe { libc::pread(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), offset as i64) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// `fstat(2)` an open descriptor (no open, so safe on a marked filesystem).
pub fn fstat(fd: BorrowedFd<'_>) -> io::Result<libc::stat> {
    // SAFETY: `st` is plain data, written by the kernel before it is read.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid descriptor and pointer.
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st)
}

/// `stat(2)` a path, following symlinks (a path lookup, not an open: no fanotify event).
pub fn stat(path: &str) -> io::Result<libc::stat> {
    let c = std::ffi::CString::new(path).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: as above.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid C string and pointer.
    if unsafe { libc::stat(c.as_ptr(), &mut st) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st)
}

/// `poll(2)` one descriptor for `events` for up to `timeout_ms`: the events that came
/// (`None` on a timeout or an error).
pub fn poll(fd: BorrowedFd<'_>, events: libc::c_short, timeout_ms: i32) -> Option<libc::c_short> {
    let mut p = libc::pollfd { fd: fd.as_raw_fd(), events, revents: 0 };
    // SAFETY: one valid pollfd.
    let n = unsafe { libc::poll(&mut p, 1, timeout_ms) };
    (n > 0).then_some(p.revents)
}

/// The inode flags of an open file (`FS_IOC_GETFLAGS`).
pub fn inode_flags(fd: BorrowedFd<'_>) -> io::Result<libc::c_long> {
    let mut f: libc::c_long = 0;
    // SAFETY: FS_IOC_GETFLAGS writes one long.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::FS_IOC_GETFLAGS, &mut f) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(f)
}

/// Set the inode flags of an open file (`FS_IOC_SETFLAGS`).
pub fn set_inode_flags(fd: BorrowedFd<'_>, flags: libc::c_long) -> io::Result<()> {
    // SAFETY: FS_IOC_SETFLAGS reads one long.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::FS_IOC_SETFLAGS, &flags) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The CPUs this process may run on (at least CPU 0).
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: cpu_set_t is plain data filled by the kernel.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer and size.
    let ok = unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) } == 0;
    // SAFETY: CPU_ISSET reads the set.
    let cpus: Vec<usize> =
        (0..libc::CPU_SETSIZE as usize).filter(|&c| ok && unsafe { libc::CPU_ISSET(c, &set) }).collect();
    if cpus.is_empty() { vec![0] } else { cpus }
}

/// Pin the calling thread to one CPU (best effort: without it the lane still works).
pub fn pin_thread_to(cpu: usize) {
    // SAFETY: plain data; sched_setaffinity(0) applies to the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// The signals the agent waits for: SIGTERM, SIGINT (stop), SIGHUP (reload).
pub fn handled_signals() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data, initialized by sigemptyset.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: valid set pointer.
    unsafe {
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGHUP);
    }
    set
}

/// Block `set` in the calling thread (threads it starts later inherit the mask).
pub fn block_signals(set: &libc::sigset_t) {
    // SAFETY: a valid set; no old mask wanted.
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, set, std::ptr::null_mut()) };
}

/// Wait up to `timeout` for one of the blocked signals in `set`: which one came.
pub fn wait_signal(set: &libc::sigset_t, timeout: std::time::Duration) -> Option<i32> {
    let timeout = libc::timespec { tv_sec: timeout.as_secs() as i64, tv_nsec: i64::from(timeout.subsec_nanos()) };
    // SAFETY: valid set and timeout; no siginfo wanted.
    let sig = unsafe { libc::sigtimedwait(set, std::ptr::null_mut(), &timeout) };
    (sig > 0).then_some(sig)
}

/// Write to standard error with one `write(2)` and no allocation or file open (for the
/// panic hook: nothing that could wait on the agent itself).
pub fn write_stderr(msg: &[u8]) {
    // SAFETY: writing a buffer to stderr.
    unsafe { libc::write(2, msg.as_ptr().cast(), msg.len()) };
}
