//! Events out to a SIEM. Pure formatting ([`syslog`], [`json`]) apart from the connections
//! ([`Forwarder`]); the server keeps the cursor, the lease and the retries.
//!
//! - `syslog+tcp://HOST[:PORT]` (default 601) and `syslog+tls://HOST[:PORT]` (default 6514):
//!   one RFC 5424 message per event, octet-counted (RFC 6587 § 3.4.1, RFC 5425), facility
//!   `log audit`, the event's fields as structured data.
//! - `http://…` and `https://…`: a POST per batch of JSON lines (`application/x-ndjson`),
//!   with an optional bearer token; any 2xx is a receipt.
//!
//! The destination is an administrator's input: its syntax is checked when it is saved
//! ([`Destination::parse`]), and every address it resolves to is checked before each
//! connection (no loopback, private, link-local or otherwise special address unless the
//! server allows it), so an organization cannot point the server at its own network.

mod destination;
pub mod json;
mod send;
pub mod syslog;

pub use destination::{Destination, DestinationError, Transport, is_public};
pub use send::{ForwardError, Forwarder, SETTLE, TIMEOUT, check};

/// One stored event on its way out.
#[derive(Clone, Copy, Debug)]
pub struct Outgoing<'a> {
    /// The server's event id (increasing; SIEMs can drop duplicates by it).
    pub id: i64,
    /// The organization's name.
    pub organization: &'a str,
    /// The computer's name.
    pub computer: &'a str,
    /// When the server received it, Unix milliseconds.
    pub received_ms: i64,
    /// The agent's record, JSON (a `portcullis_events::Record`), as stored.
    pub record_json: &'a str,
}
