//! Built-in applications: vendor-maintained definitions that ship inside the binary and are
//! updated with it. Policies refer to them by name; they are read-only.
//!
//! `3CX Desktop App [Reported] (Built-In)` is generated from `data/3cx-iocs.csv`, the
//! published indicators of the compromised 3CX DesktopApp builds 18.12.407 and 18.12.416
//! (and the macOS 18.11.1213 build), one rule per indicator row so that every hash keeps the
//! file it names and the sources that published it. The Windows builds are also matched by
//! what the indicators say about them beyond their hashes: `3CXDesktopApp.exe` (its
//! OriginalFilename) and the MSI product at exactly the reported versions, so that a
//! re-signed or re-packed copy of a reported build is still caught while later, clean
//! builds of the same application are not.
//!
//! ```
//! let apps = portcullis_catalog::builtin_applications();
//! let reported = apps.iter().find(|a| a.name == portcullis_catalog::THREECX_REPORTED).unwrap();
//! assert!(reported.builtin);
//! assert!(reported.rules.iter().any(|r| r.note.as_deref().is_some_and(|n| n.contains("ffmpeg.dll"))));
//! ```

use portcullis_hashlist::Hash;
use portcullis_policy::{Application, FileKind, Os, Rule, TextPattern, VersionRange};
use std::str::FromStr;

/// Name of the built-in application holding the reported 3CX indicators.
pub const THREECX_REPORTED: &str = "3CX Desktop App [Reported] (Built-In)";

/// The indicator table the 3CX application is generated from (columns: sha256, sha1, md5,
/// file_name, version, os, kind, source).
pub const THREECX_IOCS_CSV: &str = include_str!("../data/3cx-iocs.csv");

/// Every built-in application, made once per process (the indicator table is parsed the
/// first time it is asked for).
pub fn builtin_applications() -> &'static [Application] {
    static BUILTINS: std::sync::LazyLock<Vec<Application>> = std::sync::LazyLock::new(|| {
        let reported = threecx_reported();
        let vendor = threecx_vendor(&reported);
        vec![reported, vendor, distribution_packages()]
    });
    &BUILTINS
}

/// Name of the built-in application for 3CX's own signed builds, except the reported ones.
pub const THREECX_VENDOR: &str = "3CX Desktop App (Built-In)";

/// 3CX's signed builds on each OS — the Windows Authenticode signer, the macOS Developer ID
/// (Team ID 33CF4654HL), the Linux package — *except* every file of the [Reported]
/// application: the ThreatLocker workflow (permit the built-in, deny "[Reported]" above it)
/// with nothing made by hand, and safe even without the deny above it.
fn threecx_vendor(reported: &Application) -> Application {
    let signer = |subject: &str| portcullis_policy::SignerCriterion {
        subject: Some(TextPattern::new(subject).expect("a valid pattern")),
        must_verify: true,
        ..Default::default()
    };
    // The CN exactly: last in the subject, or followed by the next attribute ("3CX Ltd
    // Holdings" is someone else).
    let windows = |subject: &str| Rule {
        signer: Some(signer(subject)),
        os: Some(Os::Windows),
        note: Some("3CX's Authenticode-signed Windows builds (signer CN=3CX Ltd, verified)".into()),
        ..Rule::default()
    };
    let macos = Rule {
        signer: Some(signer("*Developer ID Application: 3CX Ltd (33CF4654HL)*")),
        os: Some(Os::MacOs),
        note: Some("3CX's Developer ID-signed macOS builds (Team ID 33CF4654HL, verified)".into()),
        ..Rule::default()
    };
    let linux = Rule {
        package: Some(TextPattern::new("dpkg:3cxdesktopapp").expect("a valid pattern")),
        note: Some("the installed, unchanged files of the 3cxdesktopapp Debian package".into()),
        ..Rule::default()
    };
    Application {
        name: THREECX_VENDOR.to_string(),
        description: Some(format!(
            "3CX Ltd's signed builds of the 3CX Desktop App on Windows, macOS and Linux, except every file of \
             {THREECX_REPORTED:?} (the compromised 18.12.407/18.12.416 and macOS 18.11.1213 builds). Permit it; \
             deny the reported application above it to see the reported builds denied by name."
        )),
        builtin: true,
        rules: vec![windows("*CN=3CX Ltd"), windows("*CN=3CX Ltd,*"), macos, linux],
        except: reported.rules.clone(),
    }
}

/// Name of the built-in application covering every installed distribution package.
pub const DISTRIBUTION_PACKAGES: &str = "Distribution packages (Built-In)";

/// Every file of every package installed by the host's package manager, verified against the
/// digest the package recorded (the agent's package trust; `package = "dpkg:<name>"` names
/// one package).
fn distribution_packages() -> Application {
    let rule = Rule {
        package: Some(portcullis_policy::TextPattern::new("dpkg:*").expect("a valid pattern")),
        note: Some("any file of an installed dpkg package whose content matches the package's md5sums".into()),
        ..Rule::default()
    };
    // dpkg runs a package's maintainer scripts from its database directory; they are not in
    // md5sums. Only dpkg itself, from the host's root, may start them there (a directory
    // only root can write).
    let scripts = |dir: &str| Rule {
        path: Some(portcullis_policy::PathPattern::new(dir).expect("a valid pattern")),
        parent_process: Some(portcullis_policy::PathPattern::new("/usr/bin/dpkg").expect("a valid pattern")),
        note: Some("a package's maintainer scripts, started by dpkg".into()),
        ..Rule::default()
    };
    Application {
        name: DISTRIBUTION_PACKAGES.to_string(),
        description: Some(
            "The files of the packages installed by the host's package manager (dpkg), each trusted only while its \
             content matches the digest its package recorded: a file changed after installation is not part of it. \
             Permit it to bring a host under default deny without writing an allowlist."
                .to_string(),
        ),
        builtin: true,
        rules: vec![rule, scripts("/var/lib/dpkg/info/*"), scripts("/var/lib/dpkg/tmp.ci/*")],
        except: vec![],
    }
}

fn threecx_reported() -> Application {
    let mut rows = parse_csv(THREECX_IOCS_CSV);
    let header = rows.remove(0);
    let col = |name: &str| {
        header.iter().position(|h| h == name).unwrap_or_else(|| panic!("3cx-iocs.csv lacks column {name}"))
    };
    let (sha256, sha1, md5) = (col("sha256"), col("sha1"), col("md5"));
    let (file_name, version, os, kind, source) =
        (col("file_name"), col("version"), col("os"), col("kind"), col("source"));
    let rules = rows
        .iter()
        .filter(|r| r.len() == header.len())
        .map(|r| {
            let mut rule = Rule::default();
            for c in [sha256, sha1, md5] {
                if let Some(h) = Hash::from_hex(r[c].trim()) {
                    rule.hashes.flat.insert(h);
                }
            }
            let version = if r[version].is_empty() { String::new() } else { format!(" {}", r[version]) };
            rule.note = Some(format!("{}{version}, {}, {}; published by: {}", r[file_name], r[os], r[kind], r[source]));
            rule
        })
        .filter(|r| !r.hashes.is_empty())
        .collect::<Vec<Rule>>();
    let mut rules = rules;
    rules.extend(reported_versions(&rows, &header));
    Application {
        name: THREECX_REPORTED.to_string(),
        description: Some(
            "Files reported as compromised in the 3CX DesktopApp supply-chain attack (March 2023): the signed MSI installers, \
             app executables and backdoored DLLs of Windows builds 18.12.407 and 18.12.416, and the macOS 18.11.1213 build. \
             Deny it above any 3CX permit policy."
                .to_string(),
        ),
        builtin: true,
        rules,
        except: vec![],
    }
}

/// One rule per reported Windows version of the app executable and of the MSI: the name the
/// indicators give the file, at exactly that version (rows whose version is inferred or
/// shared are left to their hashes).
fn reported_versions(rows: &[Vec<String>], header: &[String]) -> Vec<Rule> {
    let col = |name: &str| header.iter().position(|h| h == name).expect("checked above");
    let (file_name, version, os) = (col("file_name"), col("version"), col("os"));
    let mut seen = std::collections::BTreeSet::new();
    for r in rows.iter().filter(|r| r.len() == header.len() && r[os] == "windows") {
        let v = r[version].trim();
        let exact = !v.is_empty() && v.split('.').all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        let name = r[file_name].trim();
        if exact && (name == "3CXDesktopApp.exe" || (name.starts_with("3CXDesktopApp-") && name.ends_with(".msi"))) {
            seen.insert((name.ends_with(".msi"), v.to_owned()));
        }
    }
    seen.into_iter()
        .map(|(msi, v)| {
            let range = VersionRange::from_str(&format!("={v}")).expect("an exact dotted version");
            let pattern = |t: &str| TextPattern::new(t).expect("a plain name");
            let mut rule = Rule { version: Some(range), os: Some(Os::Windows), ..Rule::default() };
            if msi {
                rule.product_name = Some(pattern("3CX Desktop App"));
                rule.kind = Some(FileKind::Installer);
                rule.note = Some(format!("3CX Desktop App MSI {v}, a reported build (by product and version)"));
            } else {
                rule.original_filename = Some(pattern("3CXDesktopApp"));
                rule.kind = Some(FileKind::Executable);
                rule.note = Some(format!("3CXDesktopApp.exe {v}, a reported build (by OriginalFilename and version)"));
            }
            rule
        })
        .collect()
}

/// A small RFC 4180 reader: quoted fields may hold commas, newlines and doubled quotes.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => field.push(c),
        }
    }
    if !field.is_empty() || !row.is_empty() {
        row.push(field);
        rows.push(row);
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_hashlist::HashKind;

    #[test]
    fn every_published_hash_is_in_the_builtin_with_its_source() {
        let app = threecx_reported();
        let extracted = portcullis_hashlist::extract(THREECX_IOCS_CSV.as_bytes());
        let all: Vec<Hash> = app.rules.iter().flat_map(|r| r.hashes.flat.iter().copied()).collect();
        for found in &extracted.hashes {
            assert!(all.contains(&found.hash), "{} missing", found.hash);
        }
        assert_eq!(extracted.count(HashKind::Sha256), all.iter().filter(|h| h.kind() == HashKind::Sha256).count());
        let ffmpeg = Hash::from_hex("7986bbaee8940da11ce089383521ab420c443ab7b15ed42aed91fd31ce833896").unwrap();
        let rule = app.rules.iter().find(|r| r.hashes.flat.contains(&ffmpeg)).unwrap();
        let note = rule.note.as_deref().unwrap();
        assert!(note.starts_with("ffmpeg.dll 18.12.407/18.12.416 payload, windows, malicious_dll"), "{note}");
        assert!(note.contains("Volexity"), "{note}");
        assert_eq!(rule.hashes.flat.len(), 3, "sha256, sha1 and md5 of the same file stay together");
    }

    #[test]
    fn reported_windows_versions_are_matched_by_name_and_version() {
        let app = threecx_reported();
        let by_version: Vec<String> = app.rules.iter().filter(|r| r.version.is_some()).map(|r| r.summary()).collect();
        assert_eq!(by_version.len(), 4, "{by_version:?}");
        assert!(by_version.iter().any(|d| d.contains("3CXDesktopApp") && d.contains("18.12.416")), "{by_version:?}");
        assert!(by_version.iter().any(|d| d.contains("3CX Desktop App") && d.contains("18.12.407")), "{by_version:?}");
    }

    #[test]
    fn csv_quotes() {
        let rows = parse_csv("a,\"b,c\",\"say \"\"hi\"\"\"\nx,y,z");
        assert_eq!(rows, vec![vec!["a", "b,c", "say \"hi\""], vec!["x", "y", "z"]]);
    }

    #[test]
    fn shipped_indicators_match_the_shared_data() {
        // The CSV is copied into the crate so the binary builds from a clone alone; this keeps
        // the copy honest whenever the shared data set sits beside the repository.
        let shared = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/3cx-iocs.csv");
        match std::fs::read_to_string(&shared) {
            Ok(text) => assert_eq!(
                text,
                THREECX_IOCS_CSV,
                "crates/catalog/data/3cx-iocs.csv differs from {}; copy it again",
                shared.display()
            ),
            Err(e) => eprintln!("note: {} not readable ({e}); copy not compared", shared.display()),
        }
    }
}
