//! `vm.memfd_noexec`: closing memfd execution while the host is Secured.
//!
//! A memfd lives on an internal mount that fanotify cannot mark, so `memfd_create` +
//! `fexecve` would run code the agent never sees. With the sysctl at 2 the kernel refuses to
//! make executable memfds. The old value is put back when the agent stops.

use std::io;

const PATH: &str = "/proc/sys/vm/memfd_noexec";
/// Where the host's own value is kept while an agent has changed it.
pub const SAVED: &str = "/run/portcullis/memfd_noexec.before";

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

    /// Set it to 2 (no executable memfds), remembering the old value. The old value is also
    /// written to [`SAVED`], so that an agent that was killed before it could restore it is
    /// followed by one that restores the host's own value, not its predecessor's 2.
    pub fn enforce() -> io::Result<MemfdNoexec> {
        let current = memfd_noexec()?;
        let previous = match std::fs::read_to_string(SAVED) {
            Ok(saved) if !saved.trim().is_empty() => saved.trim().to_owned(),
            _ => {
                if let Some(dir) = std::path::Path::new(SAVED).parent() {
                    std::fs::create_dir_all(dir)?;
                }
                std::fs::write(SAVED, &current)?;
                current.clone()
            }
        };
        if current != "2" {
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
        let Some(old) = self.previous.take() else { return Ok(()) };
        if old != "2" {
            std::fs::write(PATH, old)?;
        }
        match std::fs::remove_file(SAVED) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}
