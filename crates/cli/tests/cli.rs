//! The `portcullis` command line as a user runs it: real binary, real fixture files
//! (tests/fixtures/make-fixtures.sh), exit statuses as documented.
//!
//! `acceptance_3cx_walkthrough` is the issue's acceptance test: paste a report table, get a
//! blocklist package, add the OriginalFilename rule, and `check` denies a renamed copy of
//! the 3CX exe while allowing an unrelated one.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn fixtures() -> PathBuf {
    let dir = std::env::var_os("PORTCULLIS_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/fixtures"));
    assert!(dir.join("manifest.txt").exists(), "fixtures missing in {}: run `./x fixtures`", dir.display());
    dir
}

fn portcullis(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_portcullis")).args(args).current_dir(cwd).output().expect("runs")
}

fn text(out: &Output) -> (String, String) {
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn f(name: &str) -> String {
    fixtures().join(name).display().to_string()
}

const REPORT: &str = "\
Rhipe advisory, 30 March 2023 — 3CX DesktopApp (copy/paste from the vendor table)

SHA256Operating SystemInstaller SHA256File Name
DDE03348075512796241389DFEA5560C20A3D2A2EAC95C894E7BBED5E85A0ACC\tWindows\tAA124A4B4DF12B34E74EE7F6C683B2EBEC4CE9A8EDCF9BE345823B4FDCF5D868\t3CXDesktopApp-18.12.407.msi
fad482ded2e25ce9e1dd3d3ecc3227af714bdfbbde04347dbc1b21d6a3670405\tWindows\t59e1edf4d82fae4978e97512b0331b7eb21dd4b838b850ba46794d9c7a2c0983\t3CXDesktopApp-18.12.416.msi
92005051ae314d61074ed94a52e76b1c3e21e7f0e8c1d1fdd497a006ce45fa61\tmacOS\t5407cda7d3a75e7b1e030b1f33337a56f293578ffa8b3ae19c671051ed314290\t3CXDesktopApp-18.11.1213.dmg
b86c695822013483fa4e2dfdf712c5ee777d7b99cbad8c2fa2274b133481eadb\tmacOS\te6bbc33815b9f20b0cf832d7401dd893fbc467c800728b5891336706da0dbcec\t3cxdesktopapp-latest.dmg
ffmpeg.dll sha1: 0xBF939C9C261D27EE7BB92325CC588624FCA75429, md5 74bc2d0b6680faa1a5a76b27e5479cbc
";

#[test]
fn acceptance_3cx_walkthrough() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("report.txt"), REPORT).unwrap();

    // 1. Paste the report: a blocklist package comes out, with counts on stderr.
    let out = portcullis(
        &[
            "hashes",
            "extract",
            "--format",
            "package",
            "--name",
            "3CX DesktopApp",
            "--approve",
            "organization",
            "report.txt",
        ],
        dir.path(),
    );
    assert!(out.status.success(), "{:?}", text(&out));
    let (package, counts) = text(&out);
    assert!(counts.contains("extracted 8 SHA-256, 1 SHA-1, 1 MD5"), "{counts}");

    // 2. Add the metadata rule OS=Windows, OriginalFilename=3CXDesktopApp, as in the seed
    //    article; Monitor mode so that unrelated software keeps running.
    let policy = format!(
        "[organization]\nname = \"Acme\"\nmode = \"monitor\"\n\n{package}\n[[blocklists.rules]]\nos = \"windows\"\noriginal_filename = \"3CXDesktopApp\"\n"
    );
    std::fs::write(dir.path().join("policy.toml"), &policy).unwrap();
    let lint = portcullis(&["policy", "lint", "policy.toml"], dir.path());
    assert_eq!(lint.status.code(), Some(0), "{:?}", text(&lint));

    // 3. A renamed copy of the 3CX exe is denied, naming the rule; an unrelated exe runs.
    std::fs::copy(fixtures().join("3CXDesktopApp.exe"), dir.path().join("invoice-viewer.exe")).unwrap();
    std::fs::copy(fixtures().join("notepad-lite.exe"), dir.path().join("notepad-lite.exe")).unwrap();
    let out = portcullis(&["check", "--policy", "policy.toml", "invoice-viewer.exe"], dir.path());
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(10), "{stdout}{stderr}");
    assert!(stdout.starts_with("DENY  invoice-viewer.exe"), "{stdout}");
    assert!(stdout.contains("denied by blocklist package \"3CX DesktopApp\": rule 2 of \"3CX DesktopApp\" matched original_filename=\"3CXDesktopApp\" (file: \"3CXDesktopApp.exe\"), os=\"windows\""), "{stdout}");
    let out = portcullis(&["check", "--json", "--policy", "policy.toml", "notepad-lite.exe"], dir.path());
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["verdict"], "allow");
    assert_eq!(v["would_deny"], true, "Monitor mode reports what Secured would deny");

    // The same package in YAML decides the same way.
    let yaml = "organization: {name: Acme, mode: monitor}\nblocklists:\n  - name: 3CX DesktopApp\n    approved: [organization]\n    rules:\n      - {os: windows, original_filename: 3CXDesktopApp}\n";
    std::fs::write(dir.path().join("policy.yaml"), yaml).unwrap();
    let out = portcullis(&["check", "--policy", "policy.yaml", "invoice-viewer.exe", "notepad-lite.exe"], dir.path());
    assert_eq!(out.status.code(), Some(10), "{:?}", text(&out));
}

#[test]
fn builtin_reported_deny_above_a_permit() {
    // ThreatLocker's advice: deny "3CX [Reported] (Built-In)" above the 3CX permit. The
    // built-in lists the published hashes and, for the Windows builds, OriginalFilename and
    // product at the reported versions: the signed 18.12.416 build is denied while a signed,
    // clean 18.12.422 build of the same application runs.
    let dir = tempfile::tempdir().unwrap();
    let policy = r#"
[[applications]]
name = "3CX Desktop App"
rules = [{ company_name = "3CX Ltd", original_filename = "3CXDesktopApp", signer = { subject = "*Portcullis Test Signer*", verified = true } }]

[[policies]]
name = "Deny reported 3CX"
position = 100
applications = ["3CX Desktop App [Reported] (Built-In)"]
action = "deny"

[[policies]]
name = "Permit 3CX"
position = 200
applications = ["3CX Desktop App"]
action = "permit"
"#;
    std::fs::write(dir.path().join("p.toml"), policy).unwrap();
    let ca = f("ca.pem");
    let out = portcullis(
        &[
            "check",
            "--json",
            "--trust-store",
            &ca,
            "--policy",
            "p.toml",
            &f("3CXDesktopApp-signed.exe"),
            &f("3CXDesktopApp-18.12.422-signed.exe"),
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(10));
    let lines: Vec<Value> = out
        .stdout
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    assert_eq!(lines[0]["verdict"], "deny");
    assert_eq!(lines[0]["policy"], "Deny reported 3CX");
    assert!(lines[0]["reason"].as_str().unwrap().contains("18.12.416"), "{}", lines[0]["reason"]);
    assert_eq!(lines[1]["verdict"], "allow", "{}", lines[1]["reason"]);
    assert!(lines[1]["reason"].as_str().unwrap().contains("signer.verified"));
    // Without the trust store the signature is not verified, so the permit does not match.
    let out = portcullis(&["check", "--policy", "p.toml", &f("3CXDesktopApp-18.12.422-signed.exe")], dir.path());
    assert_eq!(out.status.code(), Some(10));
    assert!(text(&out).0.contains("Secured mode"));
    // The built-in really holds the published hashes with their sources.
    let apps = portcullis(&["policy", "apps", "--json"], dir.path());
    let v: Value = serde_json::from_slice(&apps.stdout).unwrap();
    assert_eq!(v[0]["name"], "3CX Desktop App [Reported] (Built-In)");
    assert_eq!(v[0]["hashes"], 56);
}

#[test]
fn scan_json_has_the_public_fields() {
    let dir = tempfile::tempdir().unwrap();
    let out = portcullis(
        &[
            "scan",
            "--json",
            "--trust-store",
            &f("ca.pem"),
            &f("3CXDesktopApp-signed.msi"),
            &f("hello-pie"),
            &f("app.cab"),
        ],
        dir.path(),
    );
    assert!(out.status.success(), "{:?}", text(&out));
    let records: Vec<Value> = out
        .stdout
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    for r in &records {
        for key in ["path", "size", "sha256", "format", "parse_error"] {
            assert!(r.get(key).is_some(), "{key} missing in {r}");
        }
        assert!(r["parse_error"].is_null(), "{r}");
    }
    let msi = records.iter().find(|r| r["format"] == "msi").unwrap();
    assert_eq!(msi["product_name"], "3CX Desktop App");
    assert_eq!(msi["company_name"], "3CX Ltd");
    assert_eq!(msi["signature_valid"], true);
    assert_eq!(msi["signature_trusted"], true);
    assert!(msi["signer_subject"].as_str().unwrap().contains("Portcullis Test Signer"));
    assert_eq!(msi["signer_cert_sha256"].as_str().unwrap().len(), 64);
    let inner: Vec<&Value> = records.iter().filter(|r| r["container"] == msi["path"]).collect();
    assert_eq!(inner.len(), 2, "each file inside the MSI is its own record");
    let exe = inner.iter().find(|r| r["original_filename"] == "3CXDesktopApp.exe").unwrap();
    assert_eq!(exe["file_version"], "18.12.416.0");
    assert_eq!(exe["authenticode_sha256"].as_str().unwrap().len(), 64);
    assert_eq!(exe["authenticode_sha1"].as_str().unwrap().len(), 40);
    let cab_inner = records.iter().filter(|r| r["container"].as_str().is_some_and(|c| c.ends_with("app.cab"))).count();
    assert_eq!(cab_inner, 2);
    let elf = records.iter().find(|r| r["format"] == "elf-pie").unwrap();
    assert_eq!(elf["elf"]["interpreter"], "/lib64/ld-linux-x86-64.so.2");
}

#[test]
fn scan_walks_folders_and_reports_unreadable_paths() {
    let dir = tempfile::tempdir().unwrap();
    let out = portcullis(&["scan", "--json", &fixtures().display().to_string(), "/nonexistent/portcullis"], dir.path());
    assert_eq!(out.status.code(), Some(3), "{:?}", text(&out).1);
    let (stdout, stderr) = text(&out);
    assert!(stderr.contains("/nonexistent/portcullis: No such file"), "{stderr}");
    assert!(stdout.lines().count() > 40);
    // The human table names the appended-data trick.
    let out = portcullis(&["scan", &f("3CXDesktopApp-appended.exe")], dir.path());
    assert!(text(&out).0.contains("appended after the signature inside the certificate table"));
}

#[test]
fn hashes_extract_plain_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["hashes", "extract"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .current_dir(dir.path())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(REPORT.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(stdout.lines().count(), 10);
    assert!(
        stdout.lines().all(|l| l.len() >= 32 && l.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()))
    );
    assert!(stderr.contains("extracted 8 SHA-256, 1 SHA-1, 1 MD5"), "{stderr}");
    let csv = portcullis(
        &["hashes", "extract", "--format", "json", &f("../../crates/catalog/data/3cx-iocs.csv")],
        dir.path(),
    );
    let v: Value = serde_json::from_slice(&csv.stdout).unwrap_or_else(|_| panic!("{:?}", text(&csv)));
    assert_eq!(v["counts"]["sha256"], 25);
    assert_eq!(v["counts"]["sha1"], 17);
    assert_eq!(v["counts"]["md5"], 14);
}

#[test]
fn policy_errors_name_the_file_line_and_fix() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.toml"),
        "[[policies]]\nname = \"P\"\nposition = 1\napplications = [\"Nope\"]\naction = \"deny\"\n",
    )
    .unwrap();
    for cmd in [
        &["policy", "lint", "bad.toml"][..],
        &["policy", "compile", "bad.toml"],
        &["check", "--policy", "bad.toml", "/bin/true"],
    ] {
        let out = portcullis(cmd, dir.path());
        assert_eq!(out.status.code(), Some(4), "{cmd:?}");
        let err = text(&out).1;
        assert!(
            err.contains("bad.toml:4:16: error: policy \"P\" names application \"Nope\", which is not defined"),
            "{err}"
        );
    }
    let out = portcullis(&["check", "--policy", "missing.toml", "/bin/true"], dir.path());
    assert_eq!(out.status.code(), Some(3));
    assert!(text(&out).1.contains("cannot read policy file missing.toml"));
    let out = portcullis(&["check"], dir.path());
    assert_eq!(out.status.code(), Some(2), "clap usage errors exit 2");
}

#[test]
fn lint_reports_a_permit_that_kills_a_deny() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("p.toml"),
        r#"
[[applications]]
name = "3CX"
rules = [{ company_name = "3CX Ltd" }]

[[policies]]
name = "Permit 3CX"
position = 100
applications = ["3CX"]
action = "permit"

[[policies]]
name = "Deny 3CX"
position = 200
applications = ["3CX"]
action = "deny"
"#,
    )
    .unwrap();
    let out = portcullis(&["policy", "lint", "p.toml"], dir.path());
    assert_eq!(out.status.code(), Some(5));
    let stdout = text(&out).0;
    assert!(
        stdout.starts_with(
            "p.toml:13:8: warning[permit-above-deny]: policy \"Deny 3CX\" (position 200, deny) is unreachable"
        ),
        "{stdout}"
    );
    let out = portcullis(&["policy", "compile", "--json", "p.toml"], dir.path());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["policies"][0]["name"], "Permit 3CX");
}

/// `check` and the agent classify ELF files by one rule: glibc's libc.so.6 (which has a
/// `PT_INTERP`, so that running it prints its version) is a library, and a `kind =
/// "library"` rule matches it, as the agent judges every open of it as a load.
#[test]
fn a_library_rule_matches_libc_in_check_as_the_agent_sees_it() {
    let dir = tempfile::tempdir().unwrap();
    let policy = r#"
[organization]
mode = "monitor"

[[applications]]
name = "Shared libraries"
rules = [{ kind = "library", os = "linux" }]

[[policies]]
name = "Deny libraries"
position = 1
applications = ["Shared libraries"]
action = "deny"
"#;
    std::fs::write(dir.path().join("p.toml"), policy).unwrap();
    let libc = std::fs::canonicalize("/lib/x86_64-linux-gnu/libc.so.6").unwrap();
    let out = portcullis(&["check", "--json", "--policy", "p.toml", libc.to_str().unwrap(), "/usr/bin/ls"], dir.path());
    let lines: Vec<Value> = out
        .stdout
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    assert_eq!(lines[0]["verdict"], "deny", "{}", lines[0]);
    assert_eq!(lines[0]["policy"], "Deny libraries");
    assert_ne!(lines[1]["policy"], "Deny libraries", "a PIE program is not a library: {}", lines[1]);
}

/// `portcullis events --only` takes every kind of the event schema, and names them when
/// given another.
#[test]
fn events_only_takes_every_kind_of_the_schema() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    std::fs::create_dir_all(&spool).unwrap();
    let line = r#"{"time":"2026-12-01T10:00:00Z","event":"ringfence-deny","access":"connect","verdict":"deny","mode":"secured","reason":"r","file":{"path":"tcp://127.0.0.2:9"},"process":{"pid":7}}"#;
    std::fs::write(spool.join("events-00000001.jsonl"), format!("{line}\n")).unwrap();
    let spool = spool.to_str().unwrap();
    let out = portcullis(&["events", "--spool", spool, "--only", "ringfence-deny"], dir.path());
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("FENCE DENY") && stdout.contains("tcp://127.0.0.2:9"), "{stdout}");
    let out = portcullis(&["events", "--spool", spool, "--only", "deny"], dir.path());
    assert!(!text(&out).0.contains("tcp://"), "another kind is left out");
    let out = portcullis(&["events", "--spool", spool, "--only", "quarantine"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).1.contains("ringfence-would-deny"), "{}", text(&out).1);
}

#[test]
fn check_trusts_the_hosts_packages_as_the_agent_does_and_not_a_copy() {
    let Ok(bash) = std::fs::canonicalize("/bin/bash") else { return };
    if !Path::new("/var/lib/dpkg/status").exists() {
        return; // not a dpkg host
    }
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        "[organization]\nname = \"Check\"\nmode = \"secured\"\n\n[[policies]]\nname = \"Permit packages\"\n\
         position = 100\napplications = [\"Distribution packages (Built-In)\"]\naction = \"permit\"\n",
    )
    .unwrap();
    let copy = dir.path().join("bash");
    std::fs::copy(&bash, &copy).unwrap();
    let p = policy.to_str().unwrap();
    let out =
        portcullis(&["check", "--json", "--policy", p, bash.to_str().unwrap(), copy.to_str().unwrap()], dir.path());
    assert_eq!(out.status.code(), Some(10), "{:?}", text(&out));
    let lines: Vec<Value> = text(&out).0.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines[0]["verdict"], "allow", "{}", lines[0]);
    assert_eq!(lines[0]["packages"], serde_json::json!(["dpkg:bash"]));
    assert_eq!(lines[1]["verdict"], "deny", "a copy is listed by no package: {}", lines[1]);
    let out = portcullis(&["check", "--no-package-trust", "--policy", p, bash.to_str().unwrap()], dir.path());
    assert_eq!(out.status.code(), Some(10), "{:?}", text(&out));
}

#[test]
fn export_writes_each_engines_files_and_reports_every_rule() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("p.toml");
    std::fs::write(
        &policy,
        r#"[organization]
name = "Acme"
mode = "secured"

[[groups]]
path = "Workstations"

[[applications]]
name = "Tool"
rules = [{ authenticode_sha256 = ["aa124a4b4df12b34e74ee7f6c683b2ebec4ce9a8edcf9be345823b4fdcf5d868"] }, { user = "alice", path = "/opt/x" }]

[[policies]]
name = "Deny reported"
position = 10
applications = ["3CX Desktop App [Reported] (Built-In)"]
action = "deny"

[[policies]]
name = "Permit tool"
position = 20
applications = ["Tool"]
action = "permit"
scope = "group:Workstations"
"#,
    )
    .unwrap();
    let out = dir.path().join("out");
    let (p, o) = (policy.to_str().unwrap(), out.to_str().unwrap());
    for (format, file) in [
        ("applocker", "applocker.xml"),
        ("appcontrol", "appcontrol.xml"),
        ("santa", "santa-rules.json"),
        ("fapolicyd", "rules.d/40-portcullis.rules"),
    ] {
        let r = portcullis(&["export", format, "--policy", p, "--group", "Workstations", "--out", o], dir.path());
        let (stdout, stderr) = text(&r);
        // Some rules cannot be expressed by any one engine: exit 13, files written anyway.
        assert_eq!(r.status.code(), Some(13), "{format}: {stdout}{stderr}");
        assert!(
            stdout.contains("not expressible") && stdout.contains(&format!("wrote {}", out.join(file).display())),
            "{stdout}"
        );
        assert!(out.join(file).exists(), "{format}");
        let r = portcullis(&["export", format, "--policy", p, "--group", "Workstations", "--json"], dir.path());
        let doc: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
        let entries = doc["report"]["entries"].as_array().unwrap();
        assert!(
            entries.iter().any(|e| e["source"]["name"] == "Permit tool"
                && e["source"]["rule"] == 2
                && e["outcome"] == "not-expressible"
                && e["why"].as_str().unwrap().contains("user")),
            "{format}: {doc:#}"
        );
        assert!(doc["files"][0]["written"].is_null(), "--json without --out writes nothing");
    }
    // An unknown group is refused with the groups there are; an unknown format by clap.
    let r = portcullis(&["export", "santa", "--policy", p, "--group", "Nope"], dir.path());
    assert_eq!(r.status.code(), Some(4));
    assert!(text(&r).1.contains("has no group \"Nope\"; its groups: Workstations"), "{:?}", text(&r));
    let r = portcullis(&["export", "intune", "--policy", p], dir.path());
    assert_eq!(r.status.code(), Some(2));
    // Files to pin are for fapolicyd's trust file only; a folder that is not there is said,
    // and pins nothing.
    let r = portcullis(&["export", "santa", "--policy", p, "--trust-from", o], dir.path());
    assert_eq!(r.status.code(), Some(4));
    assert!(text(&r).1.contains("--trust-from is for fapolicyd's trust file; Santa has none"), "{:?}", text(&r));
    let gone = dir.path().join("gone");
    let r = portcullis(
        &[
            "export",
            "fapolicyd",
            "--policy",
            p,
            "--group",
            "Workstations",
            "--trust-from",
            gone.to_str().unwrap(),
            "--json",
        ],
        dir.path(),
    );
    assert_eq!(r.status.code(), Some(13), "{:?}", text(&r));
    assert!(text(&r).1.contains("warning: --trust-from:") && text(&r).1.contains("gone"), "{:?}", text(&r));
    let doc: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    assert_eq!(doc["files"].as_array().unwrap().len(), 1, "no trust file without a pinned file: {doc:#}");
}

#[test]
fn import_writes_a_policy_file_that_loads_and_reports_every_rule() {
    let dir = tempfile::tempdir().unwrap();
    let santa = dir.path().join("rules.json");
    std::fs::write(
        &santa,
        r#"{"rules":[{"identifier":"EQHXZ8M8AV","policy":"ALLOWLIST","rule_type":"TEAMID","custom_msg":"Google"},
                    {"identifier":"5555555555555555555555555555555555555555555555555555555555555555","policy":"BLOCKLIST","rule_type":"BINARY"},
                    {"identifier":"EQHXZ8M8AV:com.google.Chrome","policy":"ALLOWLIST","rule_type":"SIGNINGID"},
                    {"identifier":"4444444444444444444444444444444444444444","policy":"BLOCKLIST","rule_type":"CDHASH"}]}"#,
    )
    .unwrap();
    let out = dir.path().join("imported.toml");
    let r = portcullis(
        &["import", "santa", santa.to_str().unwrap(), "--prefix", "Macs", "--out", out.to_str().unwrap()],
        dir.path(),
    );
    let (stdout, stderr) = text(&r);
    assert_eq!(r.status.code(), Some(13), "the CDHASH rule is not expressible: {stdout}{stderr}");
    assert!(stdout.contains("2 imported, 1 approximated, 1 not expressible"), "{stdout}");
    let compiled = portcullis(&["policy", "compile", out.to_str().unwrap()], dir.path());
    assert!(compiled.status.success(), "{:?}", text(&compiled));
    assert!(text(&compiled).0.contains("Macs: Santa binaries blocked"));
    // Not the format it says: refused with the reason.
    let r = portcullis(&["import", "applocker", santa.to_str().unwrap()], dir.path());
    assert_eq!(r.status.code(), Some(4));
    assert!(text(&r).1.contains("not well-formed XML") || text(&r).1.contains("cannot be imported"), "{:?}", text(&r));
}
