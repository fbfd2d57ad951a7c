//! dpkg's database (Debian, Ubuntu): `var/lib/dpkg/status` with its `updates/` journal
//! applied names the packages whose files are on disk (installed, or unpacked and being
//! configured); `var/lib/dpkg/info/<package>[:<arch>].md5sums` holds the MD5 of each file the
//! package shipped, as `debsums` checks them, and the status's `Conffiles:` the MD5 each
//! configuration file had at installation. `diversions` says where a file another package
//! ships really is: dash diverts `/bin/sh` to `/bin/sh.distrib`, so bash's listing of
//! `/bin/sh` describes `/bin/sh.distrib`. A package without md5sums has its `.list` read:
//! its files are listed without a digest, which says why they are not trusted.

use crate::{Digest, Manager, Package, PackageDb, PackageError};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Where dpkg keeps its database, below the root.
pub const DPKG_STATUS: &str = "var/lib/dpkg/status";
/// The per-package files, below the root.
pub const DPKG_INFO: &str = "var/lib/dpkg/info";
/// dpkg's journal: status changes not yet folded into `status` (one or more stanzas per
/// file, applied in the order of their numeric names). During an `apt` run this is where the
/// packages being unpacked and configured are.
pub const DPKG_UPDATES: &str = "var/lib/dpkg/updates";
/// dpkg's diversions: three lines each (the path, where it is diverted to, the diverting
/// package or `:` for a local diversion).
pub const DPKG_DIVERSIONS: &str = "var/lib/dpkg/diversions";

fn err(path: PathBuf, error: std::io::Error) -> PackageError {
    PackageError { path, manager: Manager::Dpkg, error: Box::new(error) }
}

/// Add the dpkg database below `root` to `db`; none there adds nothing.
pub(crate) fn load(root: &Path, db: &mut PackageDb) -> Result<(), PackageError> {
    let status_path = root.join(DPKG_STATUS);
    let status = match read_lossy(&status_path) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(err(status_path, error)),
    };
    let diversions = diversions(root)?;
    // The journal's stanzas replace the status file's for the same package and arch.
    let journal = journal(root)?;
    let mut stanzas: Vec<Paragraph<'_>> = Vec::new();
    let mut by_key: HashMap<(&str, &str), usize> = HashMap::new();
    for text in std::iter::once(status.as_str()).chain(journal.iter().map(String::as_str)) {
        for para in text.split("\n\n") {
            let Some(p) = Paragraph::parse(para) else { continue };
            let key = (p.field("Package").unwrap_or_default(), p.field("Architecture").unwrap_or_default());
            match by_key.get(&key) {
                Some(&i) => stanzas[i] = p,
                None => {
                    by_key.insert(key, stanzas.len());
                    stanzas.push(p);
                }
            }
        }
    }
    let info = root.join(DPKG_INFO);
    for p in stanzas {
        if !p.has_files() {
            continue;
        }
        let multi_arch = p.field("Multi-Arch") == Some("same");
        let arch = p.field("Architecture").unwrap_or_default();
        let name = p.field("Package").unwrap_or_default();
        let index = db.add(Package {
            name: format!("dpkg:{name}"),
            version: p.field("Version").unwrap_or_default().to_owned(),
            architecture: arch.to_owned(),
        });
        // Where a file of this package is on disk: diverted away if another package (or the
        // administrator) diverted that path.
        let place = |file: &str| -> Box<str> {
            match diversions.get(file) {
                Some((to, by)) if by != name => to.as_str().into(),
                _ => file.into(),
            }
        };
        // dpkg names the info files of a Multi-Arch: same package with its architecture.
        let stems = [format!("{name}:{arch}"), name.to_owned()];
        let stems = if multi_arch { &stems[..] } else { &stems[1..] };
        let mut listed = false;
        for stem in stems {
            match read_lossy(&info.join(format!("{stem}.md5sums"))) {
                Ok(text) => {
                    for (digest, file) in md5sums(&text) {
                        db.insert(place(&format!("/{file}")), index, digest);
                    }
                    listed = true;
                    break;
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                // That package's files are not trusted; the others are.
                Err(_) => {
                    listed = true;
                    break;
                }
            }
        }
        if !listed {
            // No md5sums at all: its files are listed without a digest, so that the reason
            // says why they are not trusted.
            for stem in stems {
                if let Ok(text) = read_lossy(&info.join(format!("{stem}.list"))) {
                    for file in text.lines().filter(|l| l.starts_with('/')) {
                        db.insert(place(file), index, Digest::Missing);
                    }
                    break;
                }
            }
        }
        for (file, digest) in p.conffiles() {
            db.insert(place(file), index, digest);
        }
    }
    Ok(())
}

/// The diversions: path → (where it is, the diverting package or `:`).
fn diversions(root: &Path) -> Result<HashMap<String, (String, String)>, PackageError> {
    let path = root.join(DPKG_DIVERSIONS);
    let text = match read_lossy(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HashMap::new()),
        Err(error) => return Err(err(path, error)),
    };
    let lines: Vec<&str> = text.lines().collect();
    Ok(lines
        .chunks_exact(3)
        .filter(|c| c[0].starts_with('/') && c[1].starts_with('/'))
        .map(|c| (c[0].to_owned(), (c[1].to_owned(), c[2].to_owned())))
        .collect())
}

/// A file's text, with bytes that are not UTF-8 replaced.
fn read_lossy(path: &Path) -> std::io::Result<String> {
    let bytes = std::fs::read(path)?;
    Ok(match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    })
}

/// The journal's entries, in dpkg's order (numeric file names; `tmp.i` is being written).
fn journal(root: &Path) -> Result<Vec<String>, PackageError> {
    let dir = root.join(DPKG_UPDATES);
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(err(dir, error)),
    };
    let mut numbered: Vec<(u64, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| Some((e.file_name().to_str()?.parse::<u64>().ok()?, e.path())))
        .collect();
    numbered.sort();
    let mut out = Vec::new();
    for (_, path) in numbered {
        match read_lossy(&path) {
            Ok(t) => out.push(t),
            // Folded into status between listing and reading.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(err(path, error)),
        }
    }
    Ok(out)
}

/// `md5sums` lines: 32 hex digits, two spaces, a path relative to the root.
fn md5sums(text: &str) -> impl Iterator<Item = (Digest, &str)> {
    text.lines().filter_map(|l| {
        let (hex, file) = l.split_once("  ")?;
        Some((Digest::Md5(crate::unhex(hex.trim())?), file.trim_start_matches('/')))
    })
}

/// One stanza of the status file.
struct Paragraph<'a> {
    text: &'a str,
}

impl<'a> Paragraph<'a> {
    fn parse(text: &'a str) -> Option<Paragraph<'a>> {
        let text = text.trim_matches('\n');
        (!text.is_empty()).then_some(Paragraph { text })
    }

    fn field(&self, name: &str) -> Option<&'a str> {
        self.text.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (!l.starts_with(' ') && k.eq_ignore_ascii_case(name)).then(|| v.trim())
        })
    }

    /// Whether the package's files are on disk: installed, or in a step of installing or
    /// upgrading (unpacked, half-configured, awaiting triggers — a package's maintainer
    /// scripts run its new programs then). Every file is still verified by its digest; a
    /// removed package (`config-files`, `not-installed`) has no files.
    fn has_files(&self) -> bool {
        let Some(status) = self.field("Status") else { return false };
        let state = status.split_whitespace().nth(2).unwrap_or_default();
        matches!(
            state,
            "installed" | "unpacked" | "half-configured" | "half-installed" | "triggers-awaited" | "triggers-pending"
        )
    }

    /// `Conffiles:` continuation lines: ` /etc/x md5 [obsolete]`.
    fn conffiles(&self) -> Vec<(&'a str, Digest)> {
        let mut out = Vec::new();
        let mut inside = false;
        for l in self.text.lines() {
            if !l.starts_with(' ') {
                inside = l.to_ascii_lowercase().starts_with("conffiles:");
                continue;
            }
            if !inside {
                continue;
            }
            let mut parts = l.split_whitespace();
            if let (Some(path), Some(hex), None) = (parts.next(), parts.next(), parts.next())
                && let Some(md5) = crate::unhex(hex)
            {
                out.push((path, Digest::Md5(md5)));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Hashes, verify};

    fn one<'a>(db: &'a PackageDb, path: &str) -> Option<crate::Listed<'a>> {
        db.lookup(path).first().copied()
    }

    fn md5(h: &[u8; 16]) -> Hashes<'_> {
        Hashes { md5: Some(h), ..Hashes::default() }
    }

    #[test]
    fn the_hosts_dpkg_database_lists_bash_under_both_of_its_names() {
        let db = PackageDb::load(Path::new("/")).unwrap();
        if db.packages().is_empty() {
            return; // not a dpkg host
        }
        assert!(db.packages().iter().any(|p| p.name == "dpkg:bash"));
        let listed = one(&db, "/usr/bin/bash").or_else(|| one(&db, "/bin/bash")).expect("bash is listed");
        assert_eq!(listed.package.name, "dpkg:bash");
        // Merged /usr: the kernel's name and dpkg's both find it.
        if std::fs::read_link("/bin").is_ok() {
            assert_eq!(one(&db, "/usr/bin/bash").unwrap().package.name, "dpkg:bash");
            assert_eq!(one(&db, "/bin/bash").unwrap().package.name, "dpkg:bash");
        }
        assert!(db.file_count() > 1000);
    }

    #[test]
    fn only_installed_packages_count_and_conffiles_and_multiarch_names_are_read() {
        let root = tempfile::tempdir().unwrap();
        let info = root.path().join(DPKG_INFO);
        std::fs::create_dir_all(&info).unwrap();
        std::fs::write(
            root.path().join(DPKG_STATUS),
            "Package: tool\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1.0\nConffiles:\n /etc/tool.conf 0123456789abcdef0123456789abcdef\n /etc/old.conf 0123456789abcdef0123456789abcdef obsolete\nDescription: x\n y\n\n\
             Package: gone\nStatus: deinstall ok config-files\nArchitecture: amd64\nVersion: 2\n\n\
             Package: libz\nStatus: install ok installed\nArchitecture: amd64\nMulti-Arch: same\nVersion: 3\n",
        )
        .unwrap();
        std::fs::write(info.join("tool.md5sums"), "ffffffffffffffffffffffffffffffff  usr/bin/tool\nbad line\n")
            .unwrap();
        std::fs::write(info.join("gone.md5sums"), "ffffffffffffffffffffffffffffffff  usr/bin/gone\n").unwrap();
        std::fs::write(info.join("libz:amd64.md5sums"), "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee  usr/lib/libz.so.1\n")
            .unwrap();
        let db = PackageDb::load(root.path()).unwrap();
        assert_eq!(db.packages().len(), 2);
        let tool = db.lookup("/usr/bin/tool");
        assert_eq!(tool[0].package.name, "dpkg:tool");
        assert_eq!(verify(&tool, md5(&[0xff; 16])).packages, ["dpkg:tool"]);
        let changed = verify(&tool, md5(&[0; 16])).note.unwrap();
        assert!(changed.contains("dpkg:tool") && changed.contains("changed since it was installed"), "{changed}");
        assert!(one(&db, "/usr/bin/gone").is_none(), "removed packages are not trusted");
        assert_eq!(one(&db, "/usr/lib/libz.so.1").unwrap().package.name, "dpkg:libz");
        assert!(one(&db, "/etc/tool.conf").is_some());
        assert!(one(&db, "/etc/old.conf").is_none(), "an obsolete conffile is not the package's any more");
        // Not merged here: /bin/tool is not /usr/bin/tool.
        assert!(one(&db, "/bin/tool").is_none());
        assert!(!db.changed(root.path()));
        assert!(PackageDb::load(&root.path().join("nothing")).unwrap().packages().is_empty());
        // dpkg's journal: a package being upgraded (unpacked, its new files on disk) is in
        // updates/ before status is rewritten; its files count, verified as always.
        let updates = root.path().join(DPKG_UPDATES);
        std::fs::create_dir_all(&updates).unwrap();
        std::fs::write(info.join("newer.md5sums"), "dddddddddddddddddddddddddddddddd  usr/bin/newer\n").unwrap();
        std::fs::write(
            updates.join("0000"),
            "Package: newer\nStatus: install ok unpacked\nArchitecture: amd64\nVersion: 1\n",
        )
        .unwrap();
        std::fs::write(updates.join("0001"), "Package: tool\nStatus: deinstall ok config-files\nArchitecture: amd64\n")
            .unwrap();
        // tmp.i is being written: not read (its package's files would count if it were).
        std::fs::write(updates.join("tmp.i"), "Package: half\nStatus: install ok installed\n").unwrap();
        std::fs::write(info.join("half.md5sums"), "cccccccccccccccccccccccccccccccc  usr/bin/half\n").unwrap();
        // Latin-1 in a description does not cost the database.
        std::fs::write(
            updates.join("0002"),
            b"Package: latin\nStatus: install ok installed\nDescription: caf\xe9\n".as_slice(),
        )
        .unwrap();
        std::fs::write(info.join("latin.md5sums"), "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb  usr/bin/latin\n").unwrap();
        assert!(db.changed(root.path()), "a journal entry is a change");
        let later = PackageDb::load(root.path()).unwrap();
        assert_eq!(one(&later, "/usr/bin/newer").unwrap().package.name, "dpkg:newer");
        assert!(one(&later, "/usr/bin/tool").is_none(), "removed in the journal");
        assert!(one(&later, "/usr/bin/half").is_none());
        assert_eq!(one(&later, "/usr/bin/latin").unwrap().package.name, "dpkg:latin");
        assert!(!later.changed(root.path()));
    }

    #[test]
    fn diverted_files_are_found_where_they_are_and_a_package_without_md5sums_says_why() {
        let root = tempfile::tempdir().unwrap();
        let info = root.path().join(DPKG_INFO);
        std::fs::create_dir_all(&info).unwrap();
        std::fs::write(
            root.path().join(DPKG_STATUS),
            "Package: shell\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1\n\n\
             Package: dash\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1\n\n\
             Package: old\nStatus: install ok installed\nArchitecture: all\nVersion: 1\n",
        )
        .unwrap();
        // Both ship /usr/bin/sh; dash diverted shell's copy to /usr/bin/sh.distrib.
        std::fs::write(info.join("shell.md5sums"), "11111111111111111111111111111111  usr/bin/sh\n").unwrap();
        std::fs::write(info.join("dash.md5sums"), "22222222222222222222222222222222  usr/bin/sh\n").unwrap();
        // An administrator's local diversion moves every package's copy.
        std::fs::write(
            root.path().join(DPKG_DIVERSIONS),
            "/usr/bin/sh\n/usr/bin/sh.distrib\ndash\n/usr/bin/ed\n/usr/local/bin/ed.orig\n:\nincomplete\n",
        )
        .unwrap();
        std::fs::write(info.join("old.list"), "/.\n/usr\n/usr/bin\n/usr/bin/ed\n").unwrap();
        let db = PackageDb::load(root.path()).unwrap();
        let sh = db.lookup("/usr/bin/sh");
        assert_eq!(sh.len(), 1, "only dash's /usr/bin/sh is there: {sh:?}");
        assert_eq!(verify(&sh, md5(&[0x22; 16])).packages, ["dpkg:dash"]);
        let distrib = db.lookup("/usr/bin/sh.distrib");
        assert_eq!(verify(&distrib, md5(&[0x11; 16])).packages, ["dpkg:shell"]);
        // Without the diversion, shell's digest would have made dash's genuine file look changed.
        assert!(verify(&sh, md5(&[0x11; 16])).note.unwrap().contains("changed since it was installed"));
        // A package without md5sums: listed (where the local diversion put it), not trusted.
        assert!(db.lookup("/usr/bin/ed").is_empty());
        let ed = db.lookup("/usr/local/bin/ed.orig");
        let v = verify(&ed, md5(&[0; 16]));
        assert!(v.packages.is_empty());
        assert!(v.note.unwrap().contains("dpkg:old without a recorded digest"));
        // Editing the diversions is a change to follow.
        assert!(!db.changed(root.path()));
        std::fs::write(root.path().join(DPKG_DIVERSIONS), "").unwrap();
        assert!(db.changed(root.path()));
    }

    #[test]
    fn the_hosts_own_diversions_are_applied() {
        // This host: linux-perf diverts /usr/bin/perf to perf.wrapper, postgresql-common
        // diverts libpq-dev's pg_config (see /var/lib/dpkg/diversions); checked where present.
        let db = PackageDb::load(Path::new("/")).unwrap();
        let text = std::fs::read_to_string(Path::new("/").join(DPKG_DIVERSIONS)).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let mut checked = 0;
        for c in lines.chunks_exact(3) {
            let (to, by) = (c[1], c[2]);
            let Ok(content) = std::fs::read(to) else { continue };
            let listed = db.lookup(to);
            // The diverted-away file is some other package's, never the diverter's, and it
            // is trusted as that package's: its digest is the one that package recorded.
            assert!(listed.iter().all(|l| l.package.name != format!("dpkg:{by}")), "{to}: {listed:?}");
            if !listed.is_empty() {
                use md5::Digest as _;
                let sum: [u8; 16] = md5::Md5::digest(&content).into();
                let v = verify(&listed, md5(&sum));
                assert!(!v.packages.is_empty(), "{to}: {v:?}");
                checked += 1;
            }
        }
        eprintln!("{checked} diverted files checked");
    }
}
