//! The host's package databases, as the agent trusts them: which installed packages list a
//! file, and the digest each recorded for it.
//!
//! - dpkg (Debian, Ubuntu) — [`dpkg`]: the status file with its `updates/` journal, each
//!   package's `md5sums` (as `debsums` checks them), the conffiles' digests, and
//!   `diversions` (a file another package ships is on disk under the diverted name).
//! - rpm (RHEL, Fedora, SUSE) — [`rpm`]: the SQLite database's headers, with each file's
//!   state, mode and digest (SHA-256 on every current distribution).
//!
//! A file is trusted as part of a package only when a package lists it **and** its content
//! has the digest that package recorded ([`verify`]); the caller hashes the file (it already
//! reads it once to judge it) with what [`needs`] asks for. A path listed by several
//! packages (rpm's shared multilib files, a dpkg package's `.list` beside another's md5sums)
//! is trusted as part of every package whose digest it matches.
//!
//! Pure parsing over files read from a root: no process, no network, no write. Text that is
//! not UTF-8 is read leniently; one package's unreadable files or header cost that package,
//! not the database.

pub mod dpkg;
pub mod rpm;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

pub use dpkg::{DPKG_DIVERSIONS, DPKG_INFO, DPKG_STATUS, DPKG_UPDATES};

/// Which package manager a database belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Manager {
    /// Debian's dpkg.
    Dpkg,
    /// rpm.
    Rpm,
}

/// A database could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the {} package database {}", match manager { Manager::Dpkg => "dpkg", Manager::Rpm => "rpm" }, path.display())]
pub struct PackageError {
    /// The file.
    pub path: PathBuf,
    /// Whose database.
    pub manager: Manager,
    /// Why.
    #[source]
    pub error: Box<dyn std::error::Error + Send + Sync>,
}

/// A digest a package recorded for one of its files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Digest {
    /// dpkg's md5sums and conffiles; rpm before SHA-256.
    Md5([u8; 16]),
    /// rpm, rarely.
    Sha1([u8; 20]),
    /// rpm on every current distribution.
    Sha256([u8; 32]),
    /// Listed without a digest (an rpm `%ghost`, a dpkg package without md5sums): never
    /// trusted.
    Missing,
    /// A digest in an algorithm this crate does not check (rpm's number for it).
    Unsupported(u32),
}

/// One installed package.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Package {
    /// The name policies use: `dpkg:openssh-server`, `rpm:bash`.
    pub name: String,
    /// The installed version (rpm: `[epoch:]version-release`).
    pub version: String,
    /// Its architecture (`amd64`, `all`, `x86_64`, `noarch`).
    pub architecture: String,
}

/// One package's listing of a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Listed<'a> {
    /// The package that lists it.
    pub package: &'a Package,
    /// The digest it recorded.
    pub digest: Digest,
}

/// The hashes the caller computed of a file's content.
#[derive(Clone, Copy, Debug, Default)]
pub struct Hashes<'a> {
    /// MD5, if computed.
    pub md5: Option<&'a [u8; 16]>,
    /// SHA-1, if computed.
    pub sha1: Option<&'a [u8; 20]>,
    /// SHA-256, if computed.
    pub sha256: Option<&'a [u8; 32]>,
}

/// Which hashes beyond SHA-256 a file's listings need to be verified.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Needs {
    /// MD5.
    pub md5: bool,
    /// SHA-1.
    pub sha1: bool,
}

/// What the listings of a file say once its hashes are known.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verified {
    /// Every package that lists the file with the digest it has, in database order.
    pub packages: Vec<String>,
    /// When none does: why the file is not trusted, for the reason people read.
    pub note: Option<String>,
}

/// The installed packages and the digests of their files.
#[derive(Debug, Default)]
pub struct PackageDb {
    packages: Vec<Package>,
    /// Absolute path inside the root → (package index, digest): the first listing.
    files: HashMap<Box<str>, (u32, Digest)>,
    /// Further listings of the same paths (rare): kept apart so the common case costs one
    /// entry.
    more: HashMap<Box<str>, Vec<(u32, Digest)>>,
    /// Whether `/bin`, `/sbin` and `/lib*` are links into `/usr` in this root (merged /usr):
    /// dpkg lists `/bin/bash`, the kernel reports `/usr/bin/bash`.
    merged_usr: bool,
    /// The databases' modification times and sizes when read, to notice changes.
    stamp: Vec<Option<(SystemTime, u64)>>,
    /// What was not read, for the agent's log.
    warnings: Vec<String>,
}

impl PackageDb {
    /// Read the package databases below `root` (dpkg's and rpm's, whichever are there). A
    /// root with neither gives an empty database.
    pub fn load(root: &Path) -> Result<PackageDb, PackageError> {
        // A package manager may rewrite its database while this reads: read until the stamp
        // taken before reading still holds after, so that a change is never missed.
        let mut tries = 0;
        loop {
            let before = stamp(root);
            let db = Self::load_once(root, before.clone())?;
            if stamp(root) == before || tries == 3 {
                return Ok(db);
            }
            tries += 1;
        }
    }

    fn load_once(root: &Path, stamp: Vec<Option<(SystemTime, u64)>>) -> Result<PackageDb, PackageError> {
        let usr_bin = std::fs::read_link(root.join("bin")).ok();
        let mut db = PackageDb {
            merged_usr: usr_bin.is_some_and(|t| t == Path::new("usr/bin") || t == Path::new("/usr/bin")),
            stamp,
            ..PackageDb::default()
        };
        dpkg::load(root, &mut db)?;
        db.warnings.extend(rpm::unsupported(root));
        if let Some(path) = rpm::find(root) {
            let mut bad = 0;
            for p in rpm::read(&path, &mut bad)? {
                let index = db.add(Package { name: p.name, version: p.version, architecture: p.arch });
                for (file, digest) in p.files {
                    db.insert(file.into(), index, digest);
                }
            }
            if bad > 0 {
                db.warnings.push(format!(
                    "{bad} package headers in {} cannot be parsed: their files are not trusted",
                    path.display()
                ));
            }
        }
        Ok(db)
    }

    fn add(&mut self, package: Package) -> u32 {
        self.packages.push(package);
        (self.packages.len() - 1) as u32
    }

    /// Record that package `index` lists `path` with `digest`.
    fn insert(&mut self, path: Box<str>, index: u32, digest: Digest) {
        match self.files.get(&path) {
            None => {
                self.files.insert(path, (index, digest));
            }
            Some(&first) if first == (index, digest) => {}
            Some(_) => {
                let more = self.more.entry(path).or_default();
                if !more.contains(&(index, digest)) {
                    more.push((index, digest));
                }
            }
        }
    }

    /// The installed packages.
    pub fn packages(&self) -> &[Package] {
        &self.packages
    }

    /// How many paths are listed.
    pub fn file_count(&self) -> usize {
        self.files.len()
    }

    /// What could not be read (a database in a format not read, headers that do not parse).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The packages that list `path` (absolute, inside the root), and what each recorded.
    /// Empty when none does.
    pub fn lookup(&self, path: &str) -> Vec<Listed<'_>> {
        let mut out = Vec::new();
        let mut add = |p: &str| {
            let first = self.files.get(p).into_iter();
            let more = self.more.get(p).into_iter().flatten();
            for &(index, digest) in first.chain(more) {
                out.push(Listed { package: &self.packages[index as usize], digest });
            }
        };
        add(path);
        // Merged /usr: the kernel says /usr/bin/bash where dpkg listed /bin/bash (and the
        // other way round for files packaged under /usr).
        if self.merged_usr {
            if let Some(rest) = path.strip_prefix("/usr") {
                if Self::merged_dir(rest) {
                    add(rest);
                }
            } else if Self::merged_dir(path) {
                add(&format!("/usr{path}"));
            }
        }
        out
    }

    fn merged_dir(path: &str) -> bool {
        ["/bin/", "/sbin/", "/lib/", "/lib32/", "/lib64/", "/libx32/"].iter().any(|d| path.starts_with(d))
    }

    /// Whether a database changed on disk since it was read (a package was installed,
    /// upgraded or removed, or a step of that was journalled).
    pub fn changed(&self, root: &Path) -> bool {
        stamp(root) != self.stamp
    }
}

/// Where `path` (as the host sees it) lies inside the package root `root`, if it does:
/// `/srv/root/usr/bin/x` is `/usr/bin/x` of the root `/srv/root`.
pub fn inside(root: &Path, path: &str) -> Option<String> {
    if root == Path::new("/") {
        return Some(path.to_owned());
    }
    let rest = Path::new(path).strip_prefix(root).ok()?;
    Some(format!("/{}", rest.to_string_lossy()))
}

/// The hashes beyond SHA-256 that verifying `listings` needs.
pub fn needs(listings: &[Listed<'_>]) -> Needs {
    let mut n = Needs::default();
    for l in listings {
        match l.digest {
            Digest::Md5(_) => n.md5 = true,
            Digest::Sha1(_) => n.sha1 = true,
            _ => {}
        }
    }
    n
}

/// Which of `listings` a file with `hashes` matches; when none does, why not.
pub fn verify(listings: &[Listed<'_>], hashes: Hashes<'_>) -> Verified {
    let mut out = Verified::default();
    let mut why = Vec::new();
    for l in listings {
        let name = &l.package.name;
        let (algo, matched) = match l.digest {
            Digest::Md5(want) => ("MD5", hashes.md5.map(|h| *h == want)),
            Digest::Sha1(want) => ("SHA-1", hashes.sha1.map(|h| *h == want)),
            Digest::Sha256(want) => ("SHA-256", hashes.sha256.map(|h| *h == want)),
            Digest::Missing => {
                why.push(format!("listed by {name} without a recorded digest, so it cannot be verified"));
                continue;
            }
            Digest::Unsupported(a) => {
                why.push(format!("listed by {name} with a digest in an algorithm that is not checked (rpm's {a})"));
                continue;
            }
        };
        match matched {
            Some(true) => {
                if !out.packages.contains(name) {
                    out.packages.push(name.clone());
                }
            }
            Some(false) => why.push(format!(
                "listed by {name} but changed since it was installed (its {algo} differs from the one the package recorded)"
            )),
            None => why.push(format!("listed by {name} but not verified (no {algo} computed)")),
        }
    }
    if out.packages.is_empty() && !why.is_empty() {
        out.note = Some(why.join("; "));
    }
    out
}

/// `N` bytes from `2N` hex digits.
pub(crate) fn unhex<const N: usize>(hex: &str) -> Option<[u8; N]> {
    if hex.len() != N * 2 {
        return None;
    }
    let mut out = [0u8; N];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(hex.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(out)
}

/// What tells that a database changed: the modification times and sizes of the files each
/// package manager rewrites (a dpkg journal entry is a new file in `updates/`, which changes
/// the directory's time; rpm's SQLite commits land in its write-ahead log first).
fn stamp(root: &Path) -> Vec<Option<(SystemTime, u64)>> {
    let mut files: Vec<PathBuf> = [DPKG_STATUS, DPKG_UPDATES, DPKG_DIVERSIONS].iter().map(|f| root.join(f)).collect();
    for dir in rpm::RPM_DIRS {
        files.push(root.join(dir).join(rpm::RPM_SQLITE));
        files.push(root.join(dir).join(format!("{}-wal", rpm::RPM_SQLITE)));
    }
    files.iter().map(|f| std::fs::metadata(f).ok().and_then(|m| Some((m.modified().ok()?, m.len())))).collect()
}
