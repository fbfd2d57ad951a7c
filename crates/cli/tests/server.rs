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
