//! A small fanotify binding for permission events.
//!
//! What it covers is what an execution-control agent needs and no more:
//! [`Group::new`] (`fanotify_init`), marks on filesystems, mounts and single inodes
//! ([`Group::mark_path`], [`Group::mark_fd`], [`Group::flush_inode_marks`]), a reader that walks
//! the kernel's buffer record by record and keeps the info records (the pidfd) that `nix`
//! drops ([`Group::read`]), and responses ([`Group::respond`]).
//!
//! Every event of a permission class holds a kernel wait until it is answered. The type
//! [`Event`] owns the event's file descriptor; answering and closing are separate on purpose:
//! an agent answers first and may keep reading the file afterwards (to cache its facts).
//!
//! ```no_run
//! use portcullis_fanotify::{Group, InitFlags, MarkFlags, Mask, Response};
//! let group = Group::new(InitFlags::PERMISSION, libc::O_RDONLY | libc::O_LARGEFILE)?;
//! group.mark_path(MarkFlags::ADD | MarkFlags::FILESYSTEM, Mask::OPEN_EXEC_PERM, "/mnt/test")?;
//! let mut buf = vec![0u8; 64 * 1024];
//! for event in group.read(&mut buf)? {
//!     let event = event?;
//!     group.respond(&event, Response::Allow)?;
//! }
//! # Ok::<(), std::io::Error>(())
//! ```

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

macro_rules! bit_flags {
    ($(#[$doc:meta])* $name:ident: $t:ty { $($(#[$fdoc:meta])* $flag:ident = $value:expr;)* }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
        pub struct $name(pub $t);
        impl $name {
            $($(#[$fdoc])* pub const $flag: $name = $name($value as $t);)*
            /// Whether every bit of `other` is set.
            pub fn contains(self, other: $name) -> bool {
                self.0 & other.0 == other.0
            }
            /// Whether any bit of `other` is set.
            pub fn intersects(self, other: $name) -> bool {
                self.0 & other.0 != 0
            }
        }
        impl std::ops::BitOr for $name {
            type Output = $name;
            fn bitor(self, rhs: $name) -> $name {
                $name(self.0 | rhs.0)
            }
        }
    };
}

bit_flags! {
    /// Flags of `fanotify_init`.
    InitFlags: u32 {
        /// Permission events before content is read (`FAN_CLASS_CONTENT`), close-on-exec, no
        /// queue or mark limits: what an enforcing agent needs.
        PERMISSION = libc::FAN_CLASS_CONTENT | libc::FAN_CLOEXEC | libc::FAN_UNLIMITED_QUEUE | libc::FAN_UNLIMITED_MARKS;
        /// Notification events only (`FAN_CLASS_NOTIF`), close-on-exec, the kernel's default
        /// queue (an overflow is reported as [`Mask::Q_OVERFLOW`]): a watcher that answers nothing.
        NOTIFY = libc::FAN_CLASS_NOTIF | libc::FAN_CLOEXEC;
        /// Non-blocking reads.
        NONBLOCK = libc::FAN_NONBLOCK;
        /// Deliver a pidfd of the acting process as an info record.
        REPORT_PIDFD = libc::FAN_REPORT_PIDFD;
        /// Allow `Response::*` with the audit bit.
        ENABLE_AUDIT = libc::FAN_ENABLE_AUDIT;
    }
}

bit_flags! {
    /// Flags of `fanotify_mark`.
    MarkFlags: u32 {
        /// Add to the mark.
        ADD = libc::FAN_MARK_ADD;
        /// Remove from the mark.
        REMOVE = libc::FAN_MARK_REMOVE;
        /// Mark the whole filesystem (superblock) the path is on.
        FILESYSTEM = libc::FAN_MARK_FILESYSTEM;
        /// Mark the mount the path is on.
        MOUNT = libc::FAN_MARK_MOUNT;
        /// The mask is an ignore mask (events in it are not reported for this object).
        IGNORE = libc::FAN_MARK_IGNORE;
        /// The kernel may drop this inode mark when it evicts the inode from its cache.
        EVICTABLE = libc::FAN_MARK_EVICTABLE;
        /// The ignore mask survives modification of the file (never wanted for verdict caching).
        IGNORED_SURV_MODIFY = libc::FAN_MARK_IGNORED_SURV_MODIFY;
        /// Remove every mark of the class named by the other flags.
        FLUSH = libc::FAN_MARK_FLUSH;
    }
}

bit_flags! {
    /// Event mask bits.
    Mask: u64 {
        /// A file is opened; the kernel waits for the answer.
        OPEN_PERM = libc::FAN_OPEN_PERM;
        /// A file is opened for execution (execve, the ELF interpreter, `#!` interpreters).
        OPEN_EXEC_PERM = libc::FAN_OPEN_EXEC_PERM;
        /// Content is read; the kernel waits for the answer.
        ACCESS_PERM = libc::FAN_ACCESS_PERM;
        /// A file open for writing was closed (a notification: nothing waits).
        CLOSE_WRITE = libc::FAN_CLOSE_WRITE;
        /// Events on the children of a marked directory.
        EVENT_ON_CHILD = libc::FAN_EVENT_ON_CHILD;
        /// The event queue overflowed (never for permission events with an unlimited queue).
        Q_OVERFLOW = libc::FAN_Q_OVERFLOW;
    }
}

/// An answer to a permission event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Response {
    /// Let the operation proceed.
    Allow,
    /// Fail the operation with `EPERM`.
    Deny,
}

/// A fanotify group.
#[derive(Debug)]
pub struct Group {
    fd: OwnedFd,
}

/// One event read from a group.
#[derive(Debug)]
pub struct Event {
    /// What happened.
    pub mask: Mask,
    /// The process (thread group id) that caused it.
    pub pid: i32,
    /// The file, opened by the kernel for the listener with the group's `event_f_flags`;
    /// `None` on a queue overflow.
    pub fd: Option<OwnedFd>,
    /// The acting process as a pidfd, when the group reports pidfds and the process still lives.
    pub pidfd: Option<OwnedFd>,
}

impl Event {
    /// Whether the kernel waits for an answer to this event.
    pub fn needs_answer(&self) -> bool {
        self.mask.intersects(Mask::OPEN_PERM | Mask::OPEN_EXEC_PERM | Mask::ACCESS_PERM)
    }

    /// The event's file descriptor as a raw number (what the response names), or -1.
    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_ref().map_or(-1, |fd| fd.as_raw_fd())
    }
}

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 { Err(io::Error::last_os_error()) } else { Ok(r) }
}

fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path has a NUL"))
}

impl Group {
    /// `fanotify_init(flags, event_f_flags)`; needs `CAP_SYS_ADMIN`.
    pub fn new(flags: InitFlags, event_f_flags: i32) -> io::Result<Group> {
        // SAFETY: plain syscall; the returned descriptor is owned from here on.
        let fd = cvt(unsafe { libc::fanotify_init(flags.0, event_f_flags as libc::c_uint) })?;
        // SAFETY: `fd` is a fresh descriptor nobody else owns.
        Ok(Group { fd: unsafe { OwnedFd::from_raw_fd(fd) } })
    }

    /// Mark the object a path names (with `FILESYSTEM` or `MOUNT` in `flags`, its superblock or
    /// mount).
    pub fn mark_path(&self, flags: MarkFlags, mask: Mask, path: impl AsRef<Path>) -> io::Result<()> {
        let path = c_path(path.as_ref())?;
        // SAFETY: `path` is a valid C string for the call's duration.
        cvt(unsafe { libc::fanotify_mark(self.fd.as_raw_fd(), flags.0, mask.0, libc::AT_FDCWD, path.as_ptr()) })
            .map(drop)
    }

    /// Mark the inode an open descriptor refers to (typically an event's fd, to add an ignore
    /// mark for a file that was judged).
    pub fn mark_fd(&self, flags: MarkFlags, mask: Mask, fd: BorrowedFd<'_>) -> io::Result<()> {
        // SAFETY: a null pathname makes the kernel mark `fd` itself.
        cvt(unsafe { libc::fanotify_mark(self.fd.as_raw_fd(), flags.0, mask.0, fd.as_raw_fd(), std::ptr::null()) })
            .map(drop)
    }

    /// Remove every inode mark of this group (filesystem and mount marks stay).
    pub fn flush_inode_marks(&self) -> io::Result<()> {
        // SAFETY: FAN_MARK_FLUSH ignores the mask and the path.
        cvt(unsafe {
            libc::fanotify_mark(self.fd.as_raw_fd(), libc::FAN_MARK_FLUSH, 0, libc::AT_FDCWD, std::ptr::null())
        })
        .map(drop)
    }

    /// Read whatever events are queued into `buf` (blocking unless the group is non-blocking)
    /// and iterate over them. `buf` should hold at least 4 KiB; 64 KiB reads many at once.
    pub fn read<'b>(&self, buf: &'b mut [u8]) -> io::Result<Events<'b>> {
        loop {
            // SAFETY: the kernel writes at most `buf.len()` bytes into `buf`.
            let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n >= 0 {
                return Ok(Events { buf: &buf[..n as usize], pos: 0 });
            }
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err);
            }
        }
    }

    /// Answer a permission event. Answering twice, or an event that needs no answer, fails with
    /// `ENOENT`/`EINVAL` from the kernel.
    pub fn respond(&self, event: &Event, response: Response) -> io::Result<()> {
        self.respond_raw(event.raw_fd(), response)
    }

    /// Answer by the event's descriptor number (for callers that keep only the number).
    pub fn respond_raw(&self, event_fd: RawFd, response: Response) -> io::Result<()> {
        let reply = libc::fanotify_response {
            fd: event_fd,
            response: match response {
                Response::Allow => libc::FAN_ALLOW,
                Response::Deny => libc::FAN_DENY,
            },
        };
        let size = std::mem::size_of::<libc::fanotify_response>();
        loop {
            // SAFETY: `reply` is a plain struct of `size` bytes.
            let n = unsafe { libc::write(self.fd.as_raw_fd(), (&raw const reply).cast(), size) };
            if n == size as isize {
                return Ok(());
            }
            let err = io::Error::last_os_error();
            if n >= 0 {
                return Err(io::Error::new(io::ErrorKind::WriteZero, "short fanotify response"));
            }
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err);
            }
        }
    }
}

impl AsFd for Group {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// The events of one read, in the kernel's order.
pub struct Events<'b> {
    buf: &'b [u8],
    pos: usize,
}

const METADATA_LEN: usize = std::mem::size_of::<libc::fanotify_event_metadata>();

fn take_fd(raw: i32) -> Option<OwnedFd> {
    // SAFETY: the kernel installed this descriptor in our table for us alone.
    (raw >= 0).then(|| unsafe { OwnedFd::from_raw_fd(raw) })
}

impl Iterator for Events<'_> {
    type Item = io::Result<Event>;

    fn next(&mut self) -> Option<io::Result<Event>> {
        let rest = &self.buf[self.pos..];
        if rest.len() < METADATA_LEN {
            return None;
        }
        // SAFETY: at least METADATA_LEN bytes remain; read_unaligned copes with any alignment.
        let meta: libc::fanotify_event_metadata = unsafe { std::ptr::read_unaligned(rest.as_ptr().cast()) };
        let event_len = meta.event_len as usize;
        if meta.vers != libc::FANOTIFY_METADATA_VERSION || event_len < METADATA_LEN || event_len > rest.len() {
            // Close what we can so a malformed record does not leak a descriptor, then stop.
            self.pos = self.buf.len();
            drop(take_fd(meta.fd));
            return Some(Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("fanotify record: version {} length {event_len}", meta.vers),
            )));
        }
        let mut event = Event { mask: Mask(meta.mask), pid: meta.pid, fd: take_fd(meta.fd), pidfd: None };
        // Info records follow the fixed header, each starting with {type u8, pad u8, len u16}.
        let mut info = &rest[meta.metadata_len as usize..event_len];
        while info.len() >= 4 {
            let kind = info[0];
            let len = u16::from_ne_bytes([info[2], info[3]]) as usize;
            if len < 4 || len > info.len() {
                break;
            }
            if kind == libc::FAN_EVENT_INFO_TYPE_PIDFD && len >= 8 {
                let pidfd = i32::from_ne_bytes([info[4], info[5], info[6], info[7]]);
                event.pidfd = take_fd(pidfd);
            }
            info = &info[len..];
        }
        self.pos += event_len;
        Some(Ok(event))
    }
}

impl Drop for Events<'_> {
    fn drop(&mut self) {
        // Events not iterated still own descriptors in our table: close them. Their permission
        // events stay unanswered, which is the caller's bug, but at least nothing leaks.
        for e in self.by_ref().flatten() {
            drop(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(mask: u64, fd: i32, pid: i32, pidfd: Option<i32>) -> Vec<u8> {
        let extra = if pidfd.is_some() { 8 } else { 0 };
        let meta = libc::fanotify_event_metadata {
            event_len: (METADATA_LEN + extra) as u32,
            vers: libc::FANOTIFY_METADATA_VERSION,
            reserved: 0,
            metadata_len: METADATA_LEN as u16,
            mask,
            fd,
            pid,
        };
        // SAFETY: viewing a plain struct as bytes.
        let mut out = unsafe { std::slice::from_raw_parts((&raw const meta).cast::<u8>(), METADATA_LEN) }.to_vec();
        if let Some(p) = pidfd {
            out.extend_from_slice(&[libc::FAN_EVENT_INFO_TYPE_PIDFD, 0]);
            out.extend_from_slice(&8u16.to_ne_bytes());
            out.extend_from_slice(&p.to_ne_bytes());
        }
        out
    }

    #[test]
    fn reader_walks_records_and_keeps_the_pidfd_info_record() {
        // Real descriptors, so that dropping the events closes something that exists.
        let a = std::fs::File::open("/proc/self/stat").unwrap();
        let b = std::fs::File::open("/proc/self/stat").unwrap();
        let (fa, fb) = (a.as_raw_fd(), b.as_raw_fd());
        std::mem::forget(a);
        std::mem::forget(b);
        let mut buf = record(libc::FAN_OPEN_EXEC_PERM, fa, 42, None);
        buf.extend(record(libc::FAN_OPEN_PERM, libc::FAN_NOFD, 43, Some(fb)));
        let events: Vec<Event> = Events { buf: &buf, pos: 0 }.map(Result::unwrap).collect();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].mask, Mask::OPEN_EXEC_PERM);
        assert_eq!((events[0].pid, events[0].raw_fd()), (42, fa));
        assert!(events[0].pidfd.is_none() && events[0].needs_answer());
        assert_eq!(events[1].pid, 43);
        assert!(events[1].fd.is_none());
        assert_eq!(events[1].pidfd.as_ref().map(|p| p.as_raw_fd()), Some(fb));
    }

    #[test]
    fn a_truncated_or_foreign_record_is_an_error_not_a_panic() {
        let mut buf = record(libc::FAN_OPEN_PERM, -1, 1, None);
        buf[4] = libc::FANOTIFY_METADATA_VERSION + 1;
        let mut events = Events { buf: &buf, pos: 0 };
        assert!(events.next().unwrap().is_err());
        assert!(events.next().is_none());
        let short = record(libc::FAN_OPEN_PERM, -1, 1, None);
        assert!(Events { buf: &short[..10], pos: 0 }.next().is_none());
    }
}
