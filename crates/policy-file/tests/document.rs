//! A `Document` written as JSON reads back as the same policy set a TOML file gives.

use portcullis_policy_file::document::{ApplicationDoc, BlocklistDoc, Document, GroupDoc, PolicyDoc, RuleDoc};
use portcullis_policy_file::{Format, parse};

const TOML: &str = r#"
[organization]
name = "acme"
mode = "monitor"

[[groups]]
path = "Servers/Web"
mode = "secured"

[[applications]]
name = "Editor"
rules = [{ original_filename = "editor.exe", os = "windows" }]
except = [{ version = ">=2.0" }]

[[blocklists]]
name = "3CX DesktopApp"
hashes = ["aa5fda45c6a8fc4a2f3f3a9e5fb7fc3b2cb04a3a3b1b5e1f7ebfc5b4c7f0a111"]
rules = [{ original_filename = "3CXDesktopApp", os = "windows" }]
approved = ["organization"]

[[policies]]
name = "Permit editor"
position = 10
applications = ["Editor"]
action = "permit"
scope = "group:Servers/Web"
expires = "2030-01-01"
"#;

fn document() -> Document {
    Document {
        organization: Some(portcullis_policy_file::document::OrganizationDoc {
            name: Some("acme".into()),
            mode: Some("monitor".into()),
            ..Default::default()
        }),
        groups: vec![GroupDoc { path: "Servers/Web".into(), mode: Some("secured".into()), ..Default::default() }],
        applications: vec![ApplicationDoc {
            name: "Editor".into(),
            description: None,
            rules: vec![RuleDoc {
                original_filename: Some("editor.exe".into()),
                os: Some("windows".into()),
                ..Default::default()
            }],
            except: vec![RuleDoc { version: Some(">=2.0".into()), ..Default::default() }],
        }],
        blocklists: vec![BlocklistDoc {
            name: "3CX DesktopApp".into(),
            hashes: Some(vec!["aa5fda45c6a8fc4a2f3f3a9e5fb7fc3b2cb04a3a3b1b5e1f7ebfc5b4c7f0a111".into()]),
            rules: vec![RuleDoc {
                original_filename: Some("3CXDesktopApp".into()),
                os: Some("windows".into()),
                ..Default::default()
            }],
            approved: vec!["organization".into()],
            ..Default::default()
        }],
        policies: vec![PolicyDoc {
            name: "Permit editor".into(),
            position: 10,
            applications: vec!["Editor".into()],
            action: "permit".into(),
            scope: Some("group:Servers/Web".into()),
            expires: Some("2030-01-01".into()),
            ..Default::default()
        }],
        ..Default::default()
    }
}

#[test]
fn json_document_reads_as_the_same_set_as_the_toml_file() {
    let from_toml = parse(TOML, Format::Toml, &[]).unwrap().set;
    let json = document().to_json();
    let from_json = parse(&json, Format::Json, &[]).unwrap().set;
    assert_eq!(format!("{from_toml:?}"), format!("{from_json:?}"));
    // And the JSON text round-trips as data.
    let back: Document = serde_json::from_str(&json).unwrap();
    assert_eq!(back, document());
}

#[test]
fn json_documents_are_checked_like_files() {
    let mut doc = document();
    doc.policies[0].applications = vec!["Nope".into()];
    let err = parse(&doc.to_json(), Format::Json, &[]).unwrap_err();
    assert!(err.diagnostics[0].message.contains("Nope"), "{err}");
    assert_eq!(err.diagnostics[0].line, None);

    let err = parse(r#"{"policies": [{"name": 1}]}"#, Format::Json, &[]).unwrap_err();
    assert_eq!(err.diagnostics[0].line, Some(1), "{err}");
    assert!(err.diagnostics[0].message.contains("invalid type"), "{err}");

    let err = parse(r#"{"polices": []}"#, Format::Json, &[]).unwrap_err();
    assert!(err.diagnostics[0].message.contains("check the spelling"), "{err}");
}
