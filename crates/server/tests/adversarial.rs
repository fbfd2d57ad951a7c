//! Attacks on the management plane, each test named after what it refuses, on SQLite and on
//! PostgreSQL: hostile agents (take-overs, names and systems that would wedge a model,
//! counters that overflow, floods), careless administrators (scopes that stopped delivery,
//! a glob taken from an event), and the accounts and transport around them.

use axum::body::Body;
use axum::http::StatusCode;
use portcullis_store::{Role, Store};
use serde_json::{Value, json};

mod common;
use common::*;

struct Fleet {
    admin: Client,
    org: Org,
}

async fn fleet(store: &Store) -> Fleet {
    let org = org_with_users(store).await;
    let admin = Client::login(store, &org.name, "admin", "admin-password").await;
    Fleet { admin, org }
}

impl Fleet {
    async fn group(&self, path: &str) -> i64 {
        let r = self.admin.json("POST", "/api/groups", json!({"path": path})).await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        r.body["id"].as_i64().unwrap()
    }

    async fn token(&self, group: i64, query: &str) -> String {
        let r = self.admin.json("POST", &format!("/api/groups/{group}/enrollment-token{query}"), json!({})).await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        r.body["token"].as_str().unwrap().to_owned()
    }

    async fn enroll(&self, token: &str, hostname: &str, os: &str, current: Option<&str>) -> Reply {
        let mut req = json!({"token": token, "host": {"hostname": hostname, "os": os, "agent_version": "0.1.0"}});
        if let Some(c) = current {
            req["current_credential"] = json!(c);
        }
        agent_client(&self.admin.state.store, &self.admin.state, None).json("POST", "/api/agent/enroll", req).await
    }

    fn agent(&self, credential: &str) -> Client {
        agent_client(&self.admin.state.store, &self.admin.state, Some(credential))
    }

    /// Poll from version 0: the bundle's payload (verified and loaded), or the status.
    async fn bundle(&self, credential: &str) -> Result<portcullis_protocol::BundlePayload, StatusCode> {
        let r = self.agent(credential).json("POST", "/api/agent/poll", json!({"after": 0, "wait_s": 0})).await;
        if r.status != StatusCode::OK {
            return Err(r.status);
        }
        let key = self.admin.state.store.bundle_key(self.org.id).await.unwrap().public();
        let sig = r.headers.get("x-portcullis-signature").unwrap().to_str().unwrap();
        let payload = portcullis_protocol::Bundle::from_parts(r.bytes.clone(), sig).unwrap().verify(&key, 0).unwrap();
        portcullis_policy_file::compile(&payload.policy_json().unwrap(), portcullis_policy_file::Format::Json)
            .expect("every bundle loads and compiles as the agent does");
        Ok(payload)
    }
}

fn credential(r: &Reply) -> String {
    r.body["credential"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn reenrolling_a_known_name_with_another_groups_token_takes_nothing_over() {
    each_backend(async |store: Store| {
        let f = fleet(&store).await;
        let (servers, lab) = (f.group("Servers").await, f.group("Lab").await);
        let (servers_token, lab_token) = (f.token(servers, "").await, f.token(lab, "").await);
        let real = f.enroll(&servers_token, "web-01", "linux", None).await;
        assert_eq!(real.status, StatusCode::CREATED, "{:?}", real.body);
        let real_credential = credential(&real);

        // The attacker holds the Lab token and claims the name.
        let attack = f.enroll(&lab_token, "web-01", "linux", None).await;
        assert_eq!(attack.status, StatusCode::ACCEPTED, "{:?}", attack.body);
        assert_eq!(attack.body["pending"], true);
        let attacker = credential(&attack);
        assert_eq!(f.bundle(&attacker).await.unwrap_err(), StatusCode::FORBIDDEN, "a pending credential gets nothing");
        let real_bundle = f.bundle(&real_credential).await.expect("the real agent keeps working");
        assert_eq!(real_bundle.computer.group.as_deref(), Some("Servers"), "and keeps its group");

        let pending = f.admin.get("/api/enrollments/pending").await.body;
        assert_eq!(pending.as_array().unwrap().len(), 1, "{pending:?}");
        assert_eq!(pending[0]["name"], "web-01");
        assert_eq!(pending[0]["group"], "Lab");
        assert!(pending[0]["existing_computer"].as_i64().is_some(), "listed as a duplicate");
        let page = f.admin.get("/computers").await;
        let html = String::from_utf8_lossy(&page.bytes);
        assert!(html.contains("Pending enrollments") && html.contains("duplicate of an enrolled computer"));

        // Rejected: the attacker's credential never works.
        let id = pending[0]["id"].as_i64().unwrap();
        let r = f.admin.json("DELETE", &format!("/api/enrollments/pending/{id}"), json!({})).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        assert_eq!(f.bundle(&attacker).await.unwrap_err(), StatusCode::UNAUTHORIZED);

        // A reinstall is accepted by an administrator: the new agent takes over, the old
        // credential stops working, the group stays.
        let reinstall = f.enroll(&lab_token, "WEB-01", "linux", None).await;
        assert_eq!(reinstall.status, StatusCode::ACCEPTED);
        let id = f.admin.get("/api/enrollments/pending").await.body[0]["id"].as_i64().unwrap();
        let auditor = Client::login(&store, &f.org.name, "auditor", "auditor-password").await;
        let r = auditor.json("POST", &format!("/api/enrollments/pending/{id}/accept"), json!({})).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "only an admin accepts");
        let r = f.admin.json("POST", &format!("/api/enrollments/pending/{id}/accept"), json!({})).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        assert_eq!(f.bundle(&real_credential).await.unwrap_err(), StatusCode::UNAUTHORIZED);
        let accepted = f.bundle(&credential(&reinstall)).await.unwrap();
        assert_eq!((accepted.computer.name.as_str(), accepted.computer.group.as_deref()), ("web-01", Some("Servers")));

        // A re-key proves the current credential: no administrator needed.
        let rekey = f.enroll(&lab_token, "web-01", "linux", Some(&credential(&reinstall))).await;
        assert_eq!(rekey.status, StatusCode::CREATED, "{:?}", rekey.body);
        assert_eq!(f.bundle(&credential(&reinstall)).await.unwrap_err(), StatusCode::UNAUTHORIZED);
        assert_eq!(f.bundle(&credential(&rekey)).await.unwrap().computer.group.as_deref(), Some("Servers"));
        let wrong = f.enroll(&lab_token, "web-01", "linux", Some("pca_guess")).await;
        assert_eq!(wrong.status, StatusCode::ACCEPTED, "a wrong credential proves nothing");

        let log = store.audit_log(f.org.id, 100).await.unwrap();
        for action in ["enroll pending", "reject enrollment", "accept enrollment", "rekey"] {
            assert!(log.iter().any(|e| e.action == action), "{action} is audited");
        }
    })
    .await;
}

#[tokio::test]
async fn enrollment_tokens_expire_run_out_and_are_revoked_and_deleting_a_computer_revokes_its_credential() {
    each_backend(async |store: Store| {
        let f = fleet(&store).await;
        let g = f.group("Linux").await;
        let once = f.token(g, "?uses=1").await;
        assert_eq!(f.enroll(&once, "a-01", "linux", None).await.status, StatusCode::CREATED);
        assert_eq!(f.enroll(&once, "a-02", "linux", None).await.status, StatusCode::UNAUTHORIZED, "used up");
        let r = f.admin.json("POST", &format!("/api/groups/{g}/enrollment-token?expires_in_hours=-1"), json!({})).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        let token = f.token(g, "").await;
        let groups = f.admin.get("/api/groups").await.body;
        assert!(groups[0]["enrollment_expires_ms"].as_i64().is_some(), "tokens expire by default: {groups:?}");
        let r = f.admin.json("DELETE", &format!("/api/groups/{g}/enrollment-token"), json!({})).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        assert_eq!(f.enroll(&token, "a-03", "linux", None).await.status, StatusCode::UNAUTHORIZED, "revoked");
        // The console shows a token's limits and revokes it too.
        let token = f.token(g, "?uses=3").await;
        let page = String::from_utf8_lossy(&f.admin.get("/computers").await.bytes).into_owned();
        assert!(page.contains("3 uses left") && page.contains("until "), "the limits are shown");
        let form = format!("_csrf={}", f.admin.csrf.as_deref().unwrap());
        let r = f
            .admin
            .send(
                "POST",
                &format!("/groups/{g}/token/revoke"),
                Some(Body::from(form)),
                "application/x-www-form-urlencoded",
                false,
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER);
        assert_eq!(
            f.enroll(&token, "a-04", "linux", None).await.status,
            StatusCode::UNAUTHORIZED,
            "revoked in the console"
        );
        let form = "_csrf=wrong".to_owned();
        let other = f.token(g, "").await;
        f.admin
            .send(
                "POST",
                &format!("/groups/{g}/token/revoke"),
                Some(Body::from(form)),
                "application/x-www-form-urlencoded",
                false,
            )
            .await;
        assert_eq!(
            f.enroll(&other, "a-05", "linux", None).await.status,
            StatusCode::CREATED,
            "a wrong CSRF token revokes nothing"
        );

        let token = f.token(g, "").await;
        let c = f.enroll(&token, "b-01", "linux", None).await;
        let id =
            f.admin.get("/api/computers").await.body.as_array().unwrap().iter().find(|c| c["name"] == "b-01").unwrap()
                ["id"]
                .as_i64()
                .unwrap();
        assert!(f.bundle(&credential(&c)).await.is_ok());
        assert_eq!(
            f.admin.json("DELETE", &format!("/api/computers/{id}"), json!({})).await.status,
            StatusCode::NO_CONTENT
        );
        assert_eq!(f.bundle(&credential(&c)).await.unwrap_err(), StatusCode::UNAUTHORIZED);
    })
    .await;
}

#[tokio::test]
async fn a_hostname_differing_in_case_or_an_unknown_os_cannot_wedge_the_organization() {
    each_backend(async |store: Store| {
        let f = fleet(&store).await;
        let g = f.group("Linux").await;
        let token = f.token(g, "").await;
        let web = f.enroll(&token, "web-01", "linux", None).await;
        assert_eq!(web.status, StatusCode::CREATED);
        // Another name in another case is the same name: held, never a second computer.
        assert_eq!(f.enroll(&token, "WEB-01", "linux", None).await.status, StatusCode::ACCEPTED);
        for (host, os) in [("plan9-box", "plan9"), ("a b", "linux"), ("x\u{0}y", "linux"), ("", "linux")] {
            let r = f.enroll(&token, host, os, None).await;
            assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{host:?}/{os:?}: {:?}", r.body);
        }
        let long = "h".repeat(300);
        assert_eq!(f.enroll(&token, &long, "linux", None).await.status, StatusCode::UNPROCESSABLE_ENTITY);
        // A poll's host report with junk in it is not kept, and breaks nothing.
        let agent = f.agent(&credential(&web));
        let junk = json!({"after": 0, "wait_s": 0, "host": {"hostname": "web 01", "os": "plan9", "agent_version": "x".repeat(10_000)}});
        assert_eq!(agent.json("POST", "/api/agent/poll", junk).await.status, StatusCode::OK);
        f.admin.state.hub.flush_seen(&store).await.unwrap();

        let computers = f.admin.get("/api/computers").await.body;
        assert_eq!(computers.as_array().unwrap().len(), 1, "{computers:?}");
        assert_eq!(computers[0]["os"], "linux");
        // Every later change still goes through, and the computer can be deleted.
        assert_eq!(f.admin.json("POST", "/api/groups", json!({"path": "Windows"})).await.status, StatusCode::CREATED);
        let r = f.admin.json("PUT", "/api/settings", json!({"mode": "monitor"})).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
        let id = computers[0]["id"].as_i64().unwrap();
        assert_eq!(f.admin.json("DELETE", &format!("/api/computers/{id}"), json!({})).await.status, StatusCode::NO_CONTENT);
    })
    .await;
}

#[tokio::test]
async fn a_policy_scoped_to_one_computer_reaches_it_and_every_other_computer_keeps_receiving_changes() {
    each_backend(async |store: Store| {
        let f = fleet(&store).await;
        let g = f.group("Linux").await;
        let token = f.token(g, "").await;
        let web = credential(&f.enroll(&token, "web-01", "linux", None).await);
        let db = credential(&f.enroll(&token, "db-01", "linux", None).await);
        let app = json!({"name": "Tool", "rules": [{"path": "/opt/tool"}]});
        assert_eq!(f.admin.json("POST", "/api/applications", app).await.status, StatusCode::CREATED);
        let scoped = json!({"name": "Tool on web-01", "position": 0, "applications": ["Tool"], "action": "permit", "scope": "computer:web-01"});
        let r = f.admin.json("POST", "/api/policies", scoped).await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        let version = store.org_version(f.org.id).await.unwrap();
        let (w, d) = (f.bundle(&web).await.unwrap(), f.bundle(&db).await.unwrap());
        assert_eq!((w.version, d.version), (version, version), "both computers receive the change");
        assert!(w.policy_json().unwrap().contains("Tool on web-01"));
        assert!(!d.policy_json().unwrap().contains("Tool on web-01"), "the other computer does not enforce it");

        // An emergency deny afterwards reaches everyone.
        let deny = json!({"name": "Emergency deny", "position": 0, "applications": ["Tool"], "action": "deny"});
        assert_eq!(f.admin.json("POST", "/api/policies", deny).await.status, StatusCode::CREATED);
        for c in [&web, &db] {
            assert!(f.bundle(c).await.unwrap().document.get().contains("Emergency deny"));
        }
        // A blocklist approved at one computer is delivered too.
        let b = f.admin.json("POST", "/api/blocklists", json!({"name": "Bad"})).await.body["id"].as_i64().unwrap();
        let r = f.admin.json("POST", &format!("/api/blocklists/{b}/hashes"), json!({"text": BAD_SHA})).await;
        assert!(r.status.is_success(), "{:?}", r.body);
        let r = f.admin.json("POST", &format!("/api/blocklists/{b}/approvals"), json!({"scope": "computer:db-01"})).await;
        assert!(r.status.is_success(), "{:?}", r.body);
        assert!(f.bundle(&db).await.unwrap().document.get().contains("computer:db-01"));
        assert!(f.bundle(&web).await.is_ok());

        // After a restart (a new server state over the same database) new agents start.
        let mut restarted = Client::new(&store);
        restarted.cookie = f.admin.cookie.clone();
        let fresh = Fleet { admin: restarted, org: Org { name: f.org.name.clone(), id: f.org.id } };
        let new = credential(&fresh.enroll(&token, "new-01", "linux", None).await);
        assert_eq!(fresh.bundle(&new).await.unwrap().version, store.org_version(f.org.id).await.unwrap());
        // Removing a computer that a policy names is refused with the reason, not accepted
        // and then silently undeliverable.
        let id = fresh.admin.get("/api/computers").await.body.as_array().unwrap().iter().find(|c| c["name"] == "web-01")
            .unwrap()["id"]
            .as_i64()
            .unwrap();
        let r = f.admin.json("DELETE", &format!("/api/computers/{id}"), json!({})).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    })
    .await;
}

#[tokio::test]
async fn a_huge_policy_hit_count_sent_twice_leaves_every_read_working() {
    each_backend(async |store: Store| {
        let f = fleet(&store).await;
        let g = f.group("Linux").await;
        let token = f.token(g, "").await;
        let agent = f.agent(&credential(&f.enroll(&token, "web-01", "linux", None).await));
        let future = portcullis_store::now_ms() + 10 * 365 * 86_400_000;
        let hits = json!({"events": [], "hits": [{"policy": portcullis_store::BUILTIN_REPORTED_POLICY, "count": u64::MAX, "last_ms": future}]});
        for _ in 0..2 {
            assert_eq!(agent.json("POST", "/api/agent/events", hits.clone()).await.status, StatusCode::OK);
        }
        let policies = f.admin.get("/api/policies").await;
        assert_eq!(policies.status, StatusCode::OK, "{:?}", policies.body);
        assert_eq!(policies.body[0]["hits"].as_i64(), Some(portcullis_store::MAX_HITS));
        assert!(policies.body[0]["last_matched_ms"].as_i64().unwrap() <= portcullis_store::now_ms(), "no future times");
        let home = f.admin.get("/policies").await;
        assert_eq!(home.status, StatusCode::OK);
        // Too many hit entries at once is refused, not stored.
        let many: Vec<Value> = (0..1001).map(|i| json!({"policy": format!("p{i}"), "count": 1, "last_ms": 0})).collect();
        let r = agent.json("POST", "/api/agent/events", json!({"events": [], "hits": many})).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        // An event from a clock far ahead is filed under its arrival.
        let mut line: Value = serde_json::from_str(&event_line("/tmp/x", "p")).unwrap();
        line["time"] = json!("2999-01-01T00:00:00Z");
        line["reason"] = json!("r".repeat(100_000));
        let r = agent.json("POST", "/api/agent/events", json!({"events": [line]})).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        let events = f.admin.get("/api/events").await.body;
        assert!(events[0]["at_ms"].as_i64().unwrap() <= portcullis_store::now_ms());
        assert!(events[0]["reason"].as_str().unwrap().len() <= 4096);
    })
    .await;
}

#[tokio::test]
async fn a_hostile_agent_reporting_host_facts_in_a_loop_is_answered_429() {
    each_backend(async |store: Store| {
        let f = fleet(&store).await;
        let g = f.group("Linux").await;
        let token = f.token(g, "").await;
        let agent = f.agent(&credential(&f.enroll(&token, "web-01", "linux", None).await));
        let version = store.org_version(f.org.id).await.unwrap();
        let poll =
            json!({"after": version, "wait_s": 0, "host": {"hostname": "web-01", "os": "linux", "agent_version": "1"}});
        let mut statuses = Vec::new();
        for _ in 0..=portcullis_server::HOST_REPORTS_PER_MINUTE {
            statuses.push(agent.json("POST", "/api/agent/poll", poll.clone()).await.status);
        }
        assert!(statuses[..statuses.len() - 1].iter().all(|s| *s == StatusCode::NO_CONTENT), "{statuses:?}");
        assert_eq!(*statuses.last().unwrap(), StatusCode::TOO_MANY_REQUESTS);
        // Polls without host facts go on.
        let r = agent.json("POST", "/api/agent/poll", json!({"after": version, "wait_s": 0})).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
    })
    .await;
}

#[tokio::test]
async fn a_path_from_an_event_is_permitted_literally_and_a_claimed_publisher_is_not() {
    each_backend(async |store: Store| {
        let f = fleet(&store).await;
        let g = f.group("Linux").await;
        let token = f.token(g, "").await;
        let agent = f.agent(&credential(&f.enroll(&token, "web-01", "linux", None).await));
        let mut line: Value = serde_json::from_str(&event_line("/tmp/**", "p")).unwrap();
        line["file"]["company_name"] = json!("Microsoft Corporation");
        line["file"]["product_name"] = json!("Windows");
        assert_eq!(agent.json("POST", "/api/agent/events", json!({"events": [line]})).await.status, StatusCode::OK);
        let id = f.admin.get("/api/events").await.body[0]["id"].as_i64().unwrap();

        let preview = f
            .admin
            .json("POST", &format!("/api/events/{id}/policy"), json!({"kind": "permit-path", "preview": true}))
            .await;
        assert_eq!(preview.status, StatusCode::OK, "{:?}", preview.body);
        assert_eq!(preview.body["rule"]["path"], "/tmp/[*][*]");
        assert!(preview.body["matches"].as_str().unwrap().contains("taken literally"));
        let before = store.org_version(f.org.id).await.unwrap();
        assert_eq!(store.org_version(f.org.id).await.unwrap(), before, "a preview saves nothing");
        let auditor = Client::login(&store, &f.org.name, "auditor", "auditor-password").await;
        let r = auditor
            .json("POST", &format!("/api/events/{id}/policy"), json!({"kind": "permit-path", "preview": true}))
            .await;
        assert_eq!(r.status, StatusCode::OK, "an auditor may look");
        let r = auditor.json("POST", &format!("/api/events/{id}/policy"), json!({"kind": "permit-path"})).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "but not save");

        let made = f.admin.json("POST", &format!("/api/events/{id}/policy"), json!({"kind": "permit-path"})).await;
        assert_eq!(made.status, StatusCode::CREATED, "{:?}", made.body);
        let decide = async |path: &str| {
            let r = f.admin.json("POST", "/api/preview", json!({"file": {"path": path, "kind": "executable"}})).await;
            r.body["policy"].clone()
        };
        assert_eq!(decide("/tmp/**").await, made.body["name"], "the one literal path is permitted");
        assert_ne!(decide("/tmp/payload").await, made.body["name"], "and nothing else under /tmp");

        let r = f.admin.json("POST", &format!("/api/events/{id}/policy"), json!({"kind": "permit-publisher"})).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "company and product names are claims: {:?}", r.body);
        assert!(r.body["error"].as_str().unwrap().contains("verified signer"));
        let page = f.admin.get(&format!("/events/{id}")).await;
        let html = String::from_utf8_lossy(&page.bytes);
        assert!(
            html.contains("taken literally") && html.contains("no verified signer"),
            "the form previews each choice"
        );

        // A verified signer in the record (the agent writes one for a signed file it judged)
        // makes a publisher rule of that subject, taken literally, and its certificate only.
        let signer = |path: &str, verified: bool| {
            let mut line: Value = serde_json::from_str(&event_line(path, "p")).unwrap();
            line["file"]["signer"] =
                json!({"subject": "CN=Vendor*", "issuer": "CN=CA", "cert_sha256": "cd".repeat(32), "verified": verified});
            line
        };
        let batch = json!({"events": [signer("/opt/a.exe", true), signer("/opt/b.exe", false)]});
        assert_eq!(agent.json("POST", "/api/agent/events", batch).await.status, StatusCode::OK);
        let listed = f.admin.get("/api/events").await.body;
        let id_of = |path: &str| {
            listed.as_array().unwrap().iter().find(|e| e["file_path"] == path).unwrap()["id"].as_i64().unwrap()
        };
        let publisher = async |id: i64| {
            let uri = format!("/api/events/{id}/policy");
            f.admin.json("POST", &uri, json!({"kind": "permit-publisher", "preview": true})).await
        };
        let r = publisher(id_of("/opt/a.exe")).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        assert_eq!(r.body["rule"]["signer"]["subject"], "CN=Vendor[*]");
        assert_eq!(r.body["rule"]["signer"]["cert_sha256"], "cd".repeat(32));
        assert_eq!(r.body["rule"]["signer"]["verified"], true);
        assert_eq!(publisher(id_of("/opt/b.exe")).await.status, StatusCode::BAD_REQUEST, "not verified: no publisher");
    })
    .await;
}

#[tokio::test]
async fn fifty_parallel_wrong_passwords_get_five_checks_and_one_address_cannot_spray_users() {
    each_backend(async |store: Store| {
        let f = fleet(&store).await;
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let c = Client::new(&store);
            let org = f.org.name.clone();
            tasks.push(tokio::spawn(async move {
                c.json("POST", "/api/session", json!({"organization": org, "user": "approver", "password": "wrong"}))
                    .await
                    .status
            }));
        }
        let mut wrong = 0;
        for t in tasks {
            match t.await.unwrap() {
                StatusCode::UNAUTHORIZED => wrong += 1,
                StatusCode::TOO_MANY_REQUESTS => {}
                other => panic!("unexpected {other}"),
            }
        }
        assert_eq!(wrong, portcullis_store::THROTTLE_FAILURES, "exactly the allowed number were checked");

        // One address trying many users: the per-address limit.
        for i in 0..10 {
            store.create_user(f.org.id, &format!("user{i}"), Role::Auditor, "right-password").await.unwrap();
        }
        let mut c = Client::new(&store);
        c.peer = Some("192.0.2.7:40000".parse().unwrap());
        let mut statuses = Vec::new();
        for i in 0..=portcullis_store::ADDRESS_FAILURES {
            let body = json!({"organization": f.org.name, "user": format!("user{}", i % 10), "password": "wrong"});
            statuses.push(c.json("POST", "/api/session", body).await.status);
        }
        assert_eq!(*statuses.last().unwrap(), StatusCode::TOO_MANY_REQUESTS, "{statuses:?}");
        let mut other = Client::new(&store);
        other.peer = Some("192.0.2.8:40000".parse().unwrap());
        let ok = other
            .json(
                "POST",
                "/api/session",
                json!({"organization": f.org.name, "user": "user1", "password": "right-password"}),
            )
            .await;
        assert_eq!(ok.status, StatusCode::OK, "another address is not held back");
    })
    .await;
}

#[tokio::test]
async fn users_are_disabled_re_roled_reset_and_deleted_and_tokens_and_sessions_revoked() {
    each_backend(async |store: Store| {
        let f = fleet(&store).await;
        let users = f.admin.get("/api/users").await.body;
        let id_of =
            |name: &str| users.as_array().unwrap().iter().find(|u| u["name"] == name).unwrap()["id"].as_i64().unwrap();
        let (admin_id, approver_id, auditor_id) = (id_of("admin"), id_of("approver"), id_of("auditor"));
        let approver = Client::login(&store, &f.org.name, "approver", "approver-password").await;
        assert_eq!(approver.get("/api/users").await.status, StatusCode::FORBIDDEN, "only admins manage users");

        // Disable: the session ends, logins fail, tokens stop.
        let t = approver.json("POST", "/api/tokens", json!({"name": "ci"})).await.body["token"]
            .as_str()
            .unwrap()
            .to_owned();
        let mut by_token = Client::new(&store);
        by_token.bearer = Some(t);
        assert_eq!(by_token.get("/api/me").await.status, StatusCode::OK);
        let r = f.admin.json("PUT", &format!("/api/users/{approver_id}"), json!({"disabled": true})).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
        assert_eq!(approver.get("/api/me").await.status, StatusCode::UNAUTHORIZED);
        assert_eq!(by_token.get("/api/me").await.status, StatusCode::UNAUTHORIZED);
        let login = Client::new(&store)
            .json(
                "POST",
                "/api/session",
                json!({"organization": f.org.name, "user": "approver", "password": "approver-password"}),
            )
            .await;
        assert_eq!(login.status, StatusCode::UNAUTHORIZED);
        f.admin.json("PUT", &format!("/api/users/{approver_id}"), json!({"disabled": false, "role": "auditor"})).await;
        assert_eq!(
            Client::login(&store, &f.org.name, "approver", "approver-password").await.get("/api/me").await.body["role"],
            "auditor"
        );

        // The last admin cannot be demoted, disabled or deleted.
        for (method, body) in
            [("PUT", json!({"role": "auditor"})), ("PUT", json!({"disabled": true})), ("DELETE", json!({}))]
        {
            let r = f.admin.json(method, &format!("/api/users/{admin_id}"), body).await;
            assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
        }
        // Reset a password: the old one stops working, and so do the user's sessions.
        let auditor = Client::login(&store, &f.org.name, "auditor", "auditor-password").await;
        let r = f.admin.json("POST", &format!("/api/users/{auditor_id}/password"), json!({"password": "short"})).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        let r = f
            .admin
            .json("POST", &format!("/api/users/{auditor_id}/password"), json!({"password": "a-new-password"}))
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        assert_eq!(auditor.get("/api/me").await.status, StatusCode::UNAUTHORIZED);
        let auditor = Client::login(&store, &f.org.name, "auditor", "a-new-password").await;
        // Self-service: the current password is needed.
        let r = auditor.json("POST", "/api/me/password", json!({"current": "wrong", "new": "another-password"})).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        let r = auditor
            .json("POST", "/api/me/password", json!({"current": "a-new-password", "new": "another-password"}))
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        let auditor = Client::login(&store, &f.org.name, "auditor", "another-password").await;

        // Tokens: read-only ones read, listed without the secret, revoked, and expired ones fail.
        let ro = f.admin.json("POST", "/api/tokens", json!({"name": "reader", "read_only": true})).await;
        assert_eq!(ro.status, StatusCode::CREATED);
        assert!(ro.body["expires_ms"].as_i64().is_some(), "tokens expire by default");
        let mut reader = Client::new(&store);
        reader.bearer = Some(ro.body["token"].as_str().unwrap().to_owned());
        assert_eq!(reader.get("/api/policies").await.status, StatusCode::OK);
        assert_eq!(reader.json("POST", "/api/groups", json!({"path": "X"})).await.status, StatusCode::FORBIDDEN);
        let listed = f.admin.get("/api/tokens").await.body;
        assert!(!listed.to_string().contains(ro.body["token"].as_str().unwrap()), "listing never shows a token");
        let tid = listed.as_array().unwrap().iter().find(|t| t["name"] == "reader").unwrap()["id"].as_i64().unwrap();
        assert_eq!(
            auditor.json("DELETE", &format!("/api/tokens/{tid}"), json!({})).await.status,
            StatusCode::NOT_FOUND,
            "not theirs"
        );
        assert_eq!(
            f.admin.json("DELETE", &format!("/api/tokens/{tid}"), json!({})).await.status,
            StatusCode::NO_CONTENT
        );
        assert_eq!(reader.get("/api/policies").await.status, StatusCode::UNAUTHORIZED);
        let expired = store
            .create_token_with(
                admin_id,
                "old",
                portcullis_store::TokenOptions { expires_ms: Some(1), read_only: false },
            )
            .await
            .unwrap();
        let mut old = Client::new(&store);
        old.bearer = Some(expired);
        assert_eq!(old.get("/api/me").await.status, StatusCode::UNAUTHORIZED);

        // Sessions: listed, and "log out everywhere".
        let second = Client::login(&store, &f.org.name, "admin", "admin-password").await;
        assert!(f.admin.get("/api/sessions").await.body.as_array().unwrap().len() >= 2);
        let r = second.json("DELETE", "/api/sessions", json!({})).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        assert_eq!(f.admin.get("/api/me").await.status, StatusCode::UNAUTHORIZED);
        assert_eq!(second.get("/api/me").await.status, StatusCode::UNAUTHORIZED);

        let admin = Client::login(&store, &f.org.name, "admin", "admin-password").await;
        assert_eq!(
            admin.json("DELETE", &format!("/api/users/{approver_id}"), json!({})).await.status,
            StatusCode::NO_CONTENT
        );
        let log = store.audit_log(f.org.id, 200).await.unwrap();
        for action in ["update", "set password", "revoke", "log out everywhere", "delete"] {
            assert!(log.iter().any(|e| e.action == action), "{action} is audited");
        }
    })
    .await;
}

#[tokio::test]
async fn responses_carry_security_headers_and_the_login_form_refuses_a_cross_site_post() {
    each_backend(async |store: Store| {
        let c = Client::new(&store);
        let page = c.get("/login").await;
        let h = &page.headers;
        let csp = h.get("content-security-policy").unwrap().to_str().unwrap();
        assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(!csp.contains("script-src 'self' 'unsafe-inline'"));
        assert_eq!(h.get("x-content-type-options").unwrap(), "nosniff");
        assert_eq!(h.get("referrer-policy").unwrap(), "no-referrer");
        assert_eq!(h.get("cache-control").unwrap(), "no-store", "pages with tokens are never cached");
        assert!(h.get("strict-transport-security").is_some(), "HSTS over TLS");
        assert!(c.get("/api/openapi.json").await.headers.get("content-security-policy").is_some());
        // No page carries an inline script.
        for template in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/templates")).unwrap() {
            let text = std::fs::read_to_string(template.unwrap().path()).unwrap();
            assert!(!text.contains("onclick=") && !text.contains("<script>"), "inline script in a template");
        }

        // A form posted from another site has no login cookie: refused, nobody logged in.
        let org = org_with_users(&store).await;
        let form = format!("organization={}&user=admin&password=admin-password&_login=x", org.name);
        let r = c.send("POST", "/login", Some(Body::from(form)), "application/x-www-form-urlencoded", false).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER);
        assert!(r.headers.get("location").unwrap().to_str().unwrap().contains("error="));
        assert!(r.set_cookie.is_none_or(|c| !c.contains("portcullis_session")));
        // With the form's own cookie and value, the login works.
        let cookie = page.set_cookie.unwrap();
        let value = cookie.split(';').next().unwrap().split_once('=').unwrap().1.to_owned();
        let mut browser = Client::new(&store);
        browser.cookie = Some(format!("portcullis_login={value}"));
        let form = format!("organization={}&user=admin&password=admin-password&_login={value}", org.name);
        let r =
            browser.send("POST", "/login", Some(Body::from(form)), "application/x-www-form-urlencoded", false).await;
        assert!(r.set_cookie.unwrap().contains("portcullis_session"));
    })
    .await;
}

#[tokio::test]
async fn the_sqlite_database_is_readable_by_its_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let db = data.join("portcullis.db");
    let store = Store::connect(&format!("sqlite://{}", db.display()), test_keys()).await.unwrap();
    store.create_organization("x").await.unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&db), 0o600);
    let wal = std::path::PathBuf::from(format!("{}-wal", db.display()));
    if wal.exists() {
        assert_eq!(mode(&wal), 0o600);
    }
    drop(store);
    // A file made readable by others (an old install, a careless copy) is tightened.
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    Store::connect(&format!("sqlite://{}", db.display()), test_keys()).await.unwrap();
    assert_eq!(mode(&db), 0o600);
}

/// Poll as an agent that holds `key`: the bundle's signer reached from it, and the version.
async fn follow(f: &Fleet, credential: &str, after: i64, key: &str) -> (Result<String, String>, i64) {
    let r = f.agent(credential).json("POST", "/api/agent/poll", json!({"after": after, "wait_s": 0})).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let sig = r.headers.get("x-portcullis-signature").unwrap().to_str().unwrap();
    let bundle = portcullis_protocol::Bundle::from_parts(r.bytes.clone(), sig).unwrap();
    let trusted = portcullis_protocol::BundlePublicKey::from_hex(key).unwrap();
    match bundle.signer(&trusted) {
        Ok(signer) => {
            let payload = bundle.verify(&signer, after).unwrap();
            (Ok(signer.to_hex()), payload.version)
        }
        Err(e) => (Err(e.to_string()), 0),
    }
}

#[tokio::test]
async fn a_rotated_signing_key_reaches_enrolled_agents_without_re_enrollment_and_only_admins_rotate() {
    each_backend(async |store: Store| {
        let f = fleet(&store).await;
        let g = f.group("Linux").await;
        let token = f.token(g, "").await;
        let enrolled = f.enroll(&token, "web-01", "linux", None).await;
        let (cred, first) = (credential(&enrolled), enrolled.body["bundle_key"].as_str().unwrap().to_owned());
        let (signer, v1) = follow(&f, &cred, 0, &first).await;
        assert_eq!(signer.as_deref(), Ok(first.as_str()));

        for user in ["approver", "auditor"] {
            let c = Client::login(&store, &f.org.name, user, &format!("{user}-password")).await;
            assert_eq!(c.json("POST", "/api/bundle-key/rotate", json!({})).await.status, StatusCode::FORBIDDEN);
        }
        let r = f.admin.json("POST", "/api/bundle-key/rotate", json!({})).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        let second = r.body["public_key"].as_str().unwrap().to_owned();
        assert_ne!(second, first);
        assert_eq!(r.body["rotations"][0]["previous"], first.as_str());
        // The agent holding the enrolled key gets a newer bundle, signed by the new key and
        // reached through the old key's endorsement.
        let (signer, v2) = follow(&f, &cred, v1, &first).await;
        assert_eq!(signer.as_deref(), Ok(second.as_str()));
        assert!(v2 > v1, "a rotation raises the version, so every agent gets a bundle signed by the new key");

        // Two more while the agent is away: it still follows from the key it enrolled with,
        // and from the one it took since.
        f.admin.json("POST", "/api/bundle-key/rotate", json!({})).await;
        let fourth = f.admin.json("POST", "/api/bundle-key/rotate", json!({})).await.body["public_key"]
            .as_str()
            .unwrap()
            .to_owned();
        for held in [&first, &second] {
            assert_eq!(follow(&f, &cred, v2, held).await.0.as_deref(), Ok(fourth.as_str()));
        }
        // A key from elsewhere reaches nothing.
        let stranger = portcullis_protocol::BundleKey::from_seed([77; 32]).public().to_hex();
        assert!(follow(&f, &cred, 0, &stranger).await.0.is_err());
        // New agents get the current key; the read endpoint shows the chain, no secret.
        let other = f.enroll(&token, "web-02", "linux", None).await;
        assert_eq!(other.body["bundle_key"], fourth.as_str());
        let view = f.admin.get("/api/bundle-key").await;
        assert_eq!(view.body["public_key"], fourth.as_str());
        assert_eq!(view.body["rotations"].as_array().unwrap().len(), 3);
        assert_eq!(view.body["sealed_with"], store.secret_key_ids()[0].as_str());
        let log = store.audit_log(f.org.id, 100).await.unwrap();
        assert_eq!(log.iter().filter(|e| e.action == "rotate" && e.object == "bundle key").count(), 3);
        // The console's button does the same, with its CSRF token only.
        let page = f.admin.get("/computers").await;
        assert!(String::from_utf8_lossy(&page.bytes).contains(&fourth));
        let csrf = f.admin.csrf.clone().unwrap();
        let forged = f.admin.send("POST", "/bundle-key/rotate", Some(Body::from("_csrf=forged")), FORM, false).await;
        assert!(location(&forged).contains("error="), "{}", location(&forged));
        assert_eq!(f.admin.get("/api/bundle-key").await.body["public_key"], fourth.as_str());
        let r =
            f.admin.send("POST", "/bundle-key/rotate", Some(Body::from(format!("_csrf={csrf}"))), FORM, false).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER);
        assert_ne!(f.admin.get("/api/bundle-key").await.body["public_key"], fourth.as_str());
    })
    .await;
}

const FORM: &str = "application/x-www-form-urlencoded";

fn location(r: &Reply) -> String {
    r.headers.get("location").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default()
}

#[tokio::test]
async fn the_accounts_page_manages_users_tokens_and_sessions_and_refuses_forged_forms() {
    each_backend(async |store: Store| {
        let f = fleet(&store).await;
        let csrf = f.admin.csrf.clone().unwrap();
        let post =
            async |c: &Client, uri: &str, form: String| c.send("POST", uri, Some(Body::from(form)), FORM, false).await;
        let page = f.admin.get("/accounts").await;
        assert_eq!(page.status, StatusCode::OK);
        let html = String::from_utf8_lossy(&page.bytes).into_owned();
        assert!(html.contains("approver") && html.contains("this one") && html.contains("Add user"), "{html}");

        // Every form checks the session's CSRF token.
        for uri in ["/accounts/users", "/accounts/tokens", "/accounts/sessions/end-all", "/accounts/password"] {
            let forged = "_csrf=forged&name=x&role=admin&password=xxxxxxxxxx&current=admin-password&new=yyyyyyyyyy&again=yyyyyyyyyy";
            let r = post(&f.admin, uri, forged.into()).await;
            assert!(location(&r).contains("error="), "{uri}: {:?} {}", r.status, location(&r));
        }
        assert!(f.admin.get("/api/users").await.body.as_array().unwrap().iter().all(|u| u["name"] != "x"));
        assert_eq!(f.admin.get("/api/me").await.status, StatusCode::OK, "still logged in: no forged form ended it");

        // Add a user, re-role and disable them, reset the password, remove them.
        let r =
            post(&f.admin, "/accounts/users", format!("_csrf={csrf}&name=carol&role=approver&password=carol-password"))
                .await;
        assert!(location(&r).contains("ok="), "{}", location(&r));
        let id = f
            .admin
            .get("/api/users")
            .await
            .body
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["name"] == "carol")
            .unwrap()["id"]
            .as_i64()
            .unwrap();
        let carol = Client::login(&store, &f.org.name, "carol", "carol-password").await;
        post(&f.admin, &format!("/accounts/users/{id}"), format!("_csrf={csrf}&role=auditor&state=disabled")).await;
        assert_eq!(carol.get("/api/me").await.status, StatusCode::UNAUTHORIZED, "disabled: her session ended");
        let r =
            post(&f.admin, &format!("/accounts/users/{id}"), format!("_csrf={csrf}&role=auditor&state=enabled")).await;
        assert!(location(&r).contains("ok="));
        post(&f.admin, &format!("/accounts/users/{id}/password"), format!("_csrf={csrf}&password=new-carol-pw")).await;
        let carol = Client::login(&store, &f.org.name, "carol", "new-carol-pw").await;
        assert_eq!(carol.get("/api/me").await.body["role"], "auditor");
        // An auditor sees her own part of the page, not the users, and cannot add one.
        let mine = String::from_utf8_lossy(&carol.get("/accounts").await.bytes).into_owned();
        assert!(!mine.contains("Add user") && mine.contains("Log out everywhere"));
        let carol_csrf = carol.csrf.clone().unwrap();
        let r =
            post(&carol, "/accounts/users", format!("_csrf={carol_csrf}&name=mallory&role=admin&password=mallory-pw"))
                .await;
        assert!(location(&r).contains("error="), "{}", location(&r));
        // The last admin cannot be demoted from the page either.
        let admin_id = f
            .admin
            .get("/api/users")
            .await
            .body
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["name"] == "admin")
            .unwrap()["id"]
            .as_i64()
            .unwrap();
        let r =
            post(&f.admin, &format!("/accounts/users/{admin_id}"), format!("_csrf={csrf}&role=auditor&state=enabled"))
                .await;
        assert!(location(&r).contains("error="), "{}", location(&r));
        let r = post(&f.admin, &format!("/accounts/users/{id}/delete"), format!("_csrf={csrf}")).await;
        assert!(location(&r).contains("ok="));
        assert_eq!(carol.get("/api/me").await.status, StatusCode::UNAUTHORIZED);

        // An API token is shown once on the page that made it, then listed without it and revoked.
        let r =
            post(&f.admin, "/accounts/tokens", format!("_csrf={csrf}&name=export&expires_in_days=7&read_only=1")).await;
        assert_eq!(r.status, StatusCode::OK);
        let shown = String::from_utf8_lossy(&r.bytes).into_owned();
        let token = shown.split("pct_").nth(1).map(|t| format!("pct_{}", &t[..t.find('<').unwrap()])).unwrap();
        let mut reader = Client::new(&store);
        reader.bearer = Some(token.clone());
        assert_eq!(reader.get("/api/policies").await.status, StatusCode::OK);
        assert_eq!(reader.json("POST", "/api/groups", json!({"path": "X"})).await.status, StatusCode::FORBIDDEN);
        let listed = String::from_utf8_lossy(&f.admin.get("/accounts").await.bytes).into_owned();
        assert!(listed.contains("export") && !listed.contains(&token));
        let tid = f
            .admin
            .get("/api/tokens")
            .await
            .body
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == "export")
            .unwrap()["id"]
            .as_i64()
            .unwrap();
        post(&f.admin, &format!("/accounts/tokens/{tid}/revoke"), format!("_csrf={csrf}")).await;
        assert_eq!(reader.get("/api/policies").await.status, StatusCode::UNAUTHORIZED);

        // Own password: the repetition must match; then every session ends, back to login.
        let second = Client::login(&store, &f.org.name, "admin", "admin-password").await;
        let r = post(
            &f.admin,
            "/accounts/password",
            format!("_csrf={csrf}&current=admin-password&new=admin-pass-2&again=other"),
        )
        .await;
        assert!(location(&r).contains("error="));
        let r = post(
            &f.admin,
            "/accounts/password",
            format!("_csrf={csrf}&current=admin-password&new=admin-pass-2&again=admin-pass-2"),
        )
        .await;
        assert!(location(&r).starts_with("/login?") && location(&r).contains("ok="), "{}", location(&r));
        assert_eq!(second.get("/api/me").await.status, StatusCode::UNAUTHORIZED);
        assert_eq!(f.admin.get("/api/me").await.status, StatusCode::UNAUTHORIZED);

        // Sessions: end another one, then log out everywhere.
        let a = Client::login(&store, &f.org.name, "admin", "admin-pass-2").await;
        let b = Client::login(&store, &f.org.name, "admin", "admin-pass-2").await;
        let listed = a.get("/api/sessions").await.body;
        let b_id = portcullis_store::session_list_id(b.cookie.as_ref().unwrap().split_once('=').unwrap().1);
        assert!(listed.as_array().unwrap().iter().any(|s| s["id"] == b_id.as_str()));
        let a_csrf = a.csrf.clone().unwrap();
        let r = post(&a, &format!("/accounts/sessions/{b_id}/end"), format!("_csrf={a_csrf}")).await;
        assert!(location(&r).starts_with("/accounts?ok="), "{}", location(&r));
        assert_eq!(b.get("/api/me").await.status, StatusCode::UNAUTHORIZED);
        assert_eq!(a.get("/api/me").await.status, StatusCode::OK);
        let r = post(&a, "/accounts/sessions/end-all", format!("_csrf={a_csrf}")).await;
        assert!(location(&r).starts_with("/login?"));
        assert_eq!(a.get("/api/me").await.status, StatusCode::UNAUTHORIZED);
        let log = store.audit_log(f.org.id, 200).await.unwrap();
        for action in ["create", "update", "set password", "revoke", "end session", "log out everywhere", "delete"] {
            assert!(log.iter().any(|e| e.action == action), "{action} is audited");
        }
    })
    .await;
}

/// A signing key that does not open (a forged or damaged row, a lost secret key) fails its
/// own organization's bundles — agents keep the last one, the server neither signs with a
/// planted key nor answers 500 — not its Computers page, which says how to repair it; a
/// reset gives a new key that no earlier key endorses, so agents enrolled before refuse
/// its bundles until they enroll again, and new agents take it.
#[tokio::test]
async fn a_signing_key_that_does_not_open_leaves_the_console_working_and_a_reset_repairs_it() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/server.db", dir.path().display());
    let store = Store::connect(&url, test_keys()).await.unwrap();
    let f = fleet(&store).await;
    let g = f.group("Linux").await;
    let token = f.token(g, "").await;
    let enrolled = f.enroll(&token, "web-01", "linux", None).await;
    let (cred, first) = (credential(&enrolled), enrolled.body["bundle_key"].as_str().unwrap().to_owned());
    let (_, v1) = follow(&f, &cred, 0, &first).await;

    // Someone with write access to the database plants a seed they know.
    let planted = portcullis_protocol::BundleKey::from_seed([0xc3; 32]).public().to_hex();
    let pool = sqlx::AnyPool::connect(&url).await.unwrap();
    sqlx::query("UPDATE org_state SET bundle_seed = $1 WHERE org_id = $2")
        .bind("c3".repeat(32))
        .bind(f.org.id)
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    f.group("Linux/Web").await;
    let idle = f.agent(&cred).json("POST", "/api/agent/poll", json!({"after": v1, "wait_s": 0})).await;
    assert_eq!(idle.status, StatusCode::NO_CONTENT, "nothing signed with the planted key: {:?}", idle.body);
    let page = f.admin.get("/computers").await;
    assert_eq!(page.status, StatusCode::OK);
    let text = String::from_utf8_lossy(&page.bytes);
    assert!(text.contains("cannot be read") && text.contains("reset-bundle-key"), "{text}");
    assert!(!text.contains(&planted));
    let r = f.admin.json("POST", "/api/bundle-key/rotate", json!({})).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "a planted key endorses nothing: {:?}", r.body);
    assert!(r.body["error"].as_str().unwrap().contains("reset-bundle-key"), "{:?}", r.body);

    let fresh = store.reset_bundle_key(portcullis_store::Change { org_id: f.org.id, actor: "test" }).await.unwrap();
    // What the server's database watcher does within a second of the command's change.
    f.admin.state.hub.changed(&store, f.org.id).await.unwrap();
    let (signer, _) = follow(&f, &cred, v1, &first).await;
    assert!(signer.is_err(), "no chain leads from the enrolled key to a reset one: {signer:?}");
    let again = f.enroll(&token, "web-01", "linux", Some(&cred)).await;
    assert_eq!(again.body["bundle_key"], fresh.to_hex().as_str());
    let (signer, _) = follow(&f, &credential(&again), 0, &fresh.to_hex()).await;
    assert_eq!(signer, Ok(fresh.to_hex()));
    let log = store.audit_log(f.org.id, 10).await.unwrap();
    assert!(log.iter().any(|e| e.action == "reset" && e.object == "bundle key"), "{log:?}");
}

/// Who may not change the model is told so first: not whether an item exists, nor what is
/// wrong with the request.
#[tokio::test]
async fn an_auditor_is_refused_a_change_before_anything_about_the_item_is_told() {
    each_backend(async |store: Store| {
        let f = fleet(&store).await;
        let auditor = Client::login(&store, &f.org.name, "auditor", "auditor-password").await;
        let nobody = 999_999;
        for (method, uri, body) in [
            ("PUT", format!("/api/applications/{nobody}"), json!({"name": "x", "rules": []})),
            ("POST", "/api/applications".to_owned(), json!({"name": "", "rules": []})),
            ("DELETE", format!("/api/groups/{nobody}"), json!({})),
            ("POST", "/api/groups".to_owned(), json!({"path": "a//b"})),
            ("DELETE", format!("/api/computers/{nobody}"), json!({})),
            ("POST", "/api/policies/remove".to_owned(), json!({"ids": []})),
            ("DELETE", format!("/api/policies/{nobody}"), json!({})),
        ] {
            let r = auditor.json(method, &uri, body).await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{method} {uri}: {:?}", r.body);
        }
    })
    .await;
}

/// A careless switch to Secured: the console first shows what would have been denied there
/// in the last days (from the would-deny events), and changes nothing until confirmed.
#[tokio::test]
async fn switching_to_secured_in_the_console_shows_what_it_would_deny_first() {
    each_backend(async |store: Store| {
        let f = fleet(&store).await;
        let g = f.group("Linux").await;
        let token = f.token(g, "").await;
        let web = f.agent(&credential(&f.enroll(&token, "web-01", "linux", None).await));
        let db = f.agent(&credential(&f.enroll(&token, "db-01", "linux", None).await));
        let now = jiff::Timestamp::now().to_string();
        let would_deny = |path: &str| {
            let mut line: Value = serde_json::from_str(&event_line(path, "")).unwrap();
            line["time"] = json!(now);
            line["event"] = json!("would-deny");
            line["verdict"] = json!("allow");
            line["mode"] = json!("monitor");
            line
        };
        let batch = json!({"events": [would_deny("/opt/tool/bin/tool"), would_deny("/usr/local/bin/backup")]});
        assert_eq!(web.json("POST", "/api/agent/events", batch).await.status, StatusCode::OK);
        let batch = json!({"events": [would_deny("/opt/tool/bin/tool")]});
        assert_eq!(db.json("POST", "/api/agent/events", batch).await.status, StatusCode::OK);
        assert_eq!(f.admin.get("/api/settings").await.body["mode"], "monitor", "a new organization starts in Monitor");

        let csrf = f.admin.csrf.clone().unwrap();
        let form = |extra: &str| Some(Body::from(format!("_csrf={csrf}&mode=secured&until={extra}")));
        let version = store.org_version(f.org.id).await.unwrap();
        let r = f.admin.send("POST", "/settings", form(""), FORM, false).await;
        assert_eq!(r.status, StatusCode::OK, "a page, not a redirect: nothing is changed yet");
        let page = String::from_utf8_lossy(&r.bytes).into_owned();
        assert!(page.contains("Switch the organization to Secured?"), "{page}");
        assert!(page.contains("3 would-deny or learning event(s)"), "{page}");
        assert!(page.contains("/opt/tool/bin/tool") && page.contains("db-01, web-01"), "{page}");
        assert!(page.contains("/usr/local/bin/backup"), "{page}");
        assert!(page.contains(r#"name="confirm" value="yes""#), "{page}");
        assert_eq!(store.org_version(f.org.id).await.unwrap(), version);
        assert_eq!(f.admin.get("/api/settings").await.body["mode"], "monitor");

        // A forged form shows nothing and changes nothing.
        let forged = Some(Body::from("_csrf=forged&mode=secured"));
        let r = f.admin.send("POST", "/settings", forged, FORM, false).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER);
        assert!(!String::from_utf8_lossy(&r.bytes).contains("/opt/tool"));

        // One computer: only its own events.
        let id =
            f.admin.get("/api/computers").await.body.as_array().unwrap().iter().find(|c| c["name"] == "db-01").unwrap()
                ["id"]
                .as_i64()
                .unwrap();
        let body = Some(Body::from(format!("_csrf={csrf}&mode=secured&group=Linux")));
        let r = f.admin.send("POST", &format!("/computers/{id}"), body, FORM, false).await;
        let page = String::from_utf8_lossy(&r.bytes).into_owned();
        assert!(
            page.contains("1 would-deny or learning event(s)") && !page.contains("/usr/local/bin/backup"),
            "{page}"
        );
        // Every spelling of Secured, and Installation (which ends in Secured), asks first too.
        for mode in ["Enforce", "installation"] {
            let body = Some(Body::from(format!("_csrf={csrf}&mode={mode}&group=Linux")));
            let r = f.admin.send("POST", &format!("/computers/{id}"), body, FORM, false).await;
            assert_eq!(r.status, StatusCode::OK, "{mode}");
            assert!(String::from_utf8_lossy(&r.bytes).contains(r#"name="confirm" value="yes""#), "{mode}");
        }

        // Confirmed: the switch is made.
        let r = f
            .admin
            .send("POST", "/settings", Some(Body::from(format!("_csrf={csrf}&mode=secured&confirm=yes"))), FORM, false)
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER);
        assert_eq!(f.admin.get("/api/settings").await.body["mode"], "secured");

        // A computer held in Monitor that goes back to its group's mode enters Secured too:
        // asked first. One already Secured is not asked again.
        let uri = format!("/computers/{id}");
        let post = |body: String| f.admin.send("POST", &uri, Some(Body::from(body)), FORM, false);
        let r = post(format!("_csrf={csrf}&mode=monitor&group=Linux")).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "Monitor needs no confirmation");
        let r = post(format!("_csrf={csrf}&mode=&group=Linux")).await;
        assert_eq!(r.status, StatusCode::OK, "inheriting a Secured group asks first");
        let page = String::from_utf8_lossy(&r.bytes).into_owned();
        assert!(
            page.contains("Switch \"db-01\" to Secured?")
                || page.contains("Switch &#34;db-01&#34; to Secured?")
                || page.contains("db-01"),
            "{page}"
        );
        assert!(page.contains(r#"name="confirm" value="yes""#), "{page}");
        let r = post(format!("_csrf={csrf}&mode=&group=Linux&confirm=yes")).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER);
        let r = post(format!("_csrf={csrf}&mode=secured&group=Linux")).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "already Secured: not asked again");
    })
    .await;
}

#[tokio::test]
async fn a_hostile_agents_package_report_is_checked_bounded_and_replaces_only_its_own_list() {
    use portcullis_protocol::limits;
    each_backend(async |store: Store| {
        let f = fleet(&store).await;
        let g = f.group("Linux").await;
        let token = f.token(g, "").await;
        let web1 = f.agent(&credential(&f.enroll(&token, "web-01", "linux", None).await));
        let _web2 = f.agent(&credential(&f.enroll(&token, "web-02", "linux", None).await));
        let computers = f.admin.get("/api/computers").await.body;
        let id_of = |name: &str| {
            computers.as_array().unwrap().iter().find(|c| c["name"] == name).unwrap()["id"].as_i64().unwrap()
        };
        let (id1, id2) = (id_of("web-01"), id_of("web-02"));

        // 3,000 packages as a real host has, and what a hostile agent slips in between them.
        let mut packages: Vec<Value> =
            (0..3000).map(|i| json!({"name": format!("dpkg:lib{i}"), "version": "1.0-1", "arch": "amd64"})).collect();
        packages.push(json!({"name": "dpkg:openssh-server", "version": "1:9.2p1-2\u{7}\n", "arch": "x".repeat(500)}));
        packages.push(json!({"name": "dpkg:<script>alert(1)</script>", "version": "1", "arch": "all"}));
        packages.push(json!({"name": "dpkg:lib7", "version": "2.0-1", "arch": "amd64"}));
        packages.push(json!({"name": "dpkg:lib7", "version": "1.0-1", "arch": "i386"}));
        packages.push(json!({"name": "apk:busybox", "version": "1", "arch": "x86_64"}));
        let r = web1.json("POST", "/api/agent/packages", json!({ "packages": packages })).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        assert_eq!(r.body, json!({"stored": 3002, "refused": 3}), "a repeat keeps the first; bad names go alone");

        let listed = f.admin.get(&format!("/api/computers/{id1}/packages?filter=OPENSSH")).await;
        assert_eq!(listed.status, StatusCode::OK, "{:?}", listed.body);
        assert_eq!(listed.body["total"], 3002);
        assert!(listed.body["reported_ms"].as_i64().is_some());
        let ssh = &listed.body["packages"].as_array().unwrap()[..];
        assert_eq!(ssh.len(), 1, "{ssh:?}");
        assert_eq!(ssh[0]["version"], "1:9.2p1-2", "control characters are dropped");
        assert_eq!(ssh[0]["arch"].as_str().unwrap().len(), limits::PACKAGE_ARCH);
        let lib7 = f.admin.get(&format!("/api/computers/{id1}/packages?filter=lib7&limit=2")).await.body;
        assert_eq!(
            lib7["packages"],
            json!([
                {"name": "dpkg:lib7", "arch": "amd64", "version": "1.0-1"},
                {"name": "dpkg:lib7", "arch": "i386", "version": "1.0-1"}
            ])
        );
        // Filters are text, never patterns.
        let none = f.admin.get(&format!("/api/computers/{id1}/packages?filter=%25")).await.body;
        assert_eq!(none["packages"].as_array().unwrap().len(), 1000, "'%' is dropped, not a wildcard of its own");
        for bad in ["limit=0", "limit=50001", "limit=x"] {
            let r = f.admin.get(&format!("/api/computers/{id1}/packages?{bad}")).await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {:?}", r.body);
        }
        let all = f.admin.get("/api/computers").await.body;
        let row = |id: i64| all.as_array().unwrap().iter().find(|c| c["id"] == id).unwrap().clone();
        assert_eq!(row(id1)["package_count"], 3002);
        assert_eq!(row(id2)["packages_ms"], Value::Null, "web-02 reported nothing");

        // The console lists them, escaped.
        let page =
            String::from_utf8_lossy(&f.admin.get(&format!("/computers/{id1}/packages?q=ssh")).await.bytes).into_owned();
        assert!(page.contains("dpkg:openssh-server") && page.contains("3002 installed package(s)"), "{page}");
        let list = String::from_utf8_lossy(&f.admin.get("/computers").await.bytes).into_owned();
        assert!(list.contains(&format!("/computers/{id1}/packages\">3002</a>")), "{list}");

        // The application form offers the packages seen, and makes a package rule.
        let apps = String::from_utf8_lossy(&f.admin.get("/applications").await.bytes).into_owned();
        assert!(apps.contains(r#"<option value="dpkg:openssh-server">on 1 computer(s)</option>"#), "{apps}");
        let csrf = f.admin.csrf.clone().unwrap();
        let form = format!("_csrf={csrf}&name=SSH+server&package=dpkg%3Aopenssh-server");
        let r = f.admin.send("POST", "/applications", Some(Body::from(form)), FORM, false).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER);
        let made = f.admin.get("/api/applications").await.body;
        let ssh = made.as_array().unwrap().iter().find(|a| a["name"] == "SSH server").unwrap().clone();
        assert_eq!(ssh["rules"], json!([{"package": "dpkg:openssh-server"}]), "{ssh}");
        // A Mac program by its signing ID; one without its team is refused with the form.
        assert!(apps.contains(r#"name="signing_id""#));
        let form = format!("_csrf={csrf}&name=Chrome&signing_id=EQHXZ8M8AV%3Acom.google.Chrome&os=macos");
        let r = f.admin.send("POST", "/applications", Some(Body::from(form)), FORM, false).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER);
        let form = format!("_csrf={csrf}&name=Bad+Chrome&signing_id=com.google.Chrome");
        let r = f.admin.send("POST", "/applications", Some(Body::from(form)), FORM, false).await;
        let back = r.headers.get("location").and_then(|l| l.to_str().ok()).unwrap_or_default().to_owned();
        assert!(back.contains("error") && back.contains("signing_id"), "{back}");
        let made = f.admin.get("/api/applications").await.body;
        let chrome = made.as_array().unwrap().iter().find(|a| a["name"] == "Chrome").unwrap().clone();
        assert_eq!(chrome["rules"], json!([{"signing_id": "EQHXZ8M8AV:com.google.Chrome", "os": "macos"}]), "{chrome}");
        assert!(!made.to_string().contains("Bad Chrome"));

        // Another organization's administrator learns nothing about it.
        let other = org_with_users(&store).await;
        let stranger = Client::login(&store, &other.name, "admin", "admin-password").await;
        assert_eq!(stranger.get(&format!("/api/computers/{id1}/packages")).await.status, StatusCode::NOT_FOUND);
        assert_eq!(stranger.get(&format!("/computers/{id1}/packages")).await.status, StatusCode::NOT_FOUND);

        // A report is the whole list: the next one replaces it.
        let r = web1
            .json(
                "POST",
                "/api/agent/packages",
                json!({"packages": [{"name": "rpm:bash", "version": "5.1", "arch": "x86_64"}]}),
            )
            .await;
        assert_eq!(r.body, json!({"stored": 1, "refused": 0}));
        let listed = f.admin.get(&format!("/api/computers/{id1}/packages")).await.body;
        assert_eq!(listed["total"], 1);

        // Too many is refused whole, before it counts against the quota; a flood is 429.
        let huge: Vec<Value> = (0..=limits::PACKAGES).map(|i| json!({"name": format!("rpm:p{i}")})).collect();
        let r = web1.json("POST", "/api/agent/packages", json!({ "packages": huge })).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.body);
        let mut statuses = Vec::new();
        for _ in 0..portcullis_server::PACKAGE_REPORTS_PER_MINUTE {
            statuses.push(web1.json("POST", "/api/agent/packages", json!({"packages": []})).await.status);
        }
        assert_eq!(
            statuses.iter().filter(|s| **s == StatusCode::OK).count() as u64,
            portcullis_server::PACKAGE_REPORTS_PER_MINUTE - 2
        );
        assert_eq!(*statuses.last().unwrap(), StatusCode::TOO_MANY_REQUESTS);
        // Unknown fields and a missing credential are refused.
        let r = web1.json("POST", "/api/agent/packages", json!({"packages": [], "computer": "web-02"})).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
        let anonymous = agent_client(&store, &f.admin.state, None);
        assert_eq!(
            anonymous.json("POST", "/api/agent/packages", json!({"packages": []})).await.status,
            StatusCode::UNAUTHORIZED
        );

        // Removing the computer removes its packages.
        assert_eq!(
            f.admin.json("DELETE", &format!("/api/computers/{id1}"), json!({})).await.status,
            StatusCode::NO_CONTENT
        );
        assert!(store.computer_packages(f.org.id, id1, "", 10).await.unwrap().is_empty());
    })
    .await;
}

fn candidate_line(path: &str, sha: char, packages: &[&str], signer: Option<&str>) -> String {
    let mut file = json!({"path": path, "sha256": sha.to_string().repeat(64), "size": 1, "kind": "elf-executable",
        "dev": 1, "ino": 2});
    if !packages.is_empty() {
        file["packages"] = json!(packages);
    }
    if let Some(s) = signer {
        file["signer"] = json!({"subject": s, "issuer": "CN=CA", "cert_sha256": "c".repeat(64), "verified": true});
    }
    json!({
        "time": portcullis_store::now_ms().to_string(), "event": "candidate", "access": "exec", "verdict": "allow",
        "mode": "learning", "reason": "learning: no policy permits it", "file": file,
        "process": {"pid": 1, "exe": "/usr/bin/bash", "uid": 0, "user": "root", "ancestors": []}
    })
    .to_string()
}

#[tokio::test]
async fn a_learning_baseline_is_proposed_by_package_signer_and_directory_and_accepted_as_one_change() {
    each_backend(async |store: Store| {
        let f = fleet(&store).await;
        let g = f.group("Linux").await;
        let token = f.token(g, "").await;
        let web1 = f.agent(&credential(&f.enroll(&token, "web-01", "linux", None).await));
        let other = f.group("Other").await;
        let token2 = f.token(other, "").await;
        let db1 = f.agent(&credential(&f.enroll(&token2, "db-01", "linux", None).await));
        let time = jiff::Timestamp::now().to_string();
        let lines: Vec<String> = [
            candidate_line("/usr/bin/htop", 'a', &["dpkg:htop"], None),
            candidate_line("/usr/bin/htop", 'a', &["dpkg:htop", "dpkg:<x>"], None),
            candidate_line("/opt/vendor/bin/agent", 'd', &[], None),
            candidate_line("/opt/signed/app", 'e', &[], Some("CN=Vendor Ltd")),
            candidate_line("/tmp/dropper", 'f', &[], None),
        ]
        .into_iter()
        .map(|l| l.replacen(&portcullis_store::now_ms().to_string()[..0], "", 0))
        .map(|l| {
            let mut v: Value = serde_json::from_str(&l).unwrap();
            v["time"] = json!(time);
            v.to_string()
        })
        .collect();
        let body = format!("{{\"events\":[{}]}}", lines.join(","));
        let r = web1
            .send("POST", "/api/agent/events", Some(Body::from(body)), "application/json", false)
            .await;
        assert_eq!(r.body["stored"], 5, "{:?}", r.body);
        // Another group's candidate is not in Linux's baseline.
        let mut v: Value = serde_json::from_str(&lines[2]).unwrap();
        v["file"]["path"] = json!("/opt/db/bin/db");
        let r = db1.json("POST", "/api/agent/events", json!({"events": [v]})).await;
        assert_eq!(r.body["stored"], 1);

        let p = f.admin.get("/api/baseline?scope=group:linux").await;
        assert_eq!(p.status, StatusCode::OK, "{:?}", p.body);
        let apps = p.body["applications"].as_array().unwrap().clone();
        let keys: Vec<&str> = apps.iter().map(|a| a["key"].as_str().unwrap()).collect();
        let signer_key = format!("signer:{}", "c".repeat(64));
        let writable_key = format!("writable:{}", "f".repeat(64));
        assert_eq!(keys, ["package:dpkg:htop", signer_key.as_str(), "dir:/opt/vendor", writable_key.as_str()], "{apps:?}");
        assert!(apps[3]["flag"].as_str().unwrap().contains("/tmp/"));
        assert_eq!(apps[0]["rule"], json!({"package": "dpkg:htop"}), "the hostile package name is dropped");

        // The console shows it, the flagged file unticked.
        let page = String::from_utf8_lossy(&f.admin.get("/baseline?scope=group%3ALinux").await.bytes).into_owned();
        assert!(page.contains("dpkg:htop (baseline Linux)") && page.contains("flagged"), "{page}");
        assert!(page.contains(&format!("value=\"{writable_key}\" aria-label=\"Take")), "{page}");
        assert!(!page.contains(&format!("value=\"{writable_key}\" aria-label=\"Take {}\" checked", apps[3]["name"].as_str().unwrap())));

        // Careless and hostile acceptances change nothing.
        let auditor = Client::login(&store, &f.org.name, "auditor", "auditor-password").await;
        let audit_before = audit_len(&store, f.org.id).await;
        let version = store.org_version(f.org.id).await.unwrap();
        for (body, status) in [
            (json!({"scope": "group:Linux", "take": []}), StatusCode::BAD_REQUEST),
            (json!({"scope": "group:Linux", "take": [{"key": "package:dpkg:evil"}]}), StatusCode::BAD_REQUEST),
            (json!({"scope": "group:Nowhere", "take": [{"key": "package:dpkg:htop"}]}), StatusCode::BAD_REQUEST),
            (json!({"scope": "group:Linux", "take": [{"key": "package:dpkg:htop", "name": "Same"}, {"key": "dir:/opt/vendor", "name": "same"}]}), StatusCode::UNPROCESSABLE_ENTITY),
            (json!({"scope": "group:Linux", "days": 0, "take": [{"key": "package:dpkg:htop"}]}), StatusCode::BAD_REQUEST),
        ] {
            let r = f.admin.json("POST", "/api/baseline", body.clone()).await;
            assert_eq!(r.status, status, "{body}: {:?}", r.body);
        }
        let r = auditor.json("POST", "/api/baseline", json!({"scope": "group:Linux", "take": [{"key": "package:dpkg:htop"}]})).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        assert_eq!(audit_len(&store, f.org.id).await, audit_before);
        assert_eq!(store.org_version(f.org.id).await.unwrap(), version);

        // Accepted: applications and one permit policy at the group, one audit entry.
        let r = f
            .admin
            .json(
                "POST",
                "/api/baseline",
                json!({"scope": "group:Linux", "take": [
                    {"key": "package:dpkg:htop"}, {"key": signer_key}, {"key": "dir:/opt/vendor", "name": "Vendor agent"}
                ]}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        assert_eq!(r.body["policy"], "Baseline Linux");
        assert_eq!(audit_len(&store, f.org.id).await, audit_before + 1, "one audited change");
        let policies = f.admin.get("/api/policies").await.body;
        let made = policies.as_array().unwrap().iter().find(|p| p["name"] == "Baseline Linux").unwrap().clone();
        assert_eq!(made["scope"], "group:Linux");
        assert_eq!(made["action"], "permit");
        assert_eq!(
            made["applications"],
            json!(["dpkg:htop (baseline Linux)", "Signed by CN=Vendor Ltd (baseline Linux)", "Vendor agent"])
        );
        // The bundle still loads, and Secured would now permit what Learning saw.
        f.bundle(&credential(&f.enroll(&token, "web-01", "linux", None).await)).await.ok();
        let events = f.admin.get("/api/events?verdict=candidate&computer=web-01").await.body;
        for e in events.as_array().unwrap() {
            let path = e["file_path"].as_str().unwrap();
            let p = f.admin.json("POST", "/api/preview", json!({"event": e["id"]})).await;
            let want = if path.starts_with("/tmp/") { "Linux Default" } else { "Baseline Linux" };
            if want == "Baseline Linux" {
                assert_eq!(p.body["policy"], want, "{path}: {:?}", p.body);
            } else {
                assert_ne!(p.body["policy"], "Baseline Linux", "{path}: the flagged file was not taken");
            }
        }
        // Accepting the same again is refused by name, whole.
        let r = f.admin.json("POST", "/api/baseline", json!({"scope": "group:Linux", "take": [{"key": "package:dpkg:htop"}]})).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
        assert!(r.body["error"].as_str().unwrap().contains("dpkg:htop (baseline Linux)"), "{:?}", r.body);
    })
    .await;
}

#[tokio::test]
async fn bypass_codes_need_the_agents_key_are_counted_audited_and_only_issued_by_who_may_change() {
    each_backend(async |store: Store| {
        let f = fleet(&store).await;
        let g = f.group("Linux").await;
        let token = f.token(g, "").await;
        let web = f.agent(&credential(&f.enroll(&token, "web-01", "linux", None).await));
        let id = f.admin.get("/api/computers").await.body[0]["id"].as_i64().unwrap();
        let uri = format!("/api/computers/{id}/bypass-code");
        let issue = |body: Value| f.admin.json("POST", &uri, body);
        let r = issue(json!({"minutes": 60})).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "no key registered yet: {:?}", r.body);
        assert!(r.body["error"].as_str().unwrap().contains("bypass key"));

        for bad in [json!({"key": "zz"}), json!({"key": "00".repeat(32)}), json!({"key": "ab".repeat(33)}), json!({})] {
            let r = web.json("POST", "/api/agent/bypass-key", bad.clone()).await;
            assert!(r.status.is_client_error(), "{bad}: {:?}", r.status);
        }
        let key = [9u8; 32];
        let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            web.json("POST", "/api/agent/bypass-key", json!({ "key": hex })).await.status,
            StatusCode::NO_CONTENT
        );
        let anonymous = agent_client(&store, &f.admin.state, None);
        assert_eq!(
            anonymous.json("POST", "/api/agent/bypass-key", json!({ "key": hex })).await.status,
            StatusCode::UNAUTHORIZED
        );

        for (bad, why) in [
            (json!({"minutes": 0}), "minutes"),
            (json!({"minutes": 10081}), "minutes"),
            (json!({"minutes": 5, "valid_hours": 0}), "hours"),
            (json!({"minutes": 5, "valid_hours": 721}), "hours"),
        ] {
            let r = issue(bad.clone()).await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
            assert!(r.body["error"].as_str().unwrap().contains(why), "{bad}: {:?}", r.body);
        }
        let before = audit_len(&store, f.org.id).await;
        let first = issue(json!({"minutes": 30})).await;
        assert_eq!(first.status, StatusCode::CREATED, "{:?}", first.body);
        let second = issue(json!({"minutes": 30, "valid_hours": 2})).await;
        assert_eq!((first.body["counter"].as_u64(), second.body["counter"].as_u64()), (Some(1), Some(2)));
        assert_eq!(audit_len(&store, f.org.id).await, before + 2, "each issue is audited");
        // The code is the agent's key's: it checks on that computer only.
        let code = second.body["code"].as_str().unwrap();
        let now = jiff::Timestamp::now().as_second();
        let granted = portcullis_protocol::bypass::check(&key, "web-01", code, now).unwrap();
        assert_eq!((granted.counter, granted.minutes), (2, 30));
        assert!(portcullis_protocol::bypass::check(&key, "web-02", code, now).is_err());
        assert!(portcullis_protocol::bypass::check(&key, "web-01", code, now + 3 * 3600).is_err(), "usable 2 hours");
        let audit = store.audit_log(f.org.id, 5).await.unwrap();
        assert!(
            audit.iter().all(|e| !format!("{e:?}").contains(&code[code.len() - 9..])),
            "the audit log never holds a code"
        );

        // An auditor may not issue; another organization cannot reach the computer.
        let auditor = Client::login(&store, &f.org.name, "auditor", "auditor-password").await;
        let r = auditor.json("POST", &format!("/api/computers/{id}/bypass-code"), json!({"minutes": 5})).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        let other = org_with_users(&store).await;
        let stranger = Client::login(&store, &other.name, "admin", "admin-password").await;
        let r = stranger.json("POST", &format!("/api/computers/{id}/bypass-code"), json!({"minutes": 5})).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        // The console shows the code once, on its own page.
        let csrf = f.admin.csrf.clone().unwrap();
        let r = f
            .admin
            .send(
                "POST",
                &format!("/computers/{id}/bypass-code"),
                Some(Body::from(format!("_csrf={csrf}&minutes=15"))),
                FORM,
                false,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK);
        assert!(String::from_utf8_lossy(&r.bytes).contains("portcullis bypass CODE"));
    })
    .await;
}

#[tokio::test]
async fn approval_requests_are_checked_where_they_enter_and_decided_once_by_who_may_change() {
    each_backend(async |store: Store| {
        let f = fleet(&store).await;
        let g = f.group("Linux").await;
        let token = f.token(g, "").await;
        let web = f.agent(&credential(&f.enroll(&token, "web-01", "linux", None).await));
        let deny: Value = serde_json::from_str(&event_line("/opt/tool/bin/report", "")).unwrap();
        let id = "0123456789abcdef";
        let ok = json!({"requests": [{"id": id, "reason": "nightly report", "user": "ann", "record": deny}]});
        let mut candidate = deny.clone();
        candidate["event"] = json!("candidate");
        let many: Vec<Value> =
            (0..21).map(|i| json!({"id": format!("{i:016x}"), "reason": "r", "record": deny})).collect();
        for (bad, why) in [
            (json!({"requests": [{"id": "XYZ", "reason": "r", "record": deny}]}), "16 to 64"),
            (json!({"requests": [{"id": id, "reason": " \u{7} ", "record": deny}]}), "why"),
            (json!({"requests": [{"id": id, "reason": "r", "record": candidate}]}), "denied program"),
            (json!({"requests": [{"id": id, "reason": "r", "record": {"not": "a record"}}]}), "not an agent event"),
            (json!({ "requests": many }), "at most"),
        ] {
            let r = web.json("POST", "/api/agent/requests", bad.clone()).await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {:?}", r.body);
            assert!(r.body["error"].as_str().unwrap().contains(why), "{why}: {:?}", r.body);
        }
        let r = web.json("POST", "/api/agent/requests", ok.clone()).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        assert_eq!(r.body["statuses"], json!([{"id": id, "status": "pending"}]));
        // Sent twice (a retry): kept once.
        web.json("POST", "/api/agent/requests", ok.clone()).await;
        let queue = f.admin.get("/api/requests?status=pending").await.body;
        assert_eq!(queue.as_array().unwrap().len(), 1, "{queue}");
        let rid = queue[0]["id"].as_i64().unwrap();
        assert_eq!(f.admin.get("/api/requests?status=nonsense").await.status, StatusCode::BAD_REQUEST);

        let auditor = Client::login(&store, &f.org.name, "auditor", "auditor-password").await;
        let r = auditor.json("POST", &format!("/api/requests/{rid}/decide"), json!({"decision": "reject"})).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        let r = f
            .admin
            .json("POST", &format!("/api/requests/{rid}/decide"), json!({"decision": "permit-everything"}))
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        let r = f
            .admin
            .json(
                "POST",
                &format!("/api/requests/{rid}/decide"),
                json!({"decision": "permit-hash", "scope": "group:Nowhere"}),
            )
            .await;
        assert!(r.status.is_client_error(), "a scope that does not exist: {:?}", r.body);
        let r = f
            .admin
            .json(
                "POST",
                &format!("/api/requests/{rid}/decide"),
                json!({"decision": "permit-path", "expires": "2099-01-01"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        let policies = f.admin.get("/api/policies").await.body;
        let made = policies.as_array().unwrap().iter().find(|p| p["name"] == r.body["policy"]).unwrap().clone();
        assert_eq!((made["scope"].as_str(), made["expires"].as_str()), (Some("computer:web-01"), Some("2099-01-01")));
        let r = f.admin.json("POST", &format!("/api/requests/{rid}/decide"), json!({"decision": "reject"})).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "decided once");
        let r = web.json("POST", "/api/agent/requests", json!({ "ids": [id] })).await;
        assert_eq!(r.body["statuses"][0]["status"], "approved");
        // Another organization sees nothing of it.
        let other = org_with_users(&store).await;
        let stranger = Client::login(&store, &other.name, "admin", "admin-password").await;
        assert!(stranger.get("/api/requests").await.body.as_array().unwrap().is_empty());
        let r = stranger.json("POST", &format!("/api/requests/{rid}/decide"), json!({"decision": "reject"})).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        // The console lists it.
        let page = String::from_utf8_lossy(&f.admin.get("/requests").await.bytes).into_owned();
        assert!(page.contains("/opt/tool/bin/report") && page.contains("approved"), "{page}");
    })
    .await;
}

#[tokio::test]
async fn captures_enter_only_an_open_installation_window_and_only_its_application() {
    each_backend(async |store: Store| {
        let f = fleet(&store).await;
        f.group("Linux").await;
        let g = f.group("Linux/Web").await;
        let token = f.token(g, "").await;
        let web_credential = credential(&f.enroll(&token, "web-01", "linux", None).await);
        let web = f.agent(&web_credential);
        let id = f.admin.get("/api/computers").await.body[0]["id"].as_i64().unwrap();
        let file = |hash: &str, path: &str, app: &str| {
            json!({"sha256": hash, "path": path, "size": 10, "application": app, "installer": "/root/install.sh",
                   "at_ms": 1_800_000_000_000i64})
        };
        let good = "ab".repeat(32);
        let send = |files: Vec<Value>| web.json("POST", "/api/agent/captures", json!({ "files": files }));

        // No window: a hostile agent cannot add its files to anything.
        let r = send(vec![file(&good, "/opt/v/bin/tool", "Vendor")]).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);
        assert!(r.body["error"].as_str().unwrap().contains("not in an Installation window"));

        let until = jiff::Timestamp::from_second(jiff::Timestamp::now().as_second() + 3600).unwrap().to_string();
        // A window that names a built-in application: it cannot take rules.
        let builtin = json!({"name": "web-01", "group": "Linux/Web", "mode": "installation", "until": until,
                             "capture_into": portcullis_catalog::DISTRIBUTION_PACKAGES});
        let r = f.admin.json("PUT", &format!("/api/computers/{id}"), builtin).await;
        assert!(r.status.is_success(), "{:?}", r.body);
        let r = send(vec![file(&good, "/opt/v/bin/tool", portcullis_catalog::DISTRIBUTION_PACKAGES)]).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);
        assert!(r.body["error"].as_str().unwrap().contains("built-in"), "{:?}", r.body);
        // A window on the computer, capturing into "Vendor".
        let open = json!({"name": "web-01", "group": "Linux/Web", "mode": "installation", "until": until, "capture_into": "Vendor"});
        let r = f.admin.json("PUT", &format!("/api/computers/{id}"), open).await;
        assert!(r.status.is_success(), "{:?}", r.body);
        let before = audit_len(&store, f.org.id).await;
        let r = send(vec![
            file(&good, "/opt/v/bin/tool", "Vendor"),
            file(&good.to_uppercase(), "/opt/v/bin/same-content", "vendor"),
            file("zz", "/opt/v/bin/bad-hash", "Vendor"),
            file(&"cd".repeat(32), "relative/path", "Vendor"),
            file(&"ef".repeat(32), "/opt/v/bin/other-app", "Somebody else's application"),
            file(&"12".repeat(32), "/opt/v/bin/\u{1b}[2Jescape", "Vendor"),
        ])
        .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        assert_eq!((r.body["added"].as_u64(), r.body["known"].as_u64()), (Some(1), Some(1)), "{:?}", r.body);
        assert_eq!(audit_len(&store, f.org.id).await, before + 1, "one change, one audit entry");
        let audit = store.audit_log(f.org.id, 1).await.unwrap();
        assert!(format!("{:?}", audit[0]).contains("agent web-01 (installation)"), "{audit:?}");
        let apps = f.admin.get("/api/applications").await.body;
        let vendor = apps.as_array().unwrap().iter().find(|a| a["name"] == "Vendor").expect("made by the capture");
        let rules = vendor["rules"].as_array().unwrap();
        assert_eq!(rules.len(), 1, "{rules:?}");
        assert_eq!(rules[0]["sha256"][0], good.as_str());
        assert!(rules[0]["note"].as_str().unwrap().contains("captured on web-01 from /opt/v/bin/tool"));
        // Permitted where the window was opened, last, so denies above still win.
        let policies = f.admin.get("/api/policies").await.body;
        let installed = policies.as_array().unwrap().iter().find(|p| p["name"] == "Installed: Vendor").unwrap();
        assert_eq!(installed["scope"], "computer:web-01");
        assert_eq!(installed["action"], "permit");
        // The bundle carries it, and the agent's bundle permits the file.
        let payload = f.bundle(&web_credential).await.unwrap();
        let engine =
            portcullis_policy_file::compile(&payload.policy_json().unwrap(), portcullis_policy_file::Format::Json)
                .unwrap();
        let facts =
            portcullis_policy::FileFacts { path: "/opt/v/bin/tool".into(), sha256: [0xab; 32], ..Default::default() };
        let target = engine.target(Some("web-01"), portcullis_policy::Os::Linux).unwrap();
        let decision = engine.decide(
            &facts,
            &Default::default(),
            &target,
            portcullis_policy::Timestamp(jiff::Timestamp::now().as_second()),
        );
        assert_eq!(decision.policy(), Some("Installed: Vendor"), "{decision}");

        // Sent again (the reply was lost): nothing added twice, no new policy.
        let r = send(vec![file(&good, "/opt/v/bin/tool", "Vendor")]).await;
        assert_eq!((r.body["added"].as_u64(), r.body["known"].as_u64()), (Some(0), Some(1)));
        // Too many in one batch.
        let many: Vec<Value> = (0..501).map(|i| file(&format!("{i:064x}"), "/opt/v/x", "Vendor")).collect();
        assert_eq!(send(many).await.status, StatusCode::BAD_REQUEST);

        // A group window: the policy goes to the group; an existing policy for the
        // application is left as the administrator made it.
        let r = f.admin.json("PUT", &format!("/api/computers/{id}"), json!({"name": "web-01", "group": "Linux/Web"})).await;
        assert!(r.status.is_success(), "{:?}", r.body);
        let r = f
            .admin
            .json(
                "PUT",
                &format!("/api/groups/{g}"),
                json!({"path": "Linux/Web", "mode": "installation", "until": until, "capture_into": "Web installs"}),
            )
            .await;
        assert!(r.status.is_success(), "{:?}", r.body);
        let r = send(vec![file(&"34".repeat(32), "/usr/local/bin/x", "Web installs")]).await;
        assert_eq!(r.body["added"].as_u64(), Some(1), "{:?}", r.body);
        let policies = f.admin.get("/api/policies").await.body;
        let p = policies.as_array().unwrap().iter().find(|p| p["name"] == "Installed: Web installs").unwrap();
        assert_eq!(p["scope"], "group:Linux/Web");
        let r = send(vec![file(&"56".repeat(32), "/usr/local/bin/y", "Web installs")]).await;
        assert_eq!(r.body["added"].as_u64(), Some(1));
        let count = f
            .admin
            .get("/api/policies")
            .await
            .body
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["applications"].as_array().unwrap().iter().any(|a| a == "Web installs"))
            .count();
        assert_eq!(count, 1, "one policy per application");

        // The window is over (past the grace): refused again.
        let past = jiff::Timestamp::from_second(jiff::Timestamp::now().as_second() - 3600).unwrap().to_string();
        let r = f
            .admin
            .json(
                "PUT",
                &format!("/api/groups/{g}"),
                json!({"path": "Linux/Web", "mode": "installation", "until": past, "capture_into": "Web installs"}),
            )
            .await;
        assert!(r.status.is_success(), "{:?}", r.body);
        let r = send(vec![file(&"78".repeat(32), "/usr/local/bin/z", "Web installs")]).await;
        assert_eq!(r.status, StatusCode::CONFLICT);
        // Without a credential: nothing.
        let anonymous = agent_client(&store, &f.admin.state, None);
        let r = anonymous.json("POST", "/api/agent/captures", json!({"files": []})).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    })
    .await;
}

#[tokio::test]
async fn the_console_opens_installation_windows_for_a_computer_or_a_group_after_showing_what_secured_denies() {
    each_backend(async |store: Store| {
        let f = fleet(&store).await;
        let g = f.group("Linux").await;
        let token = f.token(g, "").await;
        f.enroll(&token, "web-01", "linux", None).await;
        let id = f.admin.get("/api/computers").await.body[0]["id"].as_i64().unwrap();
        let csrf = f.admin.csrf.clone().unwrap();
        let post =
            async |uri: String, body: String| f.admin.send("POST", &uri, Some(Body::from(body)), FORM, false).await;

        // Without confirmation: the page of what Secured would deny, carrying the window along.
        let r = post(
            format!("/computers/{id}"),
            format!("_csrf={csrf}&group=Linux&mode=installation&hours=2&capture_into=Vendor+tools"),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK);
        let page = String::from_utf8_lossy(&r.bytes).into_owned();
        assert!(page.contains("name=\"hours\" value=\"2\"") && page.contains("Vendor tools"), "{page}");
        // Confirmed: open for two hours, into the application.
        let r = post(
            format!("/computers/{id}"),
            format!("_csrf={csrf}&group=Linux&mode=installation&hours=2&capture_into=Vendor+tools&confirm=yes"),
        )
        .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{:?}", String::from_utf8_lossy(&r.bytes));
        let c = &f.admin.get("/api/computers").await.body[0];
        assert_eq!((c["mode"].as_str(), c["capture_into"].as_str()), (Some("installation"), Some("Vendor tools")));
        let until = portcullis_policy_file::parse_time(c["until"].as_str().unwrap()).unwrap().0;
        let now = jiff::Timestamp::now().as_second();
        assert!((now + 7100..=now + 7300).contains(&until), "two hours from now: {c}");
        let page = String::from_utf8_lossy(&f.admin.get("/computers").await.bytes).into_owned();
        assert!(
            page.contains("capturing into &#34;Vendor tools&#34;")
                || page.contains("capturing into &quot;Vendor tools&quot;"),
            "{page}"
        );

        // Odd values are refused with the reason, and change nothing.
        for hours in ["0", "169", "-1", "2h", ""] {
            let r = post(
                format!("/groups/{g}/installation"),
                format!("_csrf={csrf}&hours={hours}&capture_into=X&confirm=yes"),
            )
            .await;
            let location = r.headers.get("location").map(|l| l.to_str().unwrap().to_owned()).unwrap_or_default();
            assert!(location.contains("error="), "{hours:?}: {location}");
        }
        let groups = f.admin.get("/api/groups").await.body;
        assert!(groups[0]["mode"].is_null(), "{groups}");
        let r = post(
            format!("/groups/{g}/installation"),
            format!("_csrf={csrf}&hours=4&capture_into=Linux+installs&confirm=yes"),
        )
        .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER);
        let groups = f.admin.get("/api/groups").await.body;
        assert_eq!(
            (groups[0]["mode"].as_str(), groups[0]["capture_into"].as_str()),
            (Some("installation"), Some("Linux installs"))
        );
        // Another organization's group is not found; an auditor may not open one.
        let auditor = Client::login(&store, &f.org.name, "auditor", "auditor-password").await;
        let a_csrf = auditor.csrf.clone().unwrap();
        let r = auditor
            .send(
                "POST",
                &format!("/groups/{g}/installation"),
                Some(Body::from(format!("_csrf={a_csrf}&hours=4&capture_into=X&confirm=yes"))),
                FORM,
                false,
            )
            .await;
        let location = r.headers.get("location").map(|l| l.to_str().unwrap().to_owned()).unwrap_or_default();
        assert!(location.contains("error="), "{location}");
        assert_eq!(f.admin.get("/api/groups").await.body[0]["capture_into"], "Linux installs");
    })
    .await;
}
