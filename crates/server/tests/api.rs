//! The API through `app(state)` with no socket, on SQLite and on PostgreSQL: sessions and
//! CSRF, tokens, roles, tenancy, bad input. Every refused request must write nothing: each
//! check compares the audit log before and after.

use axum::body::Body;
use axum::http::{StatusCode, header};
use portcullis_server::{AppState, MAX_BODY};
use portcullis_store::Store;
use serde_json::{Value, json};

mod common;
use common::*;

#[tokio::test]
async fn sessions_need_their_csrf_token_to_change_anything_and_tokens_need_none() {
    each_backend(async |store: Store| {
        let org = org_with_users(&store).await;
        let mut admin = Client::login(&store, &org.name, "admin", "admin-password").await;
        let me = admin.get("/api/me").await;
        assert_eq!(me.body, json!({"organization": org.name, "user": "admin", "role": "admin"}));

        let before = audit_len(&store, org.id).await;
        let no_csrf =
            admin.send("POST", "/api/tokens", Some(Body::from(r#"{"name":"ci"}"#)), "application/json", false).await;
        assert_eq!(no_csrf.status, StatusCode::FORBIDDEN);
        assert!(no_csrf.body["error"].as_str().unwrap().contains("X-CSRF-Token"));
        let real_csrf = admin.csrf.replace("0".repeat(64));
        assert_eq!(admin.json("POST", "/api/tokens", json!({"name": "ci"})).await.status, StatusCode::FORBIDDEN);
        assert_eq!(audit_len(&store, org.id).await, before, "refused requests write nothing");
        admin.csrf = real_csrf;

        let created = admin.json("POST", "/api/tokens", json!({"name": "ci"})).await;
        assert_eq!(created.status, StatusCode::CREATED);
        let token = created.body["token"].as_str().unwrap().to_owned();

        let mut automation = Client::new(&store);
        automation.bearer = Some(token);
        assert_eq!(automation.get("/api/me").await.body["user"], "admin");
        let u = automation
            .json("POST", "/api/users", json!({"name": "dave", "role": "auditor", "password": "dave-password"}))
            .await;
        assert_eq!(u.status, StatusCode::CREATED, "{:?}", u.body);
        let log = store.audit_log(org.id, 10).await.unwrap();
        assert_eq!(
            (log[0].actor.as_str(), log[0].action.as_str(), log[0].object.as_str()),
            ("token of admin", "create", "user dave")
        );
        assert!(log[0].after_json.as_deref().unwrap().contains("auditor"));

        let out = admin.send("DELETE", "/api/session", None, "", true).await;
        assert_eq!(out.status, StatusCode::NO_CONTENT);
        assert_eq!(admin.get("/api/me").await.status, StatusCode::UNAUTHORIZED);
        assert_eq!(Client::new(&store).get("/api/me").await.status, StatusCode::UNAUTHORIZED);
    })
    .await;
}

#[tokio::test]
async fn each_role_meets_each_class_of_endpoint() {
    each_backend(async |store: Store| {
        let org = org_with_users(&store).await;
        for (user, may_manage_users) in [("admin", true), ("approver", false), ("auditor", false)] {
            let c = Client::login(&store, &org.name, user, &format!("{user}-password")).await;
            // Reading: every role.
            assert_eq!(c.get("/api/audit").await.status, StatusCode::OK, "{user} reads the audit log");
            assert_eq!(c.get("/api/me").await.status, StatusCode::OK);
            // Own tokens: every role.
            assert_eq!(c.json("POST", "/api/tokens", json!({"name": user})).await.status, StatusCode::CREATED);
            // Users: admins only, and a refusal writes nothing.
            let before = audit_len(&store, org.id).await;
            let r = c
                .json(
                    "POST",
                    "/api/users",
                    json!({"name": format!("new-{user}"), "role": "auditor", "password": "long-enough"}),
                )
                .await;
            if may_manage_users {
                assert_eq!(r.status, StatusCode::CREATED);
            } else {
                assert_eq!(r.status, StatusCode::FORBIDDEN, "{user}: {:?}", r.body);
                assert!(r.body["error"].as_str().unwrap().contains(user));
                assert_eq!(audit_len(&store, org.id).await, before);
            }
        }
    })
    .await;
}

#[tokio::test]
async fn malformed_oversized_unknown_and_foreign_input_gets_the_right_status_and_writes_nothing() {
    each_backend(async |store: Store| {
        let org = org_with_users(&store).await;
        let other = org_with_users(&store).await;
        let admin = Client::login(&store, &org.name, "admin", "admin-password").await;
        let before = audit_len(&store, org.id).await;
        let cases: Vec<(&str, Body, &str, StatusCode)> = vec![
            ("malformed JSON", Body::from("{\"name\": "), "application/json", StatusCode::BAD_REQUEST),
            (
                "unknown field",
                Body::from(r#"{"name":"x","role":"auditor","password":"long-enough","admin":true}"#),
                "application/json",
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            ("missing field", Body::from(r#"{"name":"x"}"#), "application/json", StatusCode::UNPROCESSABLE_ENTITY),
            ("not JSON", Body::from("name=x"), "application/x-www-form-urlencoded", StatusCode::UNSUPPORTED_MEDIA_TYPE),
            (
                "oversized",
                Body::from(format!(r#"{{"name":"{}"}}"#, "x".repeat(MAX_BODY))),
                "application/json",
                StatusCode::PAYLOAD_TOO_LARGE,
            ),
            (
                "bad role",
                Body::from(r#"{"name":"x","role":"root","password":"long-enough"}"#),
                "application/json",
                StatusCode::BAD_REQUEST,
            ),
            (
                "short password",
                Body::from(r#"{"name":"x","role":"auditor","password":"short"}"#),
                "application/json",
                StatusCode::BAD_REQUEST,
            ),
        ];
        for (what, body, ct, want) in cases {
            let r = admin.send("POST", "/api/users", Some(body), ct, true).await;
            assert_eq!(r.status, want, "{what}: {:?}", r.body);
            assert!(r.body["error"].is_string(), "{what}: errors are JSON with a message: {:?}", r.body);
        }
        // A name taken in this organization conflicts; the same name elsewhere is another user.
        let dup = admin
            .json("POST", "/api/users", json!({"name": "auditor", "role": "auditor", "password": "long-enough"}))
            .await;
        assert_eq!(dup.status, StatusCode::CONFLICT);
        assert_eq!(audit_len(&store, org.id).await, before, "nothing written by refused requests");
        // Another organization's audit log is not reachable: the caller's organization scopes every read.
        let theirs = Client::login(&store, &other.name, "admin", "admin-password").await;
        let log = theirs.get("/api/audit").await.body;
        assert!(log.as_array().unwrap().iter().all(|e| !e["object"].as_str().unwrap().contains("new-")), "{log}");
    })
    .await;
}

#[tokio::test]
async fn logins_are_throttled_with_429() {
    each_backend(async |store: Store| {
        let org = org_with_users(&store).await;
        let c = Client::new(&store);
        for _ in 0..5 {
            let r = c
                .json("POST", "/api/session", json!({"organization": org.name, "user": "admin", "password": "nope"}))
                .await;
            assert_eq!(r.status, StatusCode::UNAUTHORIZED);
            assert_eq!(r.body["error"], "wrong organization, user or password");
        }
        let r = c
            .json(
                "POST",
                "/api/session",
                json!({"organization": org.name, "user": "admin", "password": "admin-password"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{:?}", r.body);
    })
    .await;
}

// ----- the model --------------------------------------------------------------------------

const EDITOR_SHA: &str = "a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1";

#[tokio::test]
async fn the_model_is_edited_checked_ordered_and_previewed_through_the_api() {
    each_backend(async |store: Store| {
        let org = org_with_users(&store).await;
        let admin = Client::login(&store, &org.name, "admin", "admin-password").await;
        let auditor = Client::login(&store, &org.name, "auditor", "auditor-password").await;

        let r = admin.json("POST", "/api/groups", json!({"path": "Linux", "mode": "secured"})).await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        let app = json!({"name": "Editor", "rules": [{"sha256": [EDITOR_SHA]}]});
        assert_eq!(auditor.json("POST", "/api/applications", app.clone()).await.status, StatusCode::FORBIDDEN);
        assert_eq!(admin.json("POST", "/api/applications", app).await.status, StatusCode::CREATED);

        // A policy naming an application that does not exist would not load: 422, nothing written.
        let before = audit_len(&store, org.id).await;
        let bad = admin
            .json("POST", "/api/policies", json!({"name": "P", "position": 0, "applications": ["Nope"], "action": "permit"}))
            .await;
        assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", bad.body);
        assert!(bad.body["error"].as_str().unwrap().contains("Nope"), "{:?}", bad.body);
        assert_eq!(audit_len(&store, org.id).await, before);

        let permit = admin
            .json(
                "POST",
                "/api/policies",
                json!({"name": "Permit editor", "position": 0, "applications": ["Editor"], "action": "permit"}),
            )
            .await;
        assert_eq!(permit.status, StatusCode::CREATED, "{:?}", permit.body);
        let permit_id = permit.body["id"].as_i64().unwrap();
        let list = admin.get("/api/policies").await.body;
        assert_eq!(list[0]["builtin"], true, "the built-in deny comes first");
        assert_eq!(list[1]["name"], "Permit editor");

        let preview = |sha: &str| json!({"file": {"path": "/opt/editor/bin/editor", "sha256": sha, "kind": "elf-executable", "os": "linux"}});
        let p = admin.json("POST", "/api/preview", preview(EDITOR_SHA)).await;
        assert_eq!(p.status, StatusCode::OK, "{:?}", p.body);
        assert_eq!((p.body["verdict"].as_str(), p.body["policy"].as_str()), (Some("allow"), Some("Permit editor")));
        assert!(p.body["reason"].as_str().unwrap().contains("position 20"), "{:?}", p.body);
        // A new organization starts in Monitor mode: no first host is locked out.
        let p = admin.json("POST", "/api/preview", preview(BAD_SHA)).await;
        assert_eq!(p.body["verdict"], "allow");
        assert_eq!(p.body["mode"], "monitor", "no policy matched: the mode decided");
        assert!(p.body["reason"].as_str().unwrap().contains("would deny"), "{:?}", p.body);
        assert_eq!(admin.json("PUT", "/api/settings", json!({"mode": "secured"})).await.status, StatusCode::NO_CONTENT);
        let p = admin.json("POST", "/api/preview", preview(BAD_SHA)).await;
        assert_eq!(p.body["verdict"], "deny");
        assert_eq!(p.body["mode"], "secured", "no policy matched: the mode decided");

        // Blocklist: paste → extract (preview) → bulk add → metadata rule → approve.
        let b = admin.json("POST", "/api/blocklists", json!({"name": "3CX DesktopApp"})).await;
        let b_id = b.body["id"].as_i64().unwrap();
        let pasted = format!("| file | sha256 |\n| a.dll | {EDITOR_SHA} |\n| b.dll | {} | dup {EDITOR_SHA}\n", BAD_SHA.to_uppercase());
        let x = admin.json("POST", "/api/blocklists/extract", json!({"text": pasted, "blocklist": b_id})).await;
        assert_eq!((x.body["sha256"].as_u64(), x.body["duplicates"].as_u64()), (Some(2), Some(1)), "{:?}", x.body);
        assert_eq!(x.body["hashes"][1]["hash"], BAD_SHA, "lower-cased");
        assert!(admin.get("/api/blocklists").await.body[0]["hash_count"] == 0, "extract only previews");
        let added = admin.json("POST", &format!("/api/blocklists/{b_id}/hashes"), json!({"text": pasted})).await;
        assert_eq!(added.body["added"], 2, "{:?}", added.body);
        let again = admin.json("POST", "/api/blocklists/extract", json!({"text": pasted, "blocklist": b_id})).await;
        assert_eq!(again.body["already"], 2);
        let rules = json!([{"os": "windows", "original_filename": "3CXDesktopApp"}]);
        assert_eq!(admin.json("PUT", &format!("/api/blocklists/{b_id}/rules"), rules).await.status, StatusCode::NO_CONTENT);
        let wrong_scope = admin.json("POST", &format!("/api/blocklists/{b_id}/approvals"), json!({"scope": "group:Nope"})).await;
        assert_eq!(wrong_scope.status, StatusCode::BAD_REQUEST);
        let ok = admin.json("POST", &format!("/api/blocklists/{b_id}/approvals"), json!({"scope": "organization"})).await;
        assert_eq!(ok.status, StatusCode::NO_CONTENT, "{:?}", ok.body);
        let p = admin.json("POST", "/api/preview", preview(EDITOR_SHA)).await;
        assert_eq!(p.body["verdict"], "deny", "{:?}", p.body);
        assert!(p.body["reason"].as_str().unwrap().contains("3CX DesktopApp"), "{:?}", p.body);
        let metadata = json!({"file": {"path": "C:\\x\\3CXDesktopApp.exe", "os": "windows", "kind": "pe-exe", "original_filename": "3CXDesktopApp.exe"}});
        assert_eq!(admin.json("POST", "/api/preview", metadata).await.body["verdict"], "deny");

        // Move the permit above the built-in, then hygiene: never matched → unused → removed.
        let m = admin.json("POST", &format!("/api/policies/{permit_id}/move"), json!({"to": "up"})).await;
        assert_eq!(m.status, StatusCode::NO_CONTENT);
        assert_eq!(admin.get("/api/policies").await.body[0]["name"], "Permit editor");
        let unused = admin.get("/api/policies/unused?min_age_days=0&since=2100-01-01").await;
        let names: Vec<&str> = unused.body["policies"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["Permit editor"], "built-ins are exempt");
        assert!(admin.get("/api/policies/unused").await.body["policies"].as_array().unwrap().is_empty(), "new ones are exempt");
        let removed = admin.json("POST", "/api/policies/remove", json!({"ids": [permit_id]})).await;
        assert_eq!(removed.body["removed"], json!(["Permit editor"]), "{:?}", removed.body);
        let log = auditor.get("/api/audit?limit=1").await.body;
        assert_eq!((log[0]["actor"].as_str(), log[0]["action"].as_str()), (Some("user admin"), Some("delete")));
        assert_eq!(log[0]["before"][0]["name"], "Permit editor");

        // Tenancy: another organization's admin sees none of it and cannot touch it.
        let other = org_with_users(&store).await;
        let stranger = Client::login(&store, &other.name, "admin", "admin-password").await;
        assert!(stranger.get("/api/blocklists").await.body.as_array().unwrap().is_empty());
        assert_eq!(stranger.get(&format!("/api/blocklists/{b_id}")).await.status, StatusCode::NOT_FOUND);
        let r = stranger.json("POST", &format!("/api/blocklists/{b_id}/approvals"), json!({"scope": "organization"})).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
    })
    .await;
}

// ----- agents ------------------------------------------------------------------------------

#[tokio::test]
async fn agents_enroll_long_poll_a_signed_bundle_and_deliver_events_once() {
    each_backend(async |store: Store| {
        let org = org_with_users(&store).await;
        let admin = Client::login(&store, &org.name, "admin", "admin-password").await;
        let state = admin.state.clone();
        let g = admin.json("POST", "/api/groups", json!({"path": "Linux"})).await.body["id"].as_i64().unwrap();
        let token = admin.json("POST", &format!("/api/groups/{g}/enrollment-token"), json!({})).await;
        let token = token.body["token"].as_str().unwrap().to_owned();
        let host = json!({"hostname": "web-01", "os": "linux", "agent_version": "0.1.0", "kernel": "6.1"});

        let anonymous = agent_client(&store, &state, None);
        let r = anonymous.json("POST", "/api/agent/enroll", json!({"token": "pce_nope", "host": host})).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        let r = anonymous.json("POST", "/api/agent/enroll", json!({"token": token, "host": host})).await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        let enrolled: portcullis_protocol::Enrolled = serde_json::from_value(r.body).unwrap();
        let key = portcullis_protocol::BundlePublicKey::from_hex(&enrolled.bundle_key).unwrap();
        let agent = agent_client(&store, &state, Some(&enrolled.credential));
        assert_eq!(admin.get("/api/me").await.status, StatusCode::OK);
        assert_eq!(
            agent_client(&store, &state, Some("pca_x"))
                .json("POST", "/api/agent/poll", json!({"after": 0}))
                .await
                .status,
            StatusCode::UNAUTHORIZED
        );

        // First poll: the bundle at once, signed, with this computer in it.
        let first = agent.json("POST", "/api/agent/poll", json!({"after": 0, "host": host})).await;
        assert_eq!(first.status, StatusCode::OK);
        let sig = first.headers.get("x-portcullis-signature").unwrap().to_str().unwrap();
        let bundle = portcullis_protocol::Bundle::from_parts(first.bytes.clone(), sig).unwrap();
        let payload = bundle.verify(&key, 0).unwrap();
        assert_eq!(payload.computer.group.as_deref(), Some("Linux"));
        let loaded =
            portcullis_policy_file::load(&payload.policy_json().unwrap(), portcullis_policy_file::Format::Json)
                .unwrap();
        assert_eq!(loaded.set.computers[0].name, "web-01");
        let v = payload.version;

        // Up to date: the poll waits; a change made meanwhile answers it at once.
        let waiting = {
            let agent = agent_client(&store, &state, Some(&enrolled.credential));
            tokio::spawn(async move {
                let started = std::time::Instant::now();
                let r = agent.json("POST", "/api/agent/poll", json!({"after": v, "wait_s": 20})).await;
                (r, started.elapsed())
            })
        };
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert!(!waiting.is_finished(), "nothing changed yet: the poll is held");
        let changed = std::time::Instant::now();
        let r = admin.json("PUT", "/api/settings", json!({"mode": "secured"})).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
        let (reply, held) = waiting.await.unwrap();
        assert_eq!(reply.status, StatusCode::OK);
        assert!(held >= std::time::Duration::from_millis(250), "held {held:?}");
        assert!(
            changed.elapsed() < std::time::Duration::from_secs(2),
            "answered {:?} after the change",
            changed.elapsed()
        );
        let sig = reply.headers.get("x-portcullis-signature").unwrap().to_str().unwrap();
        let newer = portcullis_protocol::Bundle::from_parts(reply.bytes.clone(), sig).unwrap().verify(&key, v).unwrap();
        assert!(newer.version > v);
        assert!(newer.document.get().contains("\"mode\":\"secured\""));
        // Nothing newer: 204 when the wait ends.
        let idle = agent.json("POST", "/api/agent/poll", json!({"after": newer.version, "wait_s": 1})).await;
        assert_eq!(idle.status, StatusCode::NO_CONTENT);

        // Events: a retried batch stores nothing twice; hits are counted.
        let lines = [event_line("/tmp/a", "Deny X"), event_line("/tmp/b", "Deny X")];
        let batch = format!("{{\"events\": [{}]}}", lines.join(","));
        let send =
            || agent.send("POST", "/api/agent/events", Some(Body::from(batch.clone())), "application/json", false);
        assert_eq!(send().await.body, json!({"stored": 2, "duplicates": 0, "refused": 0}));
        assert_eq!(send().await.body, json!({"stored": 0, "duplicates": 2, "refused": 0}));
        let listed = admin.get("/api/events?verdict=deny&computer=web-01").await.body;
        assert_eq!(listed.as_array().unwrap().len(), 2);
        assert_eq!(listed[0]["file_path"], "/tmp/b");
        // A line that is not a record, or whose time is not one, is refused alone: the
        // agent would otherwise send the same batch for ever and deliver nothing more.
        let good: Value = serde_json::from_str(&event_line("/tmp/c", "Deny X")).unwrap();
        let mut late = good.clone();
        late["time"] = json!("yesterday");
        let mixed = json!({"events": [{"time": "yesterday"}, late, good]});
        let r = agent.json("POST", "/api/agent/events", mixed).await;
        assert_eq!(r.body, json!({"stored": 1, "duplicates": 0, "refused": 2}), "{:?}", r.status);
        assert_eq!(admin.get("/api/events?verdict=deny&computer=web-01").await.body.as_array().unwrap().len(), 3);

        let hits = json!({"events": [],
            "hits": [{"policy": portcullis_store::BUILTIN_REPORTED_POLICY, "count": 3, "last_ms": 1234}]});
        assert_eq!(agent.json("POST", "/api/agent/events", hits).await.status, StatusCode::OK);
        let builtin = admin.get("/api/policies").await.body[0].clone();
        assert_eq!((builtin["hits"].as_i64(), builtin["last_matched_ms"].as_i64()), (Some(3), Some(1234)));

        // Contacts are written in batches, about once a second.
        state.hub.flush_seen(&state.store).await.unwrap();
        let computers = admin.get("/api/computers").await.body;
        assert_eq!(computers[0]["online"], true);
        assert_eq!(computers[0]["host"]["kernel"], "6.1");
        assert_eq!(computers[0]["bundle_version"].as_i64(), Some(newer.version));

        // "Create a policy from this event", then preview the event: now permitted.
        let event_id = listed[0]["id"].as_i64().unwrap();
        let made = admin.json("POST", &format!("/api/events/{event_id}/policy"), json!({"kind": "permit-hash"})).await;
        assert_eq!(made.status, StatusCode::CREATED, "{:?}", made.body);
        let p = admin.json("POST", "/api/preview", json!({"event": event_id})).await;
        assert_eq!(p.body["verdict"], "allow", "{:?}", p.body);
        assert_eq!(p.body["policy"], made.body["name"]);
    })
    .await;
}

// ----- the OpenAPI document ------------------------------------------------------------------

#[tokio::test]
async fn the_openapi_document_is_served_and_every_operation_in_it_is_routed() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(&format!("sqlite://{}/openapi.db", dir.path().display()), test_keys()).await.unwrap();
    let client = Client::new(&store);
    let doc = client.get("/api/openapi.json").await;
    assert_eq!(doc.status, StatusCode::OK);
    assert!(doc.body["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc.body["paths"].as_object().unwrap();
    let mut operations = 0;
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            operations += 1;
            assert!(
                op["responses"].as_object().is_some_and(|r| !r.is_empty()),
                "{method} {path} documents no response"
            );
            // Every answer with a body has a schema that says what it is: a named schema,
            // a list of them, or a scalar; never a bare "object".
            for (status, response) in op["responses"].as_object().unwrap() {
                let Some(schema) = response.pointer("/content/application~1json/schema") else { continue };
                let item = if schema["type"] == "array" { &schema["items"] } else { schema };
                let named = item.get("$ref").is_some() || item.get("oneOf").is_some() || item.get("allOf").is_some();
                let scalar = item["type"].as_str().is_some_and(|t| t != "object");
                assert!(named || scalar, "{method} {path} answers {status} with an undescribed body: {schema}");
            }
            let uri = path.replace("{id}", "1");
            let body = (method != "get" && method != "delete").then(|| Body::from("{}"));
            let r = client.send(&method.to_uppercase(), &uri, body, "application/json", false).await;
            // An unrouted path is axum's bare 404 and a wrong method 405; ours answer JSON.
            assert_ne!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path} is documented but not routed");
            assert!(r.body.is_object(), "{method} {path} is documented but not routed: {}", r.status);
        }
    }
    assert!(operations >= 44, "{operations} operations documented");
}

#[tokio::test]
async fn a_change_saved_on_one_server_reaches_an_agent_polling_another() {
    each_backend(async |store: Store| {
        // Two servers over one database: each has its own change signal, so the second learns
        // of the first's change only from the database.
        let org = org_with_users(&store).await;
        let admin = Client::login(&store, &org.name, "admin", "admin-password").await;
        let g = admin.json("POST", "/api/groups", json!({"path": "Linux"})).await.body["id"].as_i64().unwrap();
        let token = admin.json("POST", &format!("/api/groups/{g}/enrollment-token"), json!({})).await.body["token"]
            .as_str()
            .unwrap()
            .to_owned();
        let other = AppState::new(store.clone(), true);
        let host = json!({"hostname": "db-01", "os": "linux", "agent_version": "0.1.0"});
        let anonymous = agent_client(&store, &other, None);
        let enrolled = anonymous.json("POST", "/api/agent/enroll", json!({"token": token, "host": host})).await;
        let credential = enrolled.body["credential"].as_str().unwrap().to_owned();
        let agent = agent_client(&store, &other, Some(&credential));
        let first = agent.json("POST", "/api/agent/poll", json!({"after": 0})).await;
        let v = serde_json::from_slice::<Value>(&first.bytes).unwrap()["version"].as_i64().unwrap();
        let waiting =
            tokio::spawn(async move { agent.json("POST", "/api/agent/poll", json!({"after": v, "wait_s": 20})).await });
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let saved = std::time::Instant::now();
        assert_eq!(admin.json("PUT", "/api/settings", json!({"mode": "secured"})).await.status, StatusCode::NO_CONTENT);
        let reply = waiting.await.unwrap();
        assert_eq!(reply.status, StatusCode::OK);
        let took = saved.elapsed();
        assert!(took < std::time::Duration::from_secs(2), "{took:?}");
        assert!(serde_json::from_slice::<Value>(&reply.bytes).unwrap()["version"].as_i64().unwrap() > v);
    })
    .await;
}

#[tokio::test]
async fn ringfence_profiles_are_managed_checked_and_reach_the_bundle() {
    each_backend(async |store: Store| {
        let org = org_with_users(&store).await;
        let admin = Client::login(&store, &org.name, "admin", "admin-password").await;
        let auditor = Client::login(&store, &org.name, "auditor", "auditor-password").await;
        let app = json!({"name": "3CX Desktop App", "rules": [{"path": "/usr/lib/3cxdesktopapp/3CXDesktopApp"}]});
        assert_eq!(admin.json("POST", "/api/applications", app).await.status, StatusCode::CREATED);

        let fence = json!({
            "name": "3CX",
            "files": {"protected": ["/home/**"], "rules": [{"path": "/home/*/.config/3CXDesktopApp/**", "access": "read-write"}]},
            "network": {"domains": [{"name": "3cx.com", "ports": ["443"]}]},
            "children": {"others": "deny"}
        });
        assert_eq!(auditor.json("POST", "/api/ringfences", fence.clone()).await.status, StatusCode::FORBIDDEN);
        // What would not load is refused with the loader's words, and nothing is written.
        let before = audit_len(&store, org.id).await;
        let mut bad = fence.clone();
        bad["network"]["allow"] = json!([{"cidr": "10.0.0.0/99"}]);
        let r = admin.json("POST", "/api/ringfences", bad).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
        assert!(r.body["error"].as_str().unwrap().contains("is not an address or CIDR"), "{:?}", r.body);
        assert_eq!(audit_len(&store, org.id).await, before);

        let created = admin.json("POST", "/api/ringfences", fence).await;
        assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
        let fence_id = created.body["id"].as_i64().unwrap();
        let policy = json!({"name": "Permit 3CX, ringfenced", "position": 0, "applications": ["3CX Desktop App"],
                            "action": "permit-ringfence", "ringfence": "3CX"});
        assert_eq!(admin.json("POST", "/api/policies", policy).await.status, StatusCode::CREATED);
        let p = admin
            .json(
                "POST",
                "/api/preview",
                json!({"file": {"path": "/usr/lib/3cxdesktopapp/3CXDesktopApp", "sha256": EDITOR_SHA, "kind": "elf-executable", "os": "linux"}}),
            )
            .await;
        assert_eq!(p.body["verdict"], "allow", "{:?}", p.body);
        assert!(p.body["reason"].as_str().unwrap().contains("ringfenced by \"3CX\""), "{:?}", p.body);

        // The document agents get carries the profile.
        let doc = admin.get("/api/document").await.body["document"].clone();
        assert_eq!(doc["ringfences"][0]["children"]["others"], "deny", "{doc:?}");
        assert_eq!(doc["ringfences"][0]["network"]["domains"][0]["name"], "3cx.com");

        // Editing keeps the name; a profile in use cannot be removed.
        let edit = json!({"name": "renamed", "network": {"allow": [{"cidr": "198.51.100.0/24", "ports": ["443"]}]}});
        let r = admin.json("PUT", &format!("/api/ringfences/{fence_id}"), edit).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
        let one = admin.get(&format!("/api/ringfences/{fence_id}")).await.body;
        assert_eq!((one["name"].as_str(), one["network"]["allow"][0]["cidr"].as_str()), (Some("3CX"), Some("198.51.100.0/24")));
        assert!(one["files"].is_null(), "replaced as a whole: {one:?}");
        let r = admin.send("DELETE", &format!("/api/ringfences/{fence_id}"), None, "", true).await;
        assert!(r.status.is_client_error(), "{:?}", r.status);
        assert!(r.body["error"].as_str().unwrap().contains("is used by \"Permit 3CX, ringfenced\""), "{:?}", r.body);
        let log = auditor.get("/api/audit?limit=1").await.body;
        assert_eq!((log[0]["action"].as_str(), log[0]["object"].as_str()), (Some("update"), Some("ringfence 3CX")));

        // The console's form makes the same profile from lines of text.
        let form = format!(
            "_csrf={}&name=Browser&file_rules=%2Fsrv%2F**+%3D+read&protected=%2Fsrv%2F**&limit_network=on&addresses=127.0.0.1+8080%2C9000-9100&dns=on&others=no-shells",
            admin.csrf.as_deref().unwrap()
        );
        let r = admin.send("POST", "/ringfences", Some(Body::from(form)), "application/x-www-form-urlencoded", false).await;
        let location = r.headers.get(header::LOCATION).unwrap().to_str().unwrap().to_owned();
        assert!(location.starts_with("/ringfences?ok="), "{location}");
        let list = admin.get("/api/ringfences").await.body;
        let browser = list.as_array().unwrap().iter().find(|r| r["name"] == "Browser").unwrap();
        assert_eq!(browser["network"]["allow"][0]["ports"], json!(["8080", "9000-9100"]));
        assert_eq!(browser["files"]["rules"][0]["access"], "read");
        let page = admin.get("/ringfences").await;
        let html = String::from_utf8_lossy(&page.bytes);
        assert!(html.contains("Browser") && html.contains("127.0.0.1 port 8080,9000-9100"), "{html}");
        assert!(html.contains("Permit 3CX, ringfenced"), "used-by column");
        let bad_form = format!("_csrf={}&name=Bad&file_rules=%2Fsrv+read", admin.csrf.as_deref().unwrap());
        let r = admin.send("POST", "/ringfences", Some(Body::from(bad_form)), "application/x-www-form-urlencoded", false).await;
        let location = r.headers.get(header::LOCATION).unwrap().to_str().unwrap().to_owned();
        assert!(location.contains("error=") && location.contains("glob"), "{location}");
    })
    .await;
}

/// The API reads scopes as policy files do (it refused `organisation`, which files took).
#[tokio::test]
async fn the_api_reads_scopes_exactly_as_policy_files_do() {
    each_backend(async |store: Store| {
        let org = org_with_users(&store).await;
        let admin = Client::login(&store, &org.name, "admin", "admin-password").await;
        admin.json("POST", "/api/groups", json!({"path": "Linux"})).await;
        let id = admin.json("POST", "/api/blocklists", json!({"name": "Bad"})).await.body["id"].as_i64().unwrap();
        admin.json("POST", &format!("/api/blocklists/{id}/hashes"), json!({"text": BAD_SHA})).await;
        for (scope, stored) in [("organisation", "organization"), (" group:/Linux/ ", "group:Linux")] {
            let r = admin.json("POST", &format!("/api/blocklists/{id}/approvals"), json!({"scope": scope})).await;
            assert_eq!(r.status, StatusCode::NO_CONTENT, "{scope:?}: {:?}", r.body);
            let b = admin.get(&format!("/api/blocklists/{id}")).await.body;
            assert!(b.to_string().contains(stored), "{b}");
        }
        let r = admin.json("POST", &format!("/api/blocklists/{id}/approvals"), json!({"scope": "group:"})).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert!(r.body["error"].as_str().unwrap().contains("unknown scope"), "{:?}", r.body);
        let r = admin.json("POST", &format!("/api/blocklists/{id}/approvals"), json!({"scope": "group:Nowhere"})).await;
        assert!(r.body["error"].as_str().unwrap().contains("does not exist"), "{:?}", r.body);
        // Withdrawn by any spelling of the same scope.
        let r = admin.json("DELETE", &format!("/api/blocklists/{id}/approvals?scope=org"), json!({})).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
        let p = json!({"name": "P", "position": 0, "applications": ["3CX Desktop App [Reported] (Built-In)"],
            "action": "deny", "scope": "organisation"});
        assert_eq!(admin.json("POST", "/api/policies", p).await.status, StatusCode::CREATED);
    })
    .await;
}

/// The Computers page shows the mode a computer follows by the engine's own rule (its
/// group's, the nearest group up the tree that sets one, else the organization's).
#[tokio::test]
async fn the_computers_page_shows_modes_by_the_engines_rule() {
    each_backend(async |store: Store| {
        let org = org_with_users(&store).await;
        let admin = Client::login(&store, &org.name, "admin", "admin-password").await;
        admin.json("POST", "/api/groups", json!({"path": "Linux", "mode": "monitor"})).await;
        let web = admin.json("POST", "/api/groups", json!({"path": "Linux/Web"})).await.body["id"].as_i64().unwrap();
        let token = admin.json("POST", &format!("/api/groups/{web}/enrollment-token"), json!({})).await.body["token"]
            .as_str()
            .unwrap()
            .to_owned();
        let req = json!({"token": token, "host": {"hostname": "web-01", "os": "linux", "agent_version": "1"}});
        let r = agent_client(&store, &admin.state, None).json("POST", "/api/agent/enroll", req).await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        let page = String::from_utf8_lossy(&admin.get("/computers").await.bytes).into_owned();
        assert!(page.contains("inherits (monitor)"), "Linux/Web inherits from Linux");
        assert!(page.contains("group&#39;s (monitor)") || page.contains("group's (monitor)"), "web-01 follows it");
    })
    .await;
}

/// The console's event filter offers every kind of the event schema (it lacked the ringfence
/// kinds), and the API filters on them.
#[tokio::test]
async fn the_event_filter_offers_every_kind_the_schema_has() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(&format!("sqlite://{}/kinds.db", dir.path().display()), test_keys()).await.unwrap();
    let org = org_with_users(&store).await;
    let admin = Client::login(&store, &org.name, "admin", "admin-password").await;
    let page = String::from_utf8_lossy(&admin.get("/events").await.bytes).into_owned();
    for kind in portcullis_events::EventKind::ALL {
        assert!(page.contains(&format!("value=\"{}\"", kind.name())), "{kind} is not offered");
    }
    assert_eq!(admin.get("/api/events?verdict=ringfence-would-deny").await.status, StatusCode::OK);
}

/// A group's policy for the other engines, through the API and the console: the report on
/// every rule, each file for download, nothing written; bad formats and groups refused.
#[tokio::test]
async fn exports_report_every_rule_and_download_for_readers_too() {
    each_backend(async |store: Store| {
        let org = org_with_users(&store).await;
        let admin = Client::login(&store, &org.name, "admin", "admin-password").await;
        let auditor = Client::login(&store, &org.name, "auditor", "auditor-password").await;
        assert_eq!(admin.json("POST", "/api/groups", json!({"path": "Windows <PCs>"})).await.status, StatusCode::CREATED);
        let app = json!({"name": "Tool & Co", "rules": [
            {"authenticode_sha256": ["aa124a4b4df12b34e74ee7f6c683b2ebec4ce9a8edcf9be345823b4fdcf5d868"], "kind": "executable"},
            {"user": "alice", "path": "C:\\Tools\\*"}]});
        assert_eq!(admin.json("POST", "/api/applications", app).await.status, StatusCode::CREATED);
        let p = json!({"name": "Permit tool", "position": 0, "applications": ["Tool & Co"], "action": "permit", "scope": "group:Windows <PCs>"});
        assert_eq!(admin.json("POST", "/api/policies", p).await.status, StatusCode::CREATED);
        let before = audit_len(&store, org.id).await;

        let r = auditor.get("/api/exports/applocker?group=Windows%20%3CPCs%3E").await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        let files = r.body["files"].as_array().unwrap();
        assert_eq!(files[0]["name"], "applocker.xml");
        assert!(files[0]["content"].as_str().unwrap().contains("0xAA124A4B4DF12B34E74EE7F6C683B2EBEC4CE9A8EDCF9BE345823B4FDCF5D868"));
        let entries = r.body["report"]["entries"].as_array().unwrap();
        let rule = |n: i64| entries.iter().find(|e| e["source"]["name"] == "Permit tool" && e["source"]["rule"] == n).unwrap();
        assert_eq!(rule(1)["outcome"], "exported", "{entries:?}");
        assert_eq!(rule(2)["outcome"], "not-expressible");
        assert!(rule(2)["why"].as_str().unwrap().contains("user"));

        let d = auditor.get("/api/exports/appcontrol/file?group=Windows%20%3CPCs%3E").await;
        assert_eq!(d.status, StatusCode::OK);
        assert_eq!(d.headers[header::CONTENT_DISPOSITION], "attachment; filename=\"appcontrol.xml\"");
        assert!(String::from_utf8_lossy(&d.bytes).contains("<SiPolicy"));
        // App Control's binary form comes too, for download only.
        let r = auditor.get("/api/exports/appcontrol?group=Windows%20%3CPCs%3E").await;
        let cip = r.body["files"].as_array().unwrap().iter().find(|f| f["name"].as_str().unwrap().ends_with(".cip")).unwrap().clone();
        assert!(cip["content"].is_null() && cip["size"].as_u64().unwrap() > 0x44, "{cip}");
        let name = cip["name"].as_str().unwrap().replace('{', "%7B").replace('}', "%7D");
        let b = auditor.get(&format!("/api/exports/appcontrol/file?group=Windows%20%3CPCs%3E&name={name}")).await;
        assert_eq!((b.status, b.bytes.len() as u64), (StatusCode::OK, cip["size"].as_u64().unwrap()));
        assert_eq!(&b.bytes[..4], &8u32.to_le_bytes(), "format 8");
        let f = auditor.get("/api/exports/fapolicyd/file?name=rules.d%2F40-portcullis.rules").await;
        assert_eq!(f.status, StatusCode::OK);
        assert_eq!(f.headers[header::CONTENT_DISPOSITION], "attachment; filename=\"40-portcullis.rules\"");

        assert_eq!(auditor.get("/api/exports/intune").await.status, StatusCode::BAD_REQUEST);
        let r = auditor.get("/api/exports/santa?group=Nope").await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert!(r.body["error"].as_str().unwrap().contains("no group \"Nope\""));
        assert_eq!(auditor.get("/api/exports/santa/file?name=nope.json").await.status, StatusCode::NOT_FOUND);
        assert_eq!(Client::new(&store).get("/api/exports/santa").await.status, StatusCode::UNAUTHORIZED);

        // The console shows the report before the download, names escaped.
        let page = String::from_utf8_lossy(&admin.get("/exports?format=santa&group=Windows%20%3CPCs%3E").await.bytes).into_owned();
        assert!(page.contains("not expressible") && page.contains("Download santa-rules.json"), "{page}");
        assert!(page.contains("Windows &#60;PCs&#62;") || page.contains("Windows &lt;PCs&gt;"), "{page}");
        assert!(!page.contains("Windows <PCs>"), "escaped");
        let dl = admin.get("/exports/download?format=santa&group=Windows%20%3CPCs%3E&name=santa-rules.json").await;
        assert_eq!(dl.status, StatusCode::OK);
        let _: Value = serde_json::from_slice(&dl.bytes).expect("JSON");
        assert_eq!(audit_len(&store, org.id).await, before, "an export writes nothing");
    })
    .await;
}
