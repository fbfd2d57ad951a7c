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
        };
        let app_id = store.create_application(change, &app).await.unwrap();
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
        let loaded = portcullis_policy_file::parse(
            &doc.to_json(),
            portcullis_policy_file::Format::Json,
            &portcullis_catalog::builtin_applications(),
        )
        .unwrap();
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
        };
        store.agents_seen(&[seen]).await.unwrap();
        let c = &store.computers(org).await.unwrap()[0];
        assert_eq!((c.last_seen_ms, c.bundle_version, c.agent_version.as_deref()), (Some(42), 7, Some("9.9")));

        let event = |key: &str, path: &str| NewEvent {
            key: key.into(),
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
