//! Package trust: a file is part of an installed package when the host's package database
//! lists it **and** its content has the digest the package recorded ([`portcullis_packages`]).
//! The facts of such a file name the package (`dpkg:openssh-server`), which rules can permit,
//! ringfence or deny; a listed file that does not match says why in `package_note`.

use portcullis_packages::{Digest, PackageDb};
use portcullis_policy::FileFacts;
use std::path::Path;

/// Where `path` (as the agent sees it) lies inside the package root, if it does.
pub(crate) fn inside(root: &Path, path: &str) -> Option<String> {
    if root == Path::new("/") {
        return Some(path.to_owned());
    }
    let rest = Path::new(path).strip_prefix(root).ok()?;
    Some(format!("/{}", rest.to_string_lossy()))
}

/// Whether the file at `path` is listed with an MD5, so the one pass that hashes it must
/// compute MD5 too.
pub(crate) fn wants_md5(db: &PackageDb, root: &Path, path: &str) -> bool {
    inside(root, path).and_then(|p| db.lookup(&p)).is_some_and(|l| matches!(l.digest, Digest::Md5(_)))
}

/// Name the package in `facts` when the file is one of its files, unchanged; else say why not.
pub(crate) fn apply(db: &PackageDb, root: &Path, facts: &mut FileFacts) {
    let Some(listed) = inside(root, &facts.path).and_then(|p| db.lookup(&p)) else {
        return;
    };
    match PackageDb::verify(&listed, facts.md5.as_ref()) {
        Ok(()) => facts.package = Some(listed.package.name.clone()),
        Err(why) => facts.package_note = Some(why),
    }
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
        if db.lookup(&bash.to_string_lossy()).is_none() {
            return; // not a dpkg host
        }
        let opts = portcullis_inspect::Options {
            extra_hashes: portcullis_inspect::ExtraHashes { md5: true, sha1: false },
            ..Default::default()
        };
        let mut facts = portcullis_inspect::policy_facts(&portcullis_inspect::inspect_path(&bash, &opts).unwrap());
        assert!(wants_md5(&db, Path::new("/"), &facts.path));
        apply(&db, Path::new("/"), &mut facts);
        assert_eq!(facts.package.as_deref(), Some("dpkg:bash"), "{:?}", facts.package_note);
        let mut changed = facts.clone();
        changed.package = None;
        changed.md5 = Some([0; 16]);
        apply(&db, Path::new("/"), &mut changed);
        assert_eq!(changed.package, None);
        assert!(changed.package_note.unwrap().contains("changed since it was installed"));
    }
}
