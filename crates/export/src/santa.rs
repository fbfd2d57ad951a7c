//! Santa rules, in the JSON `santactl rule --export` writes and `santactl rule --import`
//! reads: BINARY (flat SHA-256 of a Mach-O), SIGNINGID (`TEAMID:identifier`), CERTIFICATE
//! (the signing certificate's SHA-256), TEAMID (a Developer ID team), as ALLOWLIST or
//! BLOCKLIST.
//!
//! Where Santa differs: it authorizes executions only (a library is never checked), and its
//! rules do not have an order: the more specific type wins (BINARY over SIGNINGID over
//! CERTIFICATE over TEAMID), whatever Portcullis's order says.

use crate::OutputFile;
use crate::plan::{Item, Plan};
use crate::report::{Entry, Outcome};
use crate::rules::{flat_sha256, flat_weak, foreign, hex, literal, unsupported};
use portcullis_policy::{FileKind, Os, Status};

const ENGINE: &str = "Santa";

/// Santa's rule types, most specific first (its precedence).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum RuleType {
    Binary,
    SigningId,
    Certificate,
    TeamId,
}

impl RuleType {
    fn name(self) -> &'static str {
        match self {
            RuleType::Binary => "BINARY",
            RuleType::SigningId => "SIGNINGID",
            RuleType::Certificate => "CERTIFICATE",
            RuleType::TeamId => "TEAMID",
        }
    }
}

/// One Santa rule, with the keys Santa's sync protocol and `santactl rule --import` use.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SantaRule {
    /// The SHA-256 (BINARY, CERTIFICATE), signing ID (SIGNINGID) or team ID (TEAMID).
    pub identifier: String,
    /// `ALLOWLIST` or `BLOCKLIST`.
    pub policy: &'static str,
    /// `BINARY`, `SIGNINGID`, `CERTIFICATE` or `TEAMID`.
    pub rule_type: &'static str,
    /// The message Santa shows when it blocks (the Portcullis rule it came from).
    pub custom_msg: String,
}

/// What a Santa client is told: its mode and its rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sync {
    /// `LOCKDOWN` (Secured, Installation) or `MONITOR` (Monitor, Learning).
    pub client_mode: &'static str,
    /// Every rule, in Portcullis's order (Santa ranks them by type).
    pub rules: Vec<SantaRule>,
}

pub(crate) fn export(plan: &Plan<'_>) -> (Vec<OutputFile>, Vec<Entry>) {
    let (sync, entries) = sync(plan);
    let json = serde_json::to_vec_pretty(&serde_json::json!({ "rules": sync.rules })).expect("plain data");
    (vec![OutputFile { name: "santa-rules.json".into(), bytes: json }], entries)
}

pub(crate) fn sync(plan: &Plan<'_>) -> (Sync, Vec<Entry>) {
    let mut entries = Vec::new();
    let mut rules: Vec<SantaRule> = Vec::new();
    // Earlier items by their broadest type and verdict, for Santa's precedence.
    let mut earlier: Vec<(RuleType, bool, String)> = Vec::new();
    // Santa keeps one rule per (type, identifier): the first, as Portcullis's first match.
    let mut emitted: std::collections::HashSet<(RuleType, String)> = std::collections::HashSet::new();
    for item in &plan.items {
        if item.status == Status::Monitor {
            entries.push(item.entry(Outcome::NotExpressible {
                why: format!("it records only (Monitor status); {ENGINE} has no rule that only records"),
            }));
            continue;
        }
        match convert(item) {
            Ok((converted, mut how)) => {
                let before = converted.len();
                let converted: Vec<(RuleType, String)> = converted
                    .into_iter()
                    .filter(|(t, id)| emitted.insert((*t, id.trim_start_matches('!').to_owned())))
                    .collect();
                if converted.len() < before {
                    how.push(format!(
                        "{} of its identifiers are decided by an earlier rule already ({ENGINE} keeps one rule per \
                         identifier: the earlier, as Portcullis's order has it)",
                        before - converted.len()
                    ));
                }
                if converted.is_empty() {
                    entries.push(item.entry(Outcome::Approximated { to: "nothing more".into(), how: how.join("; ") }));
                    continue;
                }
                let narrowest = converted.iter().map(|(t, _)| *t).min().expect("at least one rule");
                if let Some((t, _, label)) = earlier.iter().find(|(t, deny, _)| *deny != item.deny && *t > narrowest) {
                    how.push(format!(
                        "{ENGINE} has no order: its {} rule wins over the {} rule of {label}, which comes first in \
                         Portcullis's order and decides there",
                        narrowest.name(),
                        t.name()
                    ));
                }
                if let Some(profile) = item.ringfence {
                    how.push(format!(
                        "allowed without its ringfence {profile:?}: {ENGINE} cannot limit an allowed program"
                    ));
                }
                let broadest = converted.iter().map(|(t, _)| *t).max().expect("at least one rule");
                earlier.push((broadest, item.deny, item.source.label()));
                let to = format!(
                    "{} {} rule(s) ({})",
                    converted.len(),
                    if item.deny { "BLOCKLIST" } else { "ALLOWLIST" },
                    converted
                        .iter()
                        .map(|(t, _)| t.name())
                        .collect::<std::collections::BTreeSet<_>>()
                        .into_iter()
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                for (t, identifier) in converted {
                    // An exclusion of a permit, blocked ("!" marks it).
                    let (identifier, deny) = match identifier.strip_prefix('!') {
                        Some(id) => (id.to_owned(), true),
                        None => (identifier, item.deny),
                    };
                    rules.push(SantaRule {
                        identifier,
                        policy: if deny { "BLOCKLIST" } else { "ALLOWLIST" },
                        rule_type: t.name(),
                        custom_msg: item.source.label().chars().take(200).collect(),
                    });
                }
                entries.push(item.entry(Outcome::of(to, &how)));
            }
            Err(why) => entries.push(item.entry(Outcome::NotExpressible { why })),
        }
    }
    let client_mode = if plan.enforcing() { "LOCKDOWN" } else { "MONITOR" };
    entries.push(plan.mode_entry(Outcome::Exported {
        to: format!("client mode {client_mode} (set by the sync server, or ClientMode in the configuration profile)"),
    }));
    (Sync { client_mode, rules }, entries)
}

/// A Developer ID team from a signer subject pattern: `…Developer ID Application: Name (TEAMID)…`.
fn team_id(subject: &str) -> Option<String> {
    let at = subject.find("Developer ID Application:")?;
    let rest = &subject[at..];
    let open = rest.rfind('(')?;
    let close = open + rest[open..].find(')')?;
    let id = &rest[open + 1..close];
    (id.len() == 10 && id.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())).then(|| id.to_owned())
}

/// Santa rules (type, identifier; `!` before the identifier of an exclusion to block), and
/// the approximations they bring.
type Converted = (Vec<(RuleType, String)>, Vec<String>);

fn convert(item: &Item<'_>) -> Result<Converted, String> {
    let rule = item.rule;
    if let Some(why) = foreign(rule, Os::MacOs, ENGINE) {
        return Err(why);
    }
    let missing =
        unsupported(rule, &["flat hash", "authenticode hash", "signer subject", "signer certificate", "signing_id"]);
    if !missing.is_empty() {
        return Err(format!(
            "{ENGINE} rules name a file's hash, its signing ID, its signing certificate or its team, nothing else ({} \
             cannot be written); without it the rule would {} more files",
            missing.join(", "),
            if item.deny { "block" } else { "allow" }
        ));
    }
    let mut how = Vec::new();
    match rule.kind {
        Some(FileKind::Library) if item.deny => {
            return Err(format!(
                "{ENGINE} authorizes executions only, so a library is never checked: block the executables that load \
                 it instead (their hashes, or their signer)"
            ));
        }
        Some(FileKind::Library) => {
            how.push(format!("{ENGINE} never checks libraries: they load whatever the rule says"))
        }
        Some(FileKind::Script) | Some(FileKind::Installer) | Some(FileKind::Other) => {
            return Err(format!("{ENGINE} authorizes Mach-O executions only; this rule is for other files"));
        }
        _ => {}
    }
    let mut out = Vec::new();
    if !item.except.is_empty() {
        if item.deny {
            how.push("the application's exclusions are left out, so it blocks more".into());
        } else {
            // Santa has no exceptions; an excluded file named by its hash can be blocked, and
            // a BINARY block outranks the permit's CERTIFICATE or TEAMID rule.
            let mut blocked = 0;
            let mut weak = Vec::new();
            for (n, x) in item.except.iter().enumerate() {
                if foreign(x, Os::MacOs, ENGINE).is_some() {
                    continue;
                }
                let hashes = flat_sha256(x);
                if hashes.is_empty() && flat_weak(x) > 0 && x.signer.is_none() && x.path.is_none() {
                    weak.push((n + 1).to_string());
                    continue;
                }
                if hashes.is_empty()
                    || !unsupported(x, &["flat hash", "authenticode hash", "original_filename", "version"]).is_empty()
                {
                    return Err(format!(
                        "its application's exclusion {} cannot be written ({ENGINE} rules have no exceptions, and it \
                         names no file by its SHA-256)",
                        n + 1
                    ));
                }
                blocked += hashes.len();
                out.extend(hashes.iter().map(|h| (RuleType::Binary, format!("!{}", hex(h)))));
            }
            if !weak.is_empty() {
                how.push(format!(
                    "its exclusion(s) {} name files by MD5 or SHA-1 only, which {ENGINE} cannot match: a Mach-O they \
                     name would be allowed by this rule",
                    weak.join(", ")
                ));
            }
            if blocked > 0 {
                how.push(format!(
                    "its application's exclusions become BLOCKLIST rules ({blocked} hashes; {ENGINE} has no exceptions): \
                     an excluded file is blocked even where another policy permits it"
                ));
            }
        }
    }
    let hashes = flat_sha256(rule);
    if !hashes.is_empty() {
        if rule.signer.is_some() || rule.signing_id.is_some() {
            how.push("only the hashes are exported (a hash names one file's content)".into());
        }
        if flat_weak(rule) > 0 {
            how.push(format!("{} MD5/SHA-1 hash(es) left out: {ENGINE} matches SHA-256", flat_weak(rule)));
        }
        if item.deny && rule.kind.is_none() {
            how.push(format!(
                "{ENGINE} checks executions only: a hash that is a library's (like the 3CX dylib) blocks nothing; \
                 block the executables that load it"
            ));
        }
        out.extend(hashes.iter().map(|h| (RuleType::Binary, hex(h))));
        return Ok((out, how));
    }
    if !rule.hashes.is_empty() {
        return Err(format!(
            "{ENGINE} matches the flat SHA-256 of a Mach-O; this rule lists {} only",
            if rule.hashes.authenticode.is_empty() { "MD5 or SHA-1 hashes" } else { "Authenticode digests (Windows)" }
        ));
    }
    if let Some(pattern) = &rule.signing_id {
        let Some(id) = literal(pattern).filter(|id| !id.starts_with("*:")) else {
            return Err(format!(
                "{ENGINE} names a signing ID exactly (team and identifier); {:?} is a pattern",
                pattern.as_str()
            ));
        };
        if let Some(signer) = &rule.signer {
            let team = id.split_once(':').map(|(t, _)| t).unwrap_or_default();
            let same_team = signer.issuer.is_none()
                && signer.cert_sha256.is_none()
                && signer.subject.as_ref().and_then(|s| team_id(s.as_str())).as_deref() == Some(team);
            if !same_team {
                if !item.deny {
                    return Err(format!(
                        "{ENGINE}'s SIGNINGID rule names the team in its prefix and holds no other signer condition; \
                         without this rule's signer condition it would allow more"
                    ));
                }
                how.push(
                    "its signer condition is left out (a SIGNINGID rule names only the team), so it blocks more".into(),
                );
            }
        }
        out.push((RuleType::SigningId, id.to_owned()));
        return Ok((out, how));
    }
    let Some(signer) = &rule.signer else {
        return Err(format!("{ENGINE} has no rule for every file"));
    };
    if signer.issuer.is_some() {
        return Err(format!("{ENGINE} has no condition on a certificate's issuer"));
    }
    if let Some(cert) = signer.cert_sha256 {
        out.push((RuleType::Certificate, hex(&cert)));
        return Ok((out, how));
    }
    let subject = signer.subject.as_ref().map(|s| s.as_str()).unwrap_or_default();
    match team_id(subject) {
        Some(team) => {
            how.push(format!(
                "{ENGINE}'s TEAMID rule covers every production signature of team {team}; the Portcullis rule names \
                 its Developer ID Application certificate"
            ));
            out.push((RuleType::TeamId, team));
            Ok((out, how))
        }
        None => Err(format!(
            "{ENGINE} names a signer by its certificate's SHA-256 or its Developer ID team; the subject pattern \
             {subject:?} holds neither"
        )),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_team_id_is_read_from_a_developer_id_subject_pattern() {
        assert_eq!(super::team_id("*Developer ID Application: 3CX Ltd (33CF4654HL)*").as_deref(), Some("33CF4654HL"));
        assert_eq!(super::team_id("*CN=3CX Ltd"), None);
        assert_eq!(super::team_id("*Developer ID Application: X (short)*"), None);
    }
}
