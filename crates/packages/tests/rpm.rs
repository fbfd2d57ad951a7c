//! rpm's database as Debian's own `rpm` tools write it (SQLite, as on RHEL 9): packages
//! built with `rpmbuild` and installed with `rpm --root` into a directory the test owns.
//! `./x deps` installs Debian's `rpm`; without it this test fails and says so.

use portcullis_packages::{Hashes, PackageDb, verify};
use sha2::Digest as _;
use std::path::Path;
use std::process::Command;

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e} (Debian's rpm is installed by `./x deps`)"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Build `name`'s rpm from a spec body's %install and %files sections.
fn build(top: &Path, name: &str, install: &str, files: &str) -> std::path::PathBuf {
    for d in ["SPECS", "RPMS", "BUILD", "BUILDROOT", "SOURCES", "SRPMS"] {
        std::fs::create_dir_all(top.join(d)).unwrap();
    }
    let spec = top.join("SPECS").join(format!("{name}.spec"));
    std::fs::write(
        &spec,
        format!(
            "Name: {name}\nVersion: 1.2\nRelease: 3\nEpoch: 1\nSummary: t\nLicense: MIT\nBuildArch: x86_64\n\
             %description\nt\n%install\n{install}\n%files\n{files}\n"
        ),
    )
    .unwrap();
    run(Command::new("rpmbuild")
        .arg("--define")
        .arg(format!("_topdir {}", top.display()))
        .args(["--define", "__os_install_post %{nil}", "--define", "debug_package %{nil}", "--quiet", "-bb"])
        .arg(&spec));
    top.join("RPMS/x86_64").join(format!("{name}-1.2-3.x86_64.rpm"))
}

fn rpm(root: &Path) -> Command {
    let mut c = Command::new("rpm");
    c.arg("--root").arg(root).args(["--dbpath", "/var/lib/rpm"]);
    c
}

fn sha256(path: &Path) -> [u8; 32] {
    sha2::Sha256::digest(std::fs::read(path).unwrap()).into()
}

#[test]
fn an_rpm_database_written_by_rpm_itself_is_trusted_file_by_file() {
    let dir = tempfile::tempdir().unwrap();
    let top = dir.path().join("build");
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    let shared = "mkdir -p %{buildroot}/usr/share/t && echo same > %{buildroot}/usr/share/t/shared";
    let a = build(
        &top,
        "tool",
        &format!(
            "mkdir -p %{{buildroot}}/usr/bin %{{buildroot}}/usr/share/doc/tool %{{buildroot}}/var/log\n\
             printf '#!/bin/sh\\necho hi\\n' > %{{buildroot}}/usr/bin/tool && chmod 755 %{{buildroot}}/usr/bin/tool\n\
             echo doc > %{{buildroot}}/usr/share/doc/tool/README\n{shared}"
        ),
        "/usr/bin/tool\n%doc /usr/share/doc/tool/README\n%ghost /var/log/tool.log\n/usr/share/t/shared",
    );
    let b = build(&top, "other", shared, "/usr/share/t/shared");
    run(rpm(&root).arg("--initdb"));
    // Docs excluded: rpm records the README as not installed.
    run(rpm(&root).args(["-i", "--nodeps", "--noscripts", "--excludedocs"]).arg(&a).arg(&b));
    std::fs::create_dir_all(root.join("var/log")).unwrap();
    std::fs::write(root.join("var/log/tool.log"), "ghost\n").unwrap();
    assert!(root.join("var/lib/rpm/rpmdb.sqlite").is_file(), "Debian's rpm writes SQLite");

    let db = PackageDb::load(&root).unwrap();
    assert!(db.warnings().is_empty(), "{:?}", db.warnings());
    let tool = db.packages().iter().find(|p| p.name == "rpm:tool").expect("rpm:tool is installed");
    assert_eq!((tool.version.as_str(), tool.architecture.as_str()), ("1:1.2-3", "x86_64"));

    // The program: trusted with its SHA-256, not once changed.
    let path = root.join("usr/bin/tool");
    let listed = db.lookup("/usr/bin/tool");
    let good = sha256(&path);
    assert_eq!(verify(&listed, Hashes { sha256: Some(&good), ..Hashes::default() }).packages, ["rpm:tool"]);
    let changed = verify(&listed, Hashes { sha256: Some(&[0; 32]), ..Hashes::default() });
    assert!(changed.packages.is_empty());
    assert!(changed.note.unwrap().contains("rpm:tool but changed since it was installed (its SHA-256"));

    // A file two packages list with the same content is both packages'.
    let s = sha256(&root.join("usr/share/t/shared"));
    let mut both = verify(&db.lookup("/usr/share/t/shared"), Hashes { sha256: Some(&s), ..Hashes::default() }).packages;
    both.sort();
    assert_eq!(both, ["rpm:other", "rpm:tool"]);

    // A %ghost is listed without a digest: never trusted, and the reason says so.
    let g = sha256(&root.join("var/log/tool.log"));
    let ghost = verify(&db.lookup("/var/log/tool.log"), Hashes { sha256: Some(&g), ..Hashes::default() });
    assert!(ghost.packages.is_empty());
    assert!(ghost.note.unwrap().contains("rpm:tool without a recorded digest"));
    // The excluded doc is not on disk and not listed.
    assert!(db.lookup("/usr/share/doc/tool/README").is_empty());

    // Removing a package is noticed, and its files are no longer its.
    assert!(!db.changed(&root));
    run(rpm(&root).args(["-e", "--nodeps", "--noscripts", "other"]));
    assert!(db.changed(&root), "the removal is a change to follow");
    let later = PackageDb::load(&root).unwrap();
    let one = verify(&later.lookup("/usr/share/t/shared"), Hashes { sha256: Some(&s), ..Hashes::default() });
    assert_eq!(one.packages, ["rpm:tool"]);
    assert!(!later.packages().iter().any(|p| p.name == "rpm:other"));
}

#[test]
fn a_database_in_a_format_that_is_not_read_is_said_not_silently_empty() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("var/lib/rpm");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("Packages"), b"\0\0\0\0\x61\x15\x06\0").unwrap();
    let db = PackageDb::load(root.path()).unwrap();
    assert!(db.packages().is_empty());
    let w = db.warnings().join("\n");
    assert!(w.contains("Berkeley DB") && w.contains("rpmdb --rebuilddb"), "{w}");
}

#[test]
fn a_corrupt_sqlite_database_is_an_error_that_names_it() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("usr/lib/sysimage/rpm");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("rpmdb.sqlite"), vec![0x5a; 8192]).unwrap();
    let e = PackageDb::load(root.path()).unwrap_err();
    let text = e.to_string();
    assert!(text.contains("rpm package database") && text.contains("usr/lib/sysimage/rpm/rpmdb.sqlite"), "{text}");
}
