//! Exports checked by the engines themselves, where this machine can run them: Debian's own
//! fapolicyd 1.1.7 loads `portcullis export fapolicyd` output and decides on the test's files
//! as Portcullis does.
//!
//! Safety: fapolicyd is never installed. `./x test` downloads its packages (`apt-get
//! download`); this test unpacks them (`dpkg-deb --fsys-tarfile`, no maintainer scripts) into its own copy
//! of the Debian 12 root on a tmpfs, and runs the daemon there in a private mount and PID
//! namespace, permissive (it never denies), watching only a ramfs it mounts for the test's
//! files (the chroot shows it no other mount). A time limit kills the namespace, and with it
//! the daemon.

mod support;

use std::path::Path;
use std::process::Command;
use support::{Root, debs, target, text};

/// The Debian root with Debian's fapolicyd and the libraries it needs unpacked into it.
fn root_with_fapolicyd() -> Root {
    let dir = target().join("debian-root/fapolicyd");
    assert!(
        dir.join(".done").exists(),
        "fapolicyd's packages are missing: `./x test` downloads them ({})",
        dir.display()
    );
    let root = Root::new();
    for deb in debs(&dir) {
        root.unpack(&deb);
    }
    root
}

fn write_exec(path: &Path, content: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn sha256_of(path: &Path) -> String {
    let o = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8_lossy(&o.stdout).split_whitespace().next().unwrap().to_owned()
}

/// What the namespace runs: the files on a ramfs, Portcullis's verdicts, then fapolicyd
/// (permissive, debug) deciding on the same files.
const SCRIPT: &str = r##"
set -e
R=$1
mount -t proc proc "$R/proc"
mount -t tmpfs tmpfs "$R/run"
mkdir -p "$R/srv/test"
mount -t ramfs ramfs "$R/srv/test"
cp -p "$R"/srv/src/* "$R/srv/test/"
exec chroot "$R" /bin/sh -c '
  mkdir -p /run/fapolicyd /var/lib/fapolicyd
  echo "== export"
  /usr/local/bin/portcullis export fapolicyd --policy /etc/portcullis.toml --out /etc/fapolicyd --trust-from /srv/test --json >/tmp/export.json 2>&1
  echo "exit=$?"
  cat /etc/fapolicyd/trust.d/40-portcullis.trust
  cp "/srv/test/pinned tool" /srv/test/pinned-later && echo "# after the export" >> /srv/test/pinned-later
  echo "== portcullis"
  /usr/local/bin/portcullis check --json --policy /etc/portcullis.toml /srv/test/denied /srv/test/permitted /srv/test/other "/srv/test/pinned tool" /srv/test/pinned-later || true
  echo "== fagenrules"
  fagenrules 2>&1
  echo "== fapolicyd"
  fapolicyd --debug --permissive >/tmp/fapolicyd.log 2>&1 &
  i=0
  until grep -q "Starting to listen for events" /tmp/fapolicyd.log; do
    i=$((i+1)); if [ $i -gt 200 ]; then cat /tmp/fapolicyd.log; exit 4; fi; sleep 0.1
  done
  /srv/test/denied; /srv/test/permitted; /srv/test/other; "/srv/test/pinned tool"; /srv/test/pinned-later
  sleep 1
  kill -TERM $! 2>/dev/null || true
  sleep 0.5
  cat /tmp/fapolicyd.log
'
"##;

#[test]
fn debians_fapolicyd_loads_the_export_and_decides_as_portcullis_does() {
    let root = root_with_fapolicyd();
    // The test's files: one denied by its hash, one permitted by its path, one no rule names.
    write_exec(&root.join("/srv/src/denied"), "#!/bin/sh\necho denied ran\n");
    write_exec(&root.join("/srv/src/permitted"), "#!/bin/sh\necho permitted ran\n");
    write_exec(&root.join("/srv/src/other"), "#!/bin/sh\necho other ran\n");
    // Permitted by its file name, which no fapolicyd rule can say: pinned in trust.d (its
    // name has a space, which the trust file escapes).
    write_exec(&root.join("/srv/src/pinned tool"), "#!/bin/sh\necho pinned ran\n");
    let denied = sha256_of(&root.join("/srv/src/denied"));
    let policy = format!(
        r#"[organization]
name = "Acme"
mode = "secured"

[[applications]]
name = "Bad script"
rules = [{{ sha256 = ["{denied}"] }}]

[[applications]]
name = "Tools"
rules = [{{ path = "/srv/test/permitted" }}]

[[policies]]
name = "Deny the bad script"
position = 10
applications = ["Bad script"]
action = "deny"

[[applications]]
name = "Pinned tools"
rules = [{{ file_name = "pinned*" }}]

[[policies]]
name = "Permit tools"
position = 20
applications = ["Tools"]
action = "permit"

[[policies]]
name = "Permit pinned tools"
position = 30
applications = ["Pinned tools"]
action = "permit"
"#
    );
    std::fs::write(root.join("/etc/portcullis.toml"), &policy).unwrap();
    // The export is written inside the namespace, where fapolicyd reads it, judging the
    // files there (its own sample rule set out of the way).
    let _ = std::fs::remove_file(root.join("/etc/fapolicyd/rules.d/90-deny-execute.rules"));
    // fapolicyd's own configuration, changed only where the test must: permissive, as root,
    // watching ramfs only (the test's files), trusting its file backend only.
    let conf_path = root.join("/etc/fapolicyd/fapolicyd.conf");
    let conf: String = std::fs::read_to_string(&conf_path)
        .unwrap()
        .lines()
        .map(|l| match l.split('=').next().map(str::trim) {
            Some("permissive") => "permissive = 1".to_owned(),
            Some("uid") => "uid = root".to_owned(),
            Some("gid") => "gid = root".to_owned(),
            Some("watch_fs") => "watch_fs = ramfs".to_owned(),
            Some("trust") => "trust = file".to_owned(),
            // A pinned file is trusted only as it was exported.
            Some("integrity") => "integrity = sha256".to_owned(),
            _ => l.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&conf_path, conf + "\n").unwrap();
    // The user and group its maintainer script would have made (fagenrules gives them the
    // compiled rules).
    let append = |file: &str, line: &str| {
        let mut text = std::fs::read_to_string(root.join(file)).unwrap();
        text.push_str(line);
        std::fs::write(root.join(file), text).unwrap();
    };
    append("/etc/group", "fapolicyd:x:989:\n");
    append("/etc/passwd", "fapolicyd:x:989:989:fapolicyd:/var/lib/fapolicyd:/usr/sbin/nologin\n");
    std::fs::create_dir_all(root.join("/usr/local/bin")).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_portcullis"), root.join("/usr/local/bin/portcullis")).unwrap();

    let o = Command::new("timeout")
        .args([
            "-s",
            "KILL",
            "90",
            "unshare",
            "--mount",
            "--pid",
            "--fork",
            "--propagation",
            "private",
            "sh",
            "-c",
            SCRIPT,
        ])
        .arg("sh")
        .arg(&root.path)
        .output()
        .unwrap();
    let log = text(&o);
    assert_ne!(o.status.code(), Some(137), "the namespace hit its 90 s limit:\n{log}");
    assert!(o.status.success(), "{log}");
    let section = |name: &str| support::section(&log, name);
    // Portcullis's own verdicts on the files, as the agent would give them.
    let verdicts: Vec<serde_json::Value> =
        section("portcullis").lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let verdict = |name: &str| {
        verdicts
            .iter()
            .find(|v| v["path"].as_str().is_some_and(|p| p.ends_with(name)))
            .unwrap_or_else(|| panic!("no verdict for {name}:\n{log}"))["verdict"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(
        (verdict("/denied"), verdict("/permitted"), verdict("/other"), verdict("/pinned tool")),
        ("deny".into(), "allow".into(), "deny".into(), "allow".into()),
        "{log}"
    );
    // The export: every rule expressed, the file-name rule by the file it pinned, whose
    // escaped path, size and hash are in the trust file.
    let export = section("export");
    assert!(export.contains("exit=0"), "{log}");
    let pinned = std::fs::metadata(root.join("/srv/src/pinned tool")).unwrap().len();
    let line = format!("/srv/test/pinned%20tool {pinned} {}", sha256_of(&root.join("/srv/src/pinned tool")));
    assert!(export.lines().any(|l| l == line), "no {line:?} in the trust file:\n{log}");
    assert!(export.starts_with("exit=0\n# AUTOGENERATED FILE VERSION 2\n"), "{log}");
    // fagenrules and the daemon took every line without a complaint.
    assert!(section("fagenrules").trim().is_empty(), "fagenrules said:\n{log}");
    let daemon = section("fapolicyd");
    // (Its parser says `rules: line:N: …`; "open_dbi: Permission denied" is its empty trust
    // database on a first start, as Debian's README.Debian says.)
    assert!(daemon.contains("Loaded 6 rules"), "{daemon}");
    for bad in ["rules:", "line:", "error", "Error", "Can't", "failed", "Failed", "nknown"] {
        assert!(
            !daemon.lines().any(|l| l.contains(bad) && !l.contains("dec=")),
            "fapolicyd complained ({bad}):\n{daemon}"
        );
    }
    // Its decisions (permissive: what it would do) match Portcullis's.
    let decision = |name: &str| -> String {
        daemon
            .lines()
            .filter(|l| l.contains("perm=execute") && l.contains(&format!("path=/srv/test/{name} ")))
            .find_map(|l| l.split_whitespace().find_map(|w| w.strip_prefix("dec=")).map(str::to_owned))
            .unwrap_or_else(|| panic!("fapolicyd decided nothing on executing {name}:\n{daemon}"))
    };
    assert_eq!(decision("denied"), "deny_audit", "{daemon}");
    assert_eq!(decision("permitted"), "allow", "{daemon}");
    assert_eq!(decision("other"), "deny_audit", "{daemon}");
    // The pinned file is allowed by its trust entry (path unescaped, content verified)…
    assert_eq!(decision("pinned tool"), "allow", "{daemon}");
    // …and a file the rule permits that was not there at export time is not: the
    // approximation the report states.
    assert_eq!(decision("pinned-later"), "deny_audit", "{daemon}");
}
