//! A rule: criteria that must all hold for a file to match.

use crate::facts::{FileFacts, FileKind, Os, ProcessFacts};
use crate::pattern::{PathPattern, TextPattern};
use crate::version::VersionRange;
use portcullis_hashlist::Hash;
use std::collections::BTreeSet;
use std::fmt::Write as _;

/// The hash criterion: the file matches when any of its hashes is listed. Flat hashes are of
/// the whole file; Authenticode hashes are the PE digest that excludes the signature (the hash
/// AppLocker and WDAC use).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HashSet {
    /// Flat hashes (MD5, SHA-1 or SHA-256 of the whole file).
    pub flat: BTreeSet<Hash>,
    /// Authenticode digests (SHA-1 or SHA-256).
    pub authenticode: BTreeSet<Hash>,
}

impl HashSet {
    /// Whether no hash is listed (the criterion is then absent).
    pub fn is_empty(&self) -> bool {
        self.flat.is_empty() && self.authenticode.is_empty()
    }

    /// Number of hashes listed.
    pub fn len(&self) -> usize {
        self.flat.len() + self.authenticode.len()
    }

    fn is_subset(&self, other: &HashSet) -> bool {
        self.flat.is_subset(&other.flat) && self.authenticode.is_subset(&other.authenticode)
    }
}

/// Criteria on the file's signer.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SignerCriterion {
    /// Pattern on the leaf certificate's subject.
    pub subject: Option<TextPattern>,
    /// Pattern on the leaf certificate's issuer.
    pub issuer: Option<TextPattern>,
    /// Exact leaf certificate SHA-256 (thumbprint).
    pub cert_sha256: Option<[u8; 32]>,
    /// The signature must verify (digest, signature and chain), not merely be present.
    pub must_verify: bool,
}

/// A rule: every criterion that is present must hold. A rule with no criterion matches every
/// file (the linter warns about it).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Rule {
    /// Listed hashes; the criterion holds if any of the file's hashes is listed.
    pub hashes: HashSet,
    /// Glob on the file's full path.
    pub path: Option<PathPattern>,
    /// Pattern on the file name as found on disk.
    pub file_name: Option<TextPattern>,
    /// Pattern on the PE OriginalFilename; without an extension it also matches the name
    /// with one (`3CXDesktopApp` matches `3CXDesktopApp.exe`).
    pub original_filename: Option<TextPattern>,
    /// Pattern on the product name.
    pub product_name: Option<TextPattern>,
    /// Pattern on the company name.
    pub company_name: Option<TextPattern>,
    /// Criteria on the signer.
    pub signer: Option<SignerCriterion>,
    /// Pattern on a macOS program's signing ID (`TEAMID:com.vendor.app`, or
    /// `platform:com.apple.ls` for Apple's own), as Santa reports it from a signature macOS
    /// verified (see [`FileFacts::signing_id`]).
    pub signing_id: Option<TextPattern>,
    /// Range on the numeric file version.
    pub version: Option<VersionRange>,
    /// The operating system the file is for (the host's when the format does not say).
    pub os: Option<Os>,
    /// The kind of file (executable, library, script, installer).
    pub kind: Option<FileKind>,
    /// Pattern on the installed package the file belongs to, verified: `dpkg:openssh-server`,
    /// `rpm:bash`, `dpkg:*` (see [`FileFacts::package`]).
    pub package: Option<TextPattern>,
    /// Glob on the path of the process that starts or loads the file.
    pub parent_process: Option<PathPattern>,
    /// Pattern on the user the process runs as.
    pub user: Option<TextPattern>,
    /// Free text kept with the rule: where its hashes came from, why it exists.
    pub note: Option<String>,
}

/// One criterion that held, for the reason a person reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MatchedField {
    /// Name of the criterion as written in policy files (`sha256`, `original_filename`, …).
    pub field: &'static str,
    /// What the rule asked for.
    pub expected: String,
    /// What the file or process had.
    pub actual: String,
}

/// Whether the file's hashes hit the rule's hash criterion, found beforehand through the
/// engine's hash indexes so that rules with millions of hashes cost one lookup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct HashHit {
    pub(crate) field: &'static str,
    pub(crate) hash: Hash,
}

impl Rule {
    /// Whether the rule has no criterion at all, and so matches every file.
    pub fn is_unconditional(&self) -> bool {
        self.hashes.is_empty()
            && self.path.is_none()
            && self.file_name.is_none()
            && self.original_filename.is_none()
            && self.product_name.is_none()
            && self.company_name.is_none()
            && self.signer.is_none()
            && self.signing_id.is_none()
            && self.version.is_none()
            && self.os.is_none()
            && self.kind.is_none()
            && self.package.is_none()
            && self.parent_process.is_none()
            && self.user.is_none()
    }

    /// Whether the rule looks at the process (parent or user), so that its decision cannot be
    /// cached per file.
    pub fn depends_on_process(&self) -> bool {
        self.parent_process.is_some() || self.user.is_some()
    }

    /// Check every criterion except the hashes, whose outcome the caller passes in `hash_hit`
    /// (`None` when the rule lists hashes and none of the file's hashes is among them).
    pub(crate) fn matches(
        &self,
        file: &FileFacts,
        process: &ProcessFacts,
        host_os: Os,
        hash_hit: Option<HashHit>,
    ) -> Option<Vec<MatchedField>> {
        let mut fields = Vec::new();
        // The engine moves hash lists into its indexes and passes the lookup's outcome; a
        // rule used on its own still has its list.
        if let Some(hit) = hash_hit {
            fields.push(MatchedField { field: hit.field, expected: "listed".into(), actual: hit.hash.to_string() });
        } else if !self.hashes.is_empty() {
            return None;
        }
        if let Some(p) = &self.path {
            check(&mut fields, "path", p.as_str(), Some(file.path.as_str()), |v| p.matches(v))?;
        }
        if let Some(p) = &self.file_name {
            check(&mut fields, "file_name", p.as_str(), Some(file.file_name()), |v| p.matches(v))?;
        }
        if let Some(p) = &self.original_filename {
            check(&mut fields, "original_filename", p.as_str(), file.original_filename.as_deref(), |v| {
                p.matches_file_name(v)
            })?;
        }
        if let Some(p) = &self.product_name {
            check(&mut fields, "product_name", p.as_str(), file.product_name.as_deref(), |v| p.matches(v))?;
        }
        if let Some(p) = &self.company_name {
            check(&mut fields, "company_name", p.as_str(), file.company_name.as_deref(), |v| p.matches(v))?;
        }
        if let Some(s) = &self.signer {
            let signer = file.signer.as_ref()?;
            if let Some(p) = &s.subject {
                check(&mut fields, "signer.subject", p.as_str(), Some(&signer.subject), |v| p.matches(v))?;
            }
            if let Some(p) = &s.issuer {
                check(&mut fields, "signer.issuer", p.as_str(), Some(&signer.issuer), |v| p.matches(v))?;
            }
            if let Some(thumb) = &s.cert_sha256 {
                if thumb != &signer.cert_sha256 {
                    return None;
                }
                fields.push(MatchedField { field: "signer.cert_sha256", expected: hex(thumb), actual: hex(thumb) });
            }
            if s.must_verify {
                if !signer.verified {
                    return None;
                }
                fields.push(MatchedField { field: "signer.verified", expected: "true".into(), actual: "true".into() });
            }
        }
        if let Some(p) = &self.signing_id {
            check(&mut fields, "signing_id", p.as_str(), file.signing_id.as_deref(), |v| p.matches(v))?;
        }
        if let Some(range) = &self.version {
            let v = file.file_version?;
            if !range.contains(v) {
                return None;
            }
            fields.push(MatchedField { field: "version", expected: range.to_string(), actual: v.to_string() });
        }
        if let Some(os) = self.os {
            let actual = file.platform.unwrap_or(host_os);
            if actual != os {
                return None;
            }
            fields.push(MatchedField { field: "os", expected: os.name().into(), actual: actual.name().into() });
        }
        if let Some(kind) = self.kind {
            if file.kind != kind {
                return None;
            }
            fields.push(MatchedField { field: "kind", expected: kind.name().into(), actual: kind.name().into() });
        }
        if let Some(p) = &self.package {
            // Any of the packages the file verifiably belongs to.
            let actual = file.packages.iter().find(|v| p.matches(v)).or(file.packages.first());
            check(&mut fields, "package", p.as_str(), actual.map(String::as_str), |v| p.matches(v))?;
        }
        if let Some(p) = &self.parent_process {
            check(&mut fields, "parent_process", p.as_str(), process.parent_path.as_deref(), |v| p.matches(v))?;
        }
        if let Some(p) = &self.user {
            check(&mut fields, "user", p.as_str(), process.user.as_deref(), |v| p.matches(v))?;
        }
        Some(fields)
    }

    /// Whether every file matched by `other` is also matched by `self`. Conservative: `false`
    /// means "not proven", which keeps the linter free of false alarms.
    pub fn covers(&self, other: &Rule) -> bool {
        fn opt<T>(mine: &Option<T>, theirs: &Option<T>, covers: impl Fn(&T, &T) -> bool) -> bool {
            match (mine, theirs) {
                (None, _) => true,
                (Some(_), None) => false,
                (Some(a), Some(b)) => covers(a, b),
            }
        }
        let hashes = self.hashes.is_empty() || (!other.hashes.is_empty() && other.hashes.is_subset(&self.hashes));
        hashes
            && opt(&self.path, &other.path, PathPattern::covers)
            && opt(&self.file_name, &other.file_name, TextPattern::covers)
            && opt(&self.original_filename, &other.original_filename, TextPattern::covers)
            && opt(&self.product_name, &other.product_name, TextPattern::covers)
            && opt(&self.company_name, &other.company_name, TextPattern::covers)
            && opt(&self.signer, &other.signer, |a, b| {
                opt(&a.subject, &b.subject, TextPattern::covers)
                    && opt(&a.issuer, &b.issuer, TextPattern::covers)
                    && opt(&a.cert_sha256, &b.cert_sha256, |x, y| x == y)
                    && (!a.must_verify || b.must_verify)
            })
            && opt(&self.signing_id, &other.signing_id, TextPattern::covers)
            && opt(&self.version, &other.version, VersionRange::covers)
            && opt(&self.os, &other.os, |a, b| a == b)
            && opt(&self.kind, &other.kind, |a, b| a == b)
            && opt(&self.package, &other.package, TextPattern::covers)
            && opt(&self.parent_process, &other.parent_process, PathPattern::covers)
            && opt(&self.user, &other.user, TextPattern::covers)
    }

    /// A short description of the rule's criteria, for messages: `original_filename="3CXDesktopApp", os=windows`.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let mut add = |s: String| {
            if !out.is_empty() {
                out.push_str(", ");
            }
            out.push_str(&s);
        };
        if !self.hashes.is_empty() {
            add(format!("{} hash(es)", self.hashes.len()));
        }
        let texts: [(&str, Option<&str>); 9] = [
            ("path", self.path.as_ref().map(PathPattern::as_str)),
            ("file_name", self.file_name.as_ref().map(TextPattern::as_str)),
            ("original_filename", self.original_filename.as_ref().map(TextPattern::as_str)),
            ("product_name", self.product_name.as_ref().map(TextPattern::as_str)),
            ("company_name", self.company_name.as_ref().map(TextPattern::as_str)),
            ("signing_id", self.signing_id.as_ref().map(TextPattern::as_str)),
            ("package", self.package.as_ref().map(TextPattern::as_str)),
            ("parent_process", self.parent_process.as_ref().map(PathPattern::as_str)),
            ("user", self.user.as_ref().map(TextPattern::as_str)),
        ];
        for (name, value) in texts {
            if let Some(v) = value {
                add(format!("{name}={v:?}"));
            }
        }
        if let Some(s) = &self.signer {
            let mut d = String::from("signer(");
            if let Some(p) = &s.subject {
                let _ = write!(d, "subject={:?} ", p.as_str());
            }
            if let Some(p) = &s.issuer {
                let _ = write!(d, "issuer={:?} ", p.as_str());
            }
            if let Some(t) = &s.cert_sha256 {
                let _ = write!(d, "cert_sha256={} ", hex(t));
            }
            if s.must_verify {
                d.push_str("verified ");
            }
            add(format!("{})", d.trim_end()));
        }
        if let Some(v) = &self.version {
            add(format!("version {v}"));
        }
        if let Some(os) = self.os {
            add(format!("os={}", os.name()));
        }
        if let Some(k) = self.kind {
            add(format!("kind={}", k.name()));
        }
        if out.is_empty() {
            out.push_str("any file");
        }
        out
    }
}

fn check<'v>(
    fields: &mut Vec<MatchedField>,
    field: &'static str,
    expected: &str,
    actual: Option<&'v str>,
    matches: impl Fn(&'v str) -> bool,
) -> Option<()> {
    let actual = actual?;
    if !matches(actual) {
        return None;
    }
    fields.push(MatchedField { field, expected: expected.to_string(), actual: actual.to_string() });
    Some(())
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
