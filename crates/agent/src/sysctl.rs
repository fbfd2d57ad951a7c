//! `vm.memfd_noexec`: closing memfd execution while the host is Secured.
//!
//! A memfd lives on an internal mount that fanotify cannot mark, so `memfd_create` +
//! `fexecve` would run code the agent never sees. With the sysctl at 2 the kernel refuses to
//! make executable memfds. The old value is put back when the agent stops.

use std::io;

const PATH: &str = "/proc/sys/vm/memfd_noexec";

/// The sysctl's value before the agent changed it.
#[derive(Debug)]
pub struct MemfdNoexec {
    previous: Option<String>,
}

/// Read the current value.
pub fn memfd_noexec() -> io::Result<String> {
    Ok(std::fs::read_to_string(PATH)?.trim().to_owned())
}

impl MemfdNoexec {
    /// Leave the sysctl alone.
    pub fn untouched() -> MemfdNoexec {
        MemfdNoexec { previous: None }
    }

    /// Set it to 2 (no executable memfds), remembering the old value.
    pub fn enforce() -> io::Result<MemfdNoexec> {
        let previous = memfd_noexec()?;
        if previous != "2" {
            std::fs::write(PATH, "2")?;
        }
        Ok(MemfdNoexec { previous: Some(previous) })
    }

    /// Whether this guard changed the sysctl.
    pub fn enforced(&self) -> bool {
        self.previous.is_some()
    }

    /// Put the old value back.
    pub fn restore(&mut self) -> io::Result<()> {
        match self.previous.take() {
            Some(old) if old != "2" => std::fs::write(PATH, old),
            _ => Ok(()),
        }
    }
}
