//! Several servers on one PostgreSQL database: a change saved through one reaches an agent
//! long-polling another at once, by LISTEN/NOTIFY — no server polls for versions.

use portcullis_server::AppState;
use portcullis_store::Store;
use serde_json::json;
use std::time::{Duration, Instant};

mod common;
use common::*;

#[tokio::test]
async fn a_change_saved_on_one_server_reaches_an_agent_long_polling_another_at_once() {
    let url = postgres_url();
    // Two servers: two pools, two hubs, each with its own listener.
    let store_a = Store::connect(&url, test_keys()).await.unwrap();
    let store_b = Store::connect(&url, test_keys()).await.unwrap();
    let org = org_with_users(&store_a).await;
    let admin_a = Client::login(&store_a, &org.name, "admin", "admin-password").await;
    let server_b = AppState::new(store_b.clone(), true);
    let g = admin_a.json("POST", "/api/groups", json!({"path": "Linux"})).await.body["id"].as_i64().unwrap();
    let token = admin_a.json("POST", &format!("/api/groups/{g}/enrollment-token"), json!({})).await.body["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let host = json!({"hostname": "web-01", "os": "linux", "agent_version": "0.1.0"});
    let enrolled = agent_client(&store_b, &server_b, None)
        .json("POST", "/api/agent/enroll", json!({"token": token, "host": host}))
        .await;
    assert!(enrolled.status.is_success(), "{:?}", enrolled.body);
    let credential = enrolled.body["credential"].as_str().unwrap().to_owned();
    let agent = agent_client(&store_b, &server_b, Some(&credential));
    // Server B learns the current version, then the agent waits on B.
    let version = store_b.org_version(org.id).await.unwrap();
    let r = agent.json("POST", "/api/agent/poll", json!({"after": version, "wait_s": 0})).await;
    assert_eq!(r.status.as_u16(), 204, "nothing newer yet");
    let heard = server_b.hub.announcements();
    for round in 0..3 {
        let waiting = {
            let agent = agent_client(&store_b, &server_b, Some(&credential));
            let after = store_b.org_version(org.id).await.unwrap();
            tokio::spawn(
                async move { agent.json("POST", "/api/agent/poll", json!({"after": after, "wait_s": 20})).await },
            )
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!waiting.is_finished(), "round {round}: the long-poll waits");
        // The change goes through server A.
        let saved = Instant::now();
        let r = admin_a
            .json(
                "POST",
                "/api/applications",
                json!({"name": format!("Tool {round}"), "rules": [{"path": "/opt/t/**"}]}),
            )
            .await;
        assert_eq!(r.status.as_u16(), 201, "{:?}", r.body);
        let reply = tokio::time::timeout(Duration::from_secs(5), waiting).await.expect("no bundle within 5 s").unwrap();
        let took = saved.elapsed();
        assert_eq!(reply.status.as_u16(), 200, "round {round}: a bundle");
        assert!(took < Duration::from_secs(1), "round {round}: the bundle came {took:?} after the change");
        eprintln!("round {round}: the change reached the agent on the other server in {took:?}");
    }
    // Told, never polling: no server reads every version on a timer.
    assert!(server_b.hub.announcements() >= heard + 3, "server B heard each change announced");
    assert_eq!(server_b.hub.version_polls(), 0, "server B polled for versions");
    assert_eq!(admin_a.state.hub.version_polls(), 0, "server A polled for versions");
}
