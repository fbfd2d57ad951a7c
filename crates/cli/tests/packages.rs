//! The Debian packages installed for real: `./x test` builds portcullis-server,
//! portcullis-agent and portcullis-dbgsym (versions 0.0.1 and 0.0.2, from the test build's
//! binary) into target/package-ci; this test installs them with dpkg into its own Debian 12
//! root (mmdebstrap), checks what the maintainer scripts did, runs each unit's ExecStart as
//! the unit would (its settings file as environment, its user, its state directory, its
//! umask), upgrades with a changed setting kept, and purges. systemd-analyze verifies the
//! installed units and rates the server's hardening; lintian reads the packages.
//!
//! Safety: everything runs in a private mount, PID and network namespace (the server listens
//! on that namespace's loopback), chrooted into a tmpfs; the agent runs in Monitor mode,
//! marking only a tmpfs of the test's, and a time limit kills the whole namespace.

mod support;

use std::path::PathBuf;
use std::process::Command;
use support::{Root, debs, section, target, text};

fn ci_debs(version: &str) -> Vec<PathBuf> {
    let dir = target().join("package-ci").join(version);
    assert!(dir.exists(), "the packages are missing: `./x test` builds them ({})", dir.display());
    let debs = debs(&dir);
    let names: Vec<String> =
        debs.iter().map(|d| d.file_name().unwrap().to_string_lossy().split('_').next().unwrap().to_owned()).collect();
    assert_eq!(names, ["portcullis-agent", "portcullis-dbgsym", "portcullis-server"], "{debs:?}");
    debs
}

/// Run `script` (sh, `$1` the root) in a private mount, PID and network namespace, bounded.
fn in_namespace(root: &Root, script: &str, seconds: u32) -> String {
    let o = Command::new("timeout")
        .args(["-s", "KILL", &seconds.to_string(), "unshare", "--mount", "--pid", "--net", "--fork"])
        .args(["--propagation", "private", "sh", "-c", script, "sh"])
        .arg(&root.path)
        .output()
        .unwrap();
    let log = text(&o);
    assert_ne!(o.status.code(), Some(137), "the namespace hit its {seconds} s limit:\n{log}");
    assert!(o.status.success(), "{log}");
    log
}

/// The mounts a root needs, then `chroot` runs the rest.
const MOUNTS: &str = r#"
set -e
R=$1
mount -t proc proc "$R/proc"
mount -t sysfs sysfs "$R/sys"
mount --rbind /dev "$R/dev"
mount -t tmpfs tmpfs "$R/run"
mkdir -p "$R/srv/marked"
mount -t tmpfs tmpfs "$R/srv/marked"
ip link set lo up
"#;

/// Installation, the server as its unit runs it (reached over HTTPS from outside the
/// chroot), the first administrator, the agent as its unit runs it.
const INSTALL_AND_RUN: &str = r#"
cat >"$R/srv/run-server.sh" <<'SH'
# As portcullis-server.service runs it: EnvironmentFile, User/Group, StateDirectory, UMask.
install -d -o portcullis -g portcullis -m 0750 /var/lib/portcullis
set -a; . /etc/portcullis/server.conf; set +a
umask 077
exec setpriv --reuid=portcullis --regid=portcullis --init-groups --no-new-privs "$@"
SH
chroot "$R" /bin/sh -c '
  set -e
  echo "== install"
  dpkg -i /srv/debs/libelf1_*.deb >/dev/null
  dpkg -i /srv/debs/0.0.1/*.deb 2>&1
  echo "== state"
  getent passwd portcullis
  stat -c "%n %U:%G %a" /etc/portcullis/server.conf /etc/portcullis/agent.conf
  ls /etc/systemd/system/multi-user.target.wants/
  ls /etc/systemd/system/sysinit.target.wants/ 2>/dev/null | grep portcullis || echo "agent not enabled"
  find /usr/lib/debug -name "*.debug"
'
chroot "$R" /bin/sh /srv/run-server.sh /usr/bin/portcullis server >"$R/srv/server.log" 2>&1 &
i=0
until grep -q "listening on" "$R/srv/server.log"; do
  i=$((i+1)); if [ $i -gt 300 ]; then cat "$R/srv/server.log"; exit 4; fi; sleep 0.1
done
echo "== server"
chroot "$R" /bin/sh -c 'echo "first-admin-password-1" | sh /srv/run-server.sh /usr/bin/portcullis server create-admin --organization Acme --user alice' 2>&1
curl -sk -o /dev/null -w "login page %{http_code}\n" https://127.0.0.1:8443/login
curl -sk -o /dev/null -w "api login %{http_code}\n" -H 'content-type: application/json' \
  -d '{"organization":"Acme","user":"alice","password":"first-admin-password-1"}' https://127.0.0.1:8443/api/session
chroot "$R" stat -c "%n %U:%G %a" /var/lib/portcullis /var/lib/portcullis/server.db
echo "== agent"
chroot "$R" /bin/sh -c '
  # As portcullis-agent.service runs it: EnvironmentFile, root, StateDirectory (0700); told
  # where its policy is, and (for the test) to mark only the test tmpfs and stop after 1 s.
  install -d -m 0700 /var/lib/portcullis-agent
  set -a; . /etc/portcullis/agent.conf; PORTCULLIS_POLICY=/srv/policy.toml; set +a
  exec /usr/sbin/portcullis-agent agent --mark-under /srv/marked --no-protect --exit-after 1
' 2>&1 && echo "agent exit 0" || echo "agent exit $?"
"#;

#[test]
fn the_packages_install_run_upgrade_and_purge_in_a_debian_root() {
    let (v1, v2) = (ci_debs("0.0.1"), ci_debs("0.0.2"));
    let root = Root::new();
    let libelf = debs(&target().join("debian-root/fapolicyd"))
        .into_iter()
        .find(|d| d.file_name().unwrap().to_string_lossy().starts_with("libelf1_"))
        .expect("libelf1 (a dependency the apt variant lacks): `./x test` downloads it");
    for (dir, files) in [("srv/debs/0.0.1", &v1), ("srv/debs/0.0.2", &v2)] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
        for f in files.iter() {
            std::fs::copy(f, root.join(dir).join(f.file_name().unwrap())).unwrap();
        }
    }
    std::fs::copy(&libelf, root.join("srv/debs").join(libelf.file_name().unwrap())).unwrap();
    std::fs::write(root.join("srv/policy.toml"), "[organization]\nname = \"Acme\"\nmode = \"monitor\"\n").unwrap();

    let log = in_namespace(&root, &format!("{MOUNTS}{INSTALL_AND_RUN}"), 240);
    let install = section(&log, "install");
    assert!(install.contains("Setting up portcullis-server (0.0.1)"), "{log}");
    assert!(install.contains("Setting up portcullis-agent (0.0.1)"), "{log}");
    let state = section(&log, "state");
    assert!(state.contains("portcullis:x:") && state.contains(":/var/lib/portcullis:"), "a system user: {state}");
    assert!(state.contains("/etc/portcullis/server.conf root:portcullis 640"), "{state}");
    assert!(state.contains("/etc/portcullis/agent.conf root:root 644"), "{state}");
    assert!(state.contains("portcullis-server.service"), "the server is enabled: {state}");
    assert!(state.contains("agent not enabled"), "the agent waits for its settings: {state}");
    // Stripped, with its debug symbols by build ID in the dbgsym package.
    let binary = root.join("usr/bin/portcullis");
    let sections = Command::new("readelf").args(["-S", "-W"]).arg(&binary).output().unwrap();
    assert!(!text(&sections).contains(".debug_info"), "stripped");
    let notes = text(&Command::new("readelf").arg("-n").arg(&binary).output().unwrap());
    let id = notes.lines().find_map(|l| l.trim().strip_prefix("Build ID: ")).unwrap().to_owned();
    assert!(state.contains(&format!("/usr/lib/debug/.build-id/{}/{}.debug", &id[..2], &id[2..])), "{state}");
    let server = section(&log, "server");
    assert!(server.contains("login page 200") && server.contains("api login 200"), "{log}");
    assert!(server.contains("/var/lib/portcullis portcullis:portcullis 750"), "{server}");
    assert!(server.contains("/var/lib/portcullis/server.db portcullis:portcullis 600"), "its umask: {server}");
    let agent = section(&log, "agent");
    assert!(agent.contains("agent exit 0") && agent.contains("enforcing"), "{log}");

    // The installed units, as this host's systemd reads them (the test's root has no
    // systemd): valid, and the server's exposure rated. Their programs are the root's.
    let units = tempfile::tempdir().unwrap();
    let mut unit_files = Vec::new();
    for name in ["portcullis-server.service", "portcullis-agent.service"] {
        let installed = std::fs::read_to_string(root.join("usr/lib/systemd/system").join(name)).unwrap();
        let path = units.path().join(name);
        let text = installed
            .replace("/usr/bin/portcullis ", &format!("{} ", root.join("usr/bin/portcullis").display()))
            .replace("/usr/sbin/portcullis-agent ", &format!("{} ", root.join("usr/sbin/portcullis-agent").display()));
        std::fs::write(&path, text).unwrap();
        unit_files.push(path);
    }
    let verify = Command::new("systemd-analyze").arg("verify").args(&unit_files).output().unwrap();
    assert!(verify.status.success() && text(&verify).trim().is_empty(), "systemd-analyze verify: {}", text(&verify));
    let security = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--threshold=20"])
        .arg(&unit_files[0])
        .output()
        .unwrap();
    let rating = text(&security);
    let overall = rating.lines().find(|l| l.contains("Overall exposure level")).unwrap_or_default().to_owned();
    eprintln!("systemd-analyze security portcullis-server.service: {overall}");
    assert!(security.status.success(), "exposure above 2.0: {rating}");

    // Upgrade: a setting the administrator changed is kept, the database too; then purge.
    let upgrade = r#"
chroot "$R" /bin/sh -c '
  echo "== upgrade"
  sed -i "s/^PORTCULLIS_LOG=info/PORTCULLIS_LOG=debug/" /etc/portcullis/server.conf
  dpkg -i /srv/debs/0.0.2/portcullis-*.deb 2>&1
  grep "^PORTCULLIS_LOG=" /etc/portcullis/server.conf
  stat -c "%n %U:%G %a" /etc/portcullis/server.conf /var/lib/portcullis/server.db
  dpkg-query -W -f="\${Package} \${Version}\n" "portcullis-*"
'
# The upgraded server on the kept database: the administrator made before logs in.
chroot "$R" /bin/sh /srv/run-server.sh /usr/bin/portcullis server >"$R/srv/server2.log" 2>&1 &
server=$!
i=0
until grep -q "listening on" "$R/srv/server2.log"; do
  i=$((i+1)); if [ $i -gt 300 ]; then cat "$R/srv/server2.log"; exit 4; fi; sleep 0.1
done
curl -sk -o /dev/null -w "api login after upgrade %{http_code}\n" -H 'content-type: application/json' \
  -d '{"organization":"Acme","user":"alice","password":"first-admin-password-1"}' https://127.0.0.1:8443/api/session
kill $server; wait $server 2>/dev/null || true
chroot "$R" /bin/sh -c '
  echo "== purge"
  dpkg --purge portcullis-agent portcullis-server portcullis-dbgsym 2>&1
  for p in /usr/bin/portcullis /usr/sbin/portcullis-agent /etc/portcullis /var/lib/portcullis \
           /var/lib/portcullis-agent /usr/lib/systemd/system/portcullis-server.service \
           /etc/systemd/system/multi-user.target.wants/portcullis-server.service /usr/lib/debug/.build-id; do
    [ -e "$p" ] && echo "left: $p"
  done
  dpkg-query -W -f="\${Package} \${Status}\n" "portcullis-*" 2>&1 || true
  echo "== end"
'
"#;
    let log = in_namespace(&root, &format!("{MOUNTS}{upgrade}"), 120);
    let up = section(&log, "upgrade");
    assert!(up.contains("Unpacking portcullis-server (0.0.2) over (0.0.1)"), "{log}");
    assert!(up.contains("PORTCULLIS_LOG=debug"), "the administrator's setting is kept: {log}");
    assert!(up.contains("/etc/portcullis/server.conf root:portcullis 640"), "{up}");
    assert!(up.contains("/var/lib/portcullis/server.db portcullis:portcullis"), "{up}");
    assert!(up.contains("portcullis-server 0.0.2") && up.contains("portcullis-agent 0.0.2"), "{up}");
    assert!(up.contains("api login after upgrade 200"), "{log}");
    let purge = section(&log, "purge");
    assert!(!purge.contains("left: "), "purge leaves nothing: {purge}");
    assert!(purge.contains("Purging configuration files for portcullis-server"), "{purge}");
    assert!(!purge.contains("install ok"), "{purge}");
}

#[test]
fn lintian_finds_no_error_in_the_packages() {
    let debs = ci_debs("0.0.1");
    let o = Command::new("lintian").args(["--tag-display-limit", "0"]).args(&debs).output().unwrap();
    let out = text(&o);
    let errors: Vec<&str> = out.lines().filter(|l| l.starts_with("E: ")).collect();
    assert!(errors.is_empty(), "lintian:\n{out}");
    // No warning either: the manual pages are there, and a new warning is a change to look at.
    let warnings: Vec<&str> = out.lines().filter(|l| l.starts_with("W: ")).collect();
    assert!(warnings.is_empty(), "lintian:\n{out}");
}
