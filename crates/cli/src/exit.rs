//! Exit statuses (documented in the README and `--help`).

use std::process::ExitCode;

/// Everything went as asked.
pub const OK: u8 = 0;
/// An unexpected internal failure.
pub const INTERNAL: u8 = 1;
/// A file or folder could not be read.
pub const UNREADABLE: u8 = 3;
/// The policy file is invalid.
pub const BAD_POLICY: u8 = 4;
/// `policy lint` found warnings.
pub const LINT_WARNINGS: u8 = 5;
/// `check` denied at least one file.
pub const DENIED: u8 = 10;
/// `bypass` refused the code (mistyped, for another computer, expired or used), or the
/// agent did not take it.
pub const BYPASS_REFUSED: u8 = 12;
/// `export` wrote its files, but some rules cannot be expressed by the engine (the report
/// says which and why).
pub const NOT_EXPRESSIBLE: u8 = 13;
/// The agent could not start enforcing (not root, no fanotify, a filesystem it was told to
/// watch cannot be marked, the spool cannot be written).
pub const AGENT_START: u8 = 6;
/// The agent refused a whole-system Secured policy that would deny the host's essentials.
pub const LOCKOUT: u8 = 8;

/// What a command says when it fails, with its exit status: the top of the error's chain
/// (the failure it caused follows as `caused by:` lines).
#[derive(Debug)]
pub struct Exit {
    pub code: u8,
    pub message: String,
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Exit {}

/// A failure with nothing underneath it.
pub fn fail(code: u8, message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Exit { code, message: message.into() })
}

/// Give a failure its exit status and what was being done, keeping it as the cause.
pub trait OrExit<T> {
    /// `message` says what failed; the error stays below it in the chain.
    fn or_exit(self, code: u8, message: impl Into<String>) -> anyhow::Result<T>;
}

impl<T, E: Into<anyhow::Error>> OrExit<T> for Result<T, E> {
    fn or_exit(self, code: u8, message: impl Into<String>) -> anyhow::Result<T> {
        self.map_err(|e| e.into().context(Exit { code, message: message.into() }))
    }
}

pub fn code_of(err: &anyhow::Error) -> ExitCode {
    ExitCode::from(err.downcast_ref::<Exit>().map_or(INTERNAL, |e| e.code))
}
