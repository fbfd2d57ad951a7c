//! What every exporter asks of a rule: its criteria, its hashes by kind, its version bounds,
//! and whether it is for the engine's operating system at all.

use portcullis_hashlist::Hash;
use portcullis_policy::{Os, Rule, TextPattern, Version, VersionRange};

/// A rule in a few words, for the report.
pub(crate) fn describe(rule: &Rule) -> String {
    let mut parts = Vec::new();
    let count = |n: usize, what: &str| if n == 1 { what.to_owned() } else { format!("{n} {what}es") };
    let flat = rule.hashes.flat.len();
    let authenticode = rule.hashes.authenticode.len();
    if flat > 0 {
        parts.push(count(flat, "flat hash"));
    }
    if authenticode > 0 {
        parts.push(count(authenticode, "Authenticode hash"));
    }
    let mut text = |name: &str, p: Option<&TextPattern>| {
        if let Some(p) = p {
            parts.push(format!("{name} {:?}", p.as_str()));
        }
    };
    text("original_filename", rule.original_filename.as_ref());
    text("product_name", rule.product_name.as_ref());
    text("company_name", rule.company_name.as_ref());
    text("signing_id", rule.signing_id.as_ref());
    text("file_name", rule.file_name.as_ref());
    text("package", rule.package.as_ref());
    text("user", rule.user.as_ref());
    if let Some(s) = &rule.signer {
        text("signer subject", s.subject.as_ref());
        text("signer issuer", s.issuer.as_ref());
        if s.cert_sha256.is_some() {
            parts.push("signer certificate".into());
        }
    }
    if let Some(v) = &rule.version {
        parts.push(format!("version {}", range_text(v)));
    }
    if let Some(p) = &rule.path {
        parts.push(format!("path {:?}", p.as_str()));
    }
    if let Some(p) = &rule.parent_process {
        parts.push(format!("parent {:?}", p.as_str()));
    }
    if let Some(k) = rule.kind {
        parts.push(format!("kind {}", k.name()));
    }
    if let Some(o) = rule.os {
        parts.push(format!("os {}", o.name()));
    }
    if parts.is_empty() { "every file".into() } else { parts.join(", ") }
}

fn range_text(v: &VersionRange) -> String {
    let end = |b: Option<portcullis_policy::Bound>, open: &str, closed: &str| match b {
        Some(b) => format!("{}{}", if b.inclusive { closed } else { open }, b.version),
        None => String::new(),
    };
    match (v.min, v.max) {
        (Some(a), Some(b)) if a == b => format!("={}", a.version),
        _ => [end(v.min, ">", ">="), end(v.max, "<", "<=")]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(","),
    }
}

/// Why a rule is not for `os` (an engine of that system never sees its files), if it is not.
pub(crate) fn foreign(rule: &Rule, os: Os, engine: &str) -> Option<String> {
    if let Some(o) = rule.os.filter(|o| *o != os) {
        return Some(format!("a rule for {} files; {engine} runs on {}", o.name(), os.name()));
    }
    if let Some(p) = &rule.signing_id
        && os != Os::MacOs
    {
        return Some(format!(
            "a macOS program's signing ID ({}); {engine} runs on {}, whose programs have none",
            p.as_str(),
            os.name()
        ));
    }
    if let Some(p) = &rule.package
        && os != Os::Linux
    {
        return Some(format!(
            "an installed Linux package ({}); {engine} runs on {}, which has no package database it reads",
            p.as_str(),
            os.name()
        ));
    }
    None
}

/// The criteria a rule uses that are not in `supported`, by their policy-file names.
pub(crate) fn unsupported(rule: &Rule, supported: &[&str]) -> Vec<&'static str> {
    let mut present: Vec<&'static str> = Vec::new();
    let mut has = |on: bool, name: &'static str| {
        if on {
            present.push(name);
        }
    };
    has(!rule.hashes.flat.is_empty(), "flat hash");
    has(!rule.hashes.authenticode.is_empty(), "authenticode hash");
    has(rule.path.is_some(), "path");
    has(rule.file_name.is_some(), "file_name");
    has(rule.original_filename.is_some(), "original_filename");
    has(rule.product_name.is_some(), "product_name");
    has(rule.company_name.is_some(), "company_name");
    has(rule.signing_id.is_some(), "signing_id");
    has(rule.version.is_some(), "version");
    has(rule.package.is_some(), "package");
    has(rule.parent_process.is_some(), "parent_process");
    has(rule.user.is_some(), "user");
    if let Some(s) = &rule.signer {
        has(s.subject.is_some(), "signer subject");
        has(s.issuer.is_some(), "signer issuer");
        has(s.cert_sha256.is_some(), "signer certificate");
    }
    present.retain(|p| !supported.contains(p));
    present
}

/// The rule's flat SHA-256 hashes.
pub(crate) fn flat_sha256(rule: &Rule) -> Vec<[u8; 32]> {
    sha256s(rule.hashes.flat.iter())
}

/// The rule's Authenticode SHA-256 digests.
pub(crate) fn authenticode_sha256(rule: &Rule) -> Vec<[u8; 32]> {
    sha256s(rule.hashes.authenticode.iter())
}

/// The rule's Authenticode SHA-1 digests.
pub(crate) fn authenticode_sha1(rule: &Rule) -> Vec<[u8; 20]> {
    rule.hashes
        .authenticode
        .iter()
        .filter_map(|h| match h {
            Hash::Sha1(d) => Some(*d),
            _ => None,
        })
        .collect()
}

/// How many flat hashes are MD5 or SHA-1 (no engine here matches files by them).
pub(crate) fn flat_weak(rule: &Rule) -> usize {
    rule.hashes.flat.iter().filter(|h| !matches!(h, Hash::Sha256(_))).count()
}

fn sha256s<'a>(hashes: impl Iterator<Item = &'a Hash>) -> Vec<[u8; 32]> {
    hashes
        .filter_map(|h| match h {
            Hash::Sha256(d) => Some(*d),
            _ => None,
        })
        .collect()
}

/// Lower-case hexadecimal.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The text a pattern stands for when it is plain text; `None` for a glob.
pub(crate) fn literal(p: &TextPattern) -> Option<&str> {
    p.is_literal().then(|| p.as_str())
}

/// Whether a pattern matches anything (`*`).
pub(crate) fn is_any(p: &TextPattern) -> bool {
    p.as_str().chars().all(|c| c == '*') && !p.as_str().is_empty()
}

/// The lowest version a range holds, as an inclusive four-part version (versions are whole
/// numbers, so an exclusive bound is the next one).
pub(crate) fn lowest(v: &VersionRange) -> Option<Version> {
    let b = v.min?;
    if b.inclusive { Some(b.version) } else { step(b.version, true) }
}

/// The highest version a range holds, inclusive.
pub(crate) fn highest(v: &VersionRange) -> Option<Version> {
    let b = v.max?;
    if b.inclusive { Some(b.version) } else { step(b.version, false) }
}

/// The next (or previous) four-part version; `None` past either end.
fn step(v: Version, up: bool) -> Option<Version> {
    let value = v.0.iter().fold(0u64, |acc, p| (acc << 16) | u64::from(*p));
    let value = if up { value.checked_add(1)? } else { value.checked_sub(1)? };
    let part = |i: u32| ((value >> (16 * (3 - i))) & 0xffff) as u16;
    Some(Version([part(0), part(1), part(2), part(3)]))
}

/// Why a flat hash cannot stand for a Windows program in an engine that hashes PE and MSI
/// files by their Authenticode digest, and what to use instead.
pub(crate) const AUTHENTICODE_ONLY: &str = "hashes Windows programs, libraries and installers by their Authenticode \
     digest, which leaves out the signature's certificate table — where a payload can hide: the trojanized 3CX \
     d3dcompiler_47.dll keeps the Authenticode digest of Microsoft's genuine file, so a rule by that digest would \
     block (or allow) both. A flat SHA-256 cannot be written for these files; the Santa and fapolicyd exports, and \
     Portcullis's own agent, match the flat hash";

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn exclusive_version_bounds_become_the_next_whole_version() {
        let r = VersionRange::from_str(">18.12.407,<18.12.416").unwrap();
        assert_eq!(lowest(&r), Some(Version([18, 12, 407, 1])));
        assert_eq!(highest(&r), Some(Version([18, 12, 415, 65535])));
        let r = VersionRange::from_str(">=1.0").unwrap();
        assert_eq!((lowest(&r), highest(&r)), (Some(Version([1, 0, 0, 0])), None));
        let r = VersionRange::from_str("<0.0.0.0").unwrap();
        assert_eq!(highest(&r), None, "nothing lies below 0.0.0.0");
        let r = VersionRange::from_str(">65535.65535.65535.65535").unwrap();
        assert_eq!(lowest(&r), None, "nothing lies above the top");
    }
}
