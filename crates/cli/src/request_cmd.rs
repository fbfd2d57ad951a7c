//! `portcullis request`: ask the console's approvers for a denied program, and see how they
//! decided. As root (through sudo), the request (the denied event as the agent recorded it,
//! the reason, who asks) waits in the state directory until the agent's sync thread delivers
//! it. As any other user, it goes through the agent's user directory
//! ([`portcullis_agent::userbox`]): the user's own recent denies are read there, the request
//! is left in its drop box, and the agent checks it against its own record.

use crate::args::RequestArgs;
use crate::exit::{OrExit, UNREADABLE, fail};
use portcullis_events::spool;
use std::process::ExitCode;

/// The newest denied event matching `want` (`None`: any), as its spool line.
fn find_denied(
    dir: &std::path::Path,
    want: Option<&str>,
) -> anyhow::Result<Option<(String, portcullis_events::Record)>> {
    let files = spool::files(dir).or_exit(UNREADABLE, format!("reading the event spool {}", dir.display()))?;
    let mut found = None;
    for (_, path) in files {
        let mut offset = 0;
        loop {
            let (lines, next, _) =
                spool::read_lines(&path, offset, 10_000).or_exit(UNREADABLE, format!("reading {}", path.display()))?;
            for line in lines {
                let Ok(r) = serde_json::from_str::<portcullis_events::Record>(&line) else { continue };
                if !matches!(r.event, portcullis_events::EventKind::Deny | portcullis_events::EventKind::WouldDeny) {
                    continue;
                }
                if want.is_none_or(|w| r.names(w)) {
                    found = Some((line, r));
                }
            }
            if next == offset {
                break;
            }
            offset = next;
        }
    }
    Ok(found)
}

/// Print statuses as `--status` shows them.
fn print_statuses(rows: &[serde_json::Value], waiting: usize, json: bool) {
    if json {
        println!("{}", serde_json::json!({"requests": rows, "not_yet_sent": waiting}));
        return;
    }
    for r in rows {
        let extra = match (r["policy"].as_str(), r["note"].as_str()) {
            (Some(p), _) => format!(" — policy {p:?}"),
            (None, Some(n)) => format!(" — {n}"),
            _ => String::new(),
        };
        println!("{:<9} {}{extra}", r["status"].as_str().unwrap_or_default(), r["file"].as_str().unwrap_or_default());
    }
    if waiting > 0 {
        println!("{waiting} request(s) not sent yet: the agent sends them when the server is reachable");
    }
    if rows.is_empty() && waiting == 0 {
        println!("no request made here");
    }
}

/// The reason given, once the request names a file (or `--last`) and says why.
fn asked(a: &RequestArgs) -> anyhow::Result<&str> {
    let reason = a.reason.as_deref().map(str::trim).unwrap_or_default();
    if reason.is_empty() {
        return Err(fail(2, "say why the program is needed: --reason TEXT"));
    }
    if a.event.is_none() && !a.last {
        return Err(fail(2, "name the denied file (its path or SHA-256), or give --last"));
    }
    Ok(reason)
}

/// A user who is not root: through the agent's user directory.
fn run_as_user(a: &RequestArgs, uid: u32) -> anyhow::Result<ExitCode> {
    let dir = &a.user_dir;
    if a.status {
        let path = dir.join("status").join(format!("{uid}.json"));
        let rows: Vec<serde_json::Value> = match std::fs::read(&path) {
            Ok(b) => {
                serde_json::from_slice(&b).or_exit(UNREADABLE, format!("{} is not a status list", path.display()))?
            }
            Err(_) => Vec::new(),
        };
        print_statuses(&rows, 0, a.json);
        return Ok(ExitCode::SUCCESS);
    }
    let reason = asked(a)?;
    let denied = dir.join("denied").join(format!("{uid}.json"));
    let list: Vec<portcullis_events::Record> = match std::fs::read(&denied) {
        Ok(b) => {
            serde_json::from_slice(&b).or_exit(UNREADABLE, format!("{} is not a list of events", denied.display()))?
        }
        Err(_) => Vec::new(),
    };
    let want = a.event.as_deref();
    let found = list.iter().rev().find(|r| want.is_none_or(|w| r.names(w)));
    let Some(record) = found else {
        return Err(fail(
            UNREADABLE,
            match want {
                Some(e) => format!("no denied program {e:?} among your recent denies ({})", denied.display()),
                None => format!(
                    "nothing was denied to you here recently ({} has none; is the agent running with a server?)",
                    denied.display()
                ),
            },
        ));
    };
    let drop = portcullis_agent::userbox::Drop { file: record.file.sha256.clone(), reason: reason.to_owned() };
    let mut id = [0u8; 12];
    getrandom::fill(&mut id).map_err(|e| fail(1, format!("no randomness: {e}")))?;
    let name: String = id.iter().map(|b| format!("{b:02x}")).collect();
    let path = dir.join("requests").join(format!("{name}.json"));
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .or_exit(UNREADABLE, format!("leaving the request in {}", path.display()))?;
        f.write_all(&serde_json::to_vec(&drop)?).or_exit(UNREADABLE, format!("writing {}", path.display()))?;
    }
    if a.json {
        println!("{}", serde_json::json!({"file": record.file.path, "sha256": record.file.sha256}));
    } else {
        println!(
            "asked for {} ({}); the agent checks it and sends it to the approvers. See the decision with `portcullis \
             request --status`",
            record.file.path,
            &record.file.sha256[..record.file.sha256.len().min(16)]
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn run(a: RequestArgs) -> anyhow::Result<ExitCode> {
    // SAFETY: geteuid and getuid cannot fail.
    let (euid, uid) = unsafe { (libc::geteuid(), libc::getuid()) };
    if euid != 0 {
        return run_as_user(&a, uid);
    }
    let dir = a.state_dir.join(portcullis_sync::REQUESTS_DIR);
    if a.status {
        let statuses = portcullis_sync::read_statuses(&a.state_dir);
        let mut rows = Vec::new();
        for sent in std::fs::read_dir(dir.join("sent")).into_iter().flatten().flatten() {
            let Ok(req) = serde_json::from_slice::<serde_json::Value>(&std::fs::read(sent.path()).unwrap_or_default())
            else {
                continue;
            };
            let id = req["id"].as_str().unwrap_or_default().to_owned();
            let status = statuses.iter().find(|s| s.id == id);
            rows.push(serde_json::json!({
                "id": id,
                "file": req["record"]["file"]["path"],
                "reason": req["reason"],
                "status": status.map_or("pending", |s| s.status.as_str()),
                "policy": status.and_then(|s| s.policy.clone()),
                "note": status.and_then(|s| s.note.clone()),
            }));
        }
        let waiting = std::fs::read_dir(dir.join("outbox")).into_iter().flatten().flatten().count();
        print_statuses(&rows, waiting, a.json);
        return Ok(ExitCode::SUCCESS);
    }
    let reason = asked(&a)?;
    let (line, record) = find_denied(&a.spool, a.event.as_deref())?.ok_or_else(|| {
        fail(
            UNREADABLE,
            match &a.event {
                Some(e) => format!("no denied program {e:?} in the event spool {}", a.spool.display()),
                None => format!("nothing was denied here (event spool {})", a.spool.display()),
            },
        )
    })?;
    let mut id = [0u8; 16];
    getrandom::fill(&mut id).map_err(|e| fail(1, format!("no randomness: {e}")))?;
    let id = portcullis_protocol::hex(&id);
    // Who asks: the user behind sudo, else the one running this.
    let user = std::env::var("SUDO_USER").ok().or_else(|| std::env::var("USER").ok());
    let body = portcullis_protocol::NewRequest::body(&id, reason, user.as_deref(), &line);
    let outbox = dir.join("outbox");
    std::fs::create_dir_all(&outbox).or_exit(UNREADABLE, format!("creating {}", outbox.display()))?;
    portcullis_agent::bypass::write_private(&outbox.join(format!("{id}.json")), body.as_bytes())
        .or_exit(UNREADABLE, format!("writing the request into {}", outbox.display()))?;
    if a.json {
        println!("{}", serde_json::json!({"id": id, "file": record.file.path, "sha256": record.file.sha256}));
    } else {
        println!(
            "asked for {} ({}); the agent sends it to the approvers. See the decision with `portcullis request --status`",
            record.file.path,
            &record.file.sha256[..record.file.sha256.len().min(16)]
        );
    }
    Ok(ExitCode::SUCCESS)
}
