//! The host's package database, as the agent trusts it: which installed package lists a
//! file, and the digest the package recorded for it.
//!
//! dpkg (Debian, Ubuntu): `var/lib/dpkg/status`, with its `updates/` journal applied, names
//! the packages whose files are on disk (installed, or unpacked and being configured),
//! `var/lib/dpkg/info/<package>[:<arch>].md5sums`
//! holds the MD5 of each file the package shipped, as `debsums` checks them, and the status's
//! `Conffiles:` the MD5 each configuration file had at installation. A file is trusted as part
//! of a package only when its content has that digest ([`PackageDb::verify`]); the caller
//! hashes the file (it already reads it once to judge it).
//!
//! Pure parsing over files read from a root: no process, no network, no write. Text that is
//! not UTF-8 (an old package's Latin-1 description) is read leniently; one package's
//! unreadable md5sums costs that package, not the database. rpm databases and dpkg's
//! diversions are not read yet (see the README).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Where dpkg keeps its database, below the root.
pub const DPKG_STATUS: &str = "var/lib/dpkg/status";
/// The per-package files, below the root.
pub const DPKG_INFO: &str = "var/lib/dpkg/info";
/// dpkg's journal: status changes not yet folded into `status` (one or more stanzas per
/// file, applied in the order of their numeric names). During an `apt` run this is where the
/// packages being unpacked and configured are.
pub const DPKG_UPDATES: &str = "var/lib/dpkg/updates";

/// The database could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the package database {}", path.display())]
pub struct PackageError {
    /// The file.
    pub path: PathBuf,
    /// Why.
    #[source]
    pub error: std::io::Error,
}

/// A digest a package recorded for one of its files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Digest {
    /// dpkg's md5sums and conffiles.
    Md5([u8; 16]),
}

/// One installed package.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Package {
    /// The name policies use: `dpkg:openssh-server`.
    pub name: String,
    /// The installed version.
    pub version: String,
    /// Its architecture (`amd64`, `all`).
    pub architecture: String,
}

/// What the database says about one path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Listed<'a> {
    /// The package that lists it.
    pub package: &'a Package,
    /// The digest it recorded.
    pub digest: Digest,
}

/// The installed packages and the digests of their files.
#[derive(Debug, Default)]
pub struct PackageDb {
    packages: Vec<Package>,
    /// Absolute path inside the root → (package index, digest).
    files: HashMap<Box<str>, (u32, Digest)>,
    /// Whether `/bin`, `/sbin` and `/lib*` are links into `/usr` in this root (merged /usr):
    /// dpkg lists `/bin/bash`, the kernel reports `/usr/bin/bash`.
    merged_usr: bool,
    /// The status file's and the journal's modification times when read, to notice changes.
    stamp: Option<Stamp>,
}

impl PackageDb {
    /// Read the dpkg database below `root`. A root without one gives an empty database.
    pub fn load(root: &Path) -> Result<PackageDb, PackageError> {
        // dpkg may fold its journal into status while this reads: read until the stamp taken
        // before reading still holds after, so that a change is never missed.
        let mut tries = 0;
        loop {
            let before = stamp(root);
            let db = Self::load_once(root, before)?;
            if stamp(root) == before || tries == 3 {
                return Ok(db);
            }
            tries += 1;
        }
    }

    fn load_once(root: &Path, stamp: Option<Stamp>) -> Result<PackageDb, PackageError> {
        let status_path = root.join(DPKG_STATUS);
        let status = match read_lossy(&status_path) {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(PackageDb::default()),
            Err(error) => return Err(PackageError { path: status_path, error }),
        };
        let usr_bin = std::fs::read_link(root.join("bin")).ok();
        let mut db = PackageDb {
            merged_usr: usr_bin.is_some_and(|t| t == Path::new("usr/bin") || t == Path::new("/usr/bin")),
            stamp,
            ..PackageDb::default()
        };
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
            let index = db.packages.len() as u32;
            let multi_arch = p.field("Multi-Arch") == Some("same");
            let arch = p.field("Architecture").unwrap_or_default();
            let name = p.field("Package").unwrap_or_default();
            db.packages.push(Package {
                name: format!("dpkg:{name}"),
                version: p.field("Version").unwrap_or_default().to_owned(),
                architecture: arch.to_owned(),
            });
            // dpkg names the info files of a Multi-Arch: same package with its architecture.
            let candidates = [format!("{name}:{arch}.md5sums"), format!("{name}.md5sums")];
            let file = if multi_arch { &candidates[..] } else { &candidates[1..] };
            for c in file {
                let path = info.join(c);
                match read_lossy(&path) {
                    Ok(text) => {
                        for (digest, file) in md5sums(&text) {
                            db.files.insert(format!("/{file}").into(), (index, digest));
                        }
                        break;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    // That package's files are not trusted; the others are.
                    Err(_) => break,
                }
            }
            for (file, digest) in p.conffiles() {
                db.files.entry(file.into()).or_insert((index, digest));
            }
        }
        Ok(db)
    }

    /// The installed packages.
    pub fn packages(&self) -> &[Package] {
        &self.packages
    }

    /// How many files have a recorded digest.
    pub fn file_count(&self) -> usize {
        self.files.len()
    }

    /// The package that lists `path` (absolute, inside the root) with a digest, if one does.
    pub fn lookup(&self, path: &str) -> Option<Listed<'_>> {
        let hit = self.files.get(path).or_else(|| {
            // Merged /usr: the kernel says /usr/bin/bash where dpkg listed /bin/bash (and
            // the other way round for files packaged under /usr).
            let alias = if let Some(rest) = path.strip_prefix("/usr") {
                Self::merged_dir(rest).then(|| rest.to_owned())
            } else {
                Self::merged_dir(path).then(|| format!("/usr{path}"))
            };
            alias.filter(|_| self.merged_usr).and_then(|a| self.files.get(a.as_str()))
        })?;
        Some(Listed { package: &self.packages[hit.0 as usize], digest: hit.1 })
    }

    fn merged_dir(path: &str) -> bool {
        ["/bin/", "/sbin/", "/lib/", "/lib32/", "/lib64/", "/libx32/"].iter().any(|d| path.starts_with(d))
    }

    /// Whether the database changed on disk since it was read (a package was installed,
    /// upgraded or removed, or a step of that was journalled).
    pub fn changed(&self, root: &Path) -> bool {
        stamp(root) != self.stamp
    }

    /// Whether a file whose content has MD5 `md5` is what `listed` recorded; else why not.
    pub fn verify(listed: &Listed<'_>, md5: Option<&[u8; 16]>) -> Result<(), String> {
        match (listed.digest, md5) {
            (Digest::Md5(want), Some(have)) if &want == have => Ok(()),
            (Digest::Md5(_), Some(_)) => Err(format!(
                "listed by {} but changed since it was installed (its MD5 differs from the one the package recorded)",
                listed.package.name
            )),
            (Digest::Md5(_), None) => {
                Err(format!("listed by {} but not verified (no MD5 computed)", listed.package.name))
            }
        }
    }
}

/// A file's text, with bytes that are not UTF-8 replaced.
fn read_lossy(path: &Path) -> std::io::Result<String> {
    let bytes = std::fs::read(path)?;
    Ok(match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    })
}

/// The status file's and the journal directory's modification times.
type Stamp = (SystemTime, Option<SystemTime>);

/// What tells that the database changed: the status file's and the journal directory's
/// modification times (a journal entry is a new file there).
fn stamp(root: &Path) -> Option<Stamp> {
    let status = std::fs::metadata(root.join(DPKG_STATUS)).and_then(|m| m.modified()).ok()?;
    let updates = std::fs::metadata(root.join(DPKG_UPDATES)).and_then(|m| m.modified()).ok();
    Some((status, updates))
}

/// The journal's entries, in dpkg's order (numeric file names; `tmp.i` is being written).
fn journal(root: &Path) -> Result<Vec<String>, PackageError> {
    let dir = root.join(DPKG_UPDATES);
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(PackageError { path: dir, error }),
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
            Err(error) => return Err(PackageError { path, error }),
        }
    }
    Ok(out)
}

/// `md5sums` lines: 32 hex digits, two spaces, a path relative to the root.
fn md5sums(text: &str) -> impl Iterator<Item = (Digest, &str)> {
    text.lines().filter_map(|l| {
        let (hex, file) = l.split_once("  ")?;
        Some((Digest::Md5(md5_hex(hex.trim())?), file.trim_start_matches('/')))
    })
}

fn md5_hex(hex: &str) -> Option<[u8; 16]> {
    if hex.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(hex.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(out)
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
                && let Some(md5) = md5_hex(hex)
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

    #[test]
    fn the_hosts_dpkg_database_lists_bash_under_both_of_its_names() {
        let db = PackageDb::load(Path::new("/")).unwrap();
        if db.packages().is_empty() {
            return; // not a dpkg host
        }
        assert!(db.packages().iter().any(|p| p.name == "dpkg:bash"));
        let listed = db.lookup("/usr/bin/bash").or_else(|| db.lookup("/bin/bash")).expect("bash is listed");
        assert_eq!(listed.package.name, "dpkg:bash");
        // Merged /usr: the kernel's name and dpkg's both find it.
        if std::fs::read_link("/bin").is_ok() {
            assert_eq!(db.lookup("/usr/bin/bash").unwrap().package.name, "dpkg:bash");
            assert_eq!(db.lookup("/bin/bash").unwrap().package.name, "dpkg:bash");
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
        let tool = db.lookup("/usr/bin/tool").unwrap();
        assert_eq!(tool.package.name, "dpkg:tool");
        assert!(PackageDb::verify(&tool, Some(&[0xff; 16])).is_ok());
        let changed = PackageDb::verify(&tool, Some(&[0; 16])).unwrap_err();
        assert!(changed.contains("dpkg:tool") && changed.contains("changed since it was installed"), "{changed}");
        assert!(db.lookup("/usr/bin/gone").is_none(), "removed packages are not trusted");
        assert_eq!(db.lookup("/usr/lib/libz.so.1").unwrap().package.name, "dpkg:libz");
        assert!(db.lookup("/etc/tool.conf").is_some());
        assert!(db.lookup("/etc/old.conf").is_none(), "an obsolete conffile is not the package's any more");
        // Not merged here: /bin/tool is not /usr/bin/tool.
        assert!(db.lookup("/bin/tool").is_none());
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
        assert_eq!(later.lookup("/usr/bin/newer").unwrap().package.name, "dpkg:newer");
        assert!(later.lookup("/usr/bin/tool").is_none(), "removed in the journal");
        assert!(later.lookup("/usr/bin/half").is_none());
        assert_eq!(later.lookup("/usr/bin/latin").unwrap().package.name, "dpkg:latin");
        assert!(!later.changed(root.path()));
    }
}
