//! A stateful property test of the invariant in ARCHITECTURE.md: **no sequence of accepted
//! API calls, by any agent or user, can make the organization's model fail to compile,
//! stop bundles for any computer, or make any read endpoint fail.**
//!
//! proptest draws sequences of admin calls (groups, applications, policies scoped to the
//! organization, a group or a computer, blocklist approvals, removals in any order) and
//! hostile agent calls (names in other cases, unknown systems, junk host facts, huge hit
//! counts, forged events) and rotations of the bundle signing key. After every step, on SQLite and on PostgreSQL: no 5xx; every read
//! endpoint answers 200; every enrolled computer's bundle verifies (from the key the agent
//! received at enrollment, through the endorsements of every rotation since), names it,
//! loads in the agent's loader and compiles into an engine; the version rose exactly when a change was
//! accepted. Bounded: a few cases of a dozen steps per database (PORTCULLIS_STATEFUL_CASES).

use axum::http::StatusCode;
use portcullis_store::Store;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Value, json};

mod common;
use common::*;

const NAMES: [&str; 3] = ["web-01", "WEB-01", "db-01"];
const OSES: [&str; 3] = ["linux", "windows", "plan9"];
const GROUPS: [&str; 3] = ["Linux", "Linux/Web", "Windows"];

#[derive(Clone, Debug)]
enum Op {
    CreateGroup(usize),
    DeleteGroup(usize),
    Enroll { name: usize, os: usize, group: usize },
    CreateApp(u8),
    DeleteApp(u8),
    Policy { app: u8, scope: Scope, deny: bool },
    DeletePolicy(usize),
    MovePolicy(usize),
    Blocklist { scope: Scope },
    DeleteComputer(usize),
    SetComputerGroup { computer: usize, group: usize },
    Hits(u64),
    JunkHost(usize),
    ForgedEvent(String),
    RotateKey,
}

#[derive(Clone, Debug)]
enum Scope {
    Organization,
    Group(usize),
    Computer(usize),
}

impl Scope {
    fn text(&self) -> String {
        match self {
            Scope::Organization => "organization".into(),
            Scope::Group(g) => format!("group:{}", GROUPS[*g % GROUPS.len()]),
            Scope::Computer(c) => format!("computer:{}", NAMES[*c % NAMES.len()]),
        }
    }
}

fn scope() -> impl Strategy<Value = Scope> {
    prop_oneof![Just(Scope::Organization), (0..3usize).prop_map(Scope::Group), (0..3usize).prop_map(Scope::Computer)]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..3usize).prop_map(Op::CreateGroup),
        (0..3usize).prop_map(Op::DeleteGroup),
        (0..3usize, 0..3usize, 0..3usize).prop_map(|(name, os, group)| Op::Enroll { name, os, group }),
        (0..3u8).prop_map(Op::CreateApp),
        (0..3u8).prop_map(Op::DeleteApp),
        (0..3u8, scope(), any::<bool>()).prop_map(|(app, scope, deny)| Op::Policy { app, scope, deny }),
        (0..4usize).prop_map(Op::DeletePolicy),
        (0..4usize).prop_map(Op::MovePolicy),
        scope().prop_map(|scope| Op::Blocklist { scope }),
        (0..3usize).prop_map(Op::DeleteComputer),
        (0..3usize, 0..3usize).prop_map(|(computer, group)| Op::SetComputerGroup { computer, group }),
        prop_oneof![Just(u64::MAX), Just(1u64 << 62), 0..10u64].prop_map(Op::Hits),
        (0..3usize).prop_map(Op::JunkHost),
        "[ -~]{0,40}".prop_map(Op::ForgedEvent),
        Just(Op::RotateKey),
    ]
}

struct World {
    admin: Client,
    org_id: i64,
    tokens: Vec<Option<String>>,
    /// Each enrolled agent's computer, credential and the bundle key it was given.
    agents: Vec<(String, String, String)>,
    policies: u32,
}

async fn ids(admin: &Client, uri: &str) -> Vec<(i64, Value)> {
    let r = admin.get(uri).await;
    r.body.as_array().cloned().unwrap_or_default().into_iter().map(|v| (v["id"].as_i64().unwrap_or(0), v)).collect()
}

/// Run one step; whether it was a model change that was accepted, and the status.
async fn step(w: &mut World, op: &Op) -> (bool, StatusCode) {
    let a = &w.admin;
    let r = match op {
        Op::CreateGroup(g) => a.json("POST", "/api/groups", json!({"path": GROUPS[*g]})).await,
        Op::DeleteGroup(g) => {
            let found = ids(a, "/api/groups").await.into_iter().find(|(_, v)| v["path"] == GROUPS[*g]);
            match found {
                Some((id, _)) => a.json("DELETE", &format!("/api/groups/{id}"), json!({})).await,
                None => return (false, StatusCode::NOT_FOUND),
            }
        }
        Op::Enroll { name, os, group } => {
            let idx = *group;
            if w.tokens[idx].is_none() {
                let found = ids(a, "/api/groups").await.into_iter().find(|(_, v)| v["path"] == GROUPS[idx]);
                let Some((id, _)) = found else { return (false, StatusCode::NOT_FOUND) };
                let t = a.json("POST", &format!("/api/groups/{id}/enrollment-token"), json!({})).await;
                w.tokens[idx] = t.body["token"].as_str().map(str::to_owned);
            }
            let Some(token) = w.tokens[idx].clone() else { return (false, StatusCode::NOT_FOUND) };
            let req =
                json!({"token": token, "host": {"hostname": NAMES[*name], "os": OSES[*os], "agent_version": "1"}});
            let r = agent_client(&a.state.store, &a.state, None).json("POST", "/api/agent/enroll", req).await;
            if r.status == StatusCode::CREATED {
                w.agents.push((
                    r.body["computer"].as_str().unwrap().to_owned(),
                    r.body["credential"].as_str().unwrap().to_owned(),
                    r.body["bundle_key"].as_str().unwrap().to_owned(),
                ));
            }
            // Enrollment changes no bundle of any other computer: no version.
            return (false, r.status);
        }
        Op::CreateApp(n) => {
            let body = json!({"name": format!("App {n}"), "rules": [{"path": format!("/opt/app{n}/**")}]});
            a.json("POST", "/api/applications", body).await
        }
        Op::DeleteApp(n) => {
            let found = ids(a, "/api/applications").await.into_iter().find(|(_, v)| v["name"] == format!("App {n}"));
            match found {
                Some((id, _)) => a.json("DELETE", &format!("/api/applications/{id}"), json!({})).await,
                None => return (false, StatusCode::NOT_FOUND),
            }
        }
        Op::Policy { app, scope, deny } => {
            w.policies += 1;
            let body = json!({"name": format!("P{}", w.policies), "position": 0, "applications": [format!("App {app}")],
                "action": if *deny { "deny" } else { "permit" }, "scope": scope.text()});
            a.json("POST", "/api/policies", body).await
        }
        Op::DeletePolicy(i) | Op::MovePolicy(i) => {
            let custom: Vec<_> =
                ids(a, "/api/policies").await.into_iter().filter(|(_, v)| v["builtin"] != true).collect();
            let Some((id, _)) = custom.get(*i) else { return (false, StatusCode::NOT_FOUND) };
            if matches!(op, Op::DeletePolicy(_)) {
                a.json("DELETE", &format!("/api/policies/{id}"), json!({})).await
            } else {
                a.json("POST", &format!("/api/policies/{id}/move"), json!({"to": "top"})).await
            }
        }
        Op::Blocklist { scope } => {
            let existing = ids(a, "/api/blocklists").await;
            let (id, created) = match existing.first() {
                Some((id, _)) => (*id, false),
                None => {
                    let id = a.json("POST", "/api/blocklists", json!({"name": "Bad"})).await.body["id"]
                        .as_i64()
                        .unwrap_or(0);
                    let r = a.json("POST", &format!("/api/blocklists/{id}/hashes"), json!({"text": BAD_SHA})).await;
                    assert!(r.status.is_success(), "{:?}", r.body);
                    (id, true)
                }
            };
            let r = a.json("POST", &format!("/api/blocklists/{id}/approvals"), json!({"scope": scope.text()})).await;
            return (created || r.status.is_success(), r.status);
        }
        Op::DeleteComputer(i) => {
            let all = ids(a, "/api/computers").await;
            let Some((id, _)) = all.get(*i) else { return (false, StatusCode::NOT_FOUND) };
            a.json("DELETE", &format!("/api/computers/{id}"), json!({})).await
        }
        Op::SetComputerGroup { computer, group } => {
            let all = ids(a, "/api/computers").await;
            let Some((id, _)) = all.get(*computer) else { return (false, StatusCode::NOT_FOUND) };
            a.json("PUT", &format!("/api/computers/{id}"), json!({"name": "ignored", "group": GROUPS[*group]})).await
        }
        Op::Hits(count) => {
            let Some((_, cred, _)) = w.agents.first() else { return (false, StatusCode::NOT_FOUND) };
            let hits = json!({"events": [], "hits": [{"policy": portcullis_store::BUILTIN_REPORTED_POLICY, "count": count, "last_ms": i64::MAX}]});
            let r = agent_client(&a.state.store, &a.state, Some(cred)).json("POST", "/api/agent/events", hits).await;
            return (false, r.status);
        }
        Op::JunkHost(i) => {
            let Some((_, cred, _)) = w.agents.get(*i) else { return (false, StatusCode::NOT_FOUND) };
            let poll = json!({"after": i64::MAX, "wait_s": 0, "host": {"hostname": "x y", "os": "plan9", "agent_version": "é".repeat(500)}});
            let r = agent_client(&a.state.store, &a.state, Some(cred)).json("POST", "/api/agent/poll", poll).await;
            a.state.hub.flush_seen(&a.state.store).await.unwrap();
            return (false, r.status);
        }
        Op::ForgedEvent(text) => {
            let Some((_, cred, _)) = w.agents.first() else { return (false, StatusCode::NOT_FOUND) };
            let mut line: Value = serde_json::from_str(&event_line(text, text)).unwrap();
            line["reason"] = json!(text);
            let r = agent_client(&a.state.store, &a.state, Some(cred))
                .json("POST", "/api/agent/events", json!({"events": [line]}))
                .await;
            return (false, r.status);
        }
        Op::RotateKey => a.json("POST", "/api/bundle-key/rotate", json!({})).await,
    };
    (r.status.is_success(), r.status)
}

async fn check_invariant(w: &World, store: &Store) -> Result<(), TestCaseError> {
    for uri in [
        "/api/policies",
        "/api/computers",
        "/api/groups",
        "/api/applications",
        "/api/blocklists",
        "/api/events",
        "/api/document",
        "/api/audit",
        "/api/enrollments/pending",
        "/api/policies/unused?since=2020-01-01",
        "/policies",
        "/computers",
        "/events",
        "/applications",
        "/blocklists",
        "/accounts",
        "/api/bundle-key",
        "/api/users",
        "/api/tokens",
    ] {
        let r = w.admin.get(uri).await;
        prop_assert_eq!(r.status, StatusCode::OK, "{} answered {} {:?}", uri, r.status, r.body);
    }
    let version = store.org_version(w.org_id).await.unwrap();
    let current = store.bundle_key(w.org_id).await.unwrap().public();
    let computers: Vec<String> = w
        .admin
        .get("/api/computers")
        .await
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect();
    for (name, cred, enrolled_key) in &w.agents {
        if !computers.contains(name) {
            continue; // removed: its credential is refused (checked in the adversarial tests)
        }
        let r = agent_client(store, &w.admin.state, Some(cred))
            .json("POST", "/api/agent/poll", json!({"after": 0, "wait_s": 0}))
            .await;
        prop_assert_eq!(r.status, StatusCode::OK, "bundle for {}: {:?}", name, r.body);
        let sig = r.headers.get("x-portcullis-signature").unwrap().to_str().unwrap();
        let bundle = portcullis_protocol::Bundle::from_parts(r.bytes.clone(), sig).unwrap();
        let enrolled = portcullis_protocol::BundlePublicKey::from_hex(enrolled_key).unwrap();
        let signer = bundle.signer(&enrolled);
        prop_assert_eq!(signer.as_ref(), Ok(&current), "{} follows the rotations from its enrolled key", name);
        let payload = bundle.verify(&current, 0).unwrap();
        prop_assert_eq!(payload.version, version, "{} gets the latest version", name);
        prop_assert!(payload.computer.name.eq_ignore_ascii_case(name));
        let engine =
            portcullis_policy_file::compile(&payload.policy_json().unwrap(), portcullis_policy_file::Format::Json);
        prop_assert!(engine.is_ok(), "the bundle of {} loads and compiles: {:?}", name, engine.err());
    }
    Ok(())
}

fn run_on(store: Store, runtime: &tokio::runtime::Runtime) {
    let cases = std::env::var("PORTCULLIS_STATEFUL_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(6);
    let mut runner =
        TestRunner::new(Config { cases, max_shrink_iters: 64, failure_persistence: None, ..Config::default() });
    let result = runner.run(&proptest::collection::vec(op(), 4..14), |ops| {
        runtime.block_on(async {
            let org = org_with_users(&store).await;
            let admin = Client::login(&store, &org.name, "admin", "admin-password").await;
            let mut w =
                World { admin, org_id: org.id, tokens: vec![None; GROUPS.len()], agents: Vec::new(), policies: 0 };
            for op in &ops {
                let before = store.org_version(w.org_id).await.unwrap();
                let (changed, status) = step(&mut w, op).await;
                prop_assert!(!status.is_server_error(), "{:?} answered {}", op, status);
                let after = store.org_version(w.org_id).await.unwrap();
                prop_assert_eq!(after > before, changed, "{:?} ({}): version {} → {}", op, status, before, after);
                check_invariant(&w, &store).await?;
            }
            Ok(())
        })
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

#[test]
fn no_sequence_of_accepted_calls_breaks_the_model_bundles_or_reads() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sqlite = runtime
        .block_on(Store::connect(&format!("sqlite://{}/stateful.db", dir.path().display()), test_keys()))
        .unwrap();
    run_on(sqlite, &runtime);
    run_on(runtime.block_on(Store::connect(&postgres_url(), test_keys())).unwrap(), &runtime);
}
