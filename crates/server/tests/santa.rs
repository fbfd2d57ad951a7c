//! The Santa sync server as a Santa client meets it, on SQLite and PostgreSQL: Santa's own
//! request fixture (plain, zlib and gzip), enrollment by group token, client mode from the
//! computer's mode, clean syncs when the model changed, cursor paging, events stored as
//! Portcullis events; hostile requests refused without writing. The responses are also
//! parsed by Python's protobuf against Santa's schema (`santa_responses_parse_with_*`).

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use portcullis_server::app;
use portcullis_store::Store;
use serde_json::{Value, json};
use std::io::Write;
use tower::ServiceExt;

mod common;
use common::*;

/// Santa's own preflight request (northpolesec/santa testdata, compared byte for byte there).
fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/specs/santa/fixtures").join(name),
    )
    .unwrap()
}

struct Santa {
    state: portcullis_server::AppState,
    token: Option<String>,
    machine: String,
}

struct Answer {
    status: StatusCode,
    body: Value,
    text: String,
}

impl Santa {
    async fn post(&self, stage: &str, body: &[u8], encoding: Option<&str>) -> Answer {
        let bytes = match encoding {
            Some("deflate") => {
                let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
                z.write_all(body).unwrap();
                z.finish().unwrap()
            }
            Some("gzip") => {
                let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                z.write_all(body).unwrap();
                z.finish().unwrap()
            }
            _ => body.to_vec(),
        };
        self.raw(stage, bytes, encoding, "application/json").await
    }

    async fn raw(&self, stage: &str, bytes: Vec<u8>, encoding: Option<&str>, content_type: &str) -> Answer {
        let mut req = Request::builder()
            .method("POST")
            .uri(format!("/santa/{stage}/{}", self.machine))
            .header(header::CONTENT_TYPE, content_type)
            .header(header::USER_AGENT, "santactl-sync/2026.8");
        if let Some(e) = encoding {
            req = req.header(header::CONTENT_ENCODING, e);
        }
        if let Some(t) = &self.token {
            req = req.header("X-Portcullis-Token", t);
        }
        let res = app(self.state.clone()).oneshot(req.body(Body::from(bytes)).unwrap()).await.unwrap();
        let status = res.status();
        let bytes = axum::body::to_bytes(res.into_body(), 8 << 20).await.unwrap();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        Answer { status, body: serde_json::from_str(&text).unwrap_or(Value::Null), text }
    }

    async fn json(&self, stage: &str, body: Value) -> Answer {
        self.post(stage, body.to_string().as_bytes(), None).await
    }

    /// Every rule of a download, page after page, as the client collects them.
    async fn rules(&self) -> Vec<Value> {
        let mut rules = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..20 {
            let mut req = json!({"machine_id": self.machine});
            if let Some(c) = &cursor {
                req["cursor"] = json!(c);
            }
            let a = self.json("ruledownload", req).await;
            assert_eq!(a.status, StatusCode::OK, "{}", a.text);
            rules.extend(a.body["rules"].as_array().unwrap().iter().cloned());
            match a.body.get("cursor").and_then(Value::as_str) {
                Some(c) if !c.is_empty() => cursor = Some(c.to_owned()),
                _ => return rules,
            }
        }
        panic!("paging never ended");
    }
}

const TEAM_3CX: &str = "33CF4654HL";

#[tokio::test]
async fn a_santa_client_enrolls_syncs_its_rules_and_mode_and_uploads_events() {
    each_backend(async |store: Store| {
        let org = org_with_users(&store).await;
        let admin = Client::login(&store, &org.name, "admin", "admin-password").await;
        let g = admin.json("POST", "/api/groups", json!({"path": "Macs", "mode": "secured"})).await.body["id"].as_i64().unwrap();
        let token = admin.json("POST", &format!("/api/groups/{g}/enrollment-token"), json!({})).await.body["token"]
            .as_str()
            .unwrap()
            .to_owned();
        // Permit 3CX's signed builds (the built-in: a TEAMID rule on macOS, its reported
        // builds blocked by hash) and 600 hashes, so the rules come in pages.
        let hashes: Vec<String> = (0..600).map(|i| format!("{i:064x}")).collect();
        let app_doc = json!({"name": "Tools", "rules": [{"sha256": hashes, "os": "macos"}]});
        assert_eq!(admin.json("POST", "/api/applications", app_doc).await.status, StatusCode::CREATED);
        // (A new organization denies the reported builds already, above everything.)
        for (name, apps, position) in [("Permit 3CX", "3CX Desktop App (Built-In)", 20), ("Permit tools", "Tools", 30)] {
            let p = json!({"name": name, "position": position, "applications": [apps], "action": "permit"});
            let r = admin.json("POST", "/api/policies", p).await;
            assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        }
        let mut santa = Santa { state: admin.state.clone(), token: None, machine: "A1B2C3D4-0000-4000-8000-00000000CAFE".into() };
        let request = fixture("sync_preflight_request.json");

        // No token, a wrong token: refused, nothing enrolled.
        let before = audit_len(&store, org.id).await;
        assert_eq!(santa.post("preflight", &request, None).await.status, StatusCode::UNAUTHORIZED);
        santa.token = Some("pce_wrong".into());
        let a = santa.post("preflight", &request, None).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.text);
        assert_eq!(santa.json("ruledownload", json!({})).await.status, StatusCode::FORBIDDEN, "unknown machines get nothing");
        assert_eq!(audit_len(&store, org.id).await, before);

        // Santa's real preflight, zlib-compressed as Santa sends it by default: enrolled.
        santa.token = Some(token.clone());
        let a = santa.post("preflight", &request, Some("deflate")).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        assert_eq!(a.body["client_mode"], "LOCKDOWN", "Secured group: {}", a.text);
        assert_eq!(a.body["sync_type"], "CLEAN", "never synced: a clean sync");
        assert!(a.body["full_sync_interval"].as_u64().unwrap() >= 60 && a.body["batch_size"].as_u64().unwrap() > 0);
        for v2 in ["push_token", "pushToken", "push_issuer_token", "pushIssuerToken"] {
            assert!(a.body.get(v2).is_none(), "never the v2 switch: {}", a.text);
        }
        let computers = admin.get("/api/computers").await.body;
        let mac = computers.as_array().unwrap().iter().find(|c| c["doc"]["os"] == "macos" || c["os"] == "macos");
        assert!(mac.is_some() || computers.to_string().contains("macos"), "a macOS computer: {computers}");

        // The same machine again, gzip this time: known, not enrolled twice.
        let a = santa.post("preflight", &request, Some("gzip")).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        let count = |v: &Value| v.as_array().unwrap().len();
        assert_eq!(count(&admin.get("/api/computers").await.body), count(&computers));

        // The rules, in pages: the team of 3CX allowed, its reported builds and nothing of
        // Windows or Linux, the 600 hashes; every identifier well-formed.
        let rules = santa.rules().await;
        let has = |id: &str, policy: &str, kind: &str| {
            rules.iter().any(|r| r["identifier"] == id && r["policy"] == policy && r["rule_type"] == kind)
        };
        assert!(has(TEAM_3CX, "ALLOWLIST", "TEAMID"), "{rules:?}");
        assert!(has(&hashes[599], "ALLOWLIST", "BINARY"));
        assert!(rules.iter().any(|r| r["policy"] == "BLOCKLIST" && r["rule_type"] == "BINARY"));
        for r in &rules {
            let id = r["identifier"].as_str().unwrap();
            match r["rule_type"].as_str().unwrap() {
                "BINARY" | "CERTIFICATE" => assert!(id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()), "{r}"),
                "TEAMID" => assert_eq!(id.len(), 10, "{r}"),
                "SIGNINGID" => assert!(portcullis_policy_file::signing_id_form(id), "{r}"),
                other => panic!("rule type {other}"),
            }
        }
        assert!(rules.len() > 600);
        let a = santa.json("postflight", json!({"rules_received": rules.len(), "rules_processed": rules.len(), "machine_id": santa.machine, "syncType": "CLEAN"})).await;
        assert_eq!((a.status, a.text.as_str()), (StatusCode::OK, "{}"));

        // Nothing changed: a normal sync. A change to the model: clean again, so a removed
        // rule leaves the client too. Monitor mode: MONITOR.
        let a = santa.post("preflight", &request, None).await;
        assert_eq!(a.body["sync_type"], "NORMAL", "{}", a.text);
        let r = admin.json("PUT", &format!("/api/groups/{g}"), json!({"path": "Macs", "mode": "monitor"})).await;
        assert!(r.status.is_success(), "{:?}", r.body);
        let a = santa.post("preflight", &request, None).await;
        assert_eq!((a.body["client_mode"].as_str(), a.body["sync_type"].as_str()), (Some("MONITOR"), Some("CLEAN")), "{}", a.text);

        // Events: a block and an unknown file Santa let run in Monitor mode become a deny and
        // a would-deny; an allow by rule is not an event; a malformed hash is skipped.
        let leaf = json!({"sha256": "ab".repeat(32), "cn": "Developer ID Application: 3CX Ltd (33CF4654HL)", "org": "3CX Ltd", "ou": TEAM_3CX});
        let upload = json!({"machine_id": santa.machine, "events": [
            {"file_sha256": "92005051ae314d61074ed94a52e76b1c3e21e7f0e8c1d1fdd497a006ce45fa61", "file_path": "/Applications/3CX Desktop App.app/Contents/MacOS", "file_name": "3CX Desktop App", "executing_user": "alice", "execution_time": 1774000000.5, "decision": "BLOCK_BINARY", "pid": 4242, "ppid": 1, "parent_name": "launchd", "team_id": TEAM_3CX, "signing_id": "33CF4654HL:com.electron.3cx-desktop-app", "signing_chain": [leaf, {"cn": "Developer ID Certification Authority"}]},
            {"fileSha256": "cd".repeat(32), "filePath": "/Users/alice/Downloads", "fileName": "tool <b>", "decision": "ALLOW_UNKNOWN", "executionTime": "1774000001", "signingId": "no team: *"},
            {"file_sha256": "ef".repeat(32), "file_path": "/usr/local/bin", "file_name": "ok", "decision": "ALLOW_BINARY"},
            {"file_sha256": "not-a-hash", "decision": "BLOCK_UNKNOWN"}
        ]});
        let a = santa.json("eventupload", upload.clone()).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        assert_eq!(santa.json("eventupload", upload).await.status, StatusCode::OK, "a retried upload is stored once");
        let events = admin.get("/api/events?file=92005051").await.body;
        let events = events.as_array().unwrap();
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0]["event"], "deny");
        assert!(events[0]["file_path"].as_str().unwrap().ends_with("/Contents/MacOS/3CX Desktop App"));
        let all = admin.get("/api/events").await.body;
        assert_eq!(all.as_array().unwrap().len(), 2, "deny and would-deny only: {all}");
        assert!(all.to_string().contains("would-deny"));
        // A policy from Santa's event, as from an agent's: by its signer's team.
        let id = events[0]["id"].as_i64().unwrap();
        let one = admin.get(&format!("/api/events/{id}")).await;
        assert_eq!(one.status, StatusCode::OK);
        assert!(one.body.to_string().contains("Developer ID Application: 3CX Ltd (33CF4654HL)"), "{}", one.body);
        let made = admin.json("POST", &format!("/api/events/{id}/policy"), json!({"kind": "deny-hash", "name": "Block the Mac build"})).await;
        assert_eq!(made.status, StatusCode::CREATED, "{:?}", made.body);
        // …or by its signing ID, which Santa reported (macOS verified it): every version.
        let made = admin.json("POST", &format!("/api/events/{id}/policy"), json!({"kind": "permit-signing-id", "name": "3CX by signing ID"})).await;
        assert_eq!(made.status, StatusCode::CREATED, "{:?}", made.body);
        assert!(made.body["matches"].as_str().unwrap().contains("33CF4654HL:com.electron.3cx-desktop-app"), "{:?}", made.body);
        // The would-deny's signing ID was not one (no team): not stored, so no such policy.
        let other = all.as_array().unwrap().iter().find(|e| e["event"] == "would-deny").unwrap()["id"].as_i64().unwrap();
        let r = admin.json("POST", &format!("/api/events/{other}/policy"), json!({"kind": "permit-signing-id", "preview": true})).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.body);
        // The next sync: the model changed, a clean sync brings the new block.
        let a = santa.post("preflight", &request, None).await;
        assert_eq!(a.body["sync_type"], "CLEAN", "{}", a.text);
        let rules = santa.rules().await;
        assert!(rules.iter().any(|r| r["identifier"] == "92005051ae314d61074ed94a52e76b1c3e21e7f0e8c1d1fdd497a006ce45fa61" && r["policy"] == "BLOCKLIST"));
        assert!(
            rules.iter().any(|r| r["identifier"] == "33CF4654HL:com.electron.3cx-desktop-app"
                && r["rule_type"] == "SIGNINGID"
                && r["policy"] == "ALLOWLIST"),
            "{rules:?}"
        );

        // One Mac's own view, linked from the Computers page: the rules it gets (a policy for
        // that Mac alone too) and where Santa's precedence reverses the policy order (a hash
        // block placed last outranks the team permit above it).
        let computers = admin.get("/api/computers").await.body;
        let mac = computers.as_array().unwrap().iter().find(|c| c.to_string().contains("macos")).unwrap().clone();
        let name = mac["doc"]["name"].as_str().or(mac["name"].as_str()).unwrap().to_owned();
        let app = json!({"name": "One bad build", "rules": [{"sha256": ["ab".repeat(32)], "os": "macos"}]});
        assert_eq!(admin.json("POST", "/api/applications", app).await.status, StatusCode::CREATED);
        let p = json!({"name": "Deny on this Mac", "position": 900, "applications": ["One bad build"], "action": "deny", "scope": format!("computer:{name}")});
        let r = admin.json("POST", "/api/policies", p).await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        let group_view = admin.get("/api/exports/santa?group=Macs").await.body;
        assert!(!group_view["files"][0]["content"].as_str().unwrap().contains(&"ab".repeat(32)), "a group's export leaves one Mac's policy out");
        let page = String::from_utf8_lossy(&admin.get("/computers").await.bytes).into_owned();
        assert!(page.contains("Santa rules and warnings") && page.contains("format=santa"), "{page}");
        let r = admin.get(&format!("/api/exports/santa?computer={name}")).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        assert!(r.body["files"][0]["content"].as_str().unwrap().contains(&"ab".repeat(32)), "{}", r.body);
        assert!(r.body["report"].to_string().contains("BINARY rule wins over the TEAMID"), "{}", r.body["report"]);
        let page = String::from_utf8_lossy(&admin.get(&format!("/exports?format=santa&computer={name}")).await.bytes).into_owned();
        assert!(page.contains(&format!("Santa for computer {name}")) && page.contains("BINARY rule wins over"), "{page}");
        assert_eq!(admin.get(&format!("/api/exports/santa?computer={name}&group=Macs")).await.status, StatusCode::BAD_REQUEST);
        assert_eq!(admin.get("/api/exports/santa?computer=nobody").await.status, StatusCode::BAD_REQUEST);
    })
    .await;
}

#[tokio::test]
async fn hostile_santa_requests_are_refused_and_write_nothing() {
    each_backend(async |store: Store| {
        let org = org_with_users(&store).await;
        let admin = Client::login(&store, &org.name, "admin", "admin-password").await;
        let g = admin.json("POST", "/api/groups", json!({"path": "Macs"})).await.body["id"].as_i64().unwrap();
        let token = admin.json("POST", &format!("/api/groups/{g}/enrollment-token"), json!({})).await.body["token"]
            .as_str()
            .unwrap()
            .to_owned();
        let santa = Santa { state: admin.state.clone(), token: Some(token), machine: "MAC-1".into() };
        let before = audit_len(&store, org.id).await;
        // A zlib bomb: 64 MiB of zeros in a few kilobytes.
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        z.write_all(&vec![b' '; 64 << 20]).unwrap();
        let bomb = z.finish().unwrap();
        assert!(bomb.len() < 1 << 20);
        assert_eq!(
            santa.raw("preflight", bomb, Some("deflate"), "application/json").await.status,
            StatusCode::PAYLOAD_TOO_LARGE
        );
        assert_eq!(
            santa.raw("preflight", b"\x78\x9cgarbage".to_vec(), Some("deflate"), "application/json").await.status,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            santa.raw("preflight", b"{}".to_vec(), Some("br"), "application/json").await.status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
        assert_eq!(
            santa.raw("preflight", vec![8, 1], None, "application/x-protobuf").await.status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
        assert_eq!(santa.post("preflight", b"[1,2", None).await.status, StatusCode::BAD_REQUEST);
        assert_eq!(santa.post("preflight", br#"{"hostname": 7}"#, None).await.status, StatusCode::BAD_REQUEST);
        let odd = Santa { machine: "a%2Fb".into(), ..santa.clone_with() };
        assert_eq!(odd.post("preflight", b"{}", None).await.status, StatusCode::BAD_REQUEST);
        let long = Santa { machine: "M".repeat(200), ..santa.clone_with() };
        assert_eq!(long.post("preflight", b"{}", None).await.status, StatusCode::BAD_REQUEST);
        assert_eq!(audit_len(&store, org.id).await, before, "nothing enrolled");
        // An empty body (santactl doctor) enrolls under the machine id, and works.
        let a = santa.post("preflight", b"", None).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        // Too many events at once; an unknown stage.
        let many: Vec<Value> = (0..1001).map(|_| json!({"decision": "BLOCK_BINARY"})).collect();
        assert_eq!(santa.json("eventupload", json!({"events": many})).await.status, StatusCode::BAD_REQUEST);
        assert_eq!(santa.json("xsrf", json!({})).await.status, StatusCode::NOT_FOUND);
        // Another group's token cannot speak for this machine.
        let g2 = admin.json("POST", "/api/groups", json!({"path": "Other"})).await.body["id"].as_i64().unwrap();
        let other = admin.json("POST", &format!("/api/groups/{g2}/enrollment-token"), json!({})).await.body["token"]
            .as_str()
            .unwrap()
            .to_owned();
        let thief = Santa { token: Some(other), ..santa.clone_with() };
        let a = thief.json("ruledownload", json!({})).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.text);
        // A taken name waits for an administrator once, not once per sync.
        let twin = Santa { machine: "MAC-2".into(), ..santa.clone_with() };
        let named = br#"{"hostname": "MAC-1"}"#;
        assert_eq!(twin.post("preflight", named, None).await.status, StatusCode::FORBIDDEN);
        assert_eq!(twin.post("preflight", named, None).await.status, StatusCode::FORBIDDEN);
        let pending = admin.get("/api/enrollments/pending").await.body;
        assert_eq!(pending.as_array().map_or(0, Vec::len), 1, "{pending}");
        // The group's token revoked: the enrolled Mac is cut off at once.
        assert_eq!(
            admin.json("DELETE", &format!("/api/groups/{g}/enrollment-token"), json!({})).await.status,
            StatusCode::NO_CONTENT
        );
        let a = santa.json("ruledownload", json!({})).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.text);
        assert!(a.text.contains("no longer"), "{}", a.text);
    })
    .await;
}

impl Santa {
    fn clone_with(&self) -> Santa {
        Santa { state: self.state.clone(), token: self.token.clone(), machine: self.machine.clone() }
    }
}

/// Every answer of the sync server parses, strictly, as the message Santa expects, with
/// Google's protobuf against Santa's own `sync/v1.proto` (the venv `./x test` makes).
#[tokio::test]
async fn santa_responses_parse_with_googles_protobuf_against_santas_schema() {
    let python = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/santa-venv/bin/python");
    assert!(python.exists(), "{} is missing: `./x test` (or ./x deps) makes it", python.display());
    let db = tempfile::tempdir().unwrap();
    let store = Store::connect(&format!("sqlite://{}/server.db", db.path().display()), test_keys()).await.unwrap();
    let org = org_with_users(&store).await;
    let admin = Client::login(&store, &org.name, "admin", "admin-password").await;
    let g = admin.json("POST", "/api/groups", json!({"path": "Macs", "mode": "secured"})).await.body["id"]
        .as_i64()
        .unwrap();
    let token = admin.json("POST", &format!("/api/groups/{g}/enrollment-token"), json!({})).await.body["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let hashes: Vec<String> = (0..700).map(|i| format!("{i:064x}")).collect();
    let app_doc = json!({"name": "Tools", "rules": [{"sha256": hashes}]});
    assert_eq!(admin.json("POST", "/api/applications", app_doc).await.status, StatusCode::CREATED);
    let chrome = json!({"name": "Chrome", "rules": [{"signing_id": "EQHXZ8M8AV:com.google.Chrome"}]});
    assert_eq!(admin.json("POST", "/api/applications", chrome).await.status, StatusCode::CREATED);
    for (name, apps, position) in [
        ("Permit 3CX", "3CX Desktop App (Built-In)", 20),
        ("Permit tools", "Tools", 30),
        ("Permit Chrome", "Chrome", 40),
    ] {
        let p = json!({"name": name, "position": position, "applications": [apps], "action": "permit"});
        assert_eq!(admin.json("POST", "/api/policies", p).await.status, StatusCode::CREATED);
    }
    let santa = Santa { state: admin.state.clone(), token: Some(token), machine: "VALIDATE-1".into() };
    let dir = tempfile::tempdir().unwrap();
    let mut n = 0;
    let mut keep = |message: &str, text: &str| {
        n += 1;
        std::fs::write(dir.path().join(format!("{message}.{n}.json")), text).unwrap();
    };
    // What Santa sends, as the server reads it.
    keep("PreflightRequest", &String::from_utf8(fixture("sync_preflight_request.json")).unwrap());
    let a = santa.post("preflight", &fixture("sync_preflight_request.json"), Some("gzip")).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    keep("PreflightResponse", &a.text);
    let mut cursor: Option<String> = None;
    let mut signing = false;
    loop {
        let req = match &cursor {
            Some(c) => json!({"machine_id": santa.machine, "cursor": c}),
            None => json!({"machine_id": santa.machine}),
        };
        let a = santa.json("ruledownload", req).await;
        keep("RuleDownloadResponse", &a.text);
        signing |= a.text.contains(r#""rule_type":"SIGNINGID""#);
        match a.body.get("cursor").and_then(Value::as_str) {
            Some(c) if !c.is_empty() => cursor = Some(c.to_owned()),
            _ => break,
        }
    }
    let a = santa
        .json("eventupload", json!({"events": [{"file_sha256": "ab".repeat(32), "decision": "BLOCK_UNKNOWN"}]}))
        .await;
    keep("EventUploadResponse", &a.text);
    let a = santa.json("postflight", json!({"rules_received": 1, "rules_processed": 1})).await;
    keep("PostflightResponse", &a.text);
    assert!(n >= 5, "two rule pages at least");
    assert!(signing, "a SIGNINGID rule is among those parsed");
    let proto = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/specs/santa/sync_v1.proto");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/santa/validate.py");
    let out = std::process::Command::new(&python).arg(&script).arg(&proto).arg(dir.path()).output().unwrap();
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("{n} message(s) parse")));
}
