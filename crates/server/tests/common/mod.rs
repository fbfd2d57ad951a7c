//! Helpers shared by the server's test targets: a client over `app(state)` with no socket,
//! both databases, an organization with one user per role, agent requests.
#![allow(dead_code)]

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use portcullis_server::{AppState, app};
use portcullis_store::{Role, SecretKeys, Store};
use serde_json::{Value, json};
use tower::ServiceExt;

pub const BAD_SHA: &str = "b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2";

pub fn unique(prefix: &str) -> String {
    let mut b = [0u8; 6];
    getrandom::fill(&mut b).unwrap();
    format!("{prefix}-{}", b.iter().map(|x| format!("{x:02x}")).collect::<String>())
}

/// The secret key of every test (and benchmark) that uses the throw-away PostgreSQL
/// database: they share it, and a store reseals what it finds with its own key.
pub const SHARED_SECRET_KEY: &str = "5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e";

pub fn test_keys() -> SecretKeys {
    SecretKeys::parse(SHARED_SECRET_KEY, "the tests' shared secret key").unwrap()
}

pub fn postgres_url() -> String {
    std::env::var("PORTCULLIS_TEST_POSTGRES")
        .expect("PORTCULLIS_TEST_POSTGRES is not set: run the tests with ./x test, which starts PostgreSQL on loopback")
}

pub async fn each_backend(check: impl AsyncFn(Store)) {
    let dir = tempfile::tempdir().unwrap();
    check(Store::connect(&format!("sqlite://{}/server.db", dir.path().display()), test_keys()).await.unwrap()).await;
    check(Store::connect(&postgres_url(), test_keys()).await.unwrap()).await;
}

pub struct Client {
    pub state: AppState,
    pub cookie: Option<String>,
    pub csrf: Option<String>,
    pub bearer: Option<String>,
    /// The client address the server sees (none: unknown, as with no socket).
    pub peer: Option<std::net::SocketAddr>,
}

pub struct Reply {
    pub status: StatusCode,
    pub body: Value,
    pub set_cookie: Option<String>,
    pub headers: axum::http::HeaderMap,
    pub bytes: Vec<u8>,
}

impl Client {
    pub fn new(store: &Store) -> Client {
        Client { state: AppState::new(store.clone(), true), cookie: None, csrf: None, bearer: None, peer: None }
    }

    pub async fn send(&self, method: &str, uri: &str, body: Option<Body>, content_type: &str, csrf: bool) -> Reply {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(c) = &self.cookie {
            req = req.header(header::COOKIE, c);
        }
        if let (true, Some(t)) = (csrf, &self.csrf) {
            req = req.header("x-csrf-token", t);
        }
        if let Some(b) = &self.bearer {
            req = req.header(header::AUTHORIZATION, format!("Bearer {b}"));
        }
        if body.is_some() {
            req = req.header(header::CONTENT_TYPE, content_type);
        }
        let mut req = req.body(body.unwrap_or_else(Body::empty)).unwrap();
        if let Some(peer) = self.peer {
            req.extensions_mut().insert(axum::extract::ConnectInfo(peer));
        }
        let res = app(self.state.clone()).oneshot(req).await.unwrap();
        let status = res.status();
        let set_cookie = res.headers().get(header::SET_COOKIE).map(|v| v.to_str().unwrap().to_owned());
        let headers = res.headers().clone();
        let bytes = axum::body::to_bytes(res.into_body(), 4 << 20).await.unwrap().to_vec();
        Reply { status, body: serde_json::from_slice(&bytes).unwrap_or(Value::Null), set_cookie, headers, bytes }
    }

    pub async fn json(&self, method: &str, uri: &str, body: Value) -> Reply {
        self.send(method, uri, Some(Body::from(body.to_string())), "application/json", true).await
    }

    pub async fn get(&self, uri: &str) -> Reply {
        self.send("GET", uri, None, "", false).await
    }

    pub async fn login(store: &Store, org: &str, user: &str, password: &str) -> Client {
        let mut c = Client::new(store);
        let r = c.json("POST", "/api/session", json!({"organization": org, "user": user, "password": password})).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        let cookie = r.set_cookie.expect("a session cookie");
        assert!(
            cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict") && cookie.contains("Secure"),
            "{cookie}"
        );
        c.cookie = Some(cookie.split(';').next().unwrap().to_owned());
        c.csrf = Some(r.body["csrf_token"].as_str().unwrap().to_owned());
        c
    }
}

pub async fn audit_len(store: &Store, org: i64) -> usize {
    store.audit_log(org, 1000).await.unwrap().len()
}

pub struct Org {
    pub name: String,
    pub id: i64,
}

pub async fn org_with_users(store: &Store) -> Org {
    let name = unique("org");
    let id = store.create_organization(&name).await.unwrap();
    store.create_user(id, "admin", Role::Admin, "admin-password").await.unwrap();
    store.create_user(id, "approver", Role::Approver, "approver-password").await.unwrap();
    store.create_user(id, "auditor", Role::Auditor, "auditor-password").await.unwrap();
    Org { name, id }
}

pub fn agent_client(store: &Store, state: &AppState, credential: Option<&str>) -> Client {
    let mut c = Client::new(store);
    c.state = state.clone();
    c.bearer = credential.map(str::to_owned);
    c
}

pub fn event_line(path: &str, policy: &str) -> String {
    json!({
        "time": "2026-11-23T10:00:00.123Z", "event": "deny", "access": "exec", "verdict": "deny", "mode": "secured",
        "policy": policy, "reason": "denied by policy", "file": {"path": path, "sha256": BAD_SHA, "size": 1,
        "kind": "elf-executable", "dev": 1, "ino": 2}, "process": {"pid": 1, "exe": "/usr/bin/bash", "uid": 0,
        "user": "root", "ancestors": []}
    })
    .to_string()
}
