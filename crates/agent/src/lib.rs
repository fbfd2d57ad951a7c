//! The Portcullis Linux agent: default-deny execution control with fanotify.
//!
//! The kernel holds every open and exec on the watched filesystems until the agent answers.
//! The agent tells code from data ([`classify`]), knows each file version once
//! ([`identity`]), asks the pure policy engine, answers, and hands process-independent
//! permits back to the kernel as ignore marks so that the next open never leaves it.
//! Denies, would-denies and learning candidates go to an append-only spool, as records of
//! the event schema ([`portcullis_events`]).
//!
//! The entry point is [`run`]; `portcullis agent` is a thin wrapper around it.

pub mod classify;
pub mod dns;
mod facts;
mod fence_threads;
pub mod fencing;
pub mod identity;
mod interpreters;
mod judge;
mod lanes;
mod locks;
pub mod mounts;
pub mod process;
pub mod protect;
mod records;
mod run;
pub mod shape;
mod state;
mod sys;
pub mod sysctl;

pub use portcullis_events::spool;

pub use interpreters::{default_interpreters, is_interpreter_name};
pub use portcullis_fanotify::Response;
pub use run::{Summary, block_handled_signals, run};
pub use state::{AgentError, Config, LoadError, PolicyHits, PolicyLoader, Stats};

/// Replace the panic hook with one that prints the message and nothing else.
///
/// The standard hook, with `RUST_BACKTRACE` set, resolves a backtrace by opening the
/// executable and its debug files; on a watched filesystem that open would wait for an answer
/// from the agent itself. The message alone needs no file.
pub fn install_quiet_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let thread = std::thread::current();
        let msg = format!("portcullis agent: thread {} panicked: {info}\n", thread.name().unwrap_or("?"));
        sys::write_stderr(msg.as_bytes());
    }));
}
