//! App Control for Business (WDAC) SiPolicy XML: Allow and Deny file rules by hash, by file
//! name and version, by product and by path, where the user-mode signing scenario uses them.
//! Signers are named by a certificate's TBS hash, which a Portcullis rule cannot hold.

use crate::xml::{self, El};
use crate::{Builder, ImportError, Outcome, hex_of, literal};
use portcullis_policy_file::document::RuleDoc;
use std::collections::HashSet;

pub(crate) fn import(text: &str, b: &mut Builder) -> Result<(), ImportError> {
    let root = xml::parse(text)?;
    if root.name != "SiPolicy" {
        return Err(ImportError(format!("the root element is <{}>, not <SiPolicy>", root.name)));
    }
    let audit = root
        .descendants()
        .iter()
        .any(|e| e.name == "Option" && e.text.trim().eq_ignore_ascii_case("Enabled:Audit Mode"));
    // The rules the user-mode scenario (12) refers to; the kernel's (131) are drivers.
    let mut user: HashSet<String> = HashSet::new();
    let mut kernel: HashSet<String> = HashSet::new();
    for scenario in
        root.child("SigningScenarios").map(|s| s.all("SigningScenario").collect::<Vec<_>>()).unwrap_or_default()
    {
        let refs = scenario
            .descendants()
            .into_iter()
            .filter(|e| e.name == "FileRuleRef")
            .filter_map(|e| e.attr("RuleID"))
            .map(str::to_owned);
        match scenario.attr("Value") {
            Some("12") => user.extend(refs),
            _ => kernel.extend(refs),
        }
    }
    let rules: Vec<&El> = root.child("FileRules").map(|f| f.children.iter().collect()).unwrap_or_default();
    for want_deny in [true, false] {
        for rule in &rules {
            let deny = rule.name == "Deny";
            if deny != want_deny || !matches!(rule.name.as_str(), "Allow" | "Deny") {
                continue;
            }
            let id = rule.attr("ID").unwrap_or_default();
            let name = format!("{} {id} {:?}", rule.name, rule.attr("FriendlyName").unwrap_or_default());
            if !user.contains(id) {
                if kernel.contains(id) {
                    b.not(name, "a kernel-mode (driver) rule: Portcullis judges programs, libraries and scripts");
                } else {
                    b.not(name, "no signing scenario uses it, so App Control does not either");
                }
                continue;
            }
            one(b, rule, deny, audit, name);
        }
    }
    for rule in &rules {
        if rule.name == "FileAttrib" {
            let id = rule.attr("ID").unwrap_or_default();
            b.not(
                format!("FileAttrib {id}"),
                "a file attribute of a signer rule: App Control's signers (by TBS hash) cannot be imported",
            );
        }
    }
    if let Some(signers) = root.child("Signers") {
        for s in signers.all("Signer") {
            let publisher = s.child("CertPublisher").and_then(|p| p.attr("Value")).unwrap_or_default();
            b.not(
                format!("Signer {} {:?}", s.attr("ID").unwrap_or_default(), s.attr("Name").unwrap_or_default()),
                format!(
                    "App Control names a signer by the TBS hash of a certificate in its chain{}; Portcullis names a \
                     signer by its subject or its certificate's SHA-256: make a publisher rule from a signed file \
                     (portcullis scan shows its signer)",
                    if publisher.is_empty() { String::new() } else { format!(" (publisher {publisher:?})") }
                ),
            );
        }
    }
    Ok(())
}

fn one(b: &mut Builder, rule: &El, deny: bool, audit: bool, name: String) {
    let mut doc = RuleDoc { os: Some("windows".into()), ..RuleDoc::default() };
    let mut how = Vec::new();
    if audit {
        how.push("the policy only audited: set the computers' mode to Monitor to keep that".into());
    }
    let any = |v: Option<&str>| v.map(str::trim).filter(|v| !v.is_empty() && *v != "*").map(str::to_owned);
    if let Some(h) = rule.attr("Hash") {
        match (hex_of(h, 32), hex_of(h, 20)) {
            (Some(d), _) => doc.authenticode_sha256 = Some(vec![d]),
            (_, Some(d)) => doc.authenticode_sha1 = Some(vec![d]),
            _ => return b.not(name, format!("hash {h:?} is neither SHA-256 nor SHA-1")),
        }
        how.push(
            "App Control's hash is the Authenticode digest (or a page hash, which matches nothing): it cannot tell a \
             file with a payload in its signature from the genuine one"
                .to_owned(),
        );
    }
    if let Some(f) = any(rule.attr("FileName")) {
        doc.original_filename = Some(literal(&f));
    }
    if let Some(p) = any(rule.attr("ProductName")) {
        doc.product_name = Some(literal(&p));
    }
    if let Some(p) = any(rule.attr("FilePath")) {
        doc.path = Some(crate::windows_glob(&p));
    }
    let min = any(rule.attr("MinimumFileVersion")).filter(|v| v != "65535.65535.65535.65535");
    let max = any(rule.attr("MaximumFileVersion"));
    // On a deny, MinimumFileVersion is the highest version denied (Microsoft's block rules).
    let version: Vec<String> = if deny {
        [min.map(|v| format!("<={v}"))].into_iter().flatten().collect()
    } else {
        [min.map(|v| format!(">={v}")), max.map(|v| format!("<={v}"))].into_iter().flatten().collect()
    };
    if !version.is_empty() {
        doc.version = Some(version.join(","));
    }
    for unsupported in ["InternalName", "FileDescription", "PackageFamilyName", "AppIDs"] {
        if rule.attr(unsupported).is_some() {
            if deny {
                how.push(format!("its {unsupported} is left out, so it denies more"));
            } else {
                return b.not(
                    name,
                    format!("Portcullis has no condition on {unsupported}; without it the rule would allow more"),
                );
            }
        }
    }
    if rule.attr("FileName") == Some("*") && doc.authenticode_sha256.is_none() && doc.path.is_none() {
        how.push("an allow-all (or deny-all) rule: every file".into());
    }
    let action = if deny { "deny" } else { "permit" };
    let app = if deny { "App Control denied" } else { "App Control allowed" };
    let to = format!("{action} rule in {app:?}");
    b.add(app, action, doc, Vec::new());
    b.entry(name, Outcome::of(to, &how))
}
