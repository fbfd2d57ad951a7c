//! The API through `app(state)` with no socket, on SQLite and on PostgreSQL: sessions and
//! CSRF, tokens, roles, tenancy, bad input. Every refused request must write nothing: each
//! check compares the audit log before and after.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use portcullis_server::{AppState, MAX_BODY, app};
use portcullis_store::{Role, Store};
use serde_json::{Value, json};
use tower::ServiceExt;

fn unique(prefix: &str) -> String {
    let mut b = [0u8; 6];
    getrandom::fill(&mut b).unwrap();
    format!("{prefix}-{}", b.iter().map(|x| format!("{x:02x}")).collect::<String>())
}

async fn each_backend(check: impl AsyncFn(Store)) {
    let dir = tempfile::tempdir().unwrap();
    check(Store::connect(&format!("sqlite://{}/server.db", dir.path().display())).await.unwrap()).await;
    let pg = std::env::var("PORTCULLIS_TEST_POSTGRES").expect(
        "PORTCULLIS_TEST_POSTGRES is not set: run the tests with ./x test, which starts PostgreSQL on loopback",
    );
    check(Store::connect(&pg).await.unwrap()).await;
}

struct Client {
    state: AppState,
    cookie: Option<String>,
    csrf: Option<String>,
    bearer: Option<String>,
}

struct Reply {
    status: StatusCode,
    body: Value,
    set_cookie: Option<String>,
}

impl Client {
    fn new(store: &Store) -> Client {
        Client {
            state: AppState { store: store.clone(), secure_cookies: true },
            cookie: None,
            csrf: None,
            bearer: None,
        }
    }

    async fn send(&self, method: &str, uri: &str, body: Option<Body>, content_type: &str, csrf: bool) -> Reply {
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
        let res = app(self.state.clone()).oneshot(req.body(body.unwrap_or_else(Body::empty)).unwrap()).await.unwrap();
        let status = res.status();
        let set_cookie = res.headers().get(header::SET_COOKIE).map(|v| v.to_str().unwrap().to_owned());
        let bytes = axum::body::to_bytes(res.into_body(), 1 << 20).await.unwrap();
        Reply { status, body: serde_json::from_slice(&bytes).unwrap_or(Value::Null), set_cookie }
    }

    async fn json(&self, method: &str, uri: &str, body: Value) -> Reply {
        self.send(method, uri, Some(Body::from(body.to_string())), "application/json", true).await
    }

    async fn get(&self, uri: &str) -> Reply {
        self.send("GET", uri, None, "", false).await
    }

    async fn login(store: &Store, org: &str, user: &str, password: &str) -> Client {
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

async fn audit_len(store: &Store, org: i64) -> usize {
    store.audit_log(org, 1000).await.unwrap().len()
}

struct Org {
    name: String,
    id: i64,
}

async fn org_with_users(store: &Store) -> Org {
    let name = unique("org");
    let id = store.create_organization(&name).await.unwrap();
    store.create_user(id, "admin", Role::Admin, "admin-password").await.unwrap();
    store.create_user(id, "approver", Role::Approver, "approver-password").await.unwrap();
    store.create_user(id, "auditor", Role::Auditor, "auditor-password").await.unwrap();
    Org { name, id }
}

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
