//! rpm's database: every installed package's header, with its files' paths, states, modes
//! and digests. Read from the SQLite database that RHEL 9, Fedora 33+, SUSE 15.4+ and
//! Debian's own `rpm` write (`rpmdb.sqlite`, table `Packages(hnum, blob)`), read-only, with
//! whatever is committed in its write-ahead log. The Berkeley DB (RHEL 8 and older) and ndb
//! formats are not read: the database says so in its warnings, with the command that
//! converts them.

pub(crate) mod header;

use crate::{Digest, Manager, PackageError};
use header::{Header, tag};
use std::path::{Path, PathBuf};

/// Where rpm keeps its database below the root: Fedora 36+ moved it to /usr/lib/sysimage
/// (with /var/lib/rpm a link to it); RHEL 9 and Debian's rpm use /var/lib/rpm.
pub const RPM_DIRS: [&str; 2] = ["usr/lib/sysimage/rpm", "var/lib/rpm"];
/// The SQLite database's name in that directory.
pub const RPM_SQLITE: &str = "rpmdb.sqlite";

/// One package from a header: its name, version and arch, and its regular files.
pub(crate) struct RpmPackage {
    pub(crate) name: String,
    pub(crate) version: String,
    pub(crate) arch: String,
    /// (path, digest) of each installed regular file; `Digest::Missing` for one listed
    /// without a digest (a `%ghost`).
    pub(crate) files: Vec<(String, Digest)>,
}

/// rpm's digest algorithms (its `PGPHASHALGO_*` numbers).
fn digest(algo: u32, hex: &str) -> Digest {
    if hex.is_empty() {
        return Digest::Missing;
    }
    // A digest that is not hex of the algorithm's length is no digest.
    let parsed = match algo {
        1 => crate::unhex::<16>(hex).map(Digest::Md5),
        2 => crate::unhex::<20>(hex).map(Digest::Sha1),
        8 => crate::unhex::<32>(hex).map(Digest::Sha256),
        _ => return Digest::Unsupported(algo),
    };
    parsed.unwrap_or(Digest::Missing)
}

const S_IFMT: u32 = 0o170000;
const S_IFREG: u32 = 0o100000;

/// The package a header describes. Files that are not installed (rpm's file state other
/// than "normal": replaced by another package, excluded docs, the other arch's copy of a
/// multilib file) and anything that is not a regular file are left out.
pub(crate) fn package(h: &Header<'_>) -> Option<RpmPackage> {
    let name = h.string(tag::NAME)?;
    let version = h.string(tag::VERSION).unwrap_or_default();
    let release = h.string(tag::RELEASE).unwrap_or_default();
    let epoch = h.int32s(tag::EPOCH).and_then(|e| e.first().copied());
    let version = match epoch {
        Some(e) => format!("{e}:{version}-{release}"),
        None => format!("{version}-{release}"),
    };
    let mut files = Vec::new();
    if let (Some(bases), Some(dirs), Some(index)) =
        (h.strings(tag::BASENAMES), h.strings(tag::DIRNAMES), h.int32s(tag::DIRINDEXES))
    {
        let digests = h.strings(tag::FILEDIGESTS).unwrap_or_default();
        let modes = h.int16s(tag::FILEMODES).unwrap_or_default();
        let states = h.bytes(tag::FILESTATES).unwrap_or_default();
        // MD5 when the header predates the tag.
        let algo = h.int32s(tag::FILEDIGESTALGO).and_then(|a| a.first().copied()).unwrap_or(1);
        for (i, base) in bases.iter().enumerate() {
            let Some(dir) = index.get(i).and_then(|&d| dirs.get(d as usize)) else { continue };
            if states.get(i).is_some_and(|&s| s != 0) {
                continue;
            }
            if modes.get(i).is_some_and(|&m| m & S_IFMT != S_IFREG) {
                continue;
            }
            let d = digest(algo, digests.get(i).copied().unwrap_or_default());
            files.push((format!("{dir}{base}"), d));
        }
    }
    Some(RpmPackage {
        name: format!("rpm:{name}"),
        version,
        arch: h.string(tag::ARCH).unwrap_or_default().into(),
        files,
    })
}

/// The rpm database below `root`, if there is one: its path.
pub(crate) fn find(root: &Path) -> Option<PathBuf> {
    RPM_DIRS.iter().map(|d| root.join(d).join(RPM_SQLITE)).find(|p| p.is_file())
}

/// Databases rpm writes in formats this crate does not read, below `root`.
pub(crate) fn unsupported(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for dir in RPM_DIRS {
        for (file, what) in [("Packages", "Berkeley DB (RHEL 8 and older)"), ("Packages.db", "ndb (SUSE)")] {
            let p = root.join(dir).join(file);
            if p.is_file() && !root.join(dir).join(RPM_SQLITE).is_file() {
                out.push(format!(
                    "the rpm database {} is in the {what} format, which is not read: its packages are not trusted; \
                     convert it with `rpmdb --rebuilddb --define '_db_backend sqlite'`",
                    p.display()
                ));
            }
        }
    }
    out
}

/// Every package in the SQLite database at `path`; a header that cannot be parsed is
/// counted in `bad` (its package's files are not trusted; the others are).
pub(crate) fn read(path: &Path, bad: &mut usize) -> Result<Vec<RpmPackage>, PackageError> {
    let err = |e: rusqlite::Error| PackageError { path: path.to_owned(), manager: Manager::Rpm, error: Box::new(e) };
    let conn = rusqlite::Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(err)?;
    // rpm holds its own lock while it writes; wait for it rather than fail.
    conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(err)?;
    let mut stmt = conn.prepare("SELECT blob FROM Packages ORDER BY hnum").map_err(err)?;
    let mut rows = stmt.query([]).map_err(err)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(err)? {
        let blob = row.get_ref(0).map_err(err)?.as_blob().map_err(|e| err(e.into()))?;
        match Header::parse(blob).ok().as_ref().and_then(package) {
            Some(p) => out.push(p),
            None => *bad += 1,
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::header::tests::{build, strs};
    use super::*;

    fn be(v: &[u32], width: usize) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_be_bytes()[4 - width..].to_vec()).collect()
    }

    #[test]
    fn a_header_gives_its_installed_regular_files_with_their_digests() {
        let (nb, bases) = strs(&["tool", "data", "tool", "ghost", "doc", "link"]);
        let (nd, dirs) = strs(&["/usr/bin/", "/opt/tool/", "/opt/"]);
        let sha = "299001868fb8c02fd431c336c6d058f5558c5dff5b5af5e6fe04b870a6a9cbba";
        let (nh, digests) = strs(&[sha, sha, "", "", sha, ""]);
        let blob = build(&[
            (tag::NAME, 6, 1, b"tool\0".to_vec()),
            (tag::VERSION, 6, 1, b"1.2\0".to_vec()),
            (tag::RELEASE, 6, 1, b"3\0".to_vec()),
            (tag::EPOCH, 4, 1, be(&[2], 4)),
            (tag::ARCH, 6, 1, b"x86_64\0".to_vec()),
            (tag::BASENAMES, 8, nb, bases),
            (tag::DIRNAMES, 8, nd, dirs),
            (tag::DIRINDEXES, 4, 6, be(&[0, 1, 2, 1, 1, 0], 4)),
            (tag::FILEDIGESTS, 8, nh, digests),
            (tag::FILEDIGESTALGO, 4, 1, be(&[8], 4)),
            (tag::FILEMODES, 3, 6, be(&[0o100755, 0o100644, 0o040755, 0o100644, 0o100644, 0o120777], 2)),
            // The doc was excluded at install (state 2): not on disk, not trusted.
            (tag::FILESTATES, 1, 6, vec![0, 0, 0, 0, 2, 0]),
        ]);
        let p = package(&Header::parse(&blob).unwrap()).unwrap();
        assert_eq!((p.name.as_str(), p.version.as_str(), p.arch.as_str()), ("rpm:tool", "2:1.2-3", "x86_64"));
        let want = Digest::Sha256(crate::unhex::<32>(sha).unwrap());
        assert_eq!(
            p.files,
            [
                ("/usr/bin/tool".to_owned(), want),
                ("/opt/tool/data".to_owned(), want),
                ("/opt/tool/ghost".to_owned(), Digest::Missing),
            ]
        );
        assert_eq!(digest(10, sha), Digest::Unsupported(10));
        assert_eq!(digest(8, "zz"), Digest::Missing);
    }
}
