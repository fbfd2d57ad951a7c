//! RFC 5424 messages, one per event, framed by octet counting.
//!
//! `<PRI>1 TIMESTAMP HOSTNAME portcullis - MSGID [portcullis@32473 …] MSG`:
//! - PRI: facility 13 (log audit); severity warning for what was refused, error for an
//!   overload verdict, notice for the rest.
//! - TIMESTAMP: when it happened on the agent (UTC, microseconds at most), or when the server
//!   received it if the agent's time does not parse.
//! - HOSTNAME: the computer's name, in the printable ASCII the RFC allows.
//! - MSGID: the event kind (`deny`, `would-deny`, …).
//! - Structured data under the enterprise number 32473 (RFC 5612's, for documentation and
//!   examples, until the project has its own): `id`, `org`, `computer`, `event`, `verdict`,
//!   `access`, `mode`, `policy`, `path`, `sha256`, `user`, `exe`.
//! - MSG: the event in one line, as the console shows it.
//!
//! Everything from the agent is untrusted: parameter values are escaped (`"`, `\`, `]`),
//! control characters become `?`, and a message is cut at [`MAX_MESSAGE`] bytes.

use crate::Outgoing;
use portcullis_events::{EventKind, Record};
use std::fmt::Write as _;

/// The enterprise number of the structured-data element.
pub const ENTERPRISE: u32 = 32473;
/// The largest message written (RFC 5425 receivers must take 2048 and should take 8192).
pub const MAX_MESSAGE: usize = 8192;
const FACILITY_LOG_AUDIT: u8 = 13;
/// The longest parameter value, in bytes before escaping: twelve of them escaped (at most
/// twice as long) and the header stay inside [`MAX_MESSAGE`], so a cut at that size takes
/// only the free text, never the structured data's closing.
const MAX_PARAM: usize = 256;

/// The message for one event (without its frame).
pub fn message(e: &Outgoing<'_>) -> String {
    let record: Option<Record> = serde_json::from_str(e.record_json).ok();
    let kind = record.as_ref().map_or(EventKind::Unknown, |r| r.event);
    let severity = match kind {
        EventKind::Overload => 3,
        k if k.denied() => 4,
        _ => 5,
    };
    // The agent's time, as the server stores it: one more than a day after the server
    // received it (or before 1970) is the receiving time instead.
    let received = jiff::Timestamp::from_millisecond(e.received_ms).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    let time = record
        .as_ref()
        .and_then(|r| r.time.parse::<jiff::Timestamp>().ok())
        .filter(|t| {
            let ms = t.as_millisecond();
            ms >= 0 && ms <= e.received_ms.saturating_add(86_400_000)
        })
        .unwrap_or(received);
    let mut out = format!(
        "<{}>1 {} {} portcullis - {} ",
        FACILITY_LOG_AUDIT * 8 + severity,
        time.strftime("%Y-%m-%dT%H:%M:%S%.6fZ"),
        header_field(e.computer, 255),
        header_field(kind.name(), 32),
    );
    let _ = write!(out, "[portcullis@{ENTERPRISE} id=\"{}\"", e.id);
    let mut param = |name: &str, value: &str| {
        let _ = write!(out, " {name}=\"{}\"", param_value(value));
    };
    param("org", e.organization);
    param("computer", e.computer);
    if let Some(r) = &record {
        param("event", r.event.name());
        param("verdict", r.verdict.name());
        param("access", r.access.name());
        param("mode", &r.mode);
        if let Some(p) = &r.policy {
            param("policy", p);
        }
        param("path", &r.file.path);
        if !r.file.sha256.is_empty() {
            param("sha256", &r.file.sha256);
        }
        if let Some(u) = &r.process.user {
            param("user", u);
        }
        if let Some(x) = &r.process.exe {
            param("exe", x);
        }
    }
    out.push(']');
    out.push(' ');
    let text = match &record {
        Some(r) => r.summary(),
        None => "an event record this server could not read".to_owned(),
    };
    out.extend(text.chars().map(|c| if c.is_control() { '?' } else { c }));
    truncate(&mut out, MAX_MESSAGE);
    out
}

/// A message with its octet-counting frame (`LEN SP MSG`).
pub fn frame(message: &str) -> String {
    format!("{} {message}", message.len())
}

/// A header field: printable US-ASCII without spaces, at most `max` bytes, `-` if empty.
fn header_field(text: &str, max: usize) -> String {
    let s: String = text.chars().map(|c| if c.is_ascii_graphic() { c } else { '_' }).take(max).collect();
    if s.is_empty() { "-".into() } else { s }
}

/// A PARAM-VALUE: at most [`MAX_PARAM`] bytes of `text`, `"`, `\` and `]` escaped, control
/// characters replaced.
fn param_value(text: &str) -> String {
    let mut end = text.len().min(MAX_PARAM);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = String::with_capacity(end * 2);
    for c in text[..end].chars() {
        match c {
            '"' | '\\' | ']' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.push('?'),
            c => out.push(c),
        }
    }
    out
}

fn truncate(s: &mut String, max: usize) {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(path: &str, policy: &str) -> String {
        serde_json::json!({
            "time": "2026-12-06T10:11:12.123456789Z", "event": "deny", "access": "exec", "verdict": "deny",
            "mode": "secured", "policy": policy, "reason": "denied by policy",
            "file": {"path": path, "sha256": "ab".repeat(32), "size": 1, "kind": "elf-executable", "dev": 1, "ino": 2},
            "process": {"pid": 7, "exe": "/usr/bin/bash", "uid": 1000, "user": "alice", "ancestors": []}
        })
        .to_string()
    }

    fn out<'a>(computer: &'a str, record_json: &'a str) -> Outgoing<'a> {
        Outgoing { id: 42, organization: "Acme \"Ltd\"", computer, received_ms: 1_797_000_000_000, record_json }
    }

    #[test]
    fn a_deny_is_a_warning_with_its_fields_as_escaped_structured_data() {
        let json = record("/tmp/x\"] y\\z\nw", "Deny ]this[");
        let m = message(&out("web 01", &json));
        assert!(
            m.starts_with("<108>1 2026-12-06T10:11:12.123456Z web_01 portcullis - deny [portcullis@32473 id=\"42\" "),
            "{m}"
        );
        assert!(
            m.contains(r#" org="Acme \"Ltd\"" computer="web 01" event="deny" verdict="deny" access="exec""#),
            "{m}"
        );
        assert!(m.contains(r#" policy="Deny \]this[" path="/tmp/x\"\] y\\z?w" "#), "{m}");
        assert!(m.contains(r#" user="alice" exe="/usr/bin/bash"] "#), "{m}");
        assert!(!m.contains('\n'));
        assert_eq!(frame("abc"), "3 abc");
        assert_eq!(frame("é"), "2 é", "octets, not characters");
    }

    #[test]
    fn an_unreadable_record_and_hostile_sizes_still_make_a_valid_bounded_message() {
        let m = message(&out("", "not json"));
        assert!(
            m.starts_with("<109>1 2026-12-11T14:40:00.000000Z - portcullis - unknown [portcullis@32473 id=\"42\""),
            "{m}"
        );
        let long = "é".repeat(10_000);
        let json = record(&long, "p");
        let m = message(&out(&long, &json));
        assert!(m.len() <= MAX_MESSAGE);
        let host = m.split(' ').nth(2).unwrap();
        assert_eq!(host.len(), 255, "the HOSTNAME field is cut at 255 octets");
        assert!(host.chars().all(|c| c == '_'));
        // Values of quotes and brackets (twice as long escaped) still close the structured
        // data inside the message.
        let nasty = "\"]".repeat(5_000);
        let json = record(&nasty, &nasty);
        let m = message(&out(&nasty, &json));
        assert!(m.len() <= MAX_MESSAGE);
        let closed = m.find(r#" exe="/usr/bin/bash"] "#).expect("the element closes");
        assert!(m[..closed].contains(r#"path="\"\]\"\]"#), "{}", &m[..300]);
        // A time from far in the future is the receiving time instead.
        let future = record("/x", "p").replace("2026-12-06T10:11:12.123456789Z", "9999-01-01T00:00:00Z");
        assert!(message(&out("h", &future)).starts_with("<108>1 2026-12-11T14:40:00.000000Z "));
    }
}
