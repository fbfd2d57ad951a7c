//! Santa rules, as `santactl rule --export` writes them: `{"rules": [{identifier, policy,
//! rule_type, custom_msg, …}]}`. BINARY is a flat SHA-256, CERTIFICATE a signing
//! certificate's SHA-256, TEAMID a Developer ID team; Santa's precedence (most specific type
//! first) becomes policy order: blocks by hash, permits by hash, then certificates, then teams.

use crate::{Builder, ImportError, Outcome, hex_of};
use portcullis_policy_file::document::{RuleDoc, SignerDoc};

#[derive(serde::Deserialize)]
struct Export {
    rules: Vec<serde_json::Map<String, serde_json::Value>>,
}

pub(crate) fn import(text: &str, b: &mut Builder) -> Result<(), ImportError> {
    let export: Export = serde_json::from_str(text.trim_start_matches('\u{feff}')).map_err(|e| {
        ImportError(format!("not the JSON `santactl rule --export` writes ({{\"rules\": [...]}}): {e}"))
    })?;
    if export.rules.len() > 1_000_000 {
        return Err(ImportError("more than a million rules".into()));
    }
    // Keys are read case-insensitively and values upper-cased, as santactl does.
    let field = |r: &serde_json::Map<String, serde_json::Value>, key: &str| -> String {
        r.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .and_then(|(_, v)| v.as_str())
            .unwrap_or_default()
            .trim()
            .to_owned()
    };
    let mut rules: Vec<(usize, String, String, String, String)> = export
        .rules
        .iter()
        .map(|r| {
            let mut id = field(r, "identifier");
            if id.is_empty() {
                id = field(r, "sha256");
            }
            (
                0,
                id,
                field(r, "policy").to_ascii_uppercase(),
                field(r, "rule_type").to_ascii_uppercase(),
                field(r, "custom_msg"),
            )
        })
        .collect();
    // Santa's precedence: CDHASH, BINARY, SIGNINGID, CERTIFICATE, TEAMID; a block before an
    // allow of the same type (one identifier has one rule per type).
    let rank =
        |t: &str| ["CDHASH", "BINARY", "SIGNINGID", "CERTIFICATE", "TEAMID"].iter().position(|x| *x == t).unwrap_or(9);
    for r in rules.iter_mut() {
        r.0 = rank(&r.3) * 2 + usize::from(!r.2.contains("BLOCK") && !r.2.contains("BLACK"));
    }
    rules.sort_by_key(|r| r.0);
    for (_, id, policy, kind, msg) in rules {
        let name = format!("{kind} {policy} {id}");
        let action = match policy.as_str() {
            "ALLOWLIST" | "WHITELIST" => "permit",
            "ALLOWLIST_COMPILER" | "WHITELIST_COMPILER" => "permit",
            "BLOCKLIST" | "BLACKLIST" | "SILENT_BLOCKLIST" | "SILENT_BLACKLIST" => "deny",
            "REMOVE" => {
                b.not(name, "a REMOVE rule deletes a rule on the client; there is nothing to import");
                continue;
            }
            "CEL" => {
                b.not(name, "a CEL expression rule: Portcullis has no expression language");
                continue;
            }
            other => {
                b.not(name, format!("policy {other:?} is not one Santa exports (ALLOWLIST, BLOCKLIST, …)"));
                continue;
            }
        };
        let mut how = Vec::new();
        if policy.contains("COMPILER") {
            how.push(
                "a compiler's transitive rules are not followed: what it builds is not allowed by this".to_owned(),
            );
        }
        if policy.starts_with("SILENT") {
            how.push("Portcullis records the block (Santa's silence is about the user's notification)".to_owned());
        }
        let mut doc = RuleDoc { os: Some("macos".into()), ..RuleDoc::default() };
        let app = match kind.as_str() {
            "BINARY" => match hex_of(&id, 32) {
                Some(h) => {
                    doc.sha256 = Some(vec![h]);
                    "Santa binaries"
                }
                None => {
                    b.not(name, "a BINARY identifier is 64 hexadecimal digits");
                    continue;
                }
            },
            "CERTIFICATE" => match hex_of(&id, 32) {
                Some(h) => {
                    doc.signer = Some(SignerDoc { cert_sha256: Some(h), verified: true, ..SignerDoc::default() });
                    "Santa certificates"
                }
                None => {
                    b.not(name, "a CERTIFICATE identifier is 64 hexadecimal digits");
                    continue;
                }
            },
            "TEAMID" => {
                let team = id.to_ascii_uppercase();
                if team.len() != 10 || !team.bytes().all(|c| c.is_ascii_alphanumeric()) {
                    b.not(name, "a TEAMID is 10 letters and digits");
                    continue;
                }
                doc.signer = Some(SignerDoc {
                    subject: Some(format!("*Developer ID Application: *({team})*")),
                    verified: true,
                    ..SignerDoc::default()
                });
                how.push(format!(
                    "Santa's team rule covers every production signature of the team; Portcullis matches the team \
                     in the Developer ID Application certificate's name ({team})"
                ));
                "Santa teams"
            }
            "SIGNINGID" => {
                if !portcullis_policy_file::signing_id_form(&id) || id.contains(['*', '?', '[']) {
                    b.not(
                        name,
                        "a SIGNINGID is TEAMID:identifier (or platform:identifier), the team 10 capitals and digits",
                    );
                    continue;
                }
                doc.signing_id = Some(portcullis_policy::TextPattern::escape(&id));
                "Santa signing IDs"
            }
            "CDHASH" => {
                b.not(
                    name,
                    "Portcullis does not compute a Mach-O's code directory hash: use the BINARY rule of the file",
                );
                continue;
            }
            other => {
                b.not(name, format!("rule type {other:?}"));
                continue;
            }
        };
        if !msg.is_empty() {
            doc.note = Some(msg.chars().take(1000).collect());
        }
        let title = format!("{app} {}", if action == "deny" { "blocked" } else { "allowed" });
        let to = format!("{action} rule in {title:?}");
        b.add(&title, action, doc, Vec::new());
        b.entry(name, Outcome::of(to, &how))
    }
    Ok(())
}
