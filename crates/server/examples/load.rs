//! Load test: thousands of simulated agents long-polling and posting events against one
//! server on loopback (plain HTTP: this measures the server and its database, not TLS), or
//! against several `portcullis server` processes sharing one PostgreSQL database.
//!
//! ```text
//! cargo run --release -p portcullis-server --example load -- --agents 5000 --database sqlite
//! cargo run --release -p portcullis-server --example load -- --agents 5000 --database postgres://…
//! cargo run --release -p portcullis-server --example load -- --agents 50000 --database postgres://… \
//!     --servers 3 --server-bin target/release/portcullis --workers 4 --batches 1
//! ```
//!
//! With `--workers N`, the agents' connections are held by N load processes (this program
//! again, driven over their stdin and stdout), so that no process holds more connections
//! than the machine lets one process open; times are compared by the wall clock, which the
//! processes share.
//!
//! With `--server-bin`, the servers are separate processes (agents are spread over them, the
//! administrator's changes go through the first; the others hear of them by LISTEN/NOTIFY),
//! and their memory per connected agent and CPU while the agents wait idle are measured from
//! /proc. Bounds: every connection comes from its own source address in 127.0.0.0/8 (one in
//! 200 per agent), so no source-port range runs out; an agent keeps one connection from its
//! enrollment to the end; the file limit is raised for this process and inherited by the
//! servers; every phase has a time limit.
//!
//! Phases, each bounded in time:
//! 1. enroll every agent (HTTP, the real enrollment endpoint) and let each fetch its bundle;
//! 2. propagation: with every agent waiting in a long-poll, an administrator changes the
//!    organization's mode through the REST API, several times; each agent records when the
//!    new bundle arrived; the same is measured first with a single agent (the reference);
//! 3. ingestion: every agent posts batches of events at once; events stored per second, and
//!    the same for a single agent posting alone (the reference).
//!
//! Prints one JSON line with the figures, for `benches/server.sh`.

use portcullis_server::{AppState, app};
use portcullis_store::{Role, SecretKeys, Store};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

struct Args {
    agents: usize,
    database: String,
    changes: usize,
    batches: usize,
    batch_size: usize,
    servers: usize,
    server_bin: Option<String>,
    idle_s: u64,
    /// Load processes holding the agents' connections (the coordinator holds none).
    workers: usize,
    /// This process is a worker: its servers, enrollment token and first agent's number.
    worker: Option<(Vec<u16>, String, usize)>,
}

fn args() -> Args {
    let mut a = Args {
        agents: 5000,
        database: "sqlite".into(),
        changes: 5,
        batches: 4,
        batch_size: 25,
        servers: 1,
        server_bin: None,
        idle_s: 15,
        workers: 1,
        worker: None,
    };
    let (mut ports, mut enroll_token, mut first) = (None, None, 0);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--agents" => a.agents = value.parse().expect("--agents N"),
            "--database" => a.database = value,
            "--changes" => a.changes = value.parse().expect("--changes N"),
            "--batches" => a.batches = value.parse().expect("--batches N"),
            "--batch-size" => a.batch_size = value.parse().expect("--batch-size N"),
            "--servers" => a.servers = value.parse().expect("--servers N"),
            "--server-bin" => a.server_bin = Some(value),
            "--idle-s" => a.idle_s = value.parse().expect("--idle-s N"),
            "--workers" => a.workers = value.parse().expect("--workers N"),
            "--worker-ports" => {
                ports = Some(value.split(',').map(|p| p.parse().expect("--worker-ports P,P")).collect())
            }
            "--worker-token" => enroll_token = Some(value),
            "--worker-first" => first = value.parse().expect("--worker-first N"),
            other => panic!("unknown flag {other}"),
        }
    }
    if let (Some(p), Some(t)) = (ports, enroll_token) {
        a.worker = Some((p, t, first));
    }
    a
}

/// One keep-alive HTTP/1.1 connection, enough for this server's replies (Content-Length bodies).
struct Conn {
    stream: BufReader<TcpStream>,
}

impl Conn {
    /// A connection to the server on `port`, from source address 127.0.0.(2 + n % 200): each
    /// source address has its own range of ports.
    async fn open(port: u16, n: usize) -> Conn {
        let sock = tokio::net::TcpSocket::new_v4().expect("socket");
        sock.bind(std::net::SocketAddr::from(([127, 0, 0, 2 + (n % 200) as u8], 0))).expect("bind a source address");
        let s = sock.connect(std::net::SocketAddr::from(([127, 0, 0, 1], port))).await.expect("connect");
        s.set_nodelay(true).ok();
        Conn { stream: BufReader::new(s) }
    }

    async fn request(&mut self, method: &str, path: &str, bearer: &str, body: &str) -> (u16, Vec<u8>) {
        let head = format!(
            "{method} {path} HTTP/1.1\r\nhost: load\r\nauthorization: Bearer {bearer}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        let s = self.stream.get_mut();
        s.write_all(head.as_bytes()).await.expect("write");
        s.write_all(body.as_bytes()).await.expect("write");
        let mut line = String::new();
        self.stream.read_line(&mut line).await.expect("status line");
        let status: u16 = line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("status");
        let mut length = 0usize;
        loop {
            line.clear();
            self.stream.read_line(&mut line).await.expect("header");
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                length = v.trim().parse().expect("length");
            }
        }
        let mut body = vec![0; length];
        self.stream.read_exact(&mut body).await.expect("body");
        (status, body)
    }
}

/// The bundle's version. Only the version is kept (a real agent parses its bundle on its own
/// machine; here the simulated agents share the servers' vCPUs, so they skip the rest).
fn version_of(body: &[u8]) -> i64 {
    #[derive(serde::Deserialize)]
    struct Version {
        version: i64,
    }
    serde_json::from_slice::<Version>(body).expect("bundle JSON").version
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Raise the open-file limit to `want`, or as far as the hard limit goes where it cannot be
/// raised (the servers inherit it).
fn raise_fd_limit(want: u64) {
    let mut r = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: plain syscalls on local structs.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut r);
        let raised = libc::rlimit { rlim_cur: want, rlim_max: r.rlim_max.max(want) };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) != 0 {
            let capped = libc::rlimit { rlim_cur: want.min(r.rlim_max), rlim_max: r.rlim_max };
            libc::setrlimit(libc::RLIMIT_NOFILE, &capped);
        }
    }
}

/// Enroll agents `first .. first + count` (a few hundred at a time), agent i on server
/// i mod n, and let each fetch its bundle; each keeps its connection. Their credentials,
/// connections and the version they hold.
async fn enroll(ports: &[u16], enroll_token: &str, first: usize, count: usize) -> (Vec<String>, Vec<Conn>, i64) {
    let mut creds = Vec::with_capacity(count);
    let mut conns = Vec::with_capacity(count);
    let mut version = 0;
    for start in (first..first + count).step_by(250) {
        let mut tasks = Vec::new();
        for i in start..(start + 250).min(first + count) {
            let enroll_token = enroll_token.to_owned();
            let port = ports[i % ports.len()];
            tasks.push(tokio::spawn(async move {
                let mut c = Conn::open(port, i + 1).await;
                let body = serde_json::json!({"token": enroll_token, "host": {"hostname": format!("agent-{i:05}"),
                    "os": "linux", "agent_version": "load"}})
                .to_string();
                let (status, reply) = c.request("POST", "/api/agent/enroll", "", &body).await;
                assert_eq!(status, 201, "{}", String::from_utf8_lossy(&reply));
                let cred = serde_json::from_slice::<serde_json::Value>(&reply).unwrap()["credential"]
                    .as_str()
                    .unwrap()
                    .to_owned();
                let (status, bundle) = c.request("POST", "/api/agent/poll", &cred, r#"{"after":0,"wait_s":0}"#).await;
                assert_eq!(status, 200);
                (cred, version_of(&bundle), c)
            }));
        }
        for t in tasks {
            let (cred, v, conn) = t.await.expect("enroll task");
            creds.push(cred);
            conns.push(conn);
            version = version.max(v);
        }
    }
    (creds, conns, version)
}

/// Batches answered 503 (busy) and sent again.
static BUSY: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn epoch_ns() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos())
}

/// A worker process: enroll its agents, then follow the coordinator's commands on stdin
/// (`poll VERSION WAIT_S`, `ingest BATCHES SIZE`, `quit`), answering on stdout.
async fn worker(a: &Args, ports: &[u16], enroll_token: &str, first: usize) {
    raise_fd_limit(2 * a.agents as u64 + 1024);
    let (creds, mut conns, version) = enroll(ports, enroll_token, first, a.agents).await;
    println!("ready {version}");
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["poll", v, wait] => {
                let (v, wait): (i64, u64) = (v.parse().unwrap(), wait.parse().unwrap());
                let mut tasks = Vec::with_capacity(conns.len());
                for (mut conn, cred) in conns.drain(..).zip(creds.iter().cloned()) {
                    tasks.push(tokio::spawn(async move {
                        let body = format!("{{\"after\":{v},\"wait_s\":{wait}}}");
                        let (status, reply) = tokio::time::timeout(
                            Duration::from_secs(wait + 60),
                            conn.request("POST", "/api/agent/poll", &cred, &body),
                        )
                        .await
                        .expect("poll answered in time");
                        let at = epoch_ns();
                        let got = if status == 200 { version_of(&reply) } else { 0 };
                        (conn, status, got, at)
                    }));
                }
                tokio::time::sleep(Duration::from_millis(1500 + creds.len() as u64 / 5)).await;
                println!("waiting");
                let (mut at_ns, mut newest, mut unanswered) = (Vec::new(), v, 0);
                for t in tasks {
                    let (conn, status, got, at) = t.await.expect("poll task");
                    if status == 200 {
                        at_ns.push(at);
                        newest = newest.max(got);
                    } else {
                        unanswered += 1;
                    }
                    conns.push(conn);
                }
                println!("got {}", serde_json::json!({"at_ns": at_ns, "newest": newest, "unanswered": unanswered}));
            }
            ["ingest", batches, size] => {
                let start = epoch_ns();
                let taken = std::mem::take(&mut conns);
                let (stored, _) = ingest(taken, &creds, batches.parse().unwrap(), size.parse().unwrap(), "fleet").await;
                let busy = BUSY.load(std::sync::atomic::Ordering::Relaxed);
                println!(
                    "ingested {}",
                    serde_json::json!({"stored": stored, "start_ns": start, "end_ns": epoch_ns(), "busy": busy})
                );
            }
            _ => return,
        }
    }
}

/// The coordinator's handle on one worker process.
struct Worker {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

impl Worker {
    async fn say(&mut self, line: &str) {
        self.stdin.write_all(format!("{line}\n").as_bytes()).await.expect("tell a worker");
    }

    /// The next line starting with `word`, without it.
    async fn hear(&mut self, word: &str) -> String {
        let line = tokio::time::timeout(Duration::from_secs(1800), self.lines.next_line())
            .await
            .expect("a worker answers in time")
            .expect("a worker's output")
            .unwrap_or_else(|| panic!("a worker ended before {word:?}"));
        line.strip_prefix(word)
            .unwrap_or_else(|| panic!("expected {word:?} from a worker, got {line:?}"))
            .trim()
            .to_owned()
    }
}

/// Agents waiting in a long-poll at `version`; returns, per agent, when the next bundle came
/// (seconds after `t0` is set), for `changes` changes made by `change`.
async fn propagation(
    admin_port: u16,
    mut conns: Vec<Conn>,
    credentials: &[String],
    mut version: i64,
    changes: usize,
    admin: &str,
) -> (Vec<f64>, i64, Vec<Conn>) {
    let mut all = Vec::new();
    for round in 0..changes {
        let t0: Arc<std::sync::OnceLock<Instant>> = Arc::new(std::sync::OnceLock::new());
        let mut tasks = Vec::with_capacity(conns.len());
        for (mut conn, cred) in conns.drain(..).zip(credentials.iter().cloned()) {
            let t0 = t0.clone();
            tasks.push(tokio::spawn(async move {
                let body = format!("{{\"after\":{version},\"wait_s\":25}}");
                let (status, reply) = tokio::time::timeout(
                    Duration::from_secs(60),
                    conn.request("POST", "/api/agent/poll", &cred, &body),
                )
                .await
                .expect("poll within 60 s");
                let at = Instant::now();
                assert_eq!(status, 200, "{}", String::from_utf8_lossy(&reply));
                let got = version_of(&reply);
                let waited = t0.get().map(|t| at.saturating_duration_since(*t).as_secs_f64()).unwrap_or(0.0);
                (conn, got, waited)
            }));
        }
        // Let every poll reach its server and wait.
        tokio::time::sleep(Duration::from_millis(1500 + credentials.len() as u64 / 5)).await;
        let mode = if round % 2 == 0 { "monitor" } else { "secured" };
        let mut admin_conn = Conn::open(admin_port, 0).await;
        // From the moment the administrator saves.
        let _ = t0.set(Instant::now());
        let (status, reply) =
            admin_conn.request("PUT", "/api/settings", admin, &format!("{{\"mode\":\"{mode}\"}}")).await;
        assert_eq!(status, 204, "{}", String::from_utf8_lossy(&reply));
        let mut newest = version;
        for t in tasks {
            let (conn, got, waited) = t.await.expect("agent task");
            assert!(got > version, "a poll answered with an old version");
            newest = newest.max(got);
            all.push(waited);
            conns.push(conn);
        }
        version = newest;
    }
    (all, version, conns)
}

/// Every agent posts `batches` batches at once, each on its own (already open) connection.
async fn ingest(
    conns: Vec<Conn>,
    credentials: &[String],
    batches: usize,
    batch_size: usize,
    phase: &'static str,
) -> (u64, f64) {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (i, (mut conn, cred)) in conns.into_iter().zip(credentials.iter().cloned()).enumerate() {
        tasks.push(tokio::spawn(async move {
            let mut stored = 0u64;
            for b in 0..batches {
                let events: Vec<String> = (0..batch_size)
                    .map(|e| {
                        serde_json::json!({
                            "time": "2026-11-23T10:00:00.000Z", "event": "deny", "access": "exec", "verdict": "deny",
                            "mode": "secured", "policy": "Deny reported compromised builds (Built-In)",
                            "reason": "denied by policy", "file": {"path": format!("/opt/{phase}/{i}/{b}/{e}"),
                            "sha256": "ab".repeat(32), "size": 1, "kind": "executable", "dev": 1, "ino": e},
                            "process": {"pid": e, "exe": "/usr/bin/bash", "uid": 0, "user": "root", "ancestors": []}
                        })
                        .to_string()
                    })
                    .collect();
                let body = format!("{{\"events\":[{}]}}", events.join(","));
                // 503 (the database had no connection free in time): sent again after its
                // Retry-After, as agents do.
                let (status, reply) = loop {
                    let (status, reply) = tokio::time::timeout(
                        Duration::from_secs(120),
                        conn.request("POST", "/api/agent/events", &cred, &body),
                    )
                    .await
                    .expect("batch within 120 s");
                    if status != 503 {
                        break (status, reply);
                    }
                    BUSY.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                };
                assert_eq!(status, 200, "{}", String::from_utf8_lossy(&reply));
                let v: serde_json::Value = serde_json::from_slice(&reply).unwrap();
                stored += v["stored"].as_u64().unwrap();
            }
            stored
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.expect("ingest task");
    }
    (total, started.elapsed().as_secs_f64())
}

/// The servers' processes (none: one server in this process).
struct Servers {
    ports: Vec<u16>,
    children: Vec<std::process::Child>,
}

impl Drop for Servers {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The shared test secret key (crates/server/tests/common): the throw-away PostgreSQL is
/// shared with the tests, which would otherwise find seeds sealed with another key.
const SHARED_SECRET_KEY: &str = "5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e";

/// Start `n` `portcullis server` processes on `url`, each on a free loopback port.
fn spawn_servers(bin: &str, url: &str, n: usize) -> Servers {
    use std::io::BufRead;
    let mut servers = Servers { ports: Vec::new(), children: Vec::new() };
    for _ in 0..n {
        let mut child = std::process::Command::new(bin)
            .args(["server", "--database-url", url, "--listen", "127.0.0.1:0", "--plain-http", "--log", "warn"])
            .env("PORTCULLIS_SECRET_KEY", SHARED_SECRET_KEY)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("start a server");
        let mut out = std::io::BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        out.read_line(&mut line).expect("the server's first line");
        let port = line
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .and_then(|addr| addr.rsplit(':').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in {line:?}"));
        servers.ports.push(port);
        servers.children.push(child);
    }
    servers
}

/// With every agent waiting idle: each server's memory per connected agent (growth since
/// `before`, taken ahead of enrollment) and its CPU over `idle_s` per 1,000 agents it holds.
async fn measure_idle(pids: &[u32], before: &[(u64, f64)], agents: usize, idle_s: u64) -> serde_json::Value {
    let start: Vec<(u64, f64)> = pids.iter().map(|p| usage(*p)).collect();
    tokio::time::sleep(Duration::from_secs(idle_s)).await;
    let end: Vec<(u64, f64)> = pids.iter().map(|p| usage(*p)).collect();
    let per_server = agents as f64 / pids.len() as f64;
    let rss_per_agent: Vec<f64> =
        before.iter().zip(&start).map(|(b, s)| (s.0 as f64 - b.0 as f64) / per_server).collect();
    let cpu_per_1000: Vec<f64> =
        start.iter().zip(&end).map(|(s, e)| (e.1 - s.1) / idle_s as f64 / (per_server / 1000.0)).collect();
    eprintln!("idle: {rss_per_agent:?} bytes of server memory per agent; {cpu_per_1000:?} CPU per 1,000 agents");
    serde_json::json!({
        "idle_s": idle_s,
        "server_rss_bytes": start.iter().map(|u| u.0).collect::<Vec<_>>(),
        "rss_per_agent_bytes": rss_per_agent,
        "cpu_share_per_1000_idle_agents": cpu_per_1000,
    })
}

/// Resident memory (bytes) and CPU time (seconds) of a process, from /proc.
fn usage(pid: u32) -> (u64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse::<u64>().ok())
        .unwrap_or(0)
        * 1024;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command's closing parenthesis: utime and stime are the 12th and 13th.
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    // SAFETY: sysconf has no preconditions.
    let tick = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let cpu = fields.get(11..13).map_or(0.0, |f| f.iter().filter_map(|x| x.parse::<f64>().ok()).sum::<f64>() / tick);
    (rss, cpu)
}

#[tokio::main]
async fn main() {
    let a = args();
    if let Some((ports, token, first)) = &a.worker {
        return worker(&a, ports, token, *first).await;
    }
    raise_fd_limit(4 * a.agents as u64 + 1024);
    let dir = tempfile::tempdir().expect("tempdir");
    let url =
        if a.database == "sqlite" { format!("sqlite://{}/load.db", dir.path().display()) } else { a.database.clone() };
    // The throw-away PostgreSQL is shared with the tests: the same secret key as theirs
    // (crates/server/tests/common), or they would find seeds sealed with another.
    let keys = SecretKeys::parse(SHARED_SECRET_KEY, "the tests' shared secret key").expect("a key");
    let store = Store::connect(&url, keys).await.expect("database");
    let org_name = format!("load-{}", std::process::id());
    let org = store.create_organization(&org_name).await.expect("organization");
    let admin = store.create_user(org, "admin", Role::Admin, "load-test-password").await.expect("admin");
    let token = store.create_token(admin, "load").await.expect("token");
    let servers = match &a.server_bin {
        Some(bin) => {
            assert!(a.database != "sqlite" || a.servers == 1, "several servers share PostgreSQL, never a SQLite file");
            spawn_servers(bin, &url, a.servers)
        }
        None => {
            assert_eq!(a.servers, 1, "several servers need --server-bin (separate processes)");
            let state = AppState::new(store.clone(), false);
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let port = listener.local_addr().unwrap().port();
            tokio::spawn(async move { axum::serve(listener, app(state)).await.expect("serve") });
            Servers { ports: vec![port], children: Vec::new() }
        }
    };
    let ports = servers.ports.clone();
    let port = ports[0];
    let pids: Vec<u32> = servers.children.iter().map(std::process::Child::id).collect();
    let before: Vec<(u64, f64)> = pids.iter().map(|p| usage(*p)).collect();

    // A group and its token, through the API.
    let mut c = Conn::open(port, 0).await;
    let (_, g) = c.request("POST", "/api/groups", &token, r#"{"path":"Fleet"}"#).await;
    let group: serde_json::Value = serde_json::from_slice(&g).unwrap();
    let (_, t) = c.request("POST", &format!("/api/groups/{}/enrollment-token", group["id"]), &token, "{}").await;
    let enroll_token = serde_json::from_slice::<serde_json::Value>(&t).unwrap()["token"].as_str().unwrap().to_owned();

    if a.workers > 1 {
        assert!(!pids.is_empty(), "workers need separate server processes (--server-bin)");
        return coordinate(&a, &ports, &pids, &before, &token, &enroll_token).await;
    }

    // 1. Enroll everyone and fetch the first bundle; each agent keeps its connection.
    let started = Instant::now();
    let (creds, conns, version) = enroll(&ports, &enroll_token, 0, a.agents).await;
    let enroll_s = started.elapsed().as_secs_f64();
    eprintln!("{} agents enrolled in {enroll_s:.1} s over {} server(s)", creds.len(), ports.len());

    // 2. Propagation: one agent (reference, on the first server), then all of them.
    let single_conn = vec![Conn::open(ports[0], 0).await];
    let (single, version, single_conns) = propagation(port, single_conn, &creds[..1], version, a.changes, &token).await;
    let (mut fleet, version, fleet_conns) = propagation(port, conns, &creds, version, a.changes, &token).await;
    let mut single = single;
    single.sort_by(f64::total_cmp);
    fleet.sort_by(f64::total_cmp);
    eprintln!(
        "propagation: single p50 {:.3} s; fleet p50 {:.3} s p99 {:.3} s",
        percentile(&single, 0.5),
        percentile(&fleet, 0.5),
        percentile(&fleet, 0.99)
    );

    // Idle: every agent waits in a long-poll and nothing changes; the servers' memory per
    // connected agent and CPU per 1,000 waiting agents (separate server processes only).
    let mut idle = serde_json::Value::Null;
    let mut fleet_conns = fleet_conns;
    if !pids.is_empty() {
        let mut waiting = Vec::with_capacity(fleet_conns.len());
        let wait_s = a.idle_s + 30;
        for (mut conn, cred) in fleet_conns.drain(..).zip(creds.iter().cloned()) {
            waiting.push(tokio::spawn(async move {
                let body = format!("{{\"after\":{version},\"wait_s\":{wait_s}}}");
                let reply = conn.request("POST", "/api/agent/poll", &cred, &body).await;
                (conn, reply.0)
            }));
        }
        tokio::time::sleep(Duration::from_millis(1500 + creds.len() as u64 / 5)).await;
        idle = measure_idle(&pids, &before, creds.len(), a.idle_s).await;
        // Wake them with one more change (the other mode than the last round's), so every
        // connection is free again.
        let mode = if a.changes % 2 == 1 { "secured" } else { "monitor" };
        let mut admin_conn = Conn::open(port, 0).await;
        let (status, _) = admin_conn.request("PUT", "/api/settings", &token, &format!("{{\"mode\":\"{mode}\"}}")).await;
        assert!(status == 204, "the wake-up change: {status}");
        for t in waiting {
            let (conn, status) = tokio::time::timeout(Duration::from_secs(120), t).await.expect("woken").expect("task");
            // (204: its wait, at most 30 s, ended first.)
            assert!(status == 200 || status == 204, "{status}");
            fleet_conns.push(conn);
        }
    }

    // 3. Ingestion: one agent alone (reference), then everyone at once.
    let (one_stored, one_s) = ingest(single_conns, &creds[..1], a.batches * 10, a.batch_size, "single").await;
    let (all_stored, all_s) = ingest(fleet_conns, &creds, a.batches, a.batch_size, "fleet").await;
    eprintln!(
        "ingest: single {:.0} events/s; fleet {:.0} events/s",
        one_stored as f64 / one_s,
        all_stored as f64 / all_s
    );
    let backend = if a.database == "sqlite" { "sqlite" } else { "postgres" };
    println!(
        "{}",
        serde_json::json!({
            "backend": backend,
            "agents": creds.len(),
            "servers": ports.len(),
            "processes": !pids.is_empty(),
            "idle": idle,
            "enroll_s": enroll_s,
            "changes": a.changes,
            "single_p50_s": percentile(&single, 0.5),
            "fleet_p50_s": percentile(&fleet, 0.5),
            "fleet_p99_s": percentile(&fleet, 0.99),
            "fleet_max_s": fleet.last().copied().unwrap_or(f64::NAN),
            "single_events_per_s": one_stored as f64 / one_s,
            "fleet_events_per_s": all_stored as f64 / all_s,
            "fleet_events": all_stored,
            "busy_answers": BUSY.load(std::sync::atomic::Ordering::Relaxed),
        })
    );
}

/// The tier with the agents spread over `a.workers` load processes (each under this
/// machine's limit on open files): the same phases and the same JSON line as [`main`]'s.
async fn coordinate(a: &Args, ports: &[u16], pids: &[u32], before: &[(u64, f64)], token: &str, enroll_token: &str) {
    let exe = std::env::current_exe().expect("this program");
    let ports_csv: Vec<String> = ports.iter().map(u16::to_string).collect();
    let per = a.agents.div_ceil(a.workers);
    let started = Instant::now();
    let mut workers = Vec::new();
    for w in 0..a.workers {
        let first = w * per;
        let count = per.min(a.agents.saturating_sub(first));
        let mut child = tokio::process::Command::new(&exe)
            .args(["--agents", &count.to_string(), "--worker-ports", &ports_csv.join(","), "--worker-token"])
            .arg(enroll_token)
            .args(["--worker-first", &first.to_string()])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start a worker");
        let stdin = child.stdin.take().expect("stdin");
        let lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        workers.push(Worker { child, stdin, lines });
    }
    let mut version = 0;
    for w in &mut workers {
        version = version.max(w.hear("ready").await.parse::<i64>().expect("a version"));
    }
    let enroll_s = started.elapsed().as_secs_f64();
    eprintln!(
        "{} agents enrolled in {enroll_s:.1} s over {} server(s), {} load processes",
        a.agents,
        ports.len(),
        a.workers
    );

    // The reference: one agent of the coordinator's own, on the first server.
    let (ref_creds, ref_conns, _) = enroll(&ports[..1], enroll_token, a.agents, 1).await;
    let (mut single, mut version, single_conns) =
        propagation(ports[0], ref_conns, &ref_creds, version, a.changes, token).await;

    // Every worker's agents wait; the change; when each agent got it.
    let change = async |mode: &str| {
        let mut admin = Conn::open(ports[0], 0).await;
        let (status, reply) = admin.request("PUT", "/api/settings", token, &format!("{{\"mode\":\"{mode}\"}}")).await;
        assert_eq!(status, 204, "{}", String::from_utf8_lossy(&reply));
    };
    let mut fleet = Vec::new();
    for round in 0..a.changes {
        for w in &mut workers {
            w.say(&format!("poll {version} 25")).await;
        }
        for w in &mut workers {
            w.hear("waiting").await;
        }
        let t0 = epoch_ns();
        change(if round % 2 == 0 { "monitor" } else { "secured" }).await;
        for w in &mut workers {
            let got: serde_json::Value = serde_json::from_str(&w.hear("got").await).expect("JSON");
            assert_eq!(got["unanswered"], 0, "every agent got the change");
            version = version.max(got["newest"].as_i64().unwrap());
            for at in got["at_ns"].as_array().unwrap() {
                fleet.push(at.as_u64().map_or(0.0, |n| (u128::from(n).saturating_sub(t0)) as f64 / 1e9));
            }
        }
    }
    single.sort_by(f64::total_cmp);
    fleet.sort_by(f64::total_cmp);
    eprintln!("propagation: fleet p50 {:.3} s p99 {:.3} s", percentile(&fleet, 0.5), percentile(&fleet, 0.99));

    // Idle: every agent waits; the servers' memory and CPU from /proc; then one change wakes them.
    for w in &mut workers {
        w.say(&format!("poll {version} {}", a.idle_s + 30)).await;
    }
    for w in &mut workers {
        w.hear("waiting").await;
    }
    let idle = measure_idle(pids, before, a.agents, a.idle_s).await;
    change(if a.changes % 2 == 1 { "secured" } else { "monitor" }).await;
    for w in &mut workers {
        w.hear("got").await;
    }

    // Ingestion: the reference alone, then every worker's agents at once.
    let (one_stored, one_s) = ingest(single_conns, &ref_creds, a.batches * 10, a.batch_size, "single").await;
    for w in &mut workers {
        w.say(&format!("ingest {} {}", a.batches, a.batch_size)).await;
    }
    let (mut stored, mut from, mut to, mut busy) = (0u64, u128::MAX, 0u128, 0u64);
    for w in &mut workers {
        let r: serde_json::Value = serde_json::from_str(&w.hear("ingested").await).expect("JSON");
        stored += r["stored"].as_u64().unwrap();
        busy += r["busy"].as_u64().unwrap_or(0);
        from = from.min(r["start_ns"].as_u64().map_or(0, u128::from));
        to = to.max(r["end_ns"].as_u64().map_or(0, u128::from));
    }
    let all_s = to.saturating_sub(from) as f64 / 1e9;
    for w in &mut workers {
        w.say("quit").await;
        let _ = w.child.wait().await;
    }
    println!(
        "{}",
        serde_json::json!({
            "backend": "postgres",
            "agents": a.agents,
            "servers": ports.len(),
            "processes": true,
            "workers": a.workers,
            "idle": idle,
            "enroll_s": enroll_s,
            "changes": a.changes,
            "single_p50_s": percentile(&single, 0.5),
            "fleet_p50_s": percentile(&fleet, 0.5),
            "fleet_p99_s": percentile(&fleet, 0.99),
            "fleet_max_s": fleet.last().copied().unwrap_or(f64::NAN),
            "single_events_per_s": one_stored as f64 / one_s,
            "fleet_events_per_s": stored as f64 / all_s,
            "fleet_events": stored,
            "busy_answers": busy,
        })
    );
}
