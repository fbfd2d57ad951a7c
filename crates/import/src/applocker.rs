//! AppLocker policy XML: FileHashRule, FilePublisherRule (with exceptions) and FilePathRule
//! of the Exe, Dll, Msi and Script collections. Deny rules become a deny policy above the
//! permits, which is AppLocker's own rule (a deny always wins).

use crate::xml::{self, El};
use crate::{Builder, ImportError, Outcome, hex_of, literal};
use portcullis_policy_file::document::{RuleDoc, SignerDoc};

/// Everyone: the only principal Portcullis's rules need not name.
const EVERYONE: &str = "S-1-1-0";

fn kind_of(collection: &str) -> Option<&'static str> {
    match collection {
        "Exe" => Some("executable"),
        "Dll" => Some("library"),
        "Msi" => Some("installer"),
        "Script" => Some("script"),
        _ => None,
    }
}

pub(crate) fn import(text: &str, b: &mut Builder) -> Result<(), ImportError> {
    let root = xml::parse(text)?;
    if root.name != "AppLockerPolicy" {
        return Err(ImportError(format!("the root element is <{}>, not <AppLockerPolicy>", root.name)));
    }
    // Denies first: AppLocker applies them before any allow, whatever their place.
    for want_deny in [true, false] {
        for collection in root.all("RuleCollection") {
            let ctype = collection.attr("Type").unwrap_or_default();
            let mode = collection.attr("EnforcementMode").unwrap_or("NotConfigured");
            for rule in &collection.children {
                let deny = rule.attr("Action").is_some_and(|a| a.eq_ignore_ascii_case("Deny"));
                if deny != want_deny || !rule.name.ends_with("Rule") {
                    continue;
                }
                one(b, ctype, mode, rule, deny);
            }
        }
    }
    Ok(())
}

fn label(ctype: &str, rule: &El) -> String {
    format!("{ctype} {} {:?}", rule.name, rule.attr("Name").unwrap_or(rule.attr("Id").unwrap_or("")))
}

fn one(b: &mut Builder, ctype: &str, mode: &str, rule: &El, deny: bool) {
    let name = label(ctype, rule);
    let Some(kind) = kind_of(ctype) else {
        return b.not(
            name,
            format!("the {ctype} collection (packaged apps, managed installers) has no counterpart in Portcullis"),
        );
    };
    let mut how: Vec<String> = Vec::new();
    let sid = rule.attr("UserOrGroupSid").unwrap_or(EVERYONE);
    if sid != EVERYONE {
        if !deny {
            return b.not(
                name,
                format!(
                    "it allows only {sid}; Portcullis names users by name, and without it the rule would allow everyone"
                ),
            );
        }
        how.push(format!("it denied {sid} only; it now denies every user"));
    }
    if mode == "AuditOnly" {
        how.push("its collection only audited: set the computers' mode to Monitor to keep that".into());
    }
    let action = if deny { "deny" } else { "permit" };
    let app = format!("AppLocker {ctype} {}", if deny { "denied" } else { "allowed" });
    let conditions = rule.child("Conditions");
    let condition = conditions.and_then(|c| c.children.first());
    let converted = match (rule.name.as_str(), condition) {
        ("FileHashRule", Some(c)) => hash_rule(c, ctype),
        ("FilePublisherRule", Some(c)) => publisher_rule(c),
        ("FilePathRule", Some(c)) => path_rule(c),
        _ => Err(format!("a {} without the condition it needs", rule.name)),
    };
    let (mut doc, notes) = match converted {
        Ok(x) => x,
        Err(why) => return b.not(name, why),
    };
    how.extend(notes);
    doc.kind = Some(kind.into());
    doc.os = Some("windows".into());
    doc.note = rule.attr("Description").filter(|d| !d.is_empty()).map(|d| d.chars().take(1000).collect());
    let mut except = Vec::new();
    if let Some(ex) = rule.child("Exceptions") {
        for (n, c) in ex.children.iter().enumerate() {
            let converted = match c.name.as_str() {
                "FileHashCondition" => hash_rule(c, ctype),
                "FilePublisherCondition" => publisher_rule(c),
                "FilePathCondition" => path_rule(c),
                other => Err(format!("an exception <{other}>")),
            };
            match converted {
                // An exception that may not match as AppLocker's did would make a permit
                // broader: only one taken as it is keeps it.
                Ok((_, notes)) if !notes.is_empty() && !deny => {
                    return b.not(
                        name,
                        format!(
                            "its exception {} cannot be imported as it is ({}); without it the rule would allow more",
                            n + 1,
                            notes.join("; ")
                        ),
                    );
                }
                Ok((mut x, notes)) => {
                    x.os = Some("windows".into());
                    how.extend(notes.into_iter().map(|n| format!("exception: {n}")));
                    except.push(x);
                }
                Err(why) if deny => how.push(format!("exception {} left out ({why}), so it denies more", n + 1)),
                Err(why) => {
                    return b.not(
                        name,
                        format!(
                            "its exception {} cannot be imported ({why}); without it the rule would allow more",
                            n + 1
                        ),
                    );
                }
            }
        }
    }
    let to = format!("{action} rule in {app:?}");
    b.add(&app, action, doc, except);
    b.entry(name, Outcome::of(to, &how))
}

type Converted = (RuleDoc, Vec<String>);

fn hash_rule(condition: &El, ctype: &str) -> Result<Converted, String> {
    let mut doc = RuleDoc::default();
    let mut notes = Vec::new();
    let (mut authenticode, mut authenticode1, mut flat) = (Vec::new(), Vec::new(), Vec::new());
    for h in condition.all("FileHash") {
        let data = h.attr("Data").unwrap_or_default();
        match (h.attr("Type").unwrap_or_default(), ctype) {
            ("SHA256Flat", _) => flat.extend(hex_of(data, 32)),
            // A script's SHA256 is its flat digest, a PE's or MSI's the Authenticode one.
            ("SHA256", "Script") => flat.extend(hex_of(data, 32)),
            ("SHA256", _) => authenticode.extend(hex_of(data, 32)),
            ("SHA1", _) => authenticode1.extend(hex_of(data, 20)),
            (other, _) => notes.push(format!("a {other:?} hash left out")),
        }
    }
    if authenticode.is_empty() && authenticode1.is_empty() && flat.is_empty() {
        return Err("no hash Portcullis can read".into());
    }
    if !authenticode.is_empty() {
        doc.authenticode_sha256 = Some(authenticode);
    }
    if !authenticode1.is_empty() {
        doc.authenticode_sha1 = Some(authenticode1);
    }
    if !flat.is_empty() {
        doc.sha256 = Some(flat);
    }
    Ok((doc, notes))
}

fn publisher_rule(c: &El) -> Result<Converted, String> {
    let mut doc = RuleDoc::default();
    let mut notes = Vec::new();
    let any = |v: Option<&str>| v.map(str::trim).filter(|v| !v.is_empty() && *v != "*").map(str::to_owned);
    if let Some(p) = any(c.attr("PublisherName")) {
        // AppLocker writes the subject as O=…, L=…, S=…, C=…; the agent reads the whole
        // subject, so the organization is matched within it.
        let org = p.split(',').map(str::trim).find_map(|part| part.strip_prefix("O=")).unwrap_or(&p).to_owned();
        doc.signer = Some(SignerDoc {
            subject: Some(format!("*O={},*", literal(&org))),
            verified: true,
            ..SignerDoc::default()
        });
        notes.push(format!(
            "publisher {p:?} is matched by its organization (O={org}) in the signer's subject, verified; AppLocker \
             compared the whole subject"
        ));
    } else {
        doc.signer = Some(SignerDoc { subject: Some("*".into()), verified: true, ..SignerDoc::default() });
    }
    if let Some(p) = any(c.attr("ProductName")) {
        doc.product_name = Some(literal(&p));
    }
    if let Some(n) = any(c.attr("BinaryName")) {
        doc.original_filename = Some(literal(&n));
    }
    if let Some(r) = c.child("BinaryVersionRange") {
        let bound = |v: Option<&str>, op: &str| any(v).map(|v| format!("{op}{v}"));
        let parts: Vec<String> =
            [bound(r.attr("LowSection"), ">="), bound(r.attr("HighSection"), "<=")].into_iter().flatten().collect();
        if !parts.is_empty() {
            doc.version = Some(parts.join(","));
        }
    }
    Ok((doc, notes))
}

fn path_rule(c: &El) -> Result<Converted, String> {
    let path = c.attr("Path").map(str::trim).filter(|p| !p.is_empty()).ok_or("an empty path")?;
    if path == "*" {
        return Ok((RuleDoc::default(), vec!["every file".into()]));
    }
    let mut notes = Vec::new();
    if path.contains('%') {
        notes.push(format!(
            "{path:?} keeps its AppLocker variables as written; Portcullis matches paths as the agent reports them"
        ));
    }
    // AppLocker's * crosses folders; every other character is literal.
    Ok((RuleDoc { path: Some(crate::windows_glob(path)), ..RuleDoc::default() }, notes))
}
