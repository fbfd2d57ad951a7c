//! Ringfence profiles in policy files: the 3CX advice as one policy, and errors that point at
//! the line.

use portcullis_policy::{ChildDefault, Engine, FileAccess, FileFacts, Os, ProcessFacts, Timestamp, Verdict};
use portcullis_policy_file::{Format, parse};

const THREE_CX: &str = include_str!("../../../dist/policies/3cx-ringfence.toml");

#[test]
fn the_3cx_advice_is_one_policy() {
    let loaded = parse(THREE_CX, Format::Toml, &[]).expect("the shipped example loads");
    let engine = Engine::new(loaded.set).unwrap();
    let target = engine.target(None, Os::Linux).unwrap();
    let file = FileFacts { path: "/usr/lib/3cxdesktopapp/3CXDesktopApp".into(), ..FileFacts::default() };
    let decision = engine.decide(&file, &ProcessFacts::default(), &target, Timestamp(0));
    assert_eq!(decision.verdict, Verdict::Allow);
    let fenced = decision.fence().expect("ringfenced");
    assert_eq!((fenced.profile, fenced.policy, fenced.enforce), ("3CX", "Permit 3CX, ringfenced", true));
    let profile = engine.ringfence(fenced.profile).unwrap();
    assert!(profile.check_open("/home/ann/.ssh/id_ed25519", false).is_some());
    assert!(profile.check_open("/home/ann/.config/3CXDesktopApp/config.json", true).is_none());
    assert!(profile.check_open("/home/ann/Downloads/card.vcf", true).is_some());
    assert!(profile.check_child("/bin/sh", None, false).is_some());
    assert!(profile.check_child("/usr/bin/xdg-open", None, false).is_some());
    assert_eq!(profile.children.others, ChildDefault::Deny);
    let net = profile.network.as_ref().unwrap();
    assert!(net.allow.is_empty() && net.dns);
    assert_eq!(net.domains.iter().map(|d| d.name.as_str()).collect::<Vec<_>>(), ["3cx.com", "my3cx.com"]);
    assert_eq!(net.domains[1].ports.iter().map(|p| p.to_string()).collect::<Vec<_>>(), ["443", "5060-5090"]);
    assert!(engine.uses_ringfences());
}

#[test]
fn monitor_status_ringfence_only_reports() {
    let text = THREE_CX.replace("ringfence = \"3CX\"", "ringfence = \"3CX\"\nstatus = \"monitor\"");
    let engine = Engine::new(parse(&text, Format::Toml, &[]).unwrap().set).unwrap();
    let target = engine.target(None, Os::Linux).unwrap();
    let file = FileFacts { path: "/opt/3CXDesktopApp/3CXDesktopApp".into(), ..FileFacts::default() };
    // Secured: a monitor-status permit does not permit, so nothing is ringfenced.
    let d = engine.decide(&file, &ProcessFacts::default(), &target, Timestamp(0));
    assert_eq!(d.verdict, Verdict::Deny);
    assert_eq!(d.fence(), None);
    // Monitor mode allows it, and the ringfence comes along report-only.
    let text = text.replace("mode = \"secured\"", "mode = \"monitor\"");
    let engine = Engine::new(parse(&text, Format::Toml, &[]).unwrap().set).unwrap();
    let target = engine.target(None, Os::Linux).unwrap();
    let d = engine.decide(&file, &ProcessFacts::default(), &target, Timestamp(0));
    let fenced = d.fence().expect("report-only ringfence");
    assert!(!fenced.enforce);
    assert_eq!(fenced.policy, "Permit 3CX, ringfenced");
}

#[test]
fn file_access_words_and_defaults() {
    let text = r#"
[[ringfences]]
name = "r"
[ringfences.files]
rules = [{ path = "/srv/**", access = "read" }]
"#;
    let set = parse(text, Format::Toml, &[]).unwrap().set;
    let r = &set.ringfences[0];
    assert_eq!(r.files.rules[0].access, FileAccess::Read);
    assert!(r.check_open("/etc/shadow", false).is_some(), "built-in protected paths stay when only rules are given");
    assert!(r.network.is_none(), "no [network] table: the network is not limited");
    assert_eq!(r.children.others, ChildDefault::NoShells);
}

#[test]
fn errors_point_at_the_field() {
    let text = r#"
[[ringfences]]
name = "r"
[ringfences.files]
rules = [{ path = "/srv/[", access = "sometimes" }]
[ringfences.network]
allow = [{ cidr = "10.0.0.0/40", ports = [443, "90-80", 70000] }]
domains = [{ name = "bad domain" }]
[ringfences.children]
applications = ["Nope"]
others = "maybe"
"#;
    let err = parse(text, Format::Toml, &[]).expect_err("must not load");
    let got: Vec<String> = err.diagnostics.iter().map(|d| d.to_string()).collect();
    let expect = [
        ("5:", "unknown file access \"sometimes\""),
        ("5:", "invalid pattern \"/srv/[\""),
        ("7:", "\"90-80\" is not a port"),
        ("7:", "\"70000\" is not a port"),
        ("7:", "\"10.0.0.0/40\" is not an address or CIDR"),
        ("8:", "\"bad domain\" is not a domain name"),
        ("11:", "unknown children.others \"maybe\""),
    ];
    for (place, message) in expect {
        assert!(got.iter().any(|g| g.starts_with(place) && g.contains(message)), "missing {place}{message}: {got:#?}");
    }
    // References are checked once everything converts.
    let text = "[[ringfences]]\nname = \"r\"\n[ringfences.children]\napplications = [\"Nope\"]\n";
    let err = parse(text, Format::Toml, &[]).expect_err("must not load");
    let got = err.diagnostics[0].to_string();
    assert!(got.starts_with("3:") && got.contains("start application \"Nope\", which is not defined"), "{got}");
}

#[test]
fn json_documents_carry_ringfences() {
    let doc: portcullis_policy_file::document::Document = serde_json::from_str(
        r#"{"ringfences":[{"name":"r","network":{"allow":[{"cidr":"127.0.0.1","ports":["8080"]}],"dns":false},
            "children":{"others":"deny"},"files":{"protected":["/secret/**"],"rules":[{"path":"/secret/ok","access":"read"}]}}]}"#,
    )
    .unwrap();
    let set = parse(&doc.to_json(), Format::Json, &[]).unwrap().set;
    let r = &set.ringfences[0];
    assert!(r.check_open("/secret/ok", false).is_none() && r.check_open("/secret/no", false).is_some());
    assert!(r.check_net("127.0.0.1".parse().unwrap(), 8080).is_none());
    assert!(r.check_net("127.0.0.1".parse().unwrap(), 8081).is_some());
    assert_eq!(r.children.others, ChildDefault::Deny);
}
