//! Package trust: a file is part of an installed package when the host's package database
//! lists it **and** its content has the digest the package recorded ([`portcullis_packages`]).
//! The facts of such a file name the packages (`dpkg:openssh-server`, `rpm:bash`), which
//! rules can permit, ringfence or deny; a listed file that does not match says why in
//! `package_note`.

use portcullis_packages::{Hashes, Needs, PackageDb};
use portcullis_policy::FileFacts;
use std::path::Path;

pub(crate) use portcullis_packages::inside;

/// The hashes beyond SHA-256 that the one pass hashing the file at `path` must compute for
/// its packages' digests to be checked.
pub(crate) fn needs(db: &PackageDb, root: &Path, path: &str) -> Needs {
    inside(root, path).map(|p| portcullis_packages::needs(&db.lookup(&p))).unwrap_or_default()
}

/// Name the packages in `facts` when the file is one of their files, unchanged; else say why
/// not.
pub(crate) fn apply(db: &PackageDb, root: &Path, facts: &mut FileFacts) {
    let Some(listed) = inside(root, &facts.path).map(|p| db.lookup(&p)) else { return };
    if listed.is_empty() {
        return;
    }
    let hashes = Hashes { md5: facts.md5.as_ref(), sha1: facts.sha1.as_ref(), sha256: Some(&facts.sha256) };
    let verified = portcullis_packages::verify(&listed, hashes);
    facts.packages = verified.packages;
    facts.package_note = verified.note;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_taken_inside_the_package_root() {
        assert_eq!(inside(Path::new("/"), "/usr/bin/x").as_deref(), Some("/usr/bin/x"));
        assert_eq!(inside(Path::new("/srv/root"), "/srv/root/usr/bin/x").as_deref(), Some("/usr/bin/x"));
        assert_eq!(inside(Path::new("/srv/root"), "/srv/rootless/x"), None);
        assert_eq!(inside(Path::new("/srv/root"), "/usr/bin/x"), None);
    }

    #[test]
    fn the_hosts_bash_is_trusted_as_dpkg_bash_and_a_changed_copy_is_not() {
        let db = PackageDb::load(Path::new("/")).unwrap();
        let Ok(bash) = std::fs::canonicalize("/bin/bash") else { return };
        if db.lookup(&bash.to_string_lossy()).is_empty() {
            return; // not a dpkg host
        }
        let needs = needs(&db, Path::new("/"), &bash.to_string_lossy());
        assert!(needs.md5, "dpkg records MD5s");
        let opts = portcullis_inspect::Options {
            extra_hashes: portcullis_inspect::ExtraHashes { md5: needs.md5, sha1: needs.sha1 },
            ..Default::default()
        };
        let mut facts = portcullis_inspect::policy_facts(&portcullis_inspect::inspect_path(&bash, &opts).unwrap());
        apply(&db, Path::new("/"), &mut facts);
        assert_eq!(facts.packages, ["dpkg:bash"], "{:?}", facts.package_note);
        let mut changed = facts.clone();
        changed.packages.clear();
        changed.md5 = Some([0; 16]);
        apply(&db, Path::new("/"), &mut changed);
        assert!(changed.packages.is_empty());
        assert!(changed.package_note.unwrap().contains("changed since it was installed"));
    }
}
