//! Events forwarded to SIEMs for real: Debian's rsyslog on loopback receives RFC 5424 over
//! TCP and over TLS, an HTTP receiver takes JSON lines; every event arrives at least once,
//! through a receiver outage too. Retention applies in the background.

use axum::http::StatusCode;
use portcullis_server::background::{self, Background};
use portcullis_store::Store;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod common;
use common::*;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Debian's rsyslogd with a configuration of its own: a plain TCP input and a TLS one
/// (anonymous, GnuTLS), each written to its own file as the raw messages.
struct Rsyslog {
    child: Child,
    dir: PathBuf,
}

impl Rsyslog {
    fn start(dir: &Path, plain: u16, tls: u16) -> Rsyslog {
        let d = dir.display();
        let conf = format!(
            r#"global(workDirectory="{d}" maxMessageSize="64k"
       defaultNetstreamDriverCAFile="{d}/cert.pem"
       defaultNetstreamDriverCertFile="{d}/cert.pem"
       defaultNetstreamDriverKeyFile="{d}/key.pem")
module(load="imtcp")
template(name="raw" type="string" string="%rawmsg%\n")
ruleset(name="plain") {{ action(type="omfile" file="{d}/plain.log" template="raw") }}
ruleset(name="tls") {{ action(type="omfile" file="{d}/tls.log" template="raw") }}
input(type="imtcp" address="127.0.0.1" port="{plain}" ruleset="plain")
input(type="imtcp" address="127.0.0.1" port="{tls}" ruleset="tls" streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="anon")
"#
        );
        std::fs::write(dir.join("rsyslog.conf"), conf).unwrap();
        let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("rsyslogd.out")).unwrap();
        let child = Command::new("timeout")
            .args(["-s", "KILL", "300", "rsyslogd", "-n", "-f"])
            .arg(dir.join("rsyslog.conf"))
            .arg("-i")
            .arg(dir.join("rsyslogd.pid"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("Debian's rsyslog (./x test installs it)");
        let r = Rsyslog { child, dir: dir.to_owned() };
        let t0 = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", plain)).is_err()
            || std::net::TcpStream::connect(("127.0.0.1", tls)).is_err()
        {
            assert!(t0.elapsed() < Duration::from_secs(20), "rsyslogd did not listen:\n{}", r.output());
            std::thread::sleep(Duration::from_millis(50));
        }
        r
    }

    fn output(&self) -> String {
        std::fs::read_to_string(self.dir.join("rsyslogd.out")).unwrap_or_default()
    }

    /// The lines of one output file.
    fn lines(&self, file: &str) -> Vec<String> {
        std::fs::read_to_string(self.dir.join(file)).unwrap_or_default().lines().map(str::to_owned).collect()
    }

    /// Stop it as an administrator would (SIGTERM), waiting until it is gone.
    fn stop(mut self) {
        // SAFETY: signalling our child (`timeout` passes SIGTERM on to rsyslogd).
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The event ids in syslog lines (`[portcullis@32473 id="N"`).
fn ids_in(lines: &[String]) -> BTreeSet<i64> {
    lines
        .iter()
        .filter_map(|l| l.split("[portcullis@32473 id=\"").nth(1))
        .filter_map(|rest| rest.split('"').next()?.parse().ok())
        .collect()
}

/// An HTTP receiver of JSON lines: refuses its first request (503), then keeps every line
/// with the Authorization header it came with.
async fn http_receiver() -> (u16, Arc<Mutex<Vec<(String, Value)>>>) {
    let got: Arc<Mutex<Vec<(String, Value)>>> = Arc::default();
    let first = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let keep = got.clone();
    let app = axum::Router::new().route(
        "/in",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let (keep, first) = (keep.clone(), first.clone());
            async move {
                if first.swap(false, std::sync::atomic::Ordering::SeqCst) {
                    return StatusCode::SERVICE_UNAVAILABLE;
                }
                assert_eq!(headers["content-type"], "application/x-ndjson");
                let auth = headers.get("authorization").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
                for line in body.lines() {
                    keep.lock().unwrap().push((auth.clone(), serde_json::from_str(line).unwrap()));
                }
                StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (port, got)
}

async fn enrolled_agent(store: &Store, admin: &Client) -> Client {
    let g = admin.json("POST", "/api/groups", json!({"path": "Linux"})).await.body["id"].as_i64().unwrap();
    let token = admin.json("POST", &format!("/api/groups/{g}/enrollment-token"), json!({})).await.body["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let host = json!({"hostname": "web-01", "os": "linux", "agent_version": "0.1.0"});
    let anonymous = agent_client(store, &admin.state, None);
    let r = anonymous.json("POST", "/api/agent/enroll", json!({"token": token, "host": host})).await;
    assert!(r.status.is_success(), "{:?}", r.body);
    agent_client(store, &admin.state, Some(r.body["credential"].as_str().unwrap()))
}

async fn send_events(agent: &Client, paths: &[String]) {
    let events: Vec<Value> =
        paths.iter().map(|p| serde_json::from_str(&event_line(p, "Deny tools")).unwrap()).collect();
    let r = agent.json("POST", "/api/agent/events", json!({"events": events, "hits": []})).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["stored"], paths.len() as u64);
}

async fn wait_until(what: &str, within: Duration, mut done: impl AsyncFnMut() -> Option<String>) {
    let t0 = Instant::now();
    loop {
        match done().await {
            None => return,
            Some(why) if t0.elapsed() > within => panic!("{what}: {why}"),
            Some(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_reach_rsyslog_over_tcp_and_tls_and_http_at_least_once_through_an_outage() {
    each_backend(async |store: Store| {
        let dir = tempfile::tempdir().unwrap();
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        std::fs::write(dir.path().join("cert.pem"), cert.cert.pem()).unwrap();
        std::fs::write(dir.path().join("key.pem"), cert.signing_key.serialize_pem()).unwrap();
        let (plain, tls) = (free_port(), free_port());
        let rsyslog = Rsyslog::start(dir.path(), plain, tls);
        let (http_port, http_got) = http_receiver().await;

        let org = org_with_users(&store).await;
        let admin = Client::login(&store, &org.name, "admin", "admin-password").await;
        let agent = enrolled_agent(&store, &admin).await;
        // Stored before any destination: only a destination made `from_start` sends it.
        send_events(&agent, &["/opt/before".to_owned()]).await;
        let create = async |body: Value| {
            let r = admin.json("POST", "/api/forwarders", body).await;
            assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
            r.body["id"].as_i64().unwrap()
        };
        create(json!({"name": "rsyslog tcp", "url": format!("syslog+tcp://127.0.0.1:{plain}"), "from_start": true}))
            .await;
        let pem = cert.cert.pem();
        create(json!({"name": "rsyslog tls", "url": format!("syslog+tls://localhost:{tls}"), "ca_pem": pem})).await;
        create(json!({"name": "collector", "url": format!("http://127.0.0.1:{http_port}/in"), "token": "tok en-1"}))
            .await;
        // This process's forwarding, as `portcullis server --forward-to-private` runs it.
        background::start(
            store.clone(),
            Background {
                forward_to_private: true,
                forwarders_every: Duration::from_millis(200),
                retention_every: Duration::from_secs(3600),
                only_organization: Some(org.id),
            },
        );

        // Hostile text in what agents send stays inside its field.
        let hostile = "/tmp/a\"] b\\c\u{7}d é".to_owned();
        let mut paths: Vec<String> = (0..30).map(|i| format!("/opt/tool-{i}")).collect();
        paths.push(hostile.clone());
        send_events(&agent, &paths).await;
        let all = store.events(org.id, &portcullis_store::EventFilter { limit: 1000, ..Default::default() }).await;
        let ids: BTreeSet<i64> = all.unwrap().iter().map(|e| e.id).collect();
        assert_eq!(ids.len(), 32);
        let first = *ids.first().unwrap();
        let new_ids: BTreeSet<i64> = ids.iter().copied().filter(|i| *i != first).collect();

        let within = Duration::from_secs(30);
        wait_until("rsyslog over TCP got every event", within, async || {
            let got = ids_in(&rsyslog.lines("plain.log"));
            (got != ids).then(|| format!("{} of {}\n{}", got.len(), ids.len(), rsyslog.output()))
        })
        .await;
        wait_until("rsyslog over TLS got the new events", within, async || {
            let got = ids_in(&rsyslog.lines("tls.log"));
            (got != new_ids).then(|| format!("{got:?}\n{}", rsyslog.output()))
        })
        .await;
        let lines = rsyslog.lines("plain.log");
        let hostile_line = lines.iter().find(|l| l.contains("a\\\"\\] b")).expect("the hostile path");
        assert!(
            hostile_line.starts_with("<108>1 2026-11-23T10:00:00.123000Z web-01 portcullis - deny "),
            "{hostile_line}"
        );
        assert!(
            hostile_line.contains(&format!(r#" org="{}" computer="web-01" event="deny""#, org.name)),
            "{hostile_line}"
        );
        assert!(hostile_line.contains(r#" path="/tmp/a\"\] b\\c?d é" "#), "{hostile_line}");
        // HTTP: refused once, then everything, with the token.
        wait_until("the HTTP receiver got the new events", within, async || {
            let got: BTreeSet<i64> = http_got.lock().unwrap().iter().map(|(_, v)| v["id"].as_i64().unwrap()).collect();
            (got != new_ids).then(|| format!("{got:?}"))
        })
        .await;
        for (auth, line) in http_got.lock().unwrap().iter() {
            assert_eq!(auth, "Bearer tok en-1");
            assert_eq!(line["organization"], org.name.as_str());
            assert_eq!(line["record"]["event"], "deny");
        }
        // Each cursor moves once its batch is confirmed (just after the receiver has it); the
        // HTTP refusal is forgotten once a batch went.
        wait_until("every destination is caught up", within, async || {
            let r = admin.get("/api/forwarders").await;
            let list = r.body.as_array().unwrap().clone();
            let behind = list.iter().find(|f| f["backlog"] != 0 || !f["last_error"].is_null());
            behind.map(|f| f.to_string())
        })
        .await;
        for f in admin.get("/api/forwarders").await.body.as_array().unwrap() {
            assert!(f.get("token").is_none() && f.get("token_sealed").is_none(), "{f}");
        }

        // The receiver goes away: the error shows, nothing is lost, and it all arrives after.
        rsyslog.stop();
        let later: Vec<String> = (0..20).map(|i| format!("/opt/later-{i}")).collect();
        send_events(&agent, &later).await;
        wait_until("the outage is reported", within, async || {
            let r = admin.get("/api/forwarders").await;
            let tcp = r.body.as_array().unwrap().iter().find(|f| f["name"] == "rsyslog tcp").unwrap().clone();
            (tcp["last_error"].is_null() || tcp["backlog"] == 0).then(|| tcp.to_string())
        })
        .await;
        let rsyslog = Rsyslog::start(dir.path(), plain, tls);
        let all = store.events(org.id, &portcullis_store::EventFilter { limit: 1000, ..Default::default() }).await;
        let every: BTreeSet<i64> = all.unwrap().iter().map(|e| e.id).collect();
        assert_eq!(every.len(), 52);
        wait_until("every event reached rsyslog over TCP after the outage", Duration::from_secs(90), async || {
            let got = ids_in(&rsyslog.lines("plain.log"));
            let missing: Vec<i64> = every.difference(&got).copied().collect();
            (!missing.is_empty()).then(|| format!("missing {missing:?}\n{}", rsyslog.output()))
        })
        .await;
        wait_until("every new event reached rsyslog over TLS after the outage", Duration::from_secs(90), async || {
            let got = ids_in(&rsyslog.lines("tls.log"));
            let missing: Vec<i64> = every.iter().filter(|i| **i != first && !got.contains(i)).copied().collect();
            (!missing.is_empty()).then(|| format!("missing {missing:?}"))
        })
        .await;
        drop(rsyslog);
    })
    .await;
}

#[tokio::test]
async fn destinations_and_retention_are_checked_admins_only_and_internal_addresses_refused_at_send() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(&format!("sqlite://{}/server.db", dir.path().display()), test_keys()).await.unwrap();
    let org = org_with_users(&store).await;
    let admin = Client::login(&store, &org.name, "admin", "admin-password").await;
    let approver = Client::login(&store, &org.name, "approver", "approver-password").await;
    let ok = json!({"name": "SIEM", "url": "syslog+tcp://127.0.0.1:1"});
    assert_eq!(approver.json("POST", "/api/forwarders", ok.clone()).await.status, StatusCode::FORBIDDEN);
    for (body, why) in [
        (json!({"name": "x", "url": "syslog+udp://h:514"}), "unknown scheme"),
        (json!({"name": "x", "url": "syslog+tcp://h:514\r\nX: y"}), "control characters"),
        (json!({"name": "x", "url": "https://u:p@h/"}), "no credentials in the URL"),
        (json!({"name": "x", "url": "syslog+tcp://h:514", "token": "t"}), "a token is for http"),
        (json!({"name": "x", "url": "syslog+tcp://h:514", "ca_pem": "x"}), "a CA certificate is for"),
        (json!({"name": "x", "url": "https://h/", "ca_pem": "not pem"}), "CERTIFICATE"),
        (json!({"name": "x", "url": "https://h/", "ca_pem": "x".repeat(70_000)}), "over 64 KiB"),
        (json!({"name": "x", "url": "https://h/", "token": "a\u{1}b"}), "printable ASCII"),
        (json!({"name": " ", "url": "https://h/"}), "needs a name"),
    ] {
        let r = admin.json("POST", "/api/forwarders", body.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {:?}", r.body);
        assert!(r.body["error"].as_str().unwrap().contains(why), "{body}: {:?}", r.body);
    }
    let r = admin.json("POST", "/api/forwarders", json!({"name": "x", "url": "https://h/", "extra": 1})).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "unknown fields: {:?}", r.body);
    let id = admin.json("POST", "/api/forwarders", ok.clone()).await.body["id"].as_i64().unwrap();
    assert_eq!(admin.json("POST", "/api/forwarders", ok).await.status, StatusCode::CONFLICT);

    // Started without --forward-to-private: a loopback destination is never connected to.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let r = admin
        .json(
            "PUT",
            &format!("/api/forwarders/{id}"),
            json!({"name": "SIEM", "url": format!("syslog+tcp://localhost:{port}")}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    let agent = enrolled_agent(&store, &admin).await;
    send_events(&agent, &["/opt/x".to_owned()]).await;
    // Retention: checked, admins only, applied in the background (here every 200 ms).
    for bad in [json!({"days": 0}), json!({"events": -1}), json!({"days": 36_501})] {
        assert_eq!(admin.json("PUT", "/api/retention", bad).await.status, StatusCode::BAD_REQUEST);
    }
    assert_eq!(approver.json("PUT", "/api/retention", json!({"events": 1})).await.status, StatusCode::FORBIDDEN);
    send_events(&agent, &["/opt/y".to_owned(), "/opt/z".to_owned()]).await;
    assert_eq!(admin.json("PUT", "/api/retention", json!({"events": 1})).await.status, StatusCode::NO_CONTENT);
    assert_eq!(admin.get("/api/retention").await.body, json!({"days": null, "events": 1}));
    background::start(
        store.clone(),
        Background {
            forward_to_private: false,
            forwarders_every: Duration::from_millis(200),
            retention_every: Duration::from_millis(200),
            only_organization: Some(org.id),
        },
    );
    wait_until("the refusal is reported", Duration::from_secs(20), async || {
        let f = admin.get("/api/forwarders").await.body[0].clone();
        let error = f["last_error"].as_str().unwrap_or_default().to_owned();
        (!error.contains("--forward-to-private")).then(|| f.to_string())
    })
    .await;
    assert!(
        matches!(listener.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "no connection was made"
    );
    // The destination has received nothing: retention keeps every event for it ...
    let filter = portcullis_store::EventFilter { limit: 100, ..Default::default() };
    let count = || store.events(org.id, &filter);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(count().await.unwrap().len(), 3);
    // ... until it is disabled.
    let r = admin
        .json(
            "PUT",
            &format!("/api/forwarders/{id}"),
            json!({"name": "SIEM", "url": "syslog+tcp://h:1", "enabled": false}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    wait_until("retention keeps one event", Duration::from_secs(20), async || {
        let n = count().await.unwrap().len();
        (n != 1).then(|| format!("{n} events"))
    })
    .await;
    // The audit log has every change, and never a token.
    let log = store.audit_log(org.id, 100).await.unwrap();
    assert!(log.iter().any(|e| e.object == "event retention"));
    assert!(log.iter().filter(|e| e.object == "forwarding destination SIEM").count() >= 3);
}

#[tokio::test]
async fn the_forwarding_page_adds_pauses_and_removes_destinations_and_sets_retention() {
    use axum::body::Body;
    use axum::http::header;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(&format!("sqlite://{}/server.db", dir.path().display()), test_keys()).await.unwrap();
    let org = org_with_users(&store).await;
    let admin = Client::login(&store, &org.name, "admin", "admin-password").await;
    let auditor = Client::login(&store, &org.name, "auditor", "auditor-password").await;
    let post = async |c: &Client, path: &str, fields: &str| {
        let form = format!("_csrf={}&{fields}", c.csrf.as_deref().unwrap());
        let r = c.send("POST", path, Some(Body::from(form)), "application/x-www-form-urlencoded", false).await;
        r.headers.get(header::LOCATION).unwrap().to_str().unwrap().to_owned()
    };
    let to =
        post(&admin, "/forwarding/new", "name=%3Cscript%3ESIEM&url=syslog%2Btls%3A%2F%2Fsiem.example.com&from_start=1")
            .await;
    assert!(to.starts_with("/forwarding?ok="), "{to}");
    let to = post(&auditor, "/forwarding/new", "name=Mine&url=https%3A%2F%2Fexample.com%2F").await;
    assert!(to.contains("error=") && to.contains("auditor"), "{to}");
    let to = post(&admin, "/forwarding/new", "name=Bad&url=syslog%2Btcp%3A%2F%2Fh%3A1&token=x").await;
    assert!(to.contains("error=") && to.contains("token"), "{to}");
    let page = admin.get("/forwarding").await;
    let html = String::from_utf8_lossy(&page.bytes);
    assert!(html.contains("&#60;script&#62;SIEM") && !html.contains("<script>SIEM"), "escaped name: {html}");
    assert!(html.contains("syslog+tls://siem.example.com") && html.contains("sending"), "{html}");
    let id = admin.get("/api/forwarders").await.body[0]["id"].as_i64().unwrap();
    let to = post(&admin, &format!("/forwarding/{id}/switch"), "").await;
    assert!(to.contains("paused"), "{to}");
    assert_eq!(admin.get("/api/forwarders").await.body[0]["enabled"], false);
    for (fields, expect) in [("days=abc&events=", "whole number"), ("days=0&events=", "from 1")] {
        let to = post(&admin, "/forwarding/retention", fields).await;
        assert!(to.contains("error=") && to.contains(&expect.replace(" ", "%20")), "{fields}: {to}");
    }
    let to = post(&admin, "/forwarding/retention", "days=90&events=").await;
    assert!(to.starts_with("/forwarding?ok="), "{to}");
    assert_eq!(admin.get("/api/retention").await.body, json!({"days": 90, "events": null}));
    let html = String::from_utf8_lossy(&admin.get("/forwarding").await.bytes).into_owned();
    assert!(html.contains("name=\"days\" value=\"90\""), "{html}");
    let to = post(&admin, &format!("/forwarding/{id}/delete"), "").await;
    assert!(to.starts_with("/forwarding?ok="), "{to}");
    assert_eq!(admin.get("/api/forwarders").await.body, json!([]));
}
