//! fapolicyd: rules (`decision perm=… subject : object`, first match wins — Portcullis's own
//! order, kept) and trust files (`path size sha256`, paths `%XX`-escaped in the "VERSION 2"
//! files fapolicyd-cli writes). The two are told apart line by line.

use crate::{Builder, ImportError, Outcome, hex_of};
use portcullis_policy_file::document::RuleDoc;

pub(crate) fn import(text: &str, b: &mut Builder) -> Result<(), ImportError> {
    let mut any = false;
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        any = true;
        let at = format!("line {}", n + 1);
        if let Some((path, hash)) = trust_entry(line) {
            let doc = RuleDoc {
                path: Some(portcullis_policy::PathPattern::escape(&path)),
                sha256: Some(vec![hash]),
                os: Some("linux".into()),
                ..RuleDoc::default()
            };
            b.add("fapolicyd trusted files", "permit", doc, Vec::new());
            b.exported(
                format!("{at}: trust {path}"),
                "permit rule (this path with this content) in \"fapolicyd trusted files\"",
            );
            continue;
        }
        rule(b, &at, line);
    }
    if !any {
        return Err(ImportError("no rule and no trust entry: not a fapolicyd rules or trust file".into()));
    }
    Ok(())
}

/// `path size sha256`: a trust entry, its path unescaped.
fn trust_entry(line: &str) -> Option<(String, String)> {
    let mut parts = line.rsplitn(3, char::is_whitespace);
    let hash = hex_of(parts.next()?, 32)?;
    let size = parts.next()?;
    if !size.bytes().all(|b| b.is_ascii_digit()) || size.is_empty() {
        return None;
    }
    let path = parts.next()?.trim();
    path.starts_with('/').then(|| (unescape(path), hash))
}

/// `%XX` escapes as fapolicyd-cli writes them for spaces and other bytes.
fn unescape(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(v) = std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn rule(b: &mut Builder, at: &str, line: &str) {
    let name = format!("{at}: {}", line.chars().take(200).collect::<String>());
    let Some((head, object)) =
        line.split_once(" : ").or_else(|| line.split_once(':').filter(|(h, _)| !h.contains('=')))
    else {
        if line.starts_with('%') && line.contains('=') {
            return b.not(name, "a set definition: its uses are imported only where a rule names its values directly");
        }
        return b.not(name, "not a rule (decision perm=… subject : object) nor a trust entry (path size sha256)");
    };
    let mut words = head.split_whitespace();
    let decision = words.next().unwrap_or_default();
    let action = match decision {
        "allow" | "allow_audit" | "allow_syslog" | "allow_log" => "permit",
        "deny" | "deny_audit" | "deny_syslog" | "deny_log" => "deny",
        other => return b.not(name, format!("decision {other:?}")),
    };
    let mut how = Vec::new();
    let mut doc = RuleDoc { os: Some("linux".into()), ..RuleDoc::default() };
    let words: Vec<&str> = words.collect();
    // Without perm=, a rule is about opening files (fapolicyd's default).
    if !words.iter().any(|w| matches!(*w, "perm=execute" | "perm=any")) {
        return b.not(
            name,
            "a rule about opening files for reading (perm=open, the default): Portcullis judges running code only",
        );
    }
    for w in words {
        match w.split_once('=') {
            Some(("perm", "open")) => {
                return b.not(name, "a rule about opening files for reading: Portcullis judges running code only");
            }
            Some(("perm", "execute" | "any")) => {}
            Some(("exe", p)) if p.starts_with('/') && !p.contains(',') => {
                doc.parent_process = Some(portcullis_policy::PathPattern::escape(p))
            }
            None if w == "all" => {}
            Some(("pattern", _)) => {
                if action == "permit" {
                    return b.not(name, "a subject pattern (ld_so, …): Portcullis has no such condition, and the permit would cover every process");
                }
                how.push(format!("its subject {w} is left out, so it denies for every process"));
            }
            _ => {
                if action == "permit" {
                    return b.not(name, format!("subject {w}: Portcullis has no such condition; without it the permit would cover every process"));
                }
                how.push(format!("its subject {w} is left out, so it denies for every process"));
            }
        }
    }
    let mut conditions = 0;
    for w in object.split_whitespace() {
        match w.split_once('=') {
            None if w == "all" => {}
            Some(("sha256hash", h)) => match hex_of(h, 32) {
                Some(h) => {
                    doc.sha256 = Some(vec![h]);
                    conditions += 1;
                }
                None => return b.not(name, format!("{w} is not a SHA-256")),
            },
            Some(("path", p)) if p.starts_with('/') && !p.contains(',') => {
                doc.path = Some(portcullis_policy::PathPattern::escape(p));
                conditions += 1;
            }
            Some(("dir", d)) if d.starts_with('/') && !d.contains(',') => {
                doc.path = Some(format!("{}/**", portcullis_policy::PathPattern::escape(d.trim_end_matches('/'))));
                conditions += 1;
            }
            Some(("trust", "1")) => {
                doc.package = Some("dpkg:*".into());
                how.push("trust=1 (fapolicyd's package database) becomes the installed dpkg packages, each file verified against its package's digest".to_owned());
                conditions += 1;
            }
            Some(("ftype", t)) => {
                let kind = match t {
                    "application/x-executable" | "application/x-pie-executable" => Some("executable"),
                    "application/x-sharedlib" => Some("library"),
                    t if t.starts_with("text/x-") => Some("script"),
                    _ => None,
                };
                match kind {
                    Some(k) => {
                        doc.kind = Some(k.into());
                        how.push(format!("ftype={t} becomes kind {k}"));
                    }
                    None if action == "deny" => how.push(format!("{w} is left out, so it denies more")),
                    None => {
                        return b
                            .not(name, format!("{w}: Portcullis has no such kind; without it the permit covers more"));
                    }
                }
            }
            _ => {
                if action == "permit" {
                    return b.not(
                        name,
                        format!("object {w}: Portcullis has no such condition; without it the permit would cover more"),
                    );
                }
                how.push(format!("object {w} is left out, so it denies more"));
            }
        }
    }
    if conditions == 0 && doc.parent_process.is_none() && doc.kind.is_none() {
        how.push("a rule for every file".into());
    }
    let app = if action == "deny" { "fapolicyd denied" } else { "fapolicyd allowed" };
    let to = format!("{action} rule in {app:?} (in fapolicyd's order)");
    b.add(app, action, doc, Vec::new());
    b.entry(name, Outcome::of(to, &how))
}
