//! The Portcullis event schema, defined once for every party that touches an event.
//!
//! The agent writes one [`Record`] per deny, would-deny, candidate, overload or ringfence
//! refusal, as one JSON line in its [`spool`]; the sync client reads the spool's lines and
//! uploads them verbatim (the server keys each event by its bytes); the server decodes the
//! same [`Record`] to store and filter it; `portcullis events` and the console list every
//! [`EventKind`] from the enum. The allowed values of each coded field are the variants of
//! [`EventKind`], [`Verdict`] and [`Access`]: nothing is a free-form string.
//!
//! Compatibility: a reader ignores fields it does not know, and a kind, verdict or access
//! it does not know reads as `unknown`, so an agent newer than its server never has a batch
//! refused for it.
//!
//! ```
//! use portcullis_events::{Access, EventKind, Record, Verdict};
//! let line = r#"{"time":"2026-12-01T10:00:00Z","event":"deny","access":"exec","verdict":"deny",
//!   "mode":"secured","reason":"not permitted","file":{"path":"/tmp/x","size":1,"dev":1,"ino":2},
//!   "process":{"pid":7}}"#;
//! let r: Record = serde_json::from_str(line).unwrap();
//! assert_eq!((r.event, r.access, r.verdict), (EventKind::Deny, Access::Exec, Verdict::Deny));
//! ```

mod record;
pub mod spool;

pub use record::{
    Access, EventKind, FileRecord, PolicyHit, ProcessInfo, ProcessRecord, Record, RingfenceRecord, SignerRecord,
    Verdict,
};
