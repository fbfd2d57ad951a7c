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

/// The `trust.d` file, when files are pinned.
pub(crate) const TRUST_FILE: &str = "trust.d/40-portcullis.trust";

/// fapolicyd reads a trust entry's path with `%4096s`.
const MAX_TRUST_PATH: usize = 4096;

/// A real file the group's policy permits, as the caller found it: pinned in `trust.d` when
/// the rule that permitted it has no fapolicyd rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustedFile {
    /// Its absolute path on the computers (as fapolicyd will see it).
    pub path: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its SHA-256.
    pub sha256: [u8; 32],
    /// The permit policy that decided.
    pub policy: String,
    /// The application whose rule matched.
    pub application: String,
    /// The rule's number in the application, from 1.
    pub rule: usize,
}

impl TrustedFile {
    fn permitted_by(&self, item: &Item<'_>) -> bool {
        item.source.kind == crate::SourceKind::Policy
            && item.source.name == self.policy
            && item.source.application.as_deref() == Some(self.application.as_str())
            && item.source.rule == Some(self.rule)
    }
}

pub(crate) fn export(plan: &Plan<'_>) -> (Vec<OutputFile>, Vec<Entry>) {
    export_with_trust(plan, &[])
}

pub(crate) fn export_with_trust(plan: &Plan<'_>, trusted: &[TrustedFile]) -> (Vec<OutputFile>, Vec<Entry>) {
    let mut entries = Vec::new();
    let mut text = String::new();
    let mut pinned: Vec<&TrustedFile> = Vec::new();
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
            Err(why) => {
                let mut files: Vec<&TrustedFile> = Vec::new();
                let mut too_long = 0usize;
                if !item.deny {
                    for f in trusted.iter().filter(|f| f.permitted_by(item)) {
                        if escape(&f.path).len() > MAX_TRUST_PATH || !f.path.starts_with('/') {
                            too_long += 1;
                        } else if !pinned.iter().chain(&files).any(|p| p.path == f.path) {
                            files.push(f);
                        }
                    }
                }
                if files.is_empty() {
                    entries.push(item.entry(Outcome::NotExpressible { why }));
                    continue;
                }
                if pinned.is_empty() {
                    // One line for every pinned file: each is one Portcullis permits, so
                    // allowing it here, above later rules, is what Portcullis does too.
                    let _ = writeln!(text, "# Files pinned in {TRUST_FILE} (path, size and SHA-256)");
                    text.push_str("allow perm=any all : trust=1\n");
                }
                let mut how = format!(
                    "{why}; so only the files given that it permits are trusted, each as it is now: another file it \
                     would permit is denied, and so is a pinned file once it changes if fapolicyd.conf has integrity = \
                     size or sha256 (set it); trust=1 also matches what fapolicyd's other trust backends (rpmdb, debdb) \
                     list: keep trust = file"
                );
                if too_long > 0 {
                    how.push_str(&format!(
                        "; {too_long} file(s) left out: a path over {MAX_TRUST_PATH} bytes, or not absolute"
                    ));
                }
                entries.push(item.entry(Outcome::Approximated {
                    to: format!("{} file(s) pinned in {TRUST_FILE}, allowed by trust=1", files.len()),
                    how,
                }));
                pinned.extend(files);
            }
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
    let mut files = vec![OutputFile { name: RULES_FILE.into(), bytes: text.into_bytes() }];
    if !pinned.is_empty() {
        files.push(OutputFile { name: TRUST_FILE.into(), bytes: trust_file(plan, &pinned).into_bytes() });
    }
    (files, entries)
}

/// A trust file as fapolicyd-cli writes it: its first line marks paths as `%XX`-escaped
/// (fapolicyd unescapes only then), one `path size sha256` line per file.
fn trust_file(plan: &Plan<'_>, pinned: &[&TrustedFile]) -> String {
    let mut text = String::from("# AUTOGENERATED FILE VERSION 2\n");
    let _ = writeln!(text, "# Portcullis export for {}: files its policy permits by a rule", one_line(&plan.title()));
    text.push_str(
        "# fapolicyd's rules cannot express, pinned by content (portcullis export fapolicyd --trust-from).\n",
    );
    text.push_str("#  FULL PATH        SIZE                             SHA256\n");
    for f in pinned {
        let _ = writeln!(text, "{} {} {}", escape(&f.path), f.size, hex(&f.sha256));
    }
    text
}

/// A path as fapolicyd's trust file holds it: whitespace, control bytes and `%` as `%XX`
/// (its reader splits on whitespace and decodes every `%XX`).
fn escape(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if c.is_ascii_whitespace() || c.is_control() || c == '%' {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                let _ = write!(out, "%{b:02X}");
            }
        } else {
            out.push(c);
        }
    }
    out
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
