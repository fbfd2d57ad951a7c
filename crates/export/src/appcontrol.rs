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
use portcullis_policy::{Status, Version};
use quick_xml::escape::escape;
use std::fmt::Write as _;

const ENGINE: &str = "App Control";

/// Windows' platform GUID, the same in every policy.
pub(crate) const PLATFORM_ID: uuid::Uuid = uuid::uuid!("2E07F7E4-194C-4D20-B7C9-6F44A6C5A234");

/// One file rule of a SiPolicy: what both the XML and the binary form are written from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct CiRule {
    pub(crate) deny: bool,
    pub(crate) id: String,
    pub(crate) friendly: String,
    pub(crate) file_name: Option<String>,
    pub(crate) product_name: Option<String>,
    pub(crate) min: Option<Version>,
    pub(crate) max: Option<Version>,
    pub(crate) hash: Option<Vec<u8>>,
    pub(crate) file_path: Option<String>,
}

/// A base policy for the user-mode (12) and kernel (131) signing scenarios.
#[derive(Clone, Debug)]
pub(crate) struct CiPolicy {
    pub(crate) name: String,
    pub(crate) policy_id: uuid::Uuid,
    pub(crate) options: Vec<&'static str>,
    pub(crate) rules: Vec<CiRule>,
    /// Indices into `rules` each scenario references.
    pub(crate) kernel: Vec<usize>,
    pub(crate) user: Vec<usize>,
}

pub(crate) fn export(plan: &Plan<'_>) -> (Vec<OutputFile>, Vec<Entry>) {
    let mut entries = Vec::new();
    let mut rules: Vec<CiRule> = Vec::new();
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
            Ok((made, mut how)) => {
                rules.extend(made);
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
                entries.push(item.entry(Outcome::of(to, &how)));
            }
            Err(why) => entries.push(item.entry(Outcome::NotExpressible { why })),
        }
        if !item.deny && permit_before.is_none() {
            permit_before = Some(format!("policy {:?}", item.source.name));
        }
    }
    let allow_all = !plan.enforcing() && !audit;
    let user_rules = rules.len();
    if allow_all {
        for (id, what) in [("ID_ALLOW_A_1", "kernel drivers"), ("ID_ALLOW_A_2", "user-mode files")] {
            rules.push(CiRule {
                id: id.into(),
                friendly: format!("Allow all {what} (Portcullis Monitor mode)"),
                file_name: Some("*".into()),
                ..CiRule::default()
            });
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
    let mut options = vec!["Enabled:Unsigned System Integrity Policy", "Enabled:UMCI"];
    if audit {
        options.push("Enabled:Audit Mode");
    }
    let mut user: Vec<usize> = (0..user_rules).collect();
    let kernel = if allow_all {
        user.push(user_rules + 1);
        vec![user_rules]
    } else {
        Vec::new()
    };
    let policy = CiPolicy {
        name: format!("Portcullis: {}", plan.title()),
        policy_id: uuid::Uuid::new_v5(
            &uuid::Uuid::NAMESPACE_URL,
            format!("portcullis:appcontrol:{}", plan.title()).as_bytes(),
        ),
        options,
        rules,
        kernel,
        user,
    };
    let binary = crate::cip::write(&policy);
    let id = policy.policy_id.hyphenated().to_string().to_uppercase();
    let files = vec![
        OutputFile { name: "appcontrol.xml".into(), bytes: xml(&policy).into_bytes() },
        OutputFile { name: format!("{{{id}}}.cip"), bytes: binary },
    ];
    (files, entries)
}

/// The SiPolicy XML of `policy`.
fn xml(policy: &CiPolicy) -> String {
    let guid = format!("{{{}}}", policy.policy_id.hyphenated().to_string().to_uppercase());
    let platform = format!("{{{}}}", PLATFORM_ID.hyphenated().to_string().to_uppercase());
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n");
    let _ = writeln!(
        xml,
        "<SiPolicy xmlns=\"urn:schemas-microsoft-com:sipolicy\" PolicyType=\"Base Policy\" FriendlyName=\"{}\">",
        escape(&policy.name)
    );
    xml.push_str("  <VersionEx>10.0.0.0</VersionEx>\n");
    let _ = writeln!(xml, "  <PlatformID>{platform}</PlatformID>");
    xml.push_str("  <Rules>\n");
    for o in &policy.options {
        let _ = writeln!(xml, "    <Rule>\n      <Option>{o}</Option>\n    </Rule>");
    }
    xml.push_str("  </Rules>\n  <EKUs />\n");
    if policy.rules.is_empty() {
        xml.push_str("  <FileRules />\n");
    } else {
        xml.push_str("  <FileRules>\n");
        for r in &policy.rules {
            let friendly: String = r.friendly.chars().filter(|c| !c.is_control()).collect();
            let mut attributes = vec![format!("ID=\"{}\"", r.id), format!("FriendlyName=\"{}\"", escape(&friendly))];
            if let Some(v) = &r.file_name {
                attributes.push(format!("FileName=\"{}\"", escape(v)));
            }
            if let Some(v) = &r.product_name {
                attributes.push(format!("ProductName=\"{}\"", escape(v)));
            }
            if let Some(v) = r.min {
                attributes.push(format!("MinimumFileVersion=\"{v}\""));
            }
            if let Some(v) = r.max {
                attributes.push(format!("MaximumFileVersion=\"{v}\""));
            }
            if let Some(h) = &r.hash {
                attributes.push(format!("Hash=\"{}\"", hex(h).to_uppercase()));
            }
            if let Some(v) = &r.file_path {
                attributes.push(format!("FilePath=\"{}\"", escape(v)));
            }
            let _ = writeln!(xml, "    <{} {} />", if r.deny { "Deny" } else { "Allow" }, attributes.join(" "));
        }
        xml.push_str("  </FileRules>\n");
    }
    xml.push_str("  <Signers />\n  <SigningScenarios>\n");
    let refs = |ids: &[usize]| -> String {
        if ids.is_empty() {
            return "      <ProductSigners />\n".into();
        }
        let mut s = String::from("      <ProductSigners>\n        <FileRulesRef>\n");
        for i in ids {
            let _ = writeln!(s, "          <FileRuleRef RuleID=\"{}\" />", policy.rules[*i].id);
        }
        s.push_str("        </FileRulesRef>\n      </ProductSigners>\n");
        s
    };
    let _ = write!(
        xml,
        "    <SigningScenario Value=\"131\" ID=\"ID_SIGNINGSCENARIO_DRIVERS_1\" FriendlyName=\"Kernel mode\">\n{}    </SigningScenario>\n",
        refs(&policy.kernel)
    );
    let _ = write!(
        xml,
        "    <SigningScenario Value=\"12\" ID=\"ID_SIGNINGSCENARIO_WINDOWS\" FriendlyName=\"User mode\">\n{}    </SigningScenario>\n",
        refs(&policy.user)
    );
    xml.push_str("  </SigningScenarios>\n  <UpdatePolicySigners />\n  <CiSigners />\n  <HvciOptions>0</HvciOptions>\n");
    let _ = writeln!(xml, "  <BasePolicyID>{guid}</BasePolicyID>\n  <PolicyID>{guid}</PolicyID>");
    xml.push_str("</SiPolicy>\n");
    xml
}

/// File rules, and the approximations they bring.
type FileRules = (Vec<CiRule>, Vec<String>);

fn file_rules(item: &Item<'_>, numbered: usize) -> Result<FileRules, String> {
    let win = analyse(item, ENGINE)?;
    let mut how = win.approximations.clone();
    let prefix = if item.deny { "ID_DENY_R" } else { "ID_ALLOW_R" };
    let friendly = item.source.label();
    let mut out: Vec<CiRule> = Vec::new();
    let mut next = |rule: CiRule| {
        let id = format!("{prefix}_{}", numbered + out.len() + 1);
        out.push(CiRule { deny: item.deny, id, friendly: friendly.clone(), ..rule });
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
                next(CiRule { hash: Some(d.to_vec()), ..CiRule::default() });
            }
            for d in authenticode1 {
                next(CiRule { hash: Some(d.to_vec()), ..CiRule::default() });
            }
        }
        Shape::Publisher { publisher, product, binary, low, high } => {
            if publisher.is_some() {
                return Err(format!(
                    "{ENGINE} names a signer by the TBS hash of a certificate in its chain, which a signer pattern does \
                     not carry; export from the file itself (New-CIPolicyRule -Level FilePublisher) or use AppLocker"
                ));
            }
            if binary.is_none() && product.is_none() {
                return Err(format!("{ENGINE} needs a file name or product for a rule by version"));
            }
            let mut rule =
                CiRule { file_name: binary.clone(), product_name: product.clone(), min: *low, ..CiRule::default() };
            match high {
                // On a deny, App Control reads MinimumFileVersion as the highest version it
                // denies (Microsoft's block rules write 65535.65535.65535.65535 for "every
                // version"): every version up to the range's top is denied.
                _ if item.deny => {
                    rule.min = Some(high.unwrap_or(Version([u16::MAX; 4])));
                    if low.is_some() || high.is_none() {
                        how.push(format!(
                            "{ENGINE} denies every version up to {} (its deny rules have no lower bound): older \
                             versions are denied too",
                            high.map_or("the highest".to_owned(), |v| v.to_string())
                        ));
                    }
                }
                Some(_) => {
                    return Err(format!(
                        "{ENGINE} allows by minimum version only; without the maximum the rule would allow newer versions"
                    ));
                }
                None => {}
            }
            how.retain(|h| !h.contains("signed files only"));
            next(rule);
        }
        Shape::Path(p) => {
            if item.deny {
                return Err(format!("{ENGINE} writes path rules as Allow rules only"));
            }
            next(CiRule { file_path: Some(p.clone()), ..CiRule::default() });
        }
        Shape::Everything => next(CiRule { file_name: Some("*".into()), ..CiRule::default() }),
    }
    Ok((out, how))
}
