//! fapolicyd rules (`rules.d`), in the syntax Debian 12's fapolicyd 1.1.7 reads (RHEL's 1.3
//! reads it too): `decision perm=… subject : object`, first match wins — Portcullis's own
//! order, kept as it is.

use crate::OutputFile;
use crate::plan::{Item, Plan};
use crate::report::{Entry, Outcome};
use crate::rules::{flat_sha256, flat_weak, foreign, hex, unsupported};
use portcullis_policy::{Os, Status};
use std::fmt::Write as _;

const ENGINE: &str = "fapolicyd";

/// The `rules.d` file the export writes (fagenrules joins them in name order).
pub(crate) const RULES_FILE: &str = "rules.d/40-portcullis.rules";

pub(crate) fn export(plan: &Plan<'_>) -> (Vec<OutputFile>, Vec<Entry>) {
    let mut entries = Vec::new();
    let mut text = String::new();
    let _ = writeln!(text, "# Portcullis export for {}", one_line(&plan.title()));
    let _ = writeln!(text, "# Rules are tried in order; the first that matches decides (as in Portcullis).");
    for item in &plan.items {
        if item.status == Status::Monitor {
            entries.push(item.entry(Outcome::NotExpressible {
                why: format!("it records only (Monitor status); {ENGINE} has no rule that only records"),
            }));
            continue;
        }
        match lines(item) {
            Ok((lines, how)) => {
                let _ = writeln!(text, "# {}", one_line(&item.source.label()));
                for l in &lines {
                    let _ = writeln!(text, "{l}");
                }
                let to = format!("{} rule(s)", lines.len());
                entries.push(item.entry(Outcome::of(to, &how)));
            }
            Err(why) => entries.push(item.entry(Outcome::NotExpressible { why })),
        }
    }
    let _ = writeln!(text, "# What no rule decides ({} mode)", plan.mode.name());
    if plan.enforcing() {
        text.push_str("deny_audit perm=execute all : all\n");
        text.push_str("deny_audit perm=open all : ftype=application/x-sharedlib\n");
        text.push_str("allow perm=open all : all\n");
        entries.push(
            plan.mode_entry(Outcome::Approximated {
                to: "programs and shared libraries no rule allows are denied (and audited); other files open".into(),
                how: "a script an interpreter opens is allowed, as in Portcullis without script control; with script \
                  control on, add fapolicyd rules by ftype for the interpreters"
                    .into(),
            }),
        );
    } else {
        text.push_str("allow_audit perm=execute all : all\n");
        text.push_str("allow perm=any all : all\n");
        entries.push(plan.mode_entry(Outcome::Exported {
            to: "everything no rule denies runs; programs are audited, as Portcullis records them".into(),
        }));
    }
    (vec![OutputFile { name: RULES_FILE.into(), bytes: text.into_bytes() }], entries)
}

fn one_line(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

/// A value fapolicyd's rule parser reads whole: no spaces, commas, colons or `=`.
fn plain(value: &str) -> bool {
    !value.is_empty()
        && !value.chars().any(|c| c.is_whitespace() || c.is_control() || matches!(c, ',' | ':' | '=' | '%'))
}

/// The rule lines of one item, and approximations.
fn lines(item: &Item<'_>) -> Result<(Vec<String>, Vec<String>), String> {
    let rule = item.rule;
    if let Some(why) = foreign(rule, Os::Linux, ENGINE) {
        return Err(why);
    }
    let missing = unsupported(rule, &["flat hash", "path", "package", "parent_process"]);
    if !missing.is_empty() {
        return Err(format!(
            "{ENGINE} has no condition on {} (Linux programs carry no signer or version resources it reads); without it \
             the rule would {} more files",
            missing.join(", "),
            if item.deny { "deny" } else { "allow" }
        ));
    }
    let mut how = Vec::new();
    if !item.except.is_empty() {
        if item.deny {
            how.push("the application's exclusions are left out, so it denies more".into());
        } else {
            return Err(format!(
                "its application excludes files, and {ENGINE} rules cannot skip to the next rule for them"
            ));
        }
    }
    let decision = if item.deny { "deny_audit" } else { "allow" };
    if let Some(kind) = rule.kind {
        how.push(format!(
            "the rule was for {} files; fapolicyd's rule covers every kind (perm=any), so it {} more",
            kind.name(),
            if item.deny { "denies" } else { "allows" }
        ));
    }
    if let Some(profile) = item.ringfence {
        how.push(format!("allowed without its ringfence {profile:?}: {ENGINE} cannot limit an allowed program"));
    }
    let mut subject = "all".to_owned();
    if let Some(parent) = &rule.parent_process {
        if !parent.as_str().starts_with('/') || parent.as_str().contains(['*', '?', '[']) || !plain(parent.as_str()) {
            return Err(format!(
                "{ENGINE} names a subject's program by its exact path; {:?} is a pattern",
                parent.as_str()
            ));
        }
        subject = format!("exe={}", parent.as_str());
    }
    let mut objects: Vec<String> = Vec::new();
    if let Some(p) = &rule.path {
        let p = p.as_str();
        if let Some(dir) = p.strip_suffix("/**").filter(|d| !d.contains(['*', '?', '[']) && plain(d)) {
            objects.push(format!("dir={dir}/"));
        } else if !p.contains(['*', '?', '[']) && plain(p) && p.starts_with('/') {
            objects.push(format!("path={p}"));
        } else {
            return Err(format!(
                "{ENGINE} matches an exact path or a whole directory (dir/**); {p:?} is another pattern, or has a space, \
                 comma, colon or '=' its rule syntax cannot hold"
            ));
        }
    }
    if let Some(package) = &rule.package {
        if !matches!(package.as_str(), "dpkg:*" | "rpm:*" | "*") {
            return Err(format!(
                "{ENGINE} trusts every installed package or none (trust=1); one package ({}) cannot be named",
                package.as_str()
            ));
        }
        objects.push("trust=1".into());
        how.push(format!(
            "{ENGINE}'s trust=1 is every file its rpm or deb backend lists; set integrity = sha256 in fapolicyd.conf so \
             that a changed file is not trusted, as Portcullis verifies it"
        ));
    }
    let hashes = flat_sha256(rule);
    if flat_weak(rule) > 0 {
        if hashes.is_empty() {
            return Err(format!("{ENGINE} matches files by SHA-256 only; this rule lists MD5 or SHA-1 hashes"));
        }
        how.push(format!("{} MD5/SHA-1 hash(es) left out: {ENGINE} matches SHA-256 only", flat_weak(rule)));
    }
    if !rule.hashes.authenticode.is_empty() {
        how.push("its Authenticode digests are left out (they are for Windows files)".into());
    }
    let mut lines = Vec::new();
    let base = if objects.is_empty() { "all".to_owned() } else { objects.join(" ") };
    if hashes.is_empty() {
        if objects.is_empty() && rule.parent_process.is_none() && !rule.hashes.authenticode.is_empty() {
            return Err("it lists Authenticode digests only, which are for Windows files".into());
        }
        lines.push(format!("{decision} perm=any {subject} : {base}"));
    } else {
        let extra = if objects.is_empty() { String::new() } else { format!(" {base}") };
        for h in hashes {
            lines.push(format!("{decision} perm=any {subject} :{extra} sha256hash={}", hex(&h)));
        }
    }
    Ok((lines, how))
}
