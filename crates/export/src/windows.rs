//! What a rule is in the terms both Windows engines share: hashes, a publisher-style rule
//! (signer, product, file name, versions), a path, or every file.

use crate::plan::Item;
use crate::rules::{
    AUTHENTICODE_ONLY, authenticode_sha1, authenticode_sha256, flat_sha256, flat_weak, foreign, highest, is_any,
    literal, lowest, unsupported,
};
use portcullis_policy::{FileKind, Os, Rule, Version};

/// The kinds of file a Windows rule is about (AppLocker's rule collections).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Collection {
    Exe,
    Dll,
    Msi,
    Script,
}

impl Collection {
    pub(crate) const ALL: [Collection; 4] = [Collection::Exe, Collection::Dll, Collection::Msi, Collection::Script];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Collection::Exe => "Exe",
            Collection::Dll => "Dll",
            Collection::Msi => "Msi",
            Collection::Script => "Script",
        }
    }
}

/// A rule's shape.
#[derive(Clone, Debug)]
pub(crate) enum Shape {
    Hashes {
        authenticode256: Vec<[u8; 32]>,
        authenticode1: Vec<[u8; 20]>,
        flat256: Vec<[u8; 32]>,
    },
    /// Signer subject (`None`: any signer), product, OriginalFilename (`None`: any), versions.
    Publisher {
        publisher: Option<String>,
        product: Option<String>,
        binary: Option<String>,
        low: Option<Version>,
        high: Option<Version>,
    },
    Path(String),
    Everything,
}

/// A rule as both Windows engines see it.
#[derive(Clone, Debug)]
pub(crate) struct WinRule {
    pub(crate) shape: Shape,
    /// Collections by the rule's kind (or all of them).
    pub(crate) collections: Vec<Collection>,
    /// Where the result differs from Portcullis's, said in the report.
    pub(crate) approximations: Vec<String>,
}

fn collections_of(kind: Option<FileKind>) -> Result<Vec<Collection>, String> {
    Ok(match kind {
        Some(FileKind::Executable) => vec![Collection::Exe],
        Some(FileKind::Library) => vec![Collection::Dll],
        Some(FileKind::Installer) => vec![Collection::Msi],
        Some(FileKind::Script) => vec![Collection::Script],
        Some(FileKind::Other) => {
            return Err("a rule for files that are not code, which Windows engines never judge".into());
        }
        None => Collection::ALL.to_vec(),
    })
}

/// A Windows path pattern, in the form Windows engines write it: `C:\…` or `%VAR%\…`, `*`
/// at either end only. `None` for anything else (a Linux path, a wildcard in the middle).
pub(crate) fn windows_path(glob: &str) -> Option<String> {
    let path = glob.replace('/', "\\").replace("**", "*");
    let drive = path.len() >= 3 && path.as_bytes()[0].is_ascii_alphabetic() && &path.as_bytes()[1..3] == b":\\";
    let variable = path.starts_with('%') && path[1..].contains('%');
    if !(drive || variable || path == "*") {
        return None;
    }
    let inner = path.trim_start_matches('*').trim_end_matches('*');
    if inner.contains(['*', '?', '[']) {
        return None;
    }
    Some(path)
}

/// The rule as Windows engines see it, or why they cannot see it at all.
pub(crate) fn analyse(item: &Item<'_>, engine: &str) -> Result<WinRule, String> {
    let rule = item.rule;
    if let Some(why) = foreign(rule, Os::Windows, engine) {
        return Err(why);
    }
    let supported =
        ["flat hash", "authenticode hash", "path", "original_filename", "product_name", "version", "signer subject"];
    let missing = unsupported(rule, &supported);
    if !missing.is_empty() {
        return Err(format!(
            "{engine} has no condition on {}; without it the rule would {} more files",
            missing.join(", "),
            if item.deny { "deny" } else { "allow" }
        ));
    }
    let mut approximations = Vec::new();
    let collections = collections_of(rule.kind)?;
    if !rule.hashes.is_empty() {
        return hashes(rule, collections, engine, approximations);
    }
    let publisher_like = rule.signer.is_some() || rule.original_filename.is_some() || rule.product_name.is_some();
    if publisher_like || rule.version.is_some() {
        if rule.path.is_some() {
            return Err(format!("{engine} cannot combine a path with a signer, product or file name in one rule"));
        }
        return publisher(rule, collections, engine, approximations);
    }
    if let Some(p) = &rule.path {
        let Some(path) = windows_path(p.as_str()) else {
            return Err(format!(
                "path {:?} is not a Windows path {engine} can write (C:\\… or %VARIABLE%\\…, with * only at either end)",
                p.as_str()
            ));
        };
        if p.as_str().replace("**", "").contains('*') {
            approximations.push(format!(
                "{engine}'s * also matches in subfolders, where Portcullis's * does not: the rule {} files in \
                 subfolders too",
                if item.deny { "denies" } else { "allows" }
            ));
        }
        return Ok(WinRule { shape: Shape::Path(path), collections, approximations });
    }
    Ok(WinRule { shape: Shape::Everything, collections, approximations })
}

fn hashes(
    rule: &Rule,
    mut collections: Vec<Collection>,
    engine: &str,
    mut approximations: Vec<String>,
) -> Result<WinRule, String> {
    let (authenticode256, authenticode1) = (authenticode_sha256(rule), authenticode_sha1(rule));
    let mut flat256 = flat_sha256(rule);
    let weak = flat_weak(rule);
    let code_kind = !matches!(rule.kind, None | Some(FileKind::Script));
    if authenticode256.is_empty() && authenticode1.is_empty() {
        if flat256.is_empty() {
            return Err(format!(
                "{engine} cannot match files by flat MD5 or SHA-1 hashes, the only hashes this rule lists"
            ));
        }
        if code_kind {
            return Err(format!("{engine} {AUTHENTICODE_ONLY}"));
        }
        collections = vec![Collection::Script];
        approximations.push(format!("its flat SHA-256 is used for scripts only: {engine} {AUTHENTICODE_ONLY}"));
    } else if !flat256.is_empty() {
        if code_kind {
            flat256.clear();
            approximations.push(format!("its flat SHA-256 hashes are left out: {engine} {AUTHENTICODE_ONLY}"));
        } else {
            approximations.push("its flat SHA-256 hashes are used for scripts only".into());
        }
    }
    if weak > 0 {
        approximations.push(format!("{weak} flat MD5/SHA-1 hash(es) left out: {engine} cannot match files by them"));
    }
    let others = unsupported(rule, &["flat hash", "authenticode hash"]);
    if !others.is_empty() {
        approximations.push(format!(
            "only the hashes are exported ({engine} cannot join a hash with {} in one rule; a hash names one file's \
             content, so little changes)",
            others.join(", ")
        ));
    }
    Ok(WinRule { shape: Shape::Hashes { authenticode256, authenticode1, flat256 }, collections, approximations })
}

fn publisher(
    rule: &Rule,
    mut collections: Vec<Collection>,
    engine: &str,
    mut approximations: Vec<String>,
) -> Result<WinRule, String> {
    let text = |name: &str, p: Option<&portcullis_policy::TextPattern>| -> Result<Option<String>, String> {
        match p {
            None => Ok(None),
            Some(p) if is_any(p) => Ok(None),
            Some(p) => literal(p).map(|t| Some(t.to_owned())).ok_or_else(|| {
                format!(
                    "{engine} matches a {name} exactly or not at all; the pattern {:?} cannot be written",
                    p.as_str()
                )
            }),
        }
    };
    let subject = rule.signer.as_ref().and_then(|s| s.subject.as_ref());
    let publisher = text("signer", subject)?;
    if rule.signer.is_none() {
        approximations.push(format!(
            "{engine}'s rules on product, file name and version match signed files only; unsigned files are not matched"
        ));
    }
    let product = text("product name", rule.product_name.as_ref())?;
    let mut binary = text("file name", rule.original_filename.as_ref())?;
    if let Some(name) = binary.as_mut().filter(|n| !n.contains('.')) {
        let extension = match rule.kind {
            Some(FileKind::Library) => "dll",
            Some(FileKind::Installer) => "msi",
            Some(FileKind::Script) => "ps1",
            _ => "exe",
        };
        approximations.push(format!(
            "OriginalFilename {name:?} is written {name}.{extension} ({engine} compares the whole name; Portcullis also \
             matches it with any extension)"
        ));
        name.push('.');
        name.push_str(extension);
    }
    if let Some(name) = &binary {
        let by_extension = match name.rsplit('.').next().map(str::to_ascii_lowercase).as_deref() {
            Some("dll" | "ocx" | "sys") => Some(Collection::Dll),
            Some("exe" | "com") => Some(Collection::Exe),
            Some("msi" | "msp" | "mst") => Some(Collection::Msi),
            Some("ps1" | "bat" | "cmd" | "vbs" | "js") => Some(Collection::Script),
            _ => None,
        };
        if let Some(c) = by_extension.filter(|c| collections.contains(c)) {
            collections = vec![c];
        }
    }
    let (low, high) = match &rule.version {
        Some(v) => {
            let (low, high) = (lowest(v), highest(v));
            if (v.min.is_some() && low.is_none()) || (v.max.is_some() && high.is_none()) {
                return Err("its version range holds no version".into());
            }
            (low, high)
        }
        None => (None, None),
    };
    Ok(WinRule { shape: Shape::Publisher { publisher, product, binary, low, high }, collections, approximations })
}
