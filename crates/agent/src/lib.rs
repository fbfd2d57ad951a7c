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
//!
//! Each event is decided, then acted on: the worker classifies it (`classify`), the pure
//! `judge` decides from the facts it asks for (gathered lazily by `facts`), and the lane
//! applies the outcome — ringfence tags, kernel-remembered refusals, hit counts, an ignore
//! mark — before it answers (`lanes`), then records it (`records`).
//!
//! Threads: one *lane* per CPU the agent may run on — a responder and a worker, both pinned
//! to that CPU, the responders all reading the one fanotify group — plus a shared pool of
//! workers, a deadline keeper, the mount watcher (the main thread), the spool writer, and for
//! ringfencing `fence-events` (BPF ring buffer → events), `fence-domains` (re-resolves domains
//! when their TTL runs out) and `fence-scan` (tags processes already running). A responder
//! hands an event to its lane's worker when that worker is idle, else to the pool. Why lanes:
//! on these VMs a cross-CPU wake-up costs more than the rest of a round trip (measured with
//! `crates/fanotify/examples/allow_all.rs`: ~27 µs per open answered on the opener's CPU,
//! 80–140 µs across CPUs); the CPU of a process the kernel holds is idle, so the lane pinned
//! there takes the event and every wake-up stays local.
//!
//! Ringfencing: a process is ringfenced when the kernel holds a tag for its thread-group id.
//! The agent registers a ringfenced executable's (dev, inode) **before** answering its exec,
//! the BPF exec hook tags the new image, fork passes the tag on, threads share it, the last
//! thread's exit drops it; the agent also tags the exec'ing process itself (scripts, and
//! filesystems whose `stat` device differs from the kernel's). While a ringfence is in force,
//! workers ask the tag for opens of restricted paths and for code, and judge the opens (file
//! rules) and program starts (child rules) of tagged processes.

pub mod bypass;
pub mod classify;
pub mod clock;
pub mod dns;
mod facts;
mod fence_threads;
pub mod fencing;
pub mod identity;
pub mod install;
mod interpreters;
mod judge;
mod lanes;
pub mod lockout;
mod locks;
mod marks;
pub mod metrics;
pub mod mounts;
mod packaged;
pub mod process;
pub mod protect;
mod records;
mod run;
pub mod shape;
mod state;
mod sys;
pub mod sysctl;
pub mod userbox;

pub use portcullis_events::spool;

pub use interpreters::{default_interpreters, default_self_loaders, is_interpreter_name, is_self_loader_path};
pub use portcullis_fanotify::Response;
pub use run::{Summary, block_handled_signals, run};
pub use state::{AgentError, Config, LoadError, Overload, PackageInventory, PolicyHits, PolicyLoader, Stats};

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
