//! Every error names its line and column and says how to fix it.

use portcullis_policy_file::{Format, parse};

#[track_caller]
fn check(format: Format, text: &str, expected: &[&str]) {
    let err = parse(text, format, &[]).expect_err("should not load");
    let got: Vec<String> = err.diagnostics.iter().map(|d| d.to_string()).collect();
    assert_eq!(got.len(), expected.len(), "{got:#?}");
    for (g, e) in got.iter().zip(expected) {
        assert!(
            g.starts_with(e.split_once(' ').map_or(*e, |(loc, _)| loc))
                && g.contains(e.split_once(' ').map_or("", |(_, m)| m)),
            "got {g:?}, expected {e:?}"
        );
    }
}

#[test]
fn toml_syntax_and_types() {
    check(Format::Toml, "[[policies]]\nname = \"x\"\nposition = \"first\"\n", &["3:12: invalid type"]);
    check(Format::Toml, "[[applications]]\nname = \"a\"\nrulez = []\n", &["3:1: unknown field `rulez`"]);
    check(Format::Toml, "[[applications]\n", &["1:16: unclosed array table"]);
}

#[test]
fn unknown_references_point_at_the_reference() {
    let text = r#"
[[applications]]
name = "A"
rules = [{ file_name = "a" }]

[[policies]]
name = "P"
position = 1
applications = ["B"]
action = "permit"
scope = "group:Nowhere"
"#;
    check(
        Format::Toml,
        text,
        &["9:16: names application \"B\", which is not defined", "11:9: group \"Nowhere\" is not defined"],
    );
}

#[test]
fn values_are_checked_where_written() {
    let text = r#"
[[applications]]
name = "A"
rules = [
  { sha256 = ["abcd"] },
  { version = "1.2.x" },
  { os = "beos" },
  { path = "/opt/[" },
]

[[policies]]
name = "P"
position = 1
applications = ["A"]
action = "allow-ish"
expires = "next tuesday"
"#;
    check(
        Format::Toml,
        text,
        &[
            "5:14: entry 1 of sha256 is not a sha256 in hex (64 digits)",
            "6:15: \"x\" in \"1.2.x\" is not a number",
            "7:10: unknown operating system \"beos\"",
            "8:12: invalid pattern",
            "15:10: unknown action \"allow-ish\"",
            "16:11: \"next tuesday\" is not a date",
        ],
    );
}

#[test]
fn duplicate_positions_and_names() {
    let text = r#"
[[applications]]
name = "A"
rules = [{ file_name = "a" }]

[[policies]]
name = "P1"
position = 5
applications = ["A"]
action = "permit"

[[policies]]
name = "P2"
position = 5
applications = ["A"]
action = "deny"
"#;
    check(Format::Toml, text, &["14:12: policies \"P1\" and \"P2\" both have position 5"]);
}

#[test]
fn yaml_errors_have_positions_too() {
    check(Format::Yaml, "policies:\n  - name: P\n    position: first\n", &["3:15: "]);
    let text = "applications:\n  - name: A\n    rules: [{ file_name: a }]\npolicies:\n  - name: P\n    position: 1\n    applications: [B]\n    action: permit\n";
    check(Format::Yaml, text, &["7:19: names application \"B\""]);
}
