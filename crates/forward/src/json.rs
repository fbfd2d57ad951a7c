//! JSON lines: one object per event, `{"id", "organization", "computer", "received",
//! "record"}`, where `record` is the agent's record as stored, written again compactly (the
//! agent's text may hold newlines between its tokens, which would start a line of the
//! agent's making); a record that is not JSON is kept as text in `record_text`.

use crate::Outgoing;

#[derive(serde::Serialize)]
struct Line<'a> {
    id: i64,
    organization: &'a str,
    computer: &'a str,
    received: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    record: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    record_text: Option<&'a str>,
}

/// One event as a JSON line (without its newline).
pub fn line(e: &Outgoing<'_>) -> String {
    let raw: Option<serde_json::Value> = serde_json::from_str(e.record_json).ok();
    let received = jiff::Timestamp::from_millisecond(e.received_ms).map(|t| t.to_string()).unwrap_or_default();
    let line = Line {
        id: e.id,
        organization: e.organization,
        computer: e.computer,
        received,
        record_text: raw.is_none().then_some(e.record_json),
        record: raw,
    };
    serde_json::to_string(&line).expect("plain data")
}

/// A batch: its lines, each ended by a newline.
pub fn body(batch: &[Outgoing<'_>]) -> String {
    let mut out = String::new();
    for e in batch {
        out.push_str(&line(e));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_embedded_as_they_are_and_broken_ones_as_text() {
        let good = Outgoing {
            id: 7,
            organization: "Acme",
            computer: "web\n01",
            received_ms: 0,
            record_json: r#"{"event":"deny","x":[1,2]}"#,
        };
        let broken = Outgoing { record_json: "{\"cut", ..good };
        // An agent's record with a forged line between its tokens stays one line.
        let forged = "{\"event\":\"deny\",\"x\":\n{\"id\":1,\"organization\":\"Acme\",\"computer\":\"dc01\"}\n}";
        let smuggler = Outgoing { record_json: forged, ..good };
        let body = body(&[good, broken, smuggler]);
        let lines: Vec<&str> = body.lines().collect();
        assert_eq!(lines.len(), 3, "{body}");
        assert!(
            lines[2].starts_with(r#"{"id":7,"#) && lines[2].contains(r#""x":{"computer":"dc01","id":1"#),
            "{}",
            lines[2]
        );
        assert_eq!(
            lines[0],
            r#"{"id":7,"organization":"Acme","computer":"web\n01","received":"1970-01-01T00:00:00Z","record":{"event":"deny","x":[1,2]}}"#
        );
        let v: serde_json::Value = serde_json::from_str(lines[1]).unwrap();
        assert_eq!(v["record_text"], "{\"cut");
        assert!(v.get("record").is_none());
    }
}
