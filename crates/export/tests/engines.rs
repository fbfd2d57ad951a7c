//! Exports of a real policy (the 3CX story, with the built-in catalogue) checked by the
//! engines' own validators where this machine has them: xmllint with Microsoft's AppLocker
//! and App Control schemas (`../shared/specs`), plus the checks the schemas leave out.

use portcullis_export::{Export, Format, Outcome, SourceKind, export};
use portcullis_policy::{PolicySet, Timestamp};
use quick_xml::events::Event;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

const D3DCOMPILER: &str = "11be1803e2e307b647a8a7e02d128335c448ff741bf06bf52b332e0bbf423b03";

/// The 3CX response as an administrator writes it, with rules each engine takes, bends or
/// cannot take, and names that must survive every format.
const POLICY: &str = r#"
[organization]
name = "Acme <&> \"Corp\" -- ops"
mode = "secured"

[[groups]]
path = "Workstations"

[[groups]]
path = "Workstations/Finance"
mode = "monitor"

[[groups]]
path = "Audit"
mode = "monitor"

[[applications]]
name = "Tools & <Co>"
rules = [
  { authenticode_sha256 = ["aa124a4b4df12b34e74ee7f6c683b2ebec4ce9a8edcf9be345823b4fdcf5d868"], kind = "executable", note = "tool.exe -- \"signed\"\nsecond line" },
  { path = "C:\\Program Files\\Tools\\*" },
  { path = "/opt/tools/**" },
  { original_filename = "tool", product_name = "Tools & Co <1>", version = ">=2.0" },
  { signer = { subject = "*Developer ID Application: Tools Inc (ABCDE12345)*" }, os = "macos" },
  { package = "dpkg:*" },
  { user = "alice", sha256 = ["0000000000000000000000000000000000000000000000000000000000000001"] },
]

[[applications]]
name = "Trojanized DLL"
rules = [{ sha256 = ["11be1803e2e307b647a8a7e02d128335c448ff741bf06bf52b332e0bbf423b03"], kind = "library", os = "windows" }]

[[policies]]
name = "Deny the trojanized DLL"
position = 5
applications = ["Trojanized DLL"]
action = "deny"

[[policies]]
name = "Deny reported 3CX"
position = 10
applications = ["3CX Desktop App [Reported] (Built-In)"]
action = "deny"

[[policies]]
name = "Permit 3CX"
position = 20
applications = ["3CX Desktop App (Built-In)"]
action = "permit"

[[policies]]
name = "Permit tools"
position = 30
applications = ["Tools & <Co>"]
action = "permit"
scope = "group:Workstations"

[[policies]]
name = "One computer only"
position = 40
applications = ["Tools & <Co>"]
action = "deny"
scope = "computer:ws-01"

[[computers]]
name = "ws-01"
group = "Workstations"
"#;

fn set(text: &str) -> PolicySet {
    let loaded = portcullis_policy_file::load(text, portcullis_policy_file::Format::Toml).expect("a valid policy");
    let set = loaded.set.clone();
    loaded.compile().expect("it compiles");
    set
}

fn now() -> Timestamp {
    Timestamp(1_800_000_000)
}

fn specs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/specs")
}

/// xmllint's verdict on `xml` against `schema`.
fn xmllint(xml: &[u8], schema: &Path) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("policy.xml");
    std::fs::write(&file, xml).unwrap();
    let out = Command::new("xmllint")
        .arg("--noout")
        .arg("--schema")
        .arg(schema)
        .arg(&file)
        .output()
        .expect("xmllint (Debian's libxml2-utils; ./x deps installs it)");
    assert!(
        out.status.success(),
        "{} does not validate:\n{}\n{}",
        schema.display(),
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(xml)
    );
}

/// Every element's attributes, by element name.
fn elements(xml: &[u8]) -> Vec<(String, BTreeMap<String, String>)> {
    let mut reader = quick_xml::Reader::from_reader(xml);
    let mut out = Vec::new();
    let mut buf = Vec::new();
    loop {
        match reader.read_event_into(&mut buf).expect("well-formed XML") {
            Event::Start(e) | Event::Empty(e) => {
                let name = String::from_utf8(e.local_name().as_ref().to_vec()).unwrap();
                let attributes = e
                    .attributes()
                    .map(|a| {
                        let a = a.unwrap();
                        let key = String::from_utf8(a.key.as_ref().to_vec()).unwrap();
                        (key, a.unescape_value().unwrap().into_owned())
                    })
                    .collect();
                out.push((name, attributes));
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    out
}

fn four_part(v: &str) -> bool {
    v == "*" || (v.split('.').count() == 4 && v.split('.').all(|p| !p.is_empty() && p.parse::<u16>().is_ok()))
}

fn file<'a>(e: &'a Export, name: &str) -> &'a [u8] {
    &e.files.iter().find(|f| f.name == name).unwrap_or_else(|| panic!("no {name}")).bytes
}

fn outcome<'a>(e: &'a Export, policy: &str, rule: usize) -> &'a Outcome {
    &e.report
        .entries
        .iter()
        .find(|x| x.source.name == policy && x.source.rule == Some(rule))
        .unwrap_or_else(|| panic!("no entry for {policy} rule {rule}: {:#?}", e.report.entries))
        .outcome
}

#[test]
fn applocker_exports_validate_and_say_what_they_cannot_hold() {
    let set = set(POLICY);
    let e = export(&set, Some("Workstations"), Format::AppLocker, now());
    let xml = file(&e, "applocker.xml");
    xmllint(xml, &specs().join("applocker/applocker.xsd"));
    // What the schema leaves out: collection types, four-part versions, rule IDs unique and
    // without braces.
    let els = elements(xml);
    let types: Vec<&str> = els.iter().filter(|(n, _)| n == "RuleCollection").map(|(_, a)| a["Type"].as_str()).collect();
    assert_eq!(types, ["Exe", "Dll", "Msi", "Script"]);
    let mut ids = BTreeSet::new();
    for (name, a) in &els {
        if name.ends_with("Rule") {
            assert!(ids.insert(a["Id"].clone()), "duplicate Id {}", a["Id"]);
            assert!(!a["Id"].starts_with('{') && a["Id"].len() == 36, "{}", a["Id"]);
            assert_eq!(a["UserOrGroupSid"], "S-1-1-0");
        }
        if name == "BinaryVersionRange" {
            assert!(four_part(&a["LowSection"]) && four_part(&a["HighSection"]), "{a:?}");
        }
    }
    // The same export gives the same IDs (a GPO update replaces rules, not adds).
    assert_eq!(export(&set, Some("Workstations"), Format::AppLocker, now()).files[0].bytes, xml);
    let text = String::from_utf8(xml.to_vec()).unwrap();
    assert!(
        text.contains("EnforcementMode=\"Enabled\"") && text.contains("%WINDIR%\\*"),
        "Secured, with Windows allowed"
    );
    assert!(text.contains("BinaryName=\"3CXDesktopApp.exe\"") && text.contains("LowSection=\"18.12.407.0\""));
    // The trojanized DLL: a flat hash AppLocker cannot hold, and the report says why.
    match outcome(&e, "Deny the trojanized DLL", 1) {
        Outcome::NotExpressible { why } => assert!(why.contains("certificate table") && why.contains("Santa"), "{why}"),
        o => panic!("{o:?}"),
    }
    // (The catalogue's reported hashes say no kind: their flat hashes go to scripts only.)
    let before_scripts = text.split("<RuleCollection Type=\"Script\"").next().unwrap();
    assert!(!before_scripts.to_ascii_lowercase().contains(D3DCOMPILER), "no Exe or Dll rule stands for the flat hash");
    // Approximated: a version rule without a signer; deny beats an earlier permit.
    match outcome(&e, "Permit tools", 4) {
        Outcome::Approximated { how, .. } => assert!(how.contains("signed files only") && how.contains("tool.exe")),
        o => panic!("{o:?}"),
    }
    // Not expressible: other systems' rules, a user condition (a permit never gets broader).
    for (rule, word) in [(3, "Windows path"), (5, "macos"), (6, "package"), (7, "user")] {
        match outcome(&e, "Permit tools", rule) {
            Outcome::NotExpressible { why } => assert!(why.contains(word), "rule {rule}: {why}"),
            o => panic!("rule {rule}: {o:?}"),
        }
    }
    assert!(matches!(outcome(&e, "Permit tools", 1), Outcome::Exported { .. }));
    // The computer-scoped policy is said once, not dropped.
    assert!(e.report.entries.iter().any(|x| x.source.name == "One computer only"
        && matches!(&x.outcome, Outcome::NotExpressible { why } if why.contains("one computer"))));
    // Names with <, &, quotes and -- survive.
    assert!(text.contains("Tools &amp; &lt;Co&gt;") && text.contains("<!-- Portcullis export for Acme &lt;&amp;&gt;"));
}

#[test]
fn app_control_exports_validate_with_references_that_resolve() {
    let set = set(POLICY);
    for (group, audit) in [(Some("Workstations"), false), (Some("Audit"), false), (None, false)] {
        let e = export(&set, group, Format::AppControl, now());
        let xml = file(&e, "appcontrol.xml");
        xmllint(xml, &specs().join("wdac/cipolicy.xsd"));
        let els = elements(xml);
        let defined: BTreeSet<&str> = els
            .iter()
            .filter(|(n, _)| n == "Allow" || n == "Deny" || n == "FileAttrib")
            .map(|(_, a)| a["ID"].as_str())
            .collect();
        let referenced: Vec<&str> =
            els.iter().filter(|(n, _)| n == "FileRuleRef").map(|(_, a)| a["RuleID"].as_str()).collect();
        assert_eq!(
            referenced.iter().copied().collect::<BTreeSet<_>>(),
            defined,
            "every rule is referenced, every reference defined"
        );
        assert_eq!(referenced.len(), defined.len(), "each once");
        for (n, a) in &els {
            for v in ["MinimumFileVersion", "MaximumFileVersion"].iter().filter_map(|k| a.get(*k)) {
                assert!(four_part(v), "{n}: {v}");
            }
        }
        let text = String::from_utf8(xml.to_vec()).unwrap();
        for id in ["PolicyID", "BasePolicyID"] {
            let v = text.split(&format!("<{id}>")).nth(1).unwrap().split('<').next().unwrap();
            assert!(v.starts_with('{') && v.ends_with('}') && v.len() == 38, "{id} {v}");
        }
        assert_eq!(text.contains("Enabled:Audit Mode"), audit, "{group:?}");
        // The binary form: named by its PolicyID, read back strictly by an independent reader
        // (tests/appcontrol/check_cip.py) and compared with the XML.
        let id = text.split("<PolicyID>").nth(1).unwrap().split('<').next().unwrap();
        let cip = file(&e, &format!("{id}.cip"));
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("p.cip"), cip).unwrap();
        std::fs::write(dir.path().join("p.xml"), xml).unwrap();
        let checker = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/appcontrol/check_cip.py");
        let out = Command::new("python3")
            .arg(&checker)
            .arg(dir.path().join("p.cip"))
            .arg(dir.path().join("p.xml"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{group:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // A byte changed in a string's padding is caught: the checker is not a rubber stamp.
        let mut bad = cip.to_vec();
        let at = bad.len() - 8;
        bad[at] ^= 0xFF;
        std::fs::write(dir.path().join("p.cip"), &bad).unwrap();
        let out = Command::new("python3")
            .arg(&checker)
            .arg(dir.path().join("p.cip"))
            .arg(dir.path().join("p.xml"))
            .output()
            .unwrap();
        assert!(!out.status.success(), "a corrupt binary passed");
    }
    // Secured: the reported builds denied by name and version; the trojanized DLL's flat
    // hash not expressible; permits by signer not expressible (App Control needs the TBS hash).
    let e = export(&set, Some("Workstations"), Format::AppControl, now());
    let text = String::from_utf8(file(&e, "appcontrol.xml").to_vec()).unwrap();
    // A deny's MinimumFileVersion is the highest version it denies: 18.12.416 and older.
    assert!(text.contains("FileName=\"3CXDesktopApp.exe\" MinimumFileVersion=\"18.12.416.0\" />"), "{text}");
    assert!(e.report.entries.iter().any(
        |x| matches!(&x.outcome, Outcome::Approximated { how, .. } if how.contains("every version up to 18.12.416.0"))
    ));
    assert!(
        matches!(outcome(&e, "Deny the trojanized DLL", 1), Outcome::NotExpressible { why } if why.contains("Authenticode"))
    );
    assert!(matches!(outcome(&e, "Permit 3CX", 1), Outcome::NotExpressible { .. }));
    // Monitor with enforced denies: allow-all rules keep the rest running, denies enforced.
    let m = export(&set, Some("Audit"), Format::AppControl, now());
    let text = String::from_utf8(file(&m, "appcontrol.xml").to_vec()).unwrap();
    assert!(text.contains("ID_ALLOW_A_2") && text.contains("<Deny ") && !text.contains("Audit Mode"));
    let mode = m.report.entries.iter().find(|x| x.source.kind == SourceKind::Mode).unwrap();
    assert!(matches!(&mode.outcome, Outcome::Approximated { how, .. } if how.contains("unrecorded")));
}

#[test]
fn a_monitor_group_without_denies_is_audited_by_both_windows_engines() {
    let set = set(r#"
[organization]
name = "Acme"
mode = "monitor"

[[applications]]
name = "Tool"
rules = [{ authenticode_sha256 = ["aa124a4b4df12b34e74ee7f6c683b2ebec4ce9a8edcf9be345823b4fdcf5d868"] }]

[[policies]]
name = "Permit tool"
position = 10
applications = ["Tool"]
action = "permit"
"#);
    let a = export(&set, None, Format::AppLocker, now());
    xmllint(&a.files[0].bytes, &specs().join("applocker/applocker.xsd"));
    assert!(String::from_utf8_lossy(&a.files[0].bytes).contains("EnforcementMode=\"AuditOnly\""));
    let c = export(&set, None, Format::AppControl, now());
    xmllint(&c.files[0].bytes, &specs().join("wdac/cipolicy.xsd"));
    assert!(String::from_utf8_lossy(&c.files[0].bytes).contains("Enabled:Audit Mode"));
    assert_eq!(a.report.counts().2, 0, "{:#?}", a.report.entries);
}

#[test]
fn santa_rules_are_binary_certificate_and_team_rules_with_santas_precedence_said() {
    let set = set(POLICY);
    let e = export(&set, Some("Workstations"), Format::Santa, now());
    let doc: serde_json::Value = serde_json::from_slice(file(&e, "santa-rules.json")).unwrap();
    let rules = doc["rules"].as_array().unwrap();
    let find = |id: &str| rules.iter().find(|r| r["identifier"] == id).unwrap_or_else(|| panic!("no {id} in {doc:#}"));
    assert_eq!(find("33CF4654HL")["rule_type"], "TEAMID");
    assert_eq!(find("33CF4654HL")["policy"], "ALLOWLIST");
    assert_eq!(find("ABCDE12345")["rule_type"], "TEAMID");
    for r in rules {
        assert!(["BINARY", "CERTIFICATE", "TEAMID"].contains(&r["rule_type"].as_str().unwrap()), "{r}");
        assert!(["ALLOWLIST", "BLOCKLIST"].contains(&r["policy"].as_str().unwrap()), "{r}");
    }
    // The reported builds' hashes are blocked as binaries; the TEAMID permit below them
    // cannot outrank a BINARY rule, so the order holds there. The vendor application's
    // exclusions (the same reported files) become BLOCKLIST rules too, and that is said.
    assert!(rules.iter().any(|r| r["rule_type"] == "BINARY" && r["policy"] == "BLOCKLIST"));
    match outcome(&e, "Permit 3CX", 3) {
        Outcome::Approximated { how, .. } => assert!(how.contains("exclusions become BLOCKLIST"), "{how}"),
        o => panic!("{o:?}"),
    }
    // A library's hash cannot be blocked: Santa checks executions only.
    match outcome(&e, "Deny the trojanized DLL", 1) {
        Outcome::NotExpressible { why } => assert!(why.contains("windows") || why.contains("executions"), "{why}"),
        o => panic!("{o:?}"),
    }
    // Precedence: a deny by team above a permit by hash is reversed by Santa, and said.
    let flipped = set_with(
        r#"
[[applications]]
name = "Team"
rules = [{ signer = { subject = "*Developer ID Application: Evil Corp (EVIL123456)*" } }]

[[applications]]
name = "One build"
rules = [{ sha256 = ["0000000000000000000000000000000000000000000000000000000000000002"] }]

[[policies]]
name = "Deny the team"
position = 10
applications = ["Team"]
action = "deny"

[[policies]]
name = "Permit one build"
position = 20
applications = ["One build"]
action = "permit"
"#,
    );
    let f = export(&flipped, None, Format::Santa, now());
    match outcome(&f, "Permit one build", 1) {
        Outcome::Approximated { how, .. } => assert!(how.contains("BINARY rule wins over the TEAMID"), "{how}"),
        o => panic!("{o:?}"),
    }
}

fn set_with(rest: &str) -> PolicySet {
    set(&format!("[organization]\nname = \"Acme\"\nmode = \"secured\"\n{rest}"))
}

#[test]
fn fapolicyd_rules_keep_portcullis_order_and_every_line_is_one_rule() {
    let set = set(POLICY);
    let e = export(&set, Some("Workstations"), Format::Fapolicyd, now());
    let text = String::from_utf8(file(&e, "rules.d/40-portcullis.rules").to_vec()).unwrap();
    let rules: Vec<&str> = text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()).collect();
    for l in &rules {
        let (decision, rest) = l.split_once(' ').unwrap();
        assert!(["allow", "deny_audit", "allow_audit"].contains(&decision), "{l}");
        assert!(rest.starts_with("perm=") && rest.contains(" : "), "{l}");
    }
    // Comments never run into a rule: a note with a newline stays on its comment line.
    assert!(
        text.lines().all(|l| l.starts_with('#') || l.starts_with("allow") || l.starts_with("deny") || l.is_empty())
    );
    let position =
        |needle: &str| rules.iter().position(|l| l.contains(needle)).unwrap_or_else(|| panic!("{needle}:\n{text}"));
    // The trojanized DLL is denied by its flat hash, before anything is allowed.
    assert!(
        position(&format!("deny_audit perm=any all : sha256hash={D3DCOMPILER}"))
            < position("allow perm=any all : dir=/opt/tools/")
    );
    assert!(rules.contains(&"allow perm=any all : trust=1"));
    assert_eq!(rules.last(), Some(&"allow perm=open all : all"));
    assert!(matches!(outcome(&e, "Permit tools", 7), Outcome::NotExpressible { why } if why.contains("user")));
}

#[test]
fn files_a_rule_cannot_express_are_pinned_in_an_escaped_trust_file() {
    use portcullis_export::{TrustedFile, export_fapolicyd};
    let set = set(POLICY);
    let pin = |path: &str, policy: &str, application: &str, rule: usize| TrustedFile {
        path: path.into(),
        size: 10,
        sha256: [0xab; 32],
        policy: policy.into(),
        application: application.into(),
        rule,
    };
    // Without files, no trust file: its rule by OriginalFilename is not expressible.
    let plain = export_fapolicyd(&set, Some("Workstations"), now(), &[]);
    assert_eq!(plain.files.len(), 1);
    assert!(matches!(outcome(&plain, "Permit tools", 4), Outcome::NotExpressible { .. }));
    let trusted = [
        // Permitted by the OriginalFilename rule (no fapolicyd rule): pinned, escaped.
        pin("/opt/a b/tool%1\n", "Permit tools", "Tools & <Co>", 4),
        // The same path twice (fapolicyd warns on duplicates): once.
        pin("/opt/a b/tool%1\n", "Permit tools", "Tools & <Co>", 4),
        // Relative or too long for fapolicyd's reader: left out, and said.
        pin("opt/tool", "Permit tools", "Tools & <Co>", 4),
        pin(&format!("/{}", "x".repeat(5000)), "Permit tools", "Tools & <Co>", 4),
        // Permitted by a rule fapolicyd has (dir=/opt/tools/): no pin needed.
        pin("/opt/tools/run", "Permit tools", "Tools & <Co>", 3),
        // A deny policy's file, or a rule no plan item has: never trusted.
        pin("/opt/bad", "Deny reported 3CX", "3CX Desktop App [Reported] (Built-In)", 1),
        pin("/opt/other", "No such policy", "Tools & <Co>", 4),
    ];
    let e = export_fapolicyd(&set, Some("Workstations"), now(), &trusted);
    let trust = String::from_utf8(file(&e, "trust.d/40-portcullis.trust").to_vec()).unwrap();
    assert!(trust.starts_with("# AUTOGENERATED FILE VERSION 2\n"), "{trust}");
    let entries: Vec<&str> = trust.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(entries, [format!("/opt/a%20b/tool%251%0A 10 {}", "ab".repeat(32))], "{trust}");
    match outcome(&e, "Permit tools", 4) {
        Outcome::Approximated { to, how } => {
            assert!(to.starts_with("1 file(s) pinned"), "{to}");
            assert!(how.contains("2 file(s) left out"), "{how}");
        }
        o => panic!("{o:?}"),
    }
    // The user rule had no file: still not expressible.
    assert!(matches!(outcome(&e, "Permit tools", 7), Outcome::NotExpressible { .. }));
    let rules = String::from_utf8(file(&e, "rules.d/40-portcullis.rules").to_vec()).unwrap();
    assert!(rules.contains("# Files pinned in trust.d/40-portcullis.trust"), "{rules}");
}

#[test]
fn signing_ids_become_santas_signingid_rules_and_no_other_engine_takes_them() {
    let set = set_with(
        r#"
[[applications]]
name = "Chrome"
rules = [
  { signing_id = "EQHXZ8M8AV:com.google.Chrome" },
  { signing_id = "EQHXZ8M8AV:com.google.*" },
  { signing_id = "EQHXZ8M8AV:com.google.Chrome.helper", signer = { subject = "*Developer ID Application: Google LLC (EQHXZ8M8AV)*" } },
  { signing_id = "EQHXZ8M8AV:com.google.Chrome", signer = { subject = "*Other*" } },
]

[[applications]]
name = "Team"
rules = [{ signer = { subject = "*Developer ID Application: Google LLC (EQHXZ8M8AV)*" } }]

[[policies]]
name = "Deny the team"
position = 10
applications = ["Team"]
action = "deny"

[[policies]]
name = "Permit Chrome"
position = 20
applications = ["Chrome"]
action = "permit"
"#,
    );
    let e = export(&set, None, Format::Santa, now());
    let doc: serde_json::Value = serde_json::from_slice(file(&e, "santa-rules.json")).unwrap();
    let signing: Vec<&serde_json::Value> =
        doc["rules"].as_array().unwrap().iter().filter(|r| r["rule_type"] == "SIGNINGID").collect();
    assert_eq!(signing.len(), 2, "{doc:#}");
    assert_eq!(signing[0]["identifier"], "EQHXZ8M8AV:com.google.Chrome");
    assert_eq!(signing[0]["policy"], "ALLOWLIST");
    // Santa ranks SIGNINGID above the TEAMID block that comes first here: said.
    match outcome(&e, "Permit Chrome", 1) {
        Outcome::Approximated { how, .. } => assert!(how.contains("SIGNINGID rule wins over the TEAMID"), "{how}"),
        o => panic!("{o:?}"),
    }
    // A pattern is not a signing ID; a signer condition of another team would be dropped.
    assert!(matches!(outcome(&e, "Permit Chrome", 2), Outcome::NotExpressible { why } if why.contains("pattern")));
    match outcome(&e, "Permit Chrome", 3) {
        // The signer names the signing ID's own team: nothing is lost (only Santa's order is said).
        Outcome::Approximated { to, how } => {
            assert!(to.contains("SIGNINGID") && !how.contains("signer condition"), "{how}")
        }
        o => panic!("{o:?}"),
    }
    assert!(matches!(outcome(&e, "Permit Chrome", 4), Outcome::NotExpressible { why } if why.contains("allow more")));
    for format in [Format::AppLocker, Format::AppControl, Format::Fapolicyd] {
        let e = export(&set, None, format, now());
        assert!(
            matches!(outcome(&e, "Permit Chrome", 1), Outcome::NotExpressible { why } if why.contains("signing ID")),
            "{format:?}: {:?}",
            outcome(&e, "Permit Chrome", 1)
        );
    }
}

#[test]
fn a_signing_id_that_is_not_team_and_identifier_is_refused_with_the_form() {
    let text = "[organization]\nname = \"A\"\n[[applications]]\nname = \"X\"\nrules = [{ signing_id = \"com.google.Chrome\" }]\n";
    let Err(err) = portcullis_policy_file::load(text, portcullis_policy_file::Format::Toml) else {
        panic!("a signing ID without its team loaded");
    };
    assert!(format!("{err:?}").contains("EQHXZ8M8AV:com.google.Chrome"), "{err:?}");
}
