//! The store's behaviour, checked the same way on SQLite and on PostgreSQL.
//!
//! PostgreSQL comes from `PORTCULLIS_TEST_POSTGRES` (a `postgres://` URL); `./x test` starts a
//! throw-away server on loopback and sets it.

use portcullis_store::{Backend, LoginError, Role, Store, StoreError};

fn postgres_url() -> String {
    std::env::var("PORTCULLIS_TEST_POSTGRES")
        .expect("PORTCULLIS_TEST_POSTGRES is not set: run the tests with ./x test, which starts PostgreSQL on loopback")
}

/// A name no other test run has used, so runs can share one PostgreSQL database.
fn unique(prefix: &str) -> String {
    let mut b = [0u8; 6];
    getrandom::fill(&mut b).unwrap();
    format!("{prefix}-{}", b.iter().map(|x| format!("{x:02x}")).collect::<String>())
}

async fn each_backend(check: impl AsyncFn(Store)) {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = Store::connect(&format!("sqlite://{}/portcullis.db", dir.path().display())).await.unwrap();
    assert_eq!(sqlite.backend(), Backend::Sqlite);
    check(sqlite).await;
    // WAL: the embedded database keeps a write-ahead log beside the file.
    assert!(dir.path().join("portcullis.db-wal").exists() || dir.path().join("portcullis.db").exists());
    let pg = Store::connect(&postgres_url()).await.unwrap();
    assert_eq!(pg.backend(), Backend::Postgres);
    check(pg).await;
}

#[tokio::test]
async fn users_log_in_with_argon2_passwords_and_sessions_and_tokens_identify_them() {
    each_backend(async |store: Store| {
        let org_name = unique("acme");
        let org = store.create_organization(&org_name).await.unwrap();
        assert!(matches!(store.create_organization(&org_name).await, Err(StoreError::Exists { .. })));
        store.create_user(org, "alice", Role::Admin, "correct horse").await.unwrap();
        assert!(matches!(store.create_user(org, "alice", Role::Auditor, "x").await, Err(StoreError::Exists { .. })));

        let (sid, session) = store.login(&org_name, "alice", "correct horse").await.unwrap();
        assert_eq!((session.user.name.as_str(), session.user.role, session.user.org_id), ("alice", Role::Admin, org));
        assert_eq!(session.csrf.len(), 64);
        let again = store.session(&sid).await.unwrap().expect("the session is found by its cookie value");
        assert_eq!(again.user, session.user);
        assert_eq!(again.csrf, session.csrf);
        assert!(store.session("not-a-session").await.unwrap().is_none());
        store.logout(&sid).await.unwrap();
        assert!(store.session(&sid).await.unwrap().is_none());

        let token = store.create_token(session.user.id, "ci").await.unwrap();
        assert!(token.starts_with("pct_"));
        assert_eq!(store.user_by_token(&token).await.unwrap().unwrap().name, "alice");
        assert!(store.user_by_token("pct_0000").await.unwrap().is_none());
    })
    .await;
}

#[tokio::test]
async fn wrong_passwords_are_refused_alike_and_throttled_after_five() {
    each_backend(async |store: Store| {
        let org_name = unique("throttle");
        let org = store.create_organization(&org_name).await.unwrap();
        store.create_user(org, "bob", Role::Approver, "right").await.unwrap();
        assert!(matches!(store.login(&org_name, "nobody", "right").await, Err(LoginError::Wrong)));
        assert!(matches!(store.login("no-such-org", "bob", "right").await, Err(LoginError::Wrong)));
        for _ in 0..5 {
            assert!(matches!(store.login(&org_name, "bob", "wrong").await, Err(LoginError::Wrong)));
        }
        // Even the right password waits out the window now.
        match store.login(&org_name, "bob", "right").await {
            Err(LoginError::Throttled { retry_after_s }) => assert!((1..=300).contains(&retry_after_s)),
            other => panic!("expected throttling, got {other:?}"),
        }
    })
    .await;
}

#[tokio::test]
async fn organizations_do_not_see_each_others_users_or_audit_entries() {
    each_backend(async |store: Store| {
        let (a_name, b_name) = (unique("org-a"), unique("org-b"));
        let a = store.create_organization(&a_name).await.unwrap();
        let b = store.create_organization(&b_name).await.unwrap();
        store.create_user(a, "carol", Role::Admin, "pw-a").await.unwrap();
        store.create_user(b, "carol", Role::Auditor, "pw-b").await.unwrap();
        // Same user name, separate accounts: each password works only in its own organization.
        assert!(store.login(&a_name, "carol", "pw-b").await.is_err());
        let (_, in_b) = store.login(&b_name, "carol", "pw-b").await.unwrap();
        assert_eq!((in_b.user.org_id, in_b.user.role), (b, Role::Auditor));

        store.audit(a, "user carol", "create", "policy 1", None, Some(r#"{"name":"p"}"#)).await.unwrap();
        store.audit(a, "user carol", "delete", "policy 1", Some(r#"{"name":"p"}"#), None).await.unwrap();
        let log = store.audit_log(a, 10).await.unwrap();
        assert_eq!(log.len(), 2);
        assert_eq!(log[0].action, "delete", "newest first");
        assert_eq!(log[0].before_json.as_deref(), Some(r#"{"name":"p"}"#));
        assert_eq!(log[1].after_json.as_deref(), Some(r#"{"name":"p"}"#));
        assert!(store.audit_log(b, 10).await.unwrap().is_empty());
    })
    .await;
}
