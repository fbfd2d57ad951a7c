//! Imports of real files: Microsoft's sample policies, Santa-style exports, fapolicyd's own
//! sample rules and trust file, and Portcullis's exports read back (each format's round trip).
//! Every import must load as a policy; hostile input is refused with a message, never a panic.

use portcullis_export::Format;
use portcullis_import::{Outcome, Source, import};
use portcullis_policy_file::Format as FileFormat;
use std::path::Path;

fn shared(rel: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/specs").join(rel)).unwrap()
}

/// The import loads and compiles as a policy document (with the built-in catalogue).
fn loads(imported: &portcullis_import::Imported) -> portcullis_policy::PolicySet {
    let text = imported.document.to_json();
    let loaded = portcullis_policy_file::load(&text, FileFormat::Json).unwrap_or_else(|e| panic!("{e:?}\n{text}"));
    let set = loaded.set.clone();
    loaded.compile().unwrap_or_else(|e| panic!("{e:?}\n{text}"));
    set
}

#[test]
fn microsofts_sample_policies_import_and_load() {
    for sample in [
        "applocker/samples/itpro-docs_managed-installer.xml",
        "applocker/samples/wdac-toolkit_packaged-app-rules.xml",
        "applocker/samples/itpro-docs_clear-policy.xml",
    ] {
        let i = import(Source::AppLocker, &shared(sample), "Imported").unwrap_or_else(|e| panic!("{sample}: {e}"));
        loads(&i);
        // Managed-installer and packaged-app collections have no counterpart: said, not dropped.
        if sample.contains("managed") || sample.contains("packaged") {
            assert!(
                i.entries
                    .iter()
                    .any(|e| matches!(&e.outcome, Outcome::NotExpressible { why } if why.contains("collection"))),
                "{sample}: {:#?}",
                i.entries
            );
        }
    }
    let i = import(Source::AppControl, &shared("wdac/samples/DefaultWindows_Audit.xml"), "Windows").unwrap();
    loads(&i);
    // Its Microsoft signers are named by TBS hashes: each said, none silently gone.
    let signers = i.entries.iter().filter(|e| e.rule.starts_with("Signer ")).count();
    assert!(signers >= 5, "{:#?}", i.entries);
    assert!(i.entries.iter().all(|e| !e.rule.is_empty()));
    let i = import(Source::AppControl, &shared("wdac/samples/EmptyWDAC.xml"), "Empty").unwrap();
    assert!(i.entries.is_empty() && i.document.policies.is_empty());
}

const POLICY: &str = r#"
[organization]
name = "Acme"
mode = "secured"

[[applications]]
name = "Bad"
rules = [{ sha256 = ["1111111111111111111111111111111111111111111111111111111111111111"] }]

[[applications]]
name = "Tools"
rules = [
  { path = "/opt/tools/**" },
  { authenticode_sha256 = ["aa124a4b4df12b34e74ee7f6c683b2ebec4ce9a8edcf9be345823b4fdcf5d868"], kind = "executable" },
  { original_filename = "tool.exe", product_name = "Tools", version = ">=2.0.0.0", kind = "executable", os = "windows" },
  { signer = { subject = "*Developer ID Application: Tools Inc (ABCDE12345)*" }, os = "macos" },
  { sha256 = ["2222222222222222222222222222222222222222222222222222222222222222"], os = "macos" },
]

[[policies]]
name = "Deny bad"
position = 10
applications = ["Bad"]
action = "deny"

[[policies]]
name = "Permit tools"
position = 20
applications = ["Tools"]
action = "permit"
"#;

fn exported(format: Format) -> String {
    let loaded = portcullis_policy_file::load(POLICY, FileFormat::Toml).unwrap();
    let e = portcullis_export::export(&loaded.set, None, format, portcullis_policy::Timestamp(1_800_000_000));
    String::from_utf8(e.files[0].bytes.clone()).unwrap()
}

fn rules_of(set: &portcullis_policy::PolicySet) -> Vec<String> {
    set.applications.iter().filter(|a| !a.builtin).flat_map(|a| a.rules.iter().map(|r| format!("{r:?}"))).collect()
}

#[test]
fn each_export_reads_back_with_its_rules_and_order() {
    // fapolicyd: first match, kept: the deny by hash above the permit by directory.
    let i = import(Source::Fapolicyd, &exported(Format::Fapolicyd), "Back").unwrap();
    let set = loads(&i);
    let names: Vec<&str> = set.policies.iter().map(|p| p.name.as_str()).collect();
    assert!(names[0].contains("denied") && names[1].contains("allowed"), "{names:?}");
    let rules = rules_of(&set).join("\n");
    assert!(
        rules.contains("1111111111111111111111111111111111111111111111111111111111111111")
            && rules.contains("/opt/tools/**"),
        "{rules}"
    );
    // Its catch-all rules (what no rule decides) come back as every-file rules, said so.
    assert!(
        i.entries.iter().any(|e| matches!(&e.outcome, Outcome::Approximated { how, .. } if how.contains("every file")))
    );
    // Santa: the team and the macOS hash; the hash deny above (Santa's precedence).
    let i = import(Source::Santa, &exported(Format::Santa), "Back").unwrap();
    let set = loads(&i);
    let rules = rules_of(&set).join("\n");
    assert!(
        rules.contains("ABCDE12345")
            && rules.contains("2222222222222222222222222222222222222222222222222222222222222222"),
        "{rules}"
    );
    assert!(set.policies.iter().min_by_key(|p| p.position).unwrap().name.contains("blocked"));
    // AppLocker: the Authenticode hash and the publisher rule with its version.
    let i = import(Source::AppLocker, &exported(Format::AppLocker), "Back").unwrap();
    let set = loads(&i);
    let rules = rules_of(&set).join("\n");
    assert!(
        rules.contains("aa124a4b4df12b34e74ee7f6c683b2ebec4ce9a8edcf9be345823b4fdcf5d868")
            && rules.contains("tool.exe"),
        "{rules}"
    );
    // App Control: the hash and the file name rule.
    let i = import(Source::AppControl, &exported(Format::AppControl), "Back").unwrap();
    let set = loads(&i);
    let rules = rules_of(&set).join("\n");
    assert!(rules.contains("aa124a4b4df12b34e74ee7f6c683b2ebec4ce9a8edcf9be345823b4fdcf5d868"), "{rules}");
}

#[test]
fn a_trust_file_with_escaped_paths_and_santas_own_shapes_import() {
    let trust = "# AUTOGENERATED FILE VERSION 2\n/opt/my%20tool/bin 157984 61a9960bf7d255a85811f4afcac51067b8f2e4c75e21cf4f2af95319d4ed1b87\n";
    let i = import(Source::Fapolicyd, trust, "Trust").unwrap();
    let set = loads(&i);
    let rule = &set.applications.iter().find(|a| !a.builtin).unwrap().rules[0];
    assert_eq!(rule.path.as_ref().unwrap().as_str(), "/opt/my tool/bin");
    assert!(rule.path.as_ref().unwrap().matches("/opt/my tool/bin"));
    // santactl's keys in any case, the legacy sha256 key and policy names; bad rules said.
    let santa = r#"{"rules":[
        {"Identifier":"", "sha256":"3333333333333333333333333333333333333333333333333333333333333333","Policy":"blacklist","Rule_Type":"binary"},
        {"identifier":"EQHXZ8M8AV","policy":"WHITELIST","rule_type":"TEAMID","custom_msg":"Google"},
        {"identifier":"EQHXZ8M8AV:com.google.Chrome","policy":"ALLOWLIST","rule_type":"SIGNINGID"},
        {"identifier":"platform:com.apple.yes","policy":"BLOCKLIST","rule_type":"SIGNINGID"},
        {"identifier":"com.google.Chrome","policy":"BLOCKLIST","rule_type":"SIGNINGID"},
        {"identifier":"eqhxz8m8av:com.google.Chrome","policy":"BLOCKLIST","rule_type":"SIGNINGID"},
        {"identifier":"not-hex","policy":"BLOCKLIST","rule_type":"BINARY"},
        {"identifier":"x","policy":"CEL","rule_type":"BINARY","cel_expr":"true"},
        {"identifier":"4444444444444444444444444444444444444444","policy":"BLOCKLIST","rule_type":"CDHASH"}]}"#;
    let i = import(Source::Santa, santa, "Macs").unwrap();
    let set = loads(&i);
    let (exported, approximated, not) = i.counts();
    // Signing IDs are imported (Apple's own too); one without its team, or with a team in
    // the wrong case (Santa's are capitals), is said.
    assert_eq!((exported, approximated, not), (3, 1, 5), "{:#?}", i.entries);
    let signing: Vec<&str> = set
        .applications
        .iter()
        .flat_map(|a| &a.rules)
        .filter_map(|r| r.signing_id.as_ref().map(|p| p.as_str()))
        .collect();
    assert_eq!(
        signing,
        ["platform:com.apple.yes", "EQHXZ8M8AV:com.google.Chrome"],
        "blocks first, as Santa ranks them"
    );
}

#[test]
fn hostile_files_are_refused_with_a_reason_never_a_panic() {
    let deep = "<AppLockerPolicy>".to_owned() + &"<a>".repeat(100) + &"</a>".repeat(100) + "</AppLockerPolicy>";
    for (source, text, says) in [
        (Source::AppLocker, "<AppLockerPolicy", "well-formed"),
        (Source::AppLocker, "<SiPolicy/>", "not <AppLockerPolicy>"),
        (Source::AppLocker, deep.as_str(), "64 elements"),
        (Source::AppControl, "<AppLockerPolicy Version=\"1\"/>", "not <SiPolicy>"),
        (Source::AppControl, "<!DOCTYPE x [<!ENTITY a \"aaaa\">]><SiPolicy>&a;</SiPolicy>", ""),
        (Source::Santa, "{\"rules\": 7}", "santactl"),
        (Source::Santa, "[]", "santactl"),
        (Source::Fapolicyd, "\n# only comments\n", "no rule"),
    ] {
        match import(source, text, "X") {
            Err(e) => assert!(e.to_string().contains(says), "{source:?}: {e}"),
            Ok(i) => assert!(says.is_empty(), "{source:?} {text:?} imported: {:#?}", i.entries),
        }
    }
    // Lines fapolicyd would not take are said, one by one; a permit never grows.
    let i = import(
        Source::Fapolicyd,
        "allow perm=execute uid=1000 : all\nallow perm=open all : all\nallow : path=/usr/bin/x\nnonsense\n%set=1,2\ndeny perm=execute pattern=ld_so : all\n",
        "F",
    )
    .unwrap();
    let (exported, approximated, not) = i.counts();
    assert_eq!((exported, approximated, not), (0, 1, 5), "{:#?}", i.entries);
    loads(&i);
}
