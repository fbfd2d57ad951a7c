//! Decision semantics (DESIGN §3), one policy file and a few facts per case.
//!
//! Each case states the policy as an administrator would write it, the file, and the verdict
//! with the words its one-line reason must contain.

use portcullis_hashlist::Hash;
use portcullis_policy::*;
use portcullis_policy_file::{Format, parse};

const REPORTED: &str = "fad482ded2e25ce9e1dd3d3ecc3227af714bdfbbde04347dbc1b21d6a3670405";
const CLEAN: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const NOW: Timestamp = Timestamp(1_800_000_000); // 2027-01-15

fn sha(hex: &str) -> [u8; 32] {
    match Hash::from_hex(hex) {
        Some(Hash::Sha256(b)) => b,
        _ => panic!("bad test hash"),
    }
}

fn exe(path: &str, hex: &str) -> FileFacts {
    FileFacts {
        path: path.into(),
        sha256: sha(hex),
        kind: FileKind::Executable,
        platform: Some(Os::Windows),
        original_filename: Some("3CXDesktopApp.exe".into()),
        company_name: Some("3CX Ltd".into()),
        file_version: Some(Version::new(18, 12, 416, 0)),
        ..Default::default()
    }
}

fn engine(policy: &str) -> Engine {
    let loaded = parse(policy, Format::Toml, &[]).unwrap_or_else(|e| panic!("{:#?}", e.diagnostics));
    Engine::new(loaded.set).unwrap()
}

#[track_caller]
fn check(
    engine: &Engine,
    computer: Option<&str>,
    file: &FileFacts,
    process: &ProcessFacts,
    verdict: Verdict,
    reason: &[&str],
) -> Decision {
    let target = engine.target(computer, Os::Linux).unwrap();
    let d = engine.decide(file, process, &target, NOW);
    let line = d.explain();
    assert_eq!(d.verdict, verdict, "reason: {line}");
    for words in reason {
        assert!(line.contains(words), "{words:?} not in reason: {line}");
    }
    d
}

fn base(policies: &str) -> String {
    format!(
        r#"
[organization]
name = "Acme"
mode = "secured"

[[groups]]
path = "Workstations/Finance"

[[groups]]
path = "Servers"
mode = "monitor"

[[computers]]
name = "fin-01"
group = "Workstations/Finance"

[[computers]]
name = "srv-01"
group = "Servers"

[[computers]]
name = "lab-01"
mode = "learning"
until = "2027-06-01"

[[applications]]
name = "3CX Desktop App"
rules = [{{ company_name = "3CX Ltd", original_filename = "3CXDesktopApp" }}]

[[applications]]
name = "3CX Reported"
rules = [{{ sha256 = ["{REPORTED}"], note = "Elastic Security Labs" }}]
{policies}"#
    )
}

#[test]
fn a_deny_placed_above_the_allow_wins() {
    let e = engine(&base(
        r#"
[[policies]]
name = "Deny reported 3CX"
position = 100
applications = ["3CX Reported"]
action = "deny"

[[policies]]
name = "Permit 3CX"
position = 200
applications = ["3CX Desktop App"]
action = "permit"
"#,
    ));
    let p = ProcessFacts::default();
    check(
        &e,
        Some("fin-01"),
        &exe("C:/3CX/3CXDesktopApp.exe", REPORTED),
        &p,
        Verdict::Deny,
        &["denied by policy \"Deny reported 3CX\" (position 100, deny)", REPORTED, "Elastic Security Labs"],
    );
    check(
        &e,
        Some("fin-01"),
        &exe("C:/3CX/3CXDesktopApp.exe", CLEAN),
        &p,
        Verdict::Allow,
        &["allowed by policy \"Permit 3CX\"", "original_filename=\"3CXDesktopApp\" (file: \"3CXDesktopApp.exe\")"],
    );
}

#[test]
fn a_permit_above_the_deny_wins_and_lint_says_so() {
    let text = base(
        r#"
[[policies]]
name = "Permit 3CX"
position = 100
applications = ["3CX Desktop App"]
action = "permit"

[[policies]]
name = "Deny 3CX everywhere"
position = 200
applications = ["3CX Desktop App"]
action = "deny"
"#,
    );
    let e = engine(&text);
    check(&e, Some("fin-01"), &exe("x.exe", REPORTED), &ProcessFacts::default(), Verdict::Allow, &["Permit 3CX"]);
    let findings = lint(&parse(&text, Format::Toml, &[]).unwrap().set, NOW);
    assert!(
        findings.iter().any(|f| f.code == "permit-above-deny" && f.message.contains("unreachable")),
        "{findings:#?}"
    );
}

#[test]
fn modes_decide_when_nothing_matches() {
    let e = engine(&base(""));
    let p = ProcessFacts::default();
    let other =
        FileFacts { path: "/usr/bin/nc".into(), sha256: sha(CLEAN), kind: FileKind::Executable, ..Default::default() };
    check(&e, Some("fin-01"), &other, &p, Verdict::Deny, &["no policy matched", "\"fin-01\" is in Secured mode"]);
    let d = check(&e, Some("srv-01"), &other, &p, Verdict::Allow, &["(would deny)", "Monitor mode"]);
    assert!(d.would_deny());
    let d = check(&e, Some("lab-01"), &other, &p, Verdict::Allow, &["Learning mode"]);
    assert!(d.is_learning_candidate());
    // After its deadline, learning falls back to Monitor, never Secured by itself: nothing
    // learnt has been accepted as a baseline, and the reason says so.
    let target = e.target(Some("lab-01"), Os::Linux).unwrap();
    let later = e.decide(&other, &p, &target, Timestamp(1_900_000_000));
    assert_eq!(later.verdict, Verdict::Allow);
    assert!(later.would_deny() && !later.is_learning_candidate());
    let reason = later.to_string();
    assert!(reason.contains("Monitor mode") && reason.contains("Learning period ended 20"), "{reason}");
    assert!(reason.contains("without an accepted baseline"), "{reason}");
    // Unknown computers are an error, not a silent default.
    assert!(e.target(Some("nobody"), Os::Linux).is_err());
}

#[test]
fn an_enforced_deny_denies_in_monitor_mode() {
    let e = engine(&base(
        r#"
[[policies]]
name = "Deny reported 3CX"
position = 100
applications = ["3CX Reported"]
action = "deny"
"#,
    ));
    check(&e, Some("srv-01"), &exe("x.exe", REPORTED), &ProcessFacts::default(), Verdict::Deny, &["Deny reported 3CX"]);
}

#[test]
fn monitor_status_reports_and_evaluation_goes_on() {
    let e = engine(&base(
        r#"
[[policies]]
name = "Trial deny"
position = 100
applications = ["3CX Reported"]
action = "deny"
status = "monitor"

[[policies]]
name = "Permit 3CX"
position = 200
applications = ["3CX Desktop App"]
action = "permit"
"#,
    ));
    let d = check(
        &e,
        Some("fin-01"),
        &exe("x.exe", REPORTED),
        &ProcessFacts::default(),
        Verdict::Allow,
        &["Permit 3CX", "monitor only: policy \"Trial deny\" would deny"],
    );
    assert!(d.would_deny());
}

#[test]
fn disabled_and_expired_policies_do_not_apply() {
    let e = engine(&base(
        r#"
[[policies]]
name = "Old deny"
position = 100
applications = ["3CX Reported"]
action = "deny"
expires = "2026-12-01"

[[policies]]
name = "Off deny"
position = 110
applications = ["3CX Reported"]
action = "deny"
enabled = false

[[policies]]
name = "Permit 3CX"
position = 200
applications = ["3CX Desktop App"]
action = "permit"
"#,
    ));
    check(&e, Some("fin-01"), &exe("x.exe", REPORTED), &ProcessFacts::default(), Verdict::Allow, &["Permit 3CX"]);
}

#[test]
fn scopes_follow_the_group_tree() {
    let e = engine(&base(
        r#"
[[policies]]
name = "Workstations permit 3CX"
position = 100
applications = ["3CX Desktop App"]
action = "permit"
scope = "group:Workstations"

[[policies]]
name = "Servers deny 3CX"
position = 101
applications = ["3CX Desktop App"]
action = "deny-request"
scope = "computer:srv-01"
"#,
    ));
    let p = ProcessFacts::default();
    check(&e, Some("fin-01"), &exe("x.exe", CLEAN), &p, Verdict::Allow, &["Workstations permit 3CX"]);
    let d =
        check(&e, Some("srv-01"), &exe("x.exe", CLEAN), &p, Verdict::Deny, &["Servers deny 3CX", "may request access"]);
    assert!(d.request_allowed());
    // Without a computer only organization-wide policies apply.
    check(&e, None, &exe("x.exe", CLEAN), &p, Verdict::Deny, &["Secured mode"]);
}

#[test]
fn blocklist_packages_deny_where_approved() {
    let e = engine(&base(&format!(
        r#"
[[blocklists]]
name = "3CX DesktopApp"
sha256 = ["{REPORTED}"]
approved = ["group:Workstations"]
approved_monitor = ["group:Servers"]
rules = [{{ os = "windows", original_filename = "3CXDesktopApp" }}]

[[policies]]
name = "Permit 3CX"
position = 100
applications = ["3CX Desktop App"]
action = "permit"
"#
    )));
    let p = ProcessFacts::default();
    let renamed = exe("C:/Users/a/Downloads/totally-legit.exe", CLEAN);
    check(
        &e,
        Some("fin-01"),
        &renamed,
        &p,
        Verdict::Deny,
        &[
            "denied by blocklist package \"3CX DesktopApp\"",
            "rule 2",
            "original_filename=\"3CXDesktopApp\" (file: \"3CXDesktopApp.exe\")",
            "os=\"windows\"",
        ],
    );
    check(
        &e,
        Some("fin-01"),
        &exe("a.exe", REPORTED),
        &p,
        Verdict::Deny,
        &["rule 1", "sha256 fad482de", "imported hashes"],
    );
    check(
        &e,
        Some("srv-01"),
        &renamed,
        &p,
        Verdict::Allow,
        &["Permit 3CX", "monitor only: blocklist \"3CX DesktopApp\" would deny"],
    );
    // The OS criterion is the file's platform: a Linux ELF of the same name is not matched.
    let elf = FileFacts { platform: Some(Os::Linux), ..renamed.clone() };
    check(&e, Some("fin-01"), &elf, &p, Verdict::Allow, &["Permit 3CX"]);
}

#[test]
fn versions_signers_and_processes() {
    let e = engine(&base(
        r#"
[[applications]]
name = "3CX signed 18.12"
rules = [{ version = ">=18.12.407, <=18.12.416", signer = { subject = "*3CX Ltd*", verified = true } }]

[[applications]]
name = "Shells from Office"
rules = [{ parent_process = "/opt/office/**", file_name = "sh" }]

[[policies]]
name = "No shells from Office"
position = 50
applications = ["Shells from Office"]
action = "deny"

[[policies]]
name = "Permit signed 3CX"
position = 100
applications = ["3CX signed 18.12"]
action = "permit"
"#,
    ));
    let mut signed = exe("x.exe", CLEAN);
    signed.signer = Some(SignerFacts { subject: "CN=3CX Ltd,O=3CX Ltd".into(), verified: true, ..Default::default() });
    let p = ProcessFacts::default();
    check(
        &e,
        Some("fin-01"),
        &signed,
        &p,
        Verdict::Allow,
        &["version=\">=18.12.407.0, <=18.12.416.0\" (file: \"18.12.416.0\")", "signer.verified"],
    );
    let mut unverified = signed.clone();
    unverified.signer.as_mut().unwrap().verified = false;
    check(&e, Some("fin-01"), &unverified, &p, Verdict::Deny, &["Secured mode"]);
    let mut newer = signed.clone();
    newer.file_version = Some(Version::new(18, 12, 417, 0));
    check(&e, Some("fin-01"), &newer, &p, Verdict::Deny, &["Secured mode"]);

    let sh =
        FileFacts { path: "/usr/bin/sh".into(), sha256: sha(CLEAN), kind: FileKind::Executable, ..Default::default() };
    let from_office = ProcessFacts { parent_path: Some("/opt/office/bin/word".into()), user: None };
    let d = check(&e, Some("fin-01"), &sh, &from_office, Verdict::Deny, &["No shells from Office", "parent_process"]);
    assert!(d.depends_on_process);
}

#[test]
fn yaml_reads_like_toml() {
    let yaml = format!(
        r#"
organization: {{ name: Acme, mode: secured }}
applications:
  - name: 3CX Reported
    rules:
      - sha256: ["{REPORTED}"]
policies:
  - name: Deny reported 3CX
    position: 100
    applications: [3CX Reported]
    action: deny
"#
    );
    let set = parse(&yaml, Format::Yaml, &[]).unwrap().set;
    let e = Engine::new(set).unwrap();
    check(&e, None, &exe("x.exe", REPORTED), &ProcessFacts::default(), Verdict::Deny, &["Deny reported 3CX"]);
}

#[test]
fn sha1_and_md5_are_computed_only_when_a_policy_uses_an_application_that_lists_them() {
    // The built-in catalog (with the 3CX indicators' SHA-1 and MD5) is in every set; a policy
    // that does not name it must not make the agent hash every file three times.
    let plain = "[organization]\nname = \"o\"\n\n[[applications]]\nname = \"a\"\nrules = [{ sha256 = [\"1111111111111111111111111111111111111111111111111111111111111111\"] }]\n\n[[policies]]\nname = \"p\"\nposition = 1\napplications = [\"a\"]\naction = \"permit\"\n";
    let without = portcullis_policy_file::compile(plain, Format::Toml).unwrap();
    assert!(!without.needs_md5() && !without.needs_flat_sha1());
    let with = format!(
        "{plain}\n[[policies]]\nname = \"q\"\nposition = 2\napplications = [\"{}\"]\naction = \"deny\"\n",
        portcullis_catalog::THREECX_REPORTED
    );
    let with = portcullis_policy_file::compile(&with, Format::Toml).unwrap();
    assert!(with.needs_md5() && with.needs_flat_sha1());
}

#[test]
fn the_3cx_vendor_builtin_permits_signed_builds_except_the_reported_ones() {
    // The ThreatLocker workflow with nothing made by hand: permit the built-in vendor
    // definition; the reported builds are excluded from it even without a deny above it.
    let text = format!(
        "[organization]\nname = \"o\"\nmode = \"secured\"\n\n[[policies]]\nname = \"Permit 3CX\"\nposition = 1\n\
         applications = [\"{}\"]\naction = \"permit\"\n",
        portcullis_catalog::THREECX_VENDOR
    );
    let e = portcullis_policy_file::compile(&text, Format::Toml).unwrap();
    let signed = |hex: &str, version: Version| FileFacts {
        file_version: Some(version),
        signer: Some(SignerFacts {
            subject: "CN=3CX Ltd, O=3CX Ltd, L=London, C=GB".into(),
            issuer: "CN=DigiCert Trusted G4 Code Signing RSA4096 SHA384 2021 CA1".into(),
            cert_sha256: [7; 32],
            verified: true,
        }),
        ..exe("3CXDesktopApp.exe", hex)
    };
    let p = ProcessFacts::default();
    check(
        &e,
        None,
        &signed(CLEAN, Version::new(18, 12, 425, 0)),
        &p,
        Verdict::Allow,
        &["Permit 3CX", "signer.subject"],
    );
    // The reported build, signed by the same certificate: not the vendor's application.
    check(&e, None, &signed(REPORTED, Version::new(18, 12, 416, 0)), &p, Verdict::Deny, &["Secured mode"]);
    // A clean hash at a reported version is excluded too (the name-and-version rule).
    check(&e, None, &signed(CLEAN, Version::new(18, 12, 407, 0)), &p, Verdict::Deny, &["Secured mode"]);
    // Someone else's certificate whose name starts the same: not the vendor's.
    let mut lookalike = signed(CLEAN, Version::new(18, 12, 425, 0));
    lookalike.signer.as_mut().unwrap().subject = "CN=3CX Ltd Holdings, O=Other".into();
    check(&e, None, &lookalike, &p, Verdict::Deny, &["Secured mode"]);
    let mut last = signed(CLEAN, Version::new(18, 12, 425, 0));
    last.signer.as_mut().unwrap().subject = "C=GB, L=London, O=3CX Ltd, CN=3CX Ltd".into();
    check(&e, None, &last, &p, Verdict::Allow, &["Permit 3CX"]);
    // Unsigned, or signed but not verified: not the vendor's.
    let unsigned = FileFacts { file_version: Some(Version::new(18, 12, 425, 0)), ..exe("3CXDesktopApp.exe", CLEAN) };
    check(&e, None, &unsigned, &p, Verdict::Deny, &["Secured mode"]);
    let mut unverified = signed(CLEAN, Version::new(18, 12, 425, 0));
    unverified.signer.as_mut().unwrap().verified = false;
    check(&e, None, &unverified, &p, Verdict::Deny, &["Secured mode"]);
    // Linux: the unchanged files of its Debian package.
    let linux = FileFacts {
        path: "/opt/3cxdesktopapp/3cxdesktopapp".into(),
        sha256: sha(CLEAN),
        kind: FileKind::Executable,
        platform: Some(Os::Linux),
        packages: vec!["dpkg:3cxdesktopapp".into()],
        ..Default::default()
    };
    check(&e, None, &linux, &p, Verdict::Allow, &["Permit 3CX", "package"]);
}

#[test]
fn distribution_packages_cover_verified_package_files_and_dpkgs_own_maintainer_scripts() {
    let text = format!(
        "[organization]\nname = \"o\"\nmode = \"secured\"\n\n[[policies]]\nname = \"Packages\"\nposition = 1\n\
         applications = [\"{}\"]\naction = \"permit\"\n",
        portcullis_catalog::DISTRIBUTION_PACKAGES
    );
    let e = portcullis_policy_file::compile(&text, Format::Toml).unwrap();
    let file = |path: &str, package: Option<&str>| FileFacts {
        path: path.into(),
        sha256: sha(CLEAN),
        kind: FileKind::Script,
        packages: package.into_iter().map(str::to_owned).collect(),
        ..Default::default()
    };
    let dpkg = ProcessFacts { parent_path: Some("/usr/bin/dpkg".into()), ..Default::default() };
    let shell = ProcessFacts { parent_path: Some("/usr/bin/bash".into()), ..Default::default() };
    check(&e, None, &file("/usr/bin/ls", Some("dpkg:coreutils")), &shell, Verdict::Allow, &["package"]);
    check(&e, None, &file("/usr/local/bin/tool", None), &shell, Verdict::Deny, &["Secured mode"]);
    let script = file("/var/lib/dpkg/info/openssh-server.postinst", None);
    check(&e, None, &script, &dpkg, Verdict::Allow, &["parent_process"]);
    // The same script started by anything else is not a package file.
    check(&e, None, &script, &shell, Verdict::Deny, &["Secured mode"]);
}

#[test]
fn lint_does_not_call_a_deny_of_what_a_permit_excludes_unreachable() {
    let policies = |except: &str| {
        format!(
            r#"
[organization]
name = "Lint"
mode = "secured"

[[applications]]
name = "Vendor builds"
rules = [{{ company_name = "3CX Ltd" }}, {{ sha256 = ["{REPORTED}"] }}]
{except}

[[applications]]
name = "Reported"
rules = [{{ sha256 = ["{REPORTED}"] }}]

[[policies]]
name = "Permit vendor"
position = 100
applications = ["Vendor builds"]
action = "permit"

[[policies]]
name = "Deny reported"
position = 200
applications = ["Reported"]
action = "deny"
"#
        )
    };
    let findings =
        |text: &str| lint(&parse(text, Format::Toml, &[]).unwrap_or_else(|e| panic!("{:#?}", e.diagnostics)).set, NOW);
    let plain = findings(&policies(""));
    assert!(plain.iter().any(|f| f.code == "permit-above-deny"), "{plain:#?}");
    let excluded = findings(&policies(&format!(r#"except = [{{ sha256 = ["{REPORTED}"] }}]"#)));
    assert!(!excluded.iter().any(|f| f.code == "permit-above-deny" || f.code == "shadowed"), "{excluded:#?}");
    // And the engine agrees: the reported file is denied by the policy below.
    let e = engine(&policies(&format!(r#"except = [{{ sha256 = ["{REPORTED}"] }}]"#)));
    check(&e, None, &exe("x.exe", REPORTED), &ProcessFacts::default(), Verdict::Deny, &["Deny reported"]);
}

#[test]
fn installation_mode_denies_what_no_policy_permits_except_captures_and_ends_in_secured() {
    let e = engine(
        r#"
[organization]
name = "Acme"
mode = "installation"
until = "2027-01-16T01:00:00Z"
capture_into = "Vendor install"
[[blocklists]]
name = "Reported"
hashes = ["fad482ded2e25ce9e1dd3d3ecc3227af714bdfbbde04347dbc1b21d6a3670405"]
approved = ["organization"]
"#,
    );
    let p = ProcessFacts::default();
    let loose = exe("/tmp/dropper", CLEAN);
    check(&e, None, &loose, &p, Verdict::Deny, &["Installation mode until 2027-01-16 01:00 UTC", "named installer"]);
    let captured = FileFacts { captured: Some("Vendor install".into()), ..exe("/opt/vendor/bin/tool", CLEAN) };
    let d = check(&e, None, &captured, &p, Verdict::Allow, &["captured it into \"Vendor install\""]);
    assert_eq!(d.capture_into(), Some("Vendor install"));
    // A blocklist still decides first: a capture never allows a reported file.
    let reported = FileFacts { captured: Some("Vendor install".into()), ..exe("/opt/vendor/bin/evil", REPORTED) };
    check(&e, None, &reported, &p, Verdict::Deny, &["blocklist"]);
    // After the window: Secured, and the agent's record of a capture still allows it until
    // the server's application carries it.
    let later = engine(
        "[organization]\nname = \"Acme\"\nmode = \"installation\"\nuntil = \"2020-01-01\"\ncapture_into = \"V\"\n",
    );
    check(&later, None, &loose, &p, Verdict::Deny, &["Secured mode"]);
    check(&later, None, &FileFacts { captured: Some("V".into()), ..loose.clone() }, &p, Verdict::Allow, &["captured"]);
    // Monitor mode allows anyway and reports would-deny: a capture changes nothing there.
    let monitor = engine("[organization]\nname = \"Acme\"\nmode = \"monitor\"\n");
    let d = monitor.decide(
        &FileFacts { captured: Some("V".into()), ..loose.clone() },
        &p,
        &monitor.target(None, Os::Linux).unwrap(),
        NOW,
    );
    assert!(d.would_deny() && d.capture_into().is_none(), "{d}");
}
