//! App Control for Business (WDAC) SiPolicy XML: Allow and Deny file rules by Authenticode
//! SHA-256 and SHA-1, by OriginalFilename (FileName) and product with
//! Minimum/MaximumFileVersion, and by path (Allow only), referenced from the user-mode
//! signing scenario; the Audit Mode option for Monitor and Learning; and, where the policy
//! only denies, the allow-all rules that keep everything else running.
//!
//! Where App Control differs: a deny wins over every allow; signers are named by the TBS
//! hash of a certificate in their chain, which a Portcullis signer pattern does not carry;
//! hash rules use the Authenticode digest, blind to what sits in a signature.

use crate::OutputFile;
use crate::plan::{Item, Plan};
use crate::report::{Entry, Outcome};
use crate::rules::{AUTHENTICODE_ONLY, hex};
use crate::windows::{Shape, analyse};
use portcullis_policy::Status;
use quick_xml::escape::escape;
use std::fmt::Write as _;

const ENGINE: &str = "App Control";

/// Windows' platform GUID, the same in every policy.
const PLATFORM_ID: &str = "{2E07F7E4-194C-4D20-B7C9-6F44A6C5A234}";

pub(crate) fn export(plan: &Plan<'_>) -> (Vec<OutputFile>, Vec<Entry>) {
    let mut entries = Vec::new();
    let mut rules: Vec<String> = Vec::new();
    let mut ids: Vec<String> = Vec::new();
    let mut permit_before: Option<String> = None;
    let enforced_denies = plan.items.iter().any(|i| i.deny && i.status == Status::Enforce);
    let audit = !plan.enforcing() && !enforced_denies;
    for item in &plan.items {
        if item.status == Status::Monitor {
            entries.push(item.entry(Outcome::NotExpressible {
                why: format!("it records only (Monitor status); {ENGINE} has no per-rule audit"),
            }));
            continue;
        }
        if !plan.enforcing() && !item.deny && !audit {
            // Monitor with enforced denies: everything runs, allowed by the allow-all rule.
            entries.push(item.entry(Outcome::Exported { to: "covered by the allow-all rule".into() }));
            continue;
        }
        let before = rules.len();
        match file_rules(item, rules.len()) {
            Ok((elements, mut how)) => {
                for (id, xml) in elements {
                    ids.push(id);
                    rules.push(xml);
                }
                if item.deny
                    && let Some(p) = &permit_before
                {
                    how.push(format!(
                        "{ENGINE} applies deny rules before allow rules: a file that {p} permits before this deny in \
                         Portcullis's order is denied"
                    ));
                }
                if let Some(profile) = item.ringfence {
                    how.push(format!(
                        "allowed without its ringfence {profile:?}: {ENGINE} cannot limit an allowed program"
                    ));
                }
                let to = format!("{} {} rule(s)", rules.len() - before, if item.deny { "Deny" } else { "Allow" });
                entries.push(item.entry(if how.is_empty() {
                    Outcome::Exported { to }
                } else {
                    Outcome::Approximated { to, how: how.join("; ") }
                }));
            }
            Err(why) => entries.push(item.entry(Outcome::NotExpressible { why })),
        }
        if !item.deny && permit_before.is_none() {
            permit_before = Some(format!("policy {:?}", item.source.name));
        }
    }
    let allow_all = !plan.enforcing() && !audit;
    if allow_all {
        for (n, id) in ["ID_ALLOW_A_1", "ID_ALLOW_A_2"].into_iter().enumerate() {
            let what = if n == 0 { "kernel drivers" } else { "user-mode files" };
            rules.push(format!(
                "    <Allow ID=\"{id}\" FriendlyName=\"Allow all {what} (Portcullis Monitor mode)\" FileName=\"*\" />\n"
            ));
        }
        entries.push(plan.mode_entry(Outcome::Approximated {
            to: "enforced, with allow-all rules: the denies are enforced".into(),
            how: format!(
                "in {} mode Portcullis allows and records what no rule decides; {ENGINE} cannot record it while it \
                 enforces denies, so those files run unrecorded",
                plan.mode.name()
            ),
        }));
    } else if audit {
        entries.push(plan.mode_entry(Outcome::Exported { to: "option Enabled:Audit Mode".into() }));
    } else {
        entries.push(
            plan.mode_entry(Outcome::Approximated {
                to: "enforced: what no rule allows is denied".into(),
                how: "Windows' own files need allow rules, which Portcullis does not have: merge this policy with \
                  Microsoft's DefaultWindows_Enforced example (Merge-CIPolicy) before you deploy it"
                    .into(),
            }),
        );
    }
    let policy_id = format!(
        "{{{}}}",
        uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, format!("portcullis:appcontrol:{}", plan.title()).as_bytes())
            .hyphenated()
            .to_string()
            .to_uppercase()
    );
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n");
    let _ = writeln!(
        xml,
        "<SiPolicy xmlns=\"urn:schemas-microsoft-com:sipolicy\" PolicyType=\"Base Policy\" FriendlyName=\"{}\">",
        escape(format!("Portcullis: {}", plan.title()))
    );
    xml.push_str("  <VersionEx>10.0.0.0</VersionEx>\n");
    let _ = writeln!(xml, "  <PlatformID>{PLATFORM_ID}</PlatformID>");
    xml.push_str("  <Rules>\n");
    let mut options = vec!["Enabled:Unsigned System Integrity Policy", "Enabled:UMCI"];
    if audit {
        options.push("Enabled:Audit Mode");
    }
    for o in options {
        let _ = writeln!(xml, "    <Rule>\n      <Option>{o}</Option>\n    </Rule>");
    }
    xml.push_str("  </Rules>\n  <EKUs />\n");
    if rules.is_empty() {
        xml.push_str("  <FileRules />\n");
    } else {
        xml.push_str("  <FileRules>\n");
        for r in &rules {
            xml.push_str(r);
        }
        xml.push_str("  </FileRules>\n");
    }
    xml.push_str("  <Signers />\n  <SigningScenarios>\n");
    let refs = |ids: &[&str]| -> String {
        if ids.is_empty() {
            return "      <ProductSigners />\n".into();
        }
        let mut s = String::from("      <ProductSigners>\n        <FileRulesRef>\n");
        for id in ids {
            let _ = writeln!(s, "          <FileRuleRef RuleID=\"{id}\" />");
        }
        s.push_str("        </FileRulesRef>\n      </ProductSigners>\n");
        s
    };
    let drivers: Vec<&str> = if allow_all { vec!["ID_ALLOW_A_1"] } else { vec![] };
    let mut user: Vec<&str> = ids.iter().map(String::as_str).collect();
    if allow_all {
        user.push("ID_ALLOW_A_2");
    }
    let _ = write!(
        xml,
        "    <SigningScenario Value=\"131\" ID=\"ID_SIGNINGSCENARIO_DRIVERS_1\" FriendlyName=\"Kernel mode\">\n{}    </SigningScenario>\n",
        refs(&drivers)
    );
    let _ = write!(
        xml,
        "    <SigningScenario Value=\"12\" ID=\"ID_SIGNINGSCENARIO_WINDOWS\" FriendlyName=\"User mode\">\n{}    </SigningScenario>\n",
        refs(&user)
    );
    xml.push_str("  </SigningScenarios>\n  <UpdatePolicySigners />\n  <CiSigners />\n  <HvciOptions>0</HvciOptions>\n");
    let _ = writeln!(xml, "  <BasePolicyID>{policy_id}</BasePolicyID>\n  <PolicyID>{policy_id}</PolicyID>");
    xml.push_str("</SiPolicy>\n");
    (vec![OutputFile { name: "appcontrol.xml".into(), bytes: xml.into_bytes() }], entries)
}

/// The file rules of one item: (ID, element) pairs, and approximations.
/// File rules as (ID, element) pairs, and the approximations they bring.
type FileRules = (Vec<(String, String)>, Vec<String>);

fn file_rules(item: &Item<'_>, numbered: usize) -> Result<FileRules, String> {
    let win = analyse(item, ENGINE)?;
    let mut how = win.approximations.clone();
    let (element, prefix) = if item.deny { ("Deny", "ID_DENY_R") } else { ("Allow", "ID_ALLOW_R") };
    let name = escape(item.source.label()).into_owned();
    let mut out = Vec::new();
    let mut next = |attributes: String| {
        let id = format!("{prefix}_{}", numbered + out.len() + 1);
        let xml = format!("    <{element} ID=\"{id}\" FriendlyName=\"{name}\" {attributes} />\n");
        out.push((id, xml));
    };
    if !item.except.is_empty() {
        if item.deny {
            how.push(
                "the application's exclusions are left out (App Control rules have no exceptions), so it denies more"
                    .into(),
            );
        } else {
            return Err(format!(
                "its application excludes files, and {ENGINE} rules have no exceptions (an exclusion as a Deny rule \
                 would also deny what other policies permit)"
            ));
        }
    }
    match &win.shape {
        Shape::Hashes { authenticode256, authenticode1, flat256 } => {
            if authenticode256.is_empty() && authenticode1.is_empty() {
                return Err(format!(
                    "{ENGINE} {AUTHENTICODE_ONLY}{}",
                    if flat256.is_empty() { "" } else { " (App Control has no flat-hash rule for scripts either)" }
                ));
            }
            if !flat256.is_empty() {
                how.push(format!("its flat SHA-256 hashes are left out: {ENGINE} {AUTHENTICODE_ONLY}"));
            }
            for d in authenticode256 {
                next(format!("Hash=\"{}\"", hex(d).to_uppercase()));
            }
            for d in authenticode1 {
                next(format!("Hash=\"{}\"", hex(d).to_uppercase()));
            }
        }
        Shape::Publisher { publisher, product, binary, low, high } => {
            if publisher.is_some() {
                return Err(format!(
                    "{ENGINE} names a signer by the TBS hash of a certificate in its chain, which a signer pattern does \
                     not carry; export from the file itself (New-CIPolicyRule -Level FilePublisher) or use AppLocker"
                ));
            }
            let mut attributes = Vec::new();
            if let Some(b) = binary {
                attributes.push(format!("FileName=\"{}\"", escape(b)));
            }
            if let Some(p) = product {
                attributes.push(format!("ProductName=\"{}\"", escape(p)));
            }
            if attributes.is_empty() {
                return Err(format!("{ENGINE} needs a file name or product for a rule by version"));
            }
            if let Some(v) = low {
                attributes.push(format!("MinimumFileVersion=\"{v}\""));
            }
            match high {
                Some(v) if item.deny => attributes.push(format!("MaximumFileVersion=\"{v}\"")),
                Some(_) => {
                    return Err(format!(
                        "{ENGINE} allows by minimum version only; without the maximum the rule would allow newer versions"
                    ));
                }
                None => {}
            }
            how.retain(|h| !h.contains("signed files only"));
            next(attributes.join(" "));
        }
        Shape::Path(p) => {
            if item.deny {
                return Err(format!("{ENGINE} writes path rules as Allow rules only"));
            }
            next(format!("FilePath=\"{}\"", escape(p)));
        }
        Shape::Everything => next("FileName=\"*\"".into()),
    }
    Ok((out, how))
}
