//! The store's behaviour, checked the same way on SQLite and on PostgreSQL.
//!
//! PostgreSQL comes from `PORTCULLIS_TEST_POSTGRES` (a `postgres://` URL); `./x test` starts a
//! throw-away server on loopback and sets it.

use portcullis_store::{Backend, LoginError, Role, SecretKeyError, SecretKeys, Store, StoreError};

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

/// The secret key of every test (and benchmark) that uses the throw-away PostgreSQL
/// database (crates/server/tests/common has the same): they share it, and a store reseals
/// what it finds with its own key.
const SHARED_SECRET_KEY: &str = "5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e";

fn test_keys() -> SecretKeys {
    SecretKeys::parse(SHARED_SECRET_KEY, "the tests' shared secret key").unwrap()
}

async fn each_backend(check: impl AsyncFn(Store)) {
    let dir = tempfile::tempdir().unwrap();
    let sqlite =
        Store::connect(&format!("sqlite://{}/portcullis.db", dir.path().display()), test_keys()).await.unwrap();
    assert_eq!(sqlite.backend(), Backend::Sqlite);
    check(sqlite).await;
    // WAL: the embedded database keeps a write-ahead log beside the file.
    assert!(dir.path().join("portcullis.db-wal").exists() || dir.path().join("portcullis.db").exists());
    let pg = Store::connect(&postgres_url(), test_keys()).await.unwrap();
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

use portcullis_policy_file::document::{ApplicationDoc, GroupDoc, PolicyDoc, RuleDoc};
use portcullis_store::{
    BUILTIN_REPORTED_POLICY, Change, Enrolled, Enrollment, EventFilter, Move, NewEvent, Seen, TokenLimits,
};

fn permit(name: &str, app: &str) -> PolicyDoc {
    PolicyDoc { name: name.into(), applications: vec![app.into()], action: "permit".into(), ..Default::default() }
}

#[tokio::test]
async fn model_changes_are_audited_bump_the_version_and_read_back_as_a_valid_document() {
    each_backend(async |store: Store| {
        let org = store.create_organization(&unique("model")).await.unwrap();
        let change = Change { org_id: org, actor: "user alice" };
        let v0 = store.org_version(org).await.unwrap();
        // Every organization starts with the built-in deny of reported builds, first in order.
        let policies = store.policies(org).await.unwrap();
        assert_eq!(policies.len(), 1);
        assert!(policies[0].builtin && policies[0].doc.name == BUILTIN_REPORTED_POLICY);

        assert!(matches!(
            store.create_group(change, &GroupDoc { path: "Servers/Web".into(), ..Default::default() }).await,
            Err(StoreError::Invalid(m)) if m.contains("\"Servers\" does not exist")
        ));
        let servers = store.create_group(change, &GroupDoc { path: "Servers".into(), ..Default::default() }).await.unwrap();
        store.create_group(change, &GroupDoc { path: "Servers/Web".into(), mode: Some("monitor".into()), ..Default::default() })
            .await
            .unwrap();
        let app = ApplicationDoc {
            name: "Editor".into(),
            description: None,
            rules: vec![RuleDoc { path: Some("/opt/editor/**".into()), ..Default::default() }],
            except: vec![RuleDoc { path: Some("/opt/editor/plugins/**".into()), ..Default::default() }],
        };
        let app_id = store.create_application(change, &app).await.unwrap();
        let stored = store.applications(org).await.unwrap();
        assert_eq!(stored.iter().find(|a| a.id == app_id).unwrap().doc.except, app.except, "exclusions are kept");
        let a = store.create_policy(change, &permit("Permit editor", "Editor")).await.unwrap();
        let b = store.create_policy(change, &permit("Permit editor again", "Editor")).await.unwrap();
        assert_eq!(store.org_version(org).await.unwrap(), v0 + 5);

        // Order: built-in (10), a (20), b (30); b to the top, then a down.
        store.move_policy(change, b, Move::Top).await.unwrap();
        let order: Vec<i64> = store.policies(org).await.unwrap().iter().map(|p| p.id).collect();
        assert_eq!(order[0], b);
        store.move_policy(change, a, Move::Up).await.unwrap();
        let names: Vec<String> = store.policies(org).await.unwrap().into_iter().map(|p| p.doc.name).collect();
        assert_eq!(names, ["Permit editor again", "Permit editor", BUILTIN_REPORTED_POLICY]);

        // In use: the application cannot go; built-ins cannot be removed; a group with
        // subgroups cannot go.
        assert!(matches!(store.delete_application(change, app_id).await, Err(StoreError::Invalid(m)) if m.contains("Permit editor")));
        let builtin = store.policies(org).await.unwrap().into_iter().find(|p| p.builtin).unwrap();
        assert!(matches!(store.delete_policies(change, &[a, builtin.id]).await, Err(StoreError::Invalid(_))));
        assert_eq!(store.policies(org).await.unwrap().len(), 3, "all or nothing");
        assert!(matches!(store.delete_group(change, servers).await, Err(StoreError::Invalid(_))));

        let (version, doc) = store.document(org).await.unwrap();
        assert_eq!(version, store.org_version(org).await.unwrap());
        let loaded = portcullis_policy_file::load(&doc.to_json(), portcullis_policy_file::Format::Json).unwrap();
        assert_eq!(loaded.set.policies.len(), 3);
        assert_eq!(loaded.set.groups.len(), 2);

        store.delete_policies(change, &[a, b]).await.unwrap();
        let log = store.audit_log(org, 3).await.unwrap();
        assert_eq!((log[0].action.as_str(), log[0].object.as_str()), ("delete", "2 policies"));
        assert!(log[0].before_json.as_deref().unwrap().contains("Permit editor again"));
        assert_eq!(log[0].actor, "user alice");
        assert_eq!(log[1].action, "move up");
    })
    .await;
}

#[tokio::test]
async fn agents_enroll_with_a_group_token_and_deliver_each_event_once() {
    each_backend(async |store: Store| {
        let org = store.create_organization(&unique("fleet")).await.unwrap();
        let change = Change { org_id: org, actor: "user alice" };
        let group = store.create_group(change, &GroupDoc { path: "Linux".into(), ..Default::default() }).await.unwrap();
        let enrollment = |token, current_credential| Enrollment {
            token,
            hostname: "web-01",
            os: "linux",
            host_json: r#"{"hostname":"web-01"}"#,
            agent_version: "0.1.0",
            current_credential,
            credential: None,
        };
        let active = |e: Enrolled| match e {
            Enrolled::Active { identity, credential, .. } => (identity, credential),
            other => panic!("expected an active enrollment, got {other:?}"),
        };
        assert!(matches!(store.enroll(&enrollment("pce_wrong", None)).await, Err(StoreError::NotFound(_))));
        let token = store.rotate_enrollment_token(change, group, TokenLimits::default()).await.unwrap();
        let (agent, credential) = active(store.enroll(&enrollment(&token, None)).await.unwrap());
        assert_eq!((agent.org_id, agent.name.as_str()), (org, "web-01"));
        assert_eq!(store.agent(&credential).await.unwrap().unwrap(), agent);
        // Enrolling again without the credential is held; with it, the credential is replaced.
        let held = store.enroll(&enrollment(&token, None)).await.unwrap();
        let Enrolled::Pending { credential: held_credential, .. } = held else { panic!("expected pending: {held:?}") };
        assert!(store.is_pending(&held_credential).await.unwrap());
        assert!(store.agent(&held_credential).await.unwrap().is_none());
        assert!(store.agent(&credential).await.unwrap().is_some(), "the enrolled agent is untouched");
        let (again, second) = active(store.enroll(&enrollment(&token, Some(&credential))).await.unwrap());
        assert_eq!(again.computer_id, agent.computer_id);
        assert!(store.agent(&credential).await.unwrap().is_none());
        assert!(store.agent(&second).await.unwrap().is_some());
        let computers = store.computers(org).await.unwrap();
        assert_eq!(computers[0].doc.group.as_deref(), Some("Linux"));
        let seen = Seen {
            computer_id: agent.computer_id,
            at_ms: 42,
            bundle_version: 7,
            host: Some(("{}".into(), "9.9".into())),
            bundle_error: None,
            events_lost: 0,
        };
        store.agents_seen(&[seen]).await.unwrap();
        let c = &store.computers(org).await.unwrap()[0];
        assert_eq!((c.last_seen_ms, c.bundle_version, c.agent_version.as_deref()), (Some(42), 7, Some("9.9")));

        let event = |key: &str, path: &str| NewEvent {
            key: key.into(),
            fields: portcullis_store::EventFields {
                at_ms: 1_000,
                event: "deny".into(),
                verdict: "deny".into(),
                mode: "secured".into(),
                policy: Some(BUILTIN_REPORTED_POLICY.into()),
                reason: "denied".into(),
                file_path: path.into(),
                file_sha256: "ab".repeat(32),
                file_kind: "elf-executable".into(),
                record_json: "{}".into(),
                ..Default::default()
            },
        };
        let batch = [event("k1", "/tmp/a_b"), event("k2", "/tmp/a%b")];
        assert_eq!(store.insert_events(org, agent.computer_id, &batch).await.unwrap(), (2, 0));
        assert_eq!(
            store.insert_events(org, agent.computer_id, &batch).await.unwrap(),
            (0, 2),
            "a retry stores nothing"
        );
        let all = EventFilter { limit: 10, ..Default::default() };
        assert_eq!(store.events(org, &all).await.unwrap().len(), 2);
        let by_file = EventFilter { file: Some("a_b".into()), limit: 10, ..Default::default() };
        let found = store.events(org, &by_file).await.unwrap();
        assert_eq!(found.len(), 1, "_ is a literal, not a wildcard");
        assert_eq!(found[0].computer, "web-01");
        let by_hash =
            EventFilter { file: Some("ABAB".into()), verdict: Some("deny".into()), limit: 10, ..Default::default() };
        assert_eq!(store.events(org, &by_hash).await.unwrap().len(), 2);
        let later = EventFilter { from_ms: Some(2_000), limit: 10, ..Default::default() };
        assert!(store.events(org, &later).await.unwrap().is_empty());
        // Another organization sees none of it.
        let other = store.create_organization(&unique("other")).await.unwrap();
        assert!(store.events(other, &all).await.unwrap().is_empty());
        assert!(store.event(other, found[0].id).await.is_err());
    })
    .await;
}

// ----- secrets sealed outside the database -------------------------------------------------

/// A database of its own on the throw-away PostgreSQL server (the tests share the main one,
/// and this test changes the key every store there must use), dropped by the caller.
async fn own_postgres_database() -> (String, String) {
    sqlx::any::install_default_drivers();
    let url = postgres_url();
    let name = unique("portcullis_keys").replace('-', "_");
    let admin = sqlx::AnyPool::connect(&url).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&admin).await.unwrap();
    admin.close().await;
    let (base, _) = url.rsplit_once('/').unwrap();
    (format!("{base}/{name}"), name)
}

async fn raw_seeds(url: &str) -> Vec<(i64, String)> {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    let rows =
        sqlx::query_as("SELECT org_id, bundle_seed FROM org_state ORDER BY org_id").fetch_all(&pool).await.unwrap();
    pool.close().await;
    rows
}

async fn set_raw_seed(url: &str, org: i64, value: &str) {
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    sqlx::query("UPDATE org_state SET bundle_seed = $1 WHERE org_id = $2")
        .bind(value)
        .bind(org)
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
}

async fn forget_sealing(url: &str) {
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    sqlx::query("DELETE FROM store_flags").execute(&pool).await.unwrap();
    pool.close().await;
}

fn keys(hex_pair: &str) -> SecretKeys {
    SecretKeys::parse(&hex_pair.repeat(32), hex_pair).unwrap()
}

/// What a stolen database file or backup gives: no signing seed. The seed opens only with
/// the server's secret key; a new secret key is taken by putting it first (every seed is
/// sealed again at start); a seed stored in plain text before sealing existed is replaced
/// by an endorsed rotation at the first start, and refused when it appears afterwards; a
/// sealed seed moved to another organization's row does not open; none of these stops the
/// start for the other organizations, and `reset_bundle_key` repairs each.
async fn seeds_are_sealed_and_follow_the_secret_key(url: &str) {
    let store = Store::connect(url, keys("a1")).await.unwrap();
    let acme = store.create_organization("acme").await.unwrap();
    let other = store.create_organization("other").await.unwrap();
    let public = store.bundle_key(acme).await.unwrap().public();
    assert_eq!(store.bundle_seed_sealed_with(acme).await.unwrap(), Some(keys("a1").ids()[0].clone()));
    drop(store);
    let raw = raw_seeds(url).await;
    for (_, value) in &raw {
        assert!(value.starts_with("v1."), "{value}");
        assert_eq!(value.split('.').nth(1).unwrap(), keys("a1").ids()[0]);
    }
    // The wrong key file: refused at start, naming the key the seeds need.
    let e = Store::connect(url, keys("b2")).await.unwrap_err();
    assert!(matches!(e, StoreError::Secret(SecretKeyError::UnknownKey { .. })), "{e}");
    assert!(e.to_string().contains("older key may follow"), "{e}");
    // A new key first, the old one after: resealed, the same signing key.
    let both = SecretKeys::parse(&format!("{}\n{}\n", "b2".repeat(32), "a1".repeat(32)), "f").unwrap();
    let store = Store::connect(url, both).await.unwrap();
    assert_eq!(store.sealing().resealed, 2);
    assert_eq!(store.bundle_key(acme).await.unwrap().public(), public);
    drop(store);
    let store = Store::connect(url, keys("b2")).await.unwrap();
    assert_eq!(*store.sealing(), portcullis_store::SealReport::default());
    assert_eq!(store.bundle_key(acme).await.unwrap().public(), public);
    drop(store);

    // A seed in plain text after every seed was sealed: someone with write access wants the
    // server to sign with a key they know. Refused; the other organization starts and works.
    let plain = "c3".repeat(32);
    let known = portcullis_protocol::BundleKey::from_seed([0xc3; 32]).public();
    set_raw_seed(url, acme, &plain).await;
    let store = Store::connect(url, keys("b2")).await.unwrap();
    assert_eq!(store.sealing().damaged.len(), 1, "{:?}", store.sealing());
    assert_eq!(store.sealing().damaged[0].0, acme);
    let e = store.bundle_key(acme).await.err().unwrap();
    assert!(matches!(e, StoreError::Secret(SecretKeyError::Unsealed(_))), "{e}");
    assert!(e.to_string().contains("reset-bundle-key"), "{e}");
    assert!(store.bundle_key(other).await.is_ok());
    let e = store.rotate_bundle_key(Change { org_id: acme, actor: "t" }).await.unwrap_err();
    assert!(matches!(e, StoreError::Secret(SecretKeyError::Unsealed(_))), "a forged key endorses nothing: {e}");
    drop(store);

    // A database from before sealing (no flag yet): its plain seed signs no more; a new
    // sealed key replaces it, endorsed by it, so enrolled agents follow.
    forget_sealing(url).await;
    let store = Store::connect(url, keys("b2")).await.unwrap();
    assert_eq!(store.sealing().rotated, 1, "{:?}", store.sealing());
    let now = store.bundle_key(acme).await.unwrap().public();
    assert_ne!(now, known, "the seed that backups hold no longer signs");
    let chain = store.bundle_key_chain(acme).await.unwrap();
    assert_eq!(chain.last().unwrap().next_after(&known), Some(now.clone()), "endorsed by the key it replaces");
    let audit = store.audit_log(acme, 5).await.unwrap();
    assert!(audit.iter().any(|a| a.action == "rotate" && a.actor.starts_with("server")), "{audit:?}");
    drop(store);
    assert!(!raw_seeds(url).await.iter().any(|(_, v)| v.contains(&plain)));

    // One organization's sealed seed copied into another's row opens for neither the
    // attacker nor the server; the rest of the server starts; a reset repairs it with a key
    // no earlier key endorses (its agents enroll again).
    let sealed_acme = raw_seeds(url).await.into_iter().find(|(o, _)| *o == acme).unwrap().1;
    set_raw_seed(url, other, &sealed_acme).await;
    let store = Store::connect(url, keys("b2")).await.unwrap();
    let e = store.bundle_key(other).await.err().unwrap();
    assert!(matches!(e, StoreError::Secret(SecretKeyError::Tampered(_))), "{e}");
    assert!(store.bundle_key(acme).await.is_ok());
    let fresh = store.reset_bundle_key(Change { org_id: other, actor: "t" }).await.unwrap();
    assert_eq!(store.bundle_key(other).await.unwrap().public(), fresh);
    assert!(store.bundle_key_chain(other).await.unwrap().is_empty());
    assert_ne!(fresh, now);
    drop(store);

    // A seed sealed with a key not given, next to seeds that open: that one row is damaged
    // (the key file is right for the rest), not the whole server.
    let foreign = format!("v1.{}.{}.{}", keys("d4").ids()[0], "00".repeat(12), "00".repeat(48));
    set_raw_seed(url, other, &foreign).await;
    let store = Store::connect(url, keys("b2")).await.unwrap();
    assert_eq!(store.sealing().damaged.iter().map(|d| d.0).collect::<Vec<_>>(), vec![other]);
    assert!(store.bundle_key(acme).await.is_ok());
}

#[tokio::test]
async fn a_copied_database_holds_no_signing_seed_and_the_secret_key_can_be_replaced() {
    let dir = tempfile::tempdir().unwrap();
    seeds_are_sealed_and_follow_the_secret_key(&format!("sqlite://{}/keys.db", dir.path().display())).await;
    let (url, name) = own_postgres_database().await;
    seeds_are_sealed_and_follow_the_secret_key(&url).await;
    let admin = sqlx::AnyPool::connect(&postgres_url()).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE {name} WITH (FORCE)"))).execute(&admin).await.unwrap();
}

#[tokio::test]
async fn a_rotated_bundle_key_is_endorsed_by_the_old_one_and_raises_the_version() {
    each_backend(async |store: Store| {
        let org = store.create_organization(&unique("rot")).await.unwrap();
        let first = store.bundle_key(org).await.unwrap().public();
        let v = store.org_version(org).await.unwrap();
        let change = portcullis_store::Change { org_id: org, actor: "user admin" };
        let second = store.rotate_bundle_key(change).await.unwrap();
        let third = store.rotate_bundle_key(change).await.unwrap();
        assert_eq!(store.bundle_key(org).await.unwrap().public(), third);
        assert_eq!(store.org_version(org).await.unwrap(), v + 2);
        let chain = store.bundle_key_chain(org).await.unwrap();
        assert_eq!(chain.len(), 2);
        assert_eq!(chain[0].next_after(&first), Some(second.clone()));
        assert_eq!(chain[1].next_after(&second), Some(third));
        let audit = store.audit_log(org, 10).await.unwrap();
        assert_eq!(audit.iter().filter(|a| a.action == "rotate" && a.object == "bundle key").count(), 2);
    })
    .await;
}

#[tokio::test]
async fn a_sqlite_backup_opens_whole_and_a_restore_moves_versions_past_the_agents() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(&format!("sqlite://{}/live.db", dir.path().display()), test_keys()).await.unwrap();
    let org = store.create_organization("Acme").await.unwrap();
    store.create_user(org, "alice", Role::Admin, "correct horse").await.unwrap();
    let version = store.org_version(org).await.unwrap();
    let copy = dir.path().join("copy.db");
    store.backup_to(&copy).await.unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&copy).unwrap().permissions().mode() & 0o777, 0o600);
    assert!(store.backup_to(&copy).await.is_err(), "never over an existing file");
    // The copy is the whole database: it opens with the same keys, with its users.
    let restored = Store::connect(&format!("sqlite://{}", copy.display()), test_keys()).await.unwrap();
    restored.login("Acme", "alice", "correct horse").await.unwrap();
    let before = portcullis_store::now_ms();
    let jumps = restored.continue_versions().await.unwrap();
    assert_eq!(jumps.len(), 1);
    assert_eq!((jumps[0].organization.as_str(), jumps[0].before), ("Acme", version));
    assert!(jumps[0].after >= before && jumps[0].after > version, "{jumps:?}");
    assert_eq!(restored.org_version(org).await.unwrap(), jumps[0].after);
    // Twice in a row still counts up.
    let again = restored.continue_versions().await.unwrap();
    assert!(again[0].after > jumps[0].after);
    restored.checkpoint_and_close().await.unwrap();
    // PostgreSQL is pg_dump's: refused, and nothing is written.
    let pg = Store::connect(&postgres_url(), test_keys()).await.unwrap();
    let none = dir.path().join("pg.db");
    assert!(matches!(pg.backup_to(&none).await, Err(StoreError::Invalid(_))));
    assert!(!none.exists());
}

// ----- forwarding and retention --------------------------------------------------------

/// An organization with one enrolled computer; its id and the computer's.
async fn org_with_computer(store: &Store, name: &str) -> (i64, i64) {
    let org = store.create_organization(&unique(name)).await.unwrap();
    let change = Change { org_id: org, actor: "user alice" };
    let group = store.create_group(change, &GroupDoc { path: "Linux".into(), ..Default::default() }).await.unwrap();
    let token = store.rotate_enrollment_token(change, group, TokenLimits::default()).await.unwrap();
    (org, enroll_computer(store, &token, "web-01").await)
}

/// Enroll a computer named `hostname` with `token`; its id.
async fn enroll_computer(store: &Store, token: &str, hostname: &str) -> i64 {
    let e = Enrollment {
        token,
        hostname,
        os: "linux",
        host_json: "{}",
        agent_version: "0.1.0",
        current_credential: None,
        credential: None,
    };
    match store.enroll(&e).await.unwrap() {
        Enrolled::Active { identity, .. } => identity.computer_id,
        other => panic!("{other:?}"),
    }
}

fn numbered_events(from: usize, n: usize) -> Vec<NewEvent> {
    (from..from + n)
        .map(|i| NewEvent {
            key: format!("k{i}"),
            fields: portcullis_store::EventFields {
                at_ms: 1_000,
                event: "deny".into(),
                verdict: "deny".into(),
                mode: "secured".into(),
                reason: "denied".into(),
                file_path: format!("/tmp/{i}"),
                file_sha256: "ab".repeat(32),
                file_kind: "elf-executable".into(),
                record_json: format!("{{\"n\":{i}}}"),
                ..Default::default()
            },
        })
        .collect()
}

#[tokio::test]
async fn forwarders_keep_a_sealed_token_and_a_cursor_moved_only_by_the_lease_holder() {
    use portcullis_store::{ForwarderSpec, TokenChange};
    each_backend(async |store: Store| {
        let (org, computer) = org_with_computer(&store, "forward").await;
        let change = Change { org_id: org, actor: "user alice" };
        store.insert_events(org, computer, &numbered_events(0, 3)).await.unwrap();
        let spec = |name: &str| ForwarderSpec {
            name: name.into(),
            url: "https://siem.example.com/in".into(),
            ca_pem: None,
            enabled: true,
        };
        let secret = "s3cret-token-value";
        let old = store.create_forwarder(change, &spec("History"), Some(secret), true).await.unwrap();
        let new = store.create_forwarder(change, &spec("New only"), None, false).await.unwrap();
        assert!(matches!(
            store.create_forwarder(change, &spec("New only"), None, false).await,
            Err(StoreError::Exists { .. })
        ));
        let rows = store.forwarders(org).await.unwrap();
        assert_eq!(
            rows.iter().map(|r| (r.name.as_str(), r.backlog, r.has_token.0)).collect::<Vec<_>>(),
            [("History", 3, true), ("New only", 0, false)]
        );
        // The token is in no row and no audit entry in clear.
        let log = store.audit_log(org, 10).await.unwrap();
        assert!(log.iter().all(|e| !format!("{e:?}").contains(secret)));
        let jobs = store.forwarder_jobs().await.unwrap();
        let job = jobs.iter().find(|j| j.id == old).unwrap();
        assert_eq!(job.token, Ok(Some(secret.to_owned())));
        // Renamed: the token still opens (it is bound to the name, and resealed).
        store.update_forwarder(change, old, &spec("Renamed"), TokenChange::Keep).await.unwrap();
        let jobs = store.forwarder_jobs().await.unwrap();
        assert_eq!(jobs.iter().find(|j| j.id == old).unwrap().token, Ok(Some(secret.to_owned())));

        // Fresh events wait for the settling time.
        assert!(store.events_to_forward(org, 0, 10).await.unwrap().is_empty());
        tokio::time::sleep(std::time::Duration::from_millis(portcullis_store::SETTLE_MS as u64 + 200)).await;
        let batch = store.events_to_forward(org, 0, 2).await.unwrap();
        assert_eq!(batch.iter().map(|e| e.computer.as_str()).collect::<Vec<_>>(), ["web-01", "web-01"]);
        // One lease at a time; only its holder moves the cursor, and never backwards.
        let far = portcullis_store::now_ms() + 60_000;
        assert!(store.lease_forwarder(old, "server A", far).await.unwrap());
        assert!(!store.lease_forwarder(old, "server B", far).await.unwrap());
        assert!(!store.forwarded(old, "server B", batch[1].id, 2).await.unwrap());
        assert!(store.forwarded(old, "server A", batch[1].id, 2).await.unwrap());
        assert!(!store.forwarded(old, "server A", batch[0].id, 1).await.unwrap(), "not backwards");
        store.forward_failed(old, "server A", &"x".repeat(10_000)).await.unwrap();
        let row = store.forwarder(org, old).await.unwrap();
        assert_eq!((row.cursor_id, row.sent, row.backlog), (batch[1].id, 2, 1));
        assert_eq!(row.last_error.unwrap().len(), 500);
        // An expired lease can be taken over; a disabled destination cannot be leased.
        assert!(store.lease_forwarder(new, "server A", 0).await.unwrap());
        assert!(store.lease_forwarder(new, "server B", far).await.unwrap());
        let off = ForwarderSpec { enabled: false, ..spec("New only") };
        store.update_forwarder(change, new, &off, TokenChange::Set("t2".into())).await.unwrap();
        assert!(!store.lease_forwarder(new, "server B", far).await.unwrap());
        assert!(store.forwarder_jobs().await.unwrap().iter().all(|j| j.id != new));
        // Another organization sees and changes none of it.
        let (other, _) = org_with_computer(&store, "other").await;
        assert!(store.forwarders(other).await.unwrap().is_empty());
        let theirs = Change { org_id: other, actor: "user mallory" };
        assert!(matches!(store.delete_forwarder(theirs, old).await, Err(StoreError::NotFound(_))));
        store.delete_forwarder(change, old).await.unwrap();
        assert_eq!(store.forwarders(org).await.unwrap().len(), 1);
    })
    .await;
}

#[tokio::test]
async fn retention_by_count_and_age_keeps_what_a_destination_has_not_received_and_lets_writers_in() {
    use portcullis_store::{ForwarderSpec, Retention};
    each_backend(async |store: Store| {
        let (org, computer) = org_with_computer(&store, "retain").await;
        let change = Change { org_id: org, actor: "user alice" };
        for chunk in 0..10 {
            store.insert_events(org, computer, &numbered_events(chunk * 500, 500)).await.unwrap();
        }
        let count = async |store: &Store| {
            store.events(org, &EventFilter { limit: 1000, ..Default::default() }).await.unwrap().len()
        };
        let now = portcullis_store::now_ms();
        assert_eq!(store.prune_events(org, now, 100).await.unwrap(), 0, "no retention set: nothing goes");
        store.set_retention(change, Retention { days: None, events: Some(4_000) }).await.unwrap();
        // A writer keeps inserting while the prune runs in small transactions: some of its
        // inserts finish before the prune does.
        let pruned = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = {
            let (store, pruned) = (store.clone(), pruned.clone());
            tokio::spawn(async move {
                let mut during = 0;
                for i in 0..50 {
                    store.insert_events(org, computer, &numbered_events(100_000 + i, 1)).await.unwrap();
                    during += u32::from(!pruned.load(std::sync::atomic::Ordering::SeqCst));
                }
                during
            })
        };
        let deleted = store.prune_events(org, now, 50).await.unwrap();
        pruned.store(true, std::sync::atomic::Ordering::SeqCst);
        assert!(writer.await.unwrap() > 0, "no insert finished while the prune ran");
        assert!((1_000..=1_050).contains(&deleted), "{deleted}");
        // The newest are kept: the last inserted is still there.
        let newest = store.events(org, &EventFilter { limit: 1, ..Default::default() }).await.unwrap();
        assert_eq!(newest[0].fields.file_path, "/tmp/100049");

        // A destination that has received nothing holds everything back.
        let spec = ForwarderSpec { name: "SIEM".into(), url: "https://siem.example.com".into(), ..Default::default() };
        let spec = ForwarderSpec { enabled: true, ..spec };
        store.create_forwarder(change, &spec, None, true).await.unwrap();
        store.set_retention(change, Retention { days: Some(1), events: Some(10) }).await.unwrap();
        let two_days_on = now + 2 * 86_400_000;
        assert_eq!(store.prune_events(org, two_days_on, 100).await.unwrap(), 0);
        // Disabled: age applies, and nothing is left.
        store
            .update_forwarder(
                change,
                store.forwarders(org).await.unwrap()[0].id,
                &ForwarderSpec { enabled: false, ..spec },
                portcullis_store::TokenChange::Keep,
            )
            .await
            .unwrap();
        assert!(store.prune_events(org, now, 100).await.unwrap() >= 4_000);
        assert_eq!(count(&store).await, 10, "by count, ten are left");
        assert_eq!(store.prune_events(org, two_days_on, 100).await.unwrap(), 10, "by age, all go");
        assert_eq!(store.retention(org).await.unwrap(), Retention { days: Some(1), events: Some(10) });
        assert_eq!(store.retentions().await.unwrap().iter().filter(|(o, _)| *o == org).count(), 1);
    })
    .await;
}

#[tokio::test]
async fn contacts_are_written_many_to_a_statement_and_each_lands_on_its_own_computer() {
    each_backend(async |store: Store| {
        let org = store.create_organization(&unique("contacts")).await.unwrap();
        let change = Change { org_id: org, actor: "user alice" };
        let group = store.create_group(change, &GroupDoc { path: "Linux".into(), ..Default::default() }).await.unwrap();
        let token = store.rotate_enrollment_token(change, group, TokenLimits::default()).await.unwrap();
        let mut ids = Vec::new();
        for name in ["web-01", "web-02", "web-03"] {
            ids.push(enroll_computer(&store, &token, name).await);
        }
        let contact = |computer_id: i64, n: i64| Seen {
            computer_id,
            at_ms: 1_000 + n,
            bundle_version: n,
            host: None,
            bundle_error: None,
            events_lost: 0,
        };
        // Computers that do not exist (a computer deleted since its poll) sort first, so the
        // three real ones straddle the first statement's end: the last of the first and the
        // first two of the second.
        let mut batch: Vec<Seen> = (1..portcullis_store::SEEN_PER_STATEMENT as i64).map(|i| contact(-i, 99)).collect();
        batch.push(Seen { bundle_error: Some("bad signature".into()), events_lost: 3, ..contact(ids[0], 11) });
        batch.push(Seen { host: Some((r#"{"hostname":"web-02"}"#.into(), "2.0".into())), ..contact(ids[1], 12) });
        batch.push(contact(ids[2], 13));
        batch.reverse();
        store.agents_seen(&batch).await.unwrap();
        let rows = store.computers(org).await.unwrap();
        let got: Vec<_> = rows
            .iter()
            .map(|c| {
                (c.last_seen_ms, c.bundle_version, c.bundle_error.as_deref(), c.events_lost, c.agent_version.as_deref())
            })
            .collect();
        assert_eq!(
            got,
            [
                (Some(1_011), 11, Some("bad signature"), 3, Some("0.1.0")),
                (Some(1_012), 12, None, 0, Some("2.0")),
                (Some(1_013), 13, None, 0, Some("0.1.0")),
            ]
        );
        // A later contact clears the error; losses add up.
        store.agents_seen(&[Seen { events_lost: 2, ..contact(ids[0], 14) }]).await.unwrap();
        let c = &store.computers(org).await.unwrap()[0];
        assert_eq!((c.bundle_version, c.bundle_error.as_deref(), c.events_lost), (14, None, 5));
    })
    .await;
}
