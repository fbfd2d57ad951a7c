//! `portcullis server` from the command line: the first admin is created by the documented
//! command, the server starts on its embedded SQLite file and answers a login over HTTP.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_portcullis")
}

fn http(addr: &str, request: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

#[test]
fn create_admin_then_serve_on_sqlite_and_log_in() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/data/server.db", dir.path().display());
    let mut create = Command::new(bin())
        .args(["server", "create-admin", "--database-url", &db, "--organization", "Acme", "--user", "root"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    create.stdin.take().unwrap().write_all(b"a long password\n").unwrap();
    let out = create.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(dir.path().join("data/server.db").exists(), "the database file is made on first use");

    let mut server = Command::new(bin())
        .args(["server", "--database-url", &db, "--listen", "127.0.0.1:0", "--plain-http"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(server.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let addr = line.split("http://").nth(1).unwrap().split('/').next().unwrap().to_owned();
    let body = r#"{"organization":"Acme","user":"root","password":"a long password"}"#;
    let reply = http(
        &addr,
        &format!(
            "POST /api/session HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    );
    let _ = server.kill();
    let _ = server.wait();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.to_ascii_lowercase().contains("set-cookie: portcullis_session="), "{reply}");
    assert!(reply.contains("\"csrf_token\""), "{reply}");
}

#[test]
fn https_with_a_certificate_generated_on_first_start() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/server.db", dir.path().display());
    let tls = dir.path().join("tls");
    let mut server = Command::new(bin())
        .args(["server", "--database-url", &db, "--listen", "127.0.0.1:0", "--tls-dir", tls.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(server.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert!(line.contains("https://"), "{line}");
    let url = line.split_whitespace().find(|w| w.starts_with("https://")).unwrap().to_owned();
    let cert = tls.join("cert.pem");
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "--cacert", cert.to_str().unwrap(), "-o", "/dev/null", "-w", "%{http_code}"])
        .arg(format!("{url}api/me").replace("127.0.0.1", "localhost"))
        .args(["--resolve", &format!("localhost:{}:127.0.0.1", url.rsplit(':').next().unwrap().trim_end_matches('/'))])
        .output()
        .unwrap();
    let _ = server.kill();
    let _ = server.wait();
    // The generated certificate verifies for localhost, and the API answers over TLS.
    assert_eq!(String::from_utf8_lossy(&out.stdout), "401", "{}", String::from_utf8_lossy(&out.stderr));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(tls.join("key.pem")).unwrap().permissions().mode() & 0o777, 0o600);
}

#[test]
fn the_agent_refuses_a_plain_http_server_and_an_empty_token_file_before_sending_anything() {
    let dir = tempfile::tempdir().unwrap();
    // A listener that would see any request: nothing may reach it.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let state = dir.path().join("state");
    let out = Command::new(bin())
        .args(["agent", "--server", &url, "--enroll-token", "pce_secret", "--state-dir"])
        .arg(&state)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("https://") && stderr.contains("--insecure-http"), "{stderr}");
    assert!(listener.accept().is_err(), "no connection was made: the token never left the host");

    let empty = dir.path().join("token");
    std::fs::write(&empty, "\n").unwrap();
    let out = Command::new(bin())
        .args(["agent", "--server", "https://127.0.0.1:1", "--enroll-token-file"])
        .arg(&empty)
        .arg("--state-dir")
        .arg(&state)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("the file is empty"), "{stderr}");
}

/// `server create-admin` for a new user each time (a second admin of the same name is refused).
fn create_admin(db: &str, extra: &[&str], envs: &[(&str, &str)]) -> std::process::Output {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let user = format!("admin{}", N.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    let mut create = Command::new(bin())
        .args(["server", "create-admin", "--database-url", db, "--organization", "Acme", "--user", &user])
        .args(extra)
        .envs(envs.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    create.stdin.take().unwrap().write_all(b"a long password\n").unwrap();
    create.wait_with_output().unwrap()
}

#[test]
fn the_secret_key_is_kept_outside_the_database_and_a_new_one_reseals_at_the_next_start() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/data/server.db", dir.path().display());
    let key = dir.path().join("data/secret.key");
    // First start with SQLite: the key is made beside the database, readable by the owner only.
    let out = create_admin(&db, &[], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("made the server's secret key") && stderr.contains("secret.key"), "{stderr}");
    assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    let first = std::fs::read_to_string(&key).unwrap();
    // The database file alone holds no 64-hex-digit seed: every stored seed is sealed.
    let id = first.split("# id ").nth(1).unwrap().split_whitespace().next().unwrap();
    // WAL: recent pages may still be in the log beside the file.
    let mut raw = std::fs::read(dir.path().join("data/server.db")).unwrap();
    raw.extend(std::fs::read(dir.path().join("data/server.db-wal")).unwrap_or_default());
    assert!(String::from_utf8_lossy(&raw).contains(&format!("v1.{id}.")), "the seed is stored sealed with key {id}");

    // A new key first, the old one after: the next start reseals and says the old is no longer needed.
    let out = Command::new(bin()).args(["server", "new-secret-key", "--database-url", &db]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && stdout.contains("older keys kept after it"), "{stdout}");
    let rotated = std::fs::read_to_string(&key).unwrap();
    let old_line = first.lines().find(|l| !l.starts_with('#')).unwrap().split_whitespace().next().unwrap();
    assert!(
        rotated.contains(old_line) && !rotated.lines().find(|l| !l.starts_with('#')).unwrap().starts_with(old_line)
    );
    let out = create_admin(&db, &[], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("sealed 1 bundle signing key(s)") && stderr.contains("can go once"), "{stderr}");
    // Only the new key now: still starts. The old key alone: refused, naming the key needed.
    let new_line = rotated.lines().find(|l| !l.starts_with('#')).unwrap().split_whitespace().next().unwrap();
    std::fs::write(&key, format!("{new_line}\n")).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(create_admin(&db, &[], &[]).status.success());
    // Several servers: a standby key first unseals only (nothing is sealed with it, so a
    // server not yet given it loses nothing); promoted, the next start seals with it.
    let out = Command::new(bin()).args(["server", "promote-secret-key", "--database-url", &db]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "one key: nothing to promote");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--standby"));
    let out =
        Command::new(bin()).args(["server", "new-secret-key", "--standby", "--database-url", &db]).output().unwrap();
    assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).contains("standby"));
    let out = create_admin(&db, &[], &[]);
    assert!(out.status.success() && !String::from_utf8_lossy(&out.stderr).contains("sealed"));
    let out = Command::new(bin()).args(["server", "promote-secret-key", "--database-url", &db]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = create_admin(&db, &[], &[]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("sealed 1 bundle signing key(s)"));
    let promoted = std::fs::read_to_string(&key).unwrap();
    assert!(promoted.lines().filter(|l| !l.starts_with('#')).nth(1).unwrap().starts_with(new_line));
    std::fs::write(&key, format!("{}\n", promoted.lines().find(|l| !l.starts_with('#')).unwrap())).unwrap();
    assert!(create_admin(&db, &[], &[]).status.success(), "the promoted key alone opens every seed");
    let out = create_admin(&db, &[], &[("PORTCULLIS_SECRET_KEY", old_line)]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(7), "{stderr}");
    assert!(stderr.contains("is sealed with secret key") && stderr.contains("PORTCULLIS_SECRET_KEY"), "{stderr}");
    // A key file others can read is refused with the fix.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = create_admin(&db, &[], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(7), "{stderr}");
    assert!(stderr.contains("chmod 600"), "{stderr}");
    // PostgreSQL has no place beside the database: a key must be given, and the message says how.
    let out = create_admin("postgres://nobody@127.0.0.1:1/none", &[], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(7), "{stderr}");
    assert!(stderr.contains("new-secret-key") && stderr.contains("--secret-key-file"), "{stderr}");
}
