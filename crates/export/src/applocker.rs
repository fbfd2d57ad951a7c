//! AppLocker policy XML: the Exe, Dll, Msi and Script rule collections, with FileHashRule
//! (Authenticode SHA-256 for PE and MSI files, the flat SHA-256 for scripts),
//! FilePublisherRule (PublisherName, ProductName, BinaryName = OriginalFilename,
//! BinaryVersionRange) and FilePathRule, Enabled or AuditOnly.
//!
//! Where AppLocker differs: a deny rule wins over every allow rule, whatever Portcullis's
//! order; a collection with rules denies what none allows (Windows' own files too, so the
//! default rules are added in an enforced collection); there is no per-rule audit.

use crate::OutputFile;
use crate::plan::{Item, Plan};
use crate::report::{Entry, Outcome};
use crate::rules::hex;
use crate::windows::{Collection, Shape, WinRule, analyse};
use portcullis_policy::Status;
use quick_xml::escape::escape;
use std::collections::BTreeMap;
use std::fmt::Write as _;

const ENGINE: &str = "AppLocker";
/// Everyone.
const EVERYONE: &str = "S-1-1-0";

/// One rule element, for one collection.
struct XmlRule {
    id: String,
    name: String,
    description: String,
    deny: bool,
    body: String,
    element: &'static str,
}

pub(crate) fn export(plan: &Plan<'_>) -> (Vec<OutputFile>, Vec<Entry>) {
    let mut entries = Vec::new();
    let mut collections: BTreeMap<Collection, Vec<XmlRule>> = BTreeMap::new();
    let enforced_denies = plan.items.iter().any(|i| i.deny && i.status == Status::Enforce);
    // Monitor and Learning: AuditOnly, unless a deny is enforced there (Portcullis enforces
    // it in every mode): then Enabled, with everything else allowed.
    let audit_only = !plan.enforcing() && !enforced_denies;
    let mut permit_before: Option<String> = None;
    for item in &plan.items {
        if item.status == Status::Monitor {
            entries.push(item.entry(Outcome::NotExpressible {
                why: format!(
                    "it records only (its {} is in Monitor status); {ENGINE} has no per-rule audit",
                    kind(item)
                ),
            }));
            continue;
        }
        let win = match analyse(item, ENGINE) {
            Ok(w) => w,
            Err(why) => {
                entries.push(item.entry(Outcome::NotExpressible { why }));
                continue;
            }
        };
        match xml_rules(plan, item, &win) {
            Ok((rules, mut how)) => {
                let to = format!(
                    "{} {} rule(s) in {}",
                    rules.len(),
                    if item.deny { "Deny" } else { "Allow" },
                    rules.iter().map(|(c, _)| c.name()).collect::<Vec<_>>().join(", ")
                );
                how.extend(win.approximations.iter().cloned());
                if item.deny
                    && let Some(p) = &permit_before
                {
                    how.push(format!(
                        "{ENGINE} applies deny rules before allow rules: a file that {p} permits before this deny in \
                         Portcullis's order is denied by {ENGINE}"
                    ));
                }
                if let Some(profile) = item.ringfence {
                    how.push(format!(
                        "allowed without its ringfence {profile:?}: {ENGINE} cannot limit what an allowed program does"
                    ));
                }
                for (c, r) in rules {
                    collections.entry(c).or_default().push(r);
                }
                entries.push(item.entry(Outcome::of(to, &how)));
            }
            Err(why) => entries.push(item.entry(Outcome::NotExpressible { why })),
        }
        if !item.deny && permit_before.is_none() {
            permit_before = Some(format!("policy {:?}", item.source.name));
        }
    }
    // What no rule decides.
    let mode = if audit_only {
        entries.push(plan.mode_entry(Outcome::Exported {
            to: "EnforcementMode AuditOnly: every collection logs what it would deny".into(),
        }));
        "AuditOnly"
    } else if plan.enforcing() {
        for c in Collection::ALL {
            if let Some(rules) = collections.get_mut(&c) {
                rules.extend(defaults(plan, c));
            }
        }
        entries.push(plan.mode_entry(Outcome::Approximated {
            to: "EnforcementMode Enabled: what no rule allows is denied".into(),
            how: "AppLocker's default rules (everything in %WINDIR% and %PROGRAMFILES%) are added to every collection \
                  that has rules, since Portcullis permits no Windows files of its own and Windows would otherwise \
                  stop; remove them only with rules that allow Windows"
                .into(),
        }));
        "Enabled"
    } else {
        for (c, rules) in collections.iter_mut() {
            rules.push(allow_all(plan, *c));
        }
        entries.push(plan.mode_entry(Outcome::Approximated {
            to: "EnforcementMode Enabled with an allow-all rule in each collection: the denies are enforced".into(),
            how: format!(
                "in {} mode Portcullis allows and records what no rule decides; {ENGINE} cannot record it while it \
                 enforces denies, so those files run unrecorded",
                plan.mode.name()
            ),
        }));
        "Enabled"
    };
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n");
    let _ = writeln!(xml, "<!-- Portcullis export for {} -->", escape(comment_safe(&plan.title())));
    xml.push_str("<AppLockerPolicy Version=\"1\">\n");
    for c in Collection::ALL {
        let rules = collections.remove(&c).unwrap_or_default();
        if rules.is_empty() {
            let _ = writeln!(xml, "  <RuleCollection Type=\"{}\" EnforcementMode=\"NotConfigured\" />", c.name());
            continue;
        }
        let _ = writeln!(xml, "  <RuleCollection Type=\"{}\" EnforcementMode=\"{mode}\">", c.name());
        for r in rules {
            let _ = writeln!(
                xml,
                "    <{} Id=\"{}\" Name=\"{}\" Description=\"{}\" UserOrGroupSid=\"{EVERYONE}\" Action=\"{}\">\n{}    </{}>",
                r.element,
                r.id,
                escape(&r.name),
                escape(&r.description),
                if r.deny { "Deny" } else { "Allow" },
                r.body,
                r.element
            );
        }
        xml.push_str("  </RuleCollection>\n");
    }
    xml.push_str("</AppLockerPolicy>\n");
    (vec![OutputFile { name: "applocker.xml".into(), bytes: xml.into_bytes() }], entries)
}

fn kind(item: &Item<'_>) -> &'static str {
    match item.source.kind {
        crate::SourceKind::Blocklist => "blocklist approval",
        _ => "policy",
    }
}

/// Text an XML comment can hold: no `--`, no control characters.
fn comment_safe(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars().filter(|c| !c.is_control()) {
        if c == '-' && out.ends_with('-') {
            out.push(' ');
        }
        out.push(c);
    }
    out.trim_end_matches('-').to_owned()
}

/// A stable GUID for a rule (the same export gives the same IDs).
fn id(plan: &Plan<'_>, parts: &str) -> String {
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, format!("portcullis:applocker:{}:{parts}", plan.title()).as_bytes())
        .hyphenated()
        .to_string()
}

/// Attribute text: at most 1000 characters, none that XML 1.0 cannot carry.
fn bounded(text: &str) -> String {
    text.chars().filter(|c| !c.is_control() || matches!(c, '\t' | '\n' | '\r')).take(1000).collect()
}

/// Rule elements by collection, and the approximations converting them brings.
type Converted = (Vec<(Collection, XmlRule)>, Vec<String>);

/// The rule elements of one item, by collection; approximations this step adds.
fn xml_rules(plan: &Plan<'_>, item: &Item<'_>, win: &WinRule) -> Result<Converted, String> {
    let mut how = Vec::new();
    let (element, body) = match &win.shape {
        Shape::Hashes { authenticode256, authenticode1, flat256 } => {
            let mut hashes = String::new();
            // The application's exclusions cannot be written in a hash rule; an exclusion
            // that lists one of these hashes removes it.
            let excluded: Vec<[u8; 32]> = item.except.iter().flat_map(crate::rules::authenticode_sha256).collect();
            let excluded_flat: Vec<[u8; 32]> = item.except.iter().flat_map(crate::rules::flat_sha256).collect();
            if !item.except.is_empty() {
                how.push(
                    "the application's exclusions are checked against these hashes only (AppLocker hash rules have \
                     no exceptions)"
                        .into(),
                );
            }
            let auth_collections: Vec<Collection> = win.collections.clone();
            let mut per: Vec<(Collection, String)> = Vec::new();
            for c in &auth_collections {
                let mut h = String::new();
                if *c != Collection::Script || !authenticode256.is_empty() || !authenticode1.is_empty() {
                    for d in authenticode256.iter().filter(|d| !excluded.contains(d)) {
                        let _ =
                            writeln!(h, "          <FileHash Type=\"SHA256\" Data=\"0x{}\" />", hex(d).to_uppercase());
                    }
                    for d in authenticode1 {
                        let _ =
                            writeln!(h, "          <FileHash Type=\"SHA1\" Data=\"0x{}\" />", hex(d).to_uppercase());
                    }
                }
                if *c == Collection::Script {
                    for d in flat256.iter().filter(|d| !excluded_flat.contains(d)) {
                        // Windows names a script's flat digest either way across versions.
                        let _ =
                            writeln!(h, "          <FileHash Type=\"SHA256\" Data=\"0x{}\" />", hex(d).to_uppercase());
                        let _ = writeln!(
                            h,
                            "          <FileHash Type=\"SHA256Flat\" Data=\"0x{}\" />",
                            hex(d).to_uppercase()
                        );
                    }
                }
                if !h.is_empty() {
                    per.push((*c, h));
                }
            }
            if per.is_empty() {
                return Err("every hash it lists is excluded by its application".into());
            }
            hashes.push_str("");
            let rules = per
                .into_iter()
                .enumerate()
                .map(|(n, (c, h))| {
                    let body = format!(
                        "      <Conditions>\n        <FileHashCondition>\n{h}        </FileHashCondition>\n      </Conditions>\n"
                    );
                    (c, rule(plan, item, c, n, "FileHashRule", body))
                })
                .collect();
            return Ok((rules, how));
        }
        Shape::Publisher { publisher, product, binary, low, high } => {
            let condition = publisher_condition(publisher, product, binary, *low, *high, "        ");
            ("FilePublisherRule", format!("      <Conditions>\n{condition}      </Conditions>\n"))
        }
        Shape::Path(path) => (
            "FilePathRule",
            format!(
                "      <Conditions>\n        <FilePathCondition Path=\"{}\" />\n      </Conditions>\n",
                escape(path)
            ),
        ),
        Shape::Everything => (
            "FilePathRule",
            "      <Conditions>\n        <FilePathCondition Path=\"*\" />\n      </Conditions>\n".to_owned(),
        ),
    };
    let mut exceptions = String::new();
    for (n, except) in item.except.iter().enumerate() {
        let probe = Item { rule: except, except: &[], ..item.clone() };
        let converted = analyse(&probe, ENGINE).and_then(|w| exception(&w));
        match converted {
            Ok(x) => exceptions.push_str(&x),
            Err(why) if item.deny => how.push(format!("exclusion {} is left out, so it denies more: {why}", n + 1)),
            Err(why) => {
                return Err(format!(
                    "its application's exclusion {} cannot be written ({why}); without it the rule would allow files \
                     the application excludes",
                    n + 1
                ));
            }
        }
    }
    let body = if exceptions.is_empty() {
        body
    } else {
        format!("{body}      <Exceptions>\n{exceptions}      </Exceptions>\n")
    };
    let rules =
        win.collections.iter().enumerate().map(|(n, c)| (*c, rule(plan, item, *c, n, element, body.clone()))).collect();
    Ok((rules, how))
}

fn rule(plan: &Plan<'_>, item: &Item<'_>, c: Collection, n: usize, element: &'static str, body: String) -> XmlRule {
    let label = item.source.label();
    XmlRule {
        id: id(plan, &format!("{}:{label}:{n}", c.name())),
        name: bounded(&label),
        description: bounded(item.source.note.as_deref().unwrap_or(&item.source.what)),
        deny: item.deny,
        body,
        element,
    }
}

fn publisher_condition(
    publisher: &Option<String>,
    product: &Option<String>,
    binary: &Option<String>,
    low: Option<portcullis_policy::Version>,
    high: Option<portcullis_policy::Version>,
    indent: &str,
) -> String {
    let any = |v: &Option<String>| v.as_deref().map(|t| escape(t).into_owned()).unwrap_or_else(|| "*".into());
    let version = |v: Option<portcullis_policy::Version>| v.map(|v| v.to_string()).unwrap_or_else(|| "*".into());
    format!(
        "{indent}<FilePublisherCondition PublisherName=\"{}\" ProductName=\"{}\" BinaryName=\"{}\">\n{indent}  \
         <BinaryVersionRange LowSection=\"{}\" HighSection=\"{}\" />\n{indent}</FilePublisherCondition>\n",
        any(publisher),
        any(product),
        any(binary),
        version(low),
        version(high)
    )
}

/// An exclusion as an AppLocker exception condition.
fn exception(w: &WinRule) -> Result<String, String> {
    let indent = "        ";
    match &w.shape {
        Shape::Hashes { authenticode256, authenticode1, .. }
            if !authenticode256.is_empty() || !authenticode1.is_empty() =>
        {
            let mut h = String::new();
            for d in authenticode256 {
                let _ = writeln!(h, "{indent}  <FileHash Type=\"SHA256\" Data=\"0x{}\" />", hex(d).to_uppercase());
            }
            for d in authenticode1 {
                let _ = writeln!(h, "{indent}  <FileHash Type=\"SHA1\" Data=\"0x{}\" />", hex(d).to_uppercase());
            }
            Ok(format!("{indent}<FileHashCondition>\n{h}{indent}</FileHashCondition>\n"))
        }
        Shape::Hashes { .. } => {
            Err(format!("it lists flat hashes only, and {ENGINE} {}", crate::rules::AUTHENTICODE_ONLY))
        }
        Shape::Publisher { publisher, product, binary, low, high } => {
            Ok(publisher_condition(publisher, product, binary, *low, *high, indent))
        }
        Shape::Path(p) => Ok(format!("{indent}<FilePathCondition Path=\"{}\" />\n", escape(p))),
        Shape::Everything => Err("it excludes every file".into()),
    }
}

/// AppLocker's default rules for a collection: Windows and installed programs run.
fn defaults(plan: &Plan<'_>, c: Collection) -> Vec<XmlRule> {
    let paths: &[&str] = match c {
        Collection::Msi => &["%WINDIR%\\Installer\\*"],
        _ => &["%WINDIR%\\*", "%PROGRAMFILES%\\*"],
    };
    paths
        .iter()
        .map(|p| XmlRule {
            id: id(plan, &format!("{}:default:{p}", c.name())),
            name: format!("(Default Rule) {p}"),
            description: "AppLocker's default rule, added by Portcullis so that Windows runs".into(),
            deny: false,
            body: format!("      <Conditions>\n        <FilePathCondition Path=\"{p}\" />\n      </Conditions>\n"),
            element: "FilePathRule",
        })
        .collect()
}

/// Everything allowed (the denies still win): Monitor mode with enforced denies.
fn allow_all(plan: &Plan<'_>, c: Collection) -> XmlRule {
    XmlRule {
        id: id(plan, &format!("{}:allow-all", c.name())),
        name: "Allow all (Portcullis Monitor mode)".into(),
        description: "Everything not denied runs, as in Portcullis's Monitor mode".into(),
        deny: false,
        body: "      <Conditions>\n        <FilePathCondition Path=\"*\" />\n      </Conditions>\n".into(),
        element: "FilePathRule",
    }
}
