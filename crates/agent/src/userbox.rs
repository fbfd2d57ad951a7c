//! Approval requests from users who are not root. A user whose program was denied may read
//! their own recent denies and leave a request in a drop box; the agent checks the request
//! against its own record of that user's denies (a user can ask only for what was denied to
//! them, and the approvers see the agent's facts, never the user's), queues it for the server
//! like a root's request, and tells the user how their requests stand.
//!
//! The user directory (`--user-dir`, `/run/portcullis` by default), made by the agent and
//! owned by root:
//! - `denied/UID.json` (owned by UID, 0400): that user's last [`RECENT`] denied or would-deny
//!   events, newest last, as the spool holds them.
//! - `requests/` (1733: anyone may leave a file there, nobody may list or read another's): a
//!   request is a small JSON file `{"sha256": …, "reason": …}` owned by the asking user.
//! - `status/UID.json` (owned by UID, 0400): how that user's requests stand.
//!
//! What a user leaves is untrusted: a file that is not a regular file owned by a user other
//! than root, has more than one link, is larger than [`DROP_MAX`] or names no deny of that
//! user is refused (and said in the user's status); at most [`PER_USER_PER_DAY`] requests a
//! day per user are queued.

use crate::locks::Unpoisoned;
use crate::process::Users;
use portcullis_events::Record;
use std::collections::{HashMap, VecDeque};
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Denies kept per user.
pub const RECENT: usize = 20;
/// The largest request file read.
pub const DROP_MAX: u64 = 8 * 1024;
/// Requests queued per user and day.
pub const PER_USER_PER_DAY: usize = 20;
/// Where the agent remembers which user made which request (in its state directory).
const OWNERS_FILE: &str = "owners.json";

/// A request as a user leaves it in the drop box.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Drop {
    /// The denied file's SHA-256 (or a prefix of at least 8 digits), or its path.
    pub file: String,
    /// Why the user needs it.
    pub reason: String,
}

/// How one of a user's requests stands, as `status/UID.json` lists them.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct UserStatus {
    /// The request's id (none: refused by the agent before it was queued).
    pub id: Option<String>,
    /// The file asked for.
    pub file: String,
    /// pending, approved, rejected or refused.
    pub status: String,
    /// The policy an approval made.
    pub policy: Option<String>,
    /// The approver's note, or why the request was refused.
    pub note: Option<String>,
}

/// The drop box and what the agent keeps for it.
#[derive(Debug)]
pub struct UserBox {
    dir: PathBuf,
    state_dir: PathBuf,
    recent: Mutex<HashMap<u32, VecDeque<(String, Record)>>>,
    /// Requests refused by the agent, per user (shown until the agent restarts).
    refused: Mutex<HashMap<u32, Vec<UserStatus>>>,
    /// Requests queued per user in the last day.
    queued: Mutex<HashMap<u32, VecDeque<Instant>>>,
    scanned: Mutex<Option<Instant>>,
}

fn io_err(what: &Path, e: std::io::Error) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("{}: {e}", what.display()))
}

/// Make `path` a directory owned by root with `mode`; refuse one that is not root's.
fn root_dir(path: &Path, mode: u32) -> std::io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if !m.is_dir() || m.uid() != 0 => {
            return Err(std::io::Error::other(format!(
                "{} is not a directory owned by root: remove it, the agent makes it",
                path.display()
            )));
        }
        Ok(_) => {}
        Err(_) => std::fs::create_dir_all(path).map_err(|e| io_err(path, e))?,
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(|e| io_err(path, e))
}

/// Write `bytes` to `dir/UID.json` for that user alone (through a temporary file only root
/// can reach, then a rename).
fn write_for(dir: &Path, uid: u32, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let path = dir.join(format!("{uid}.json"));
    let tmp = dir.join(format!(".{uid}.tmp"));
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o400).open(&tmp)?;
    f.write_all(bytes)?;
    std::os::unix::fs::fchown(&f, Some(uid), None)?;
    std::fs::rename(&tmp, &path)
}

impl UserBox {
    /// Make the user directory under `dir`; requests go to `state_dir`'s outbox.
    pub fn open(dir: &Path, state_dir: &Path) -> std::io::Result<UserBox> {
        root_dir(dir, 0o755)?;
        root_dir(&dir.join("denied"), 0o711)?;
        root_dir(&dir.join("status"), 0o711)?;
        root_dir(&dir.join("requests"), 0o1733)?;
        Ok(UserBox {
            dir: dir.to_owned(),
            state_dir: state_dir.to_owned(),
            recent: Mutex::new(HashMap::new()),
            refused: Mutex::new(HashMap::new()),
            queued: Mutex::new(HashMap::new()),
            scanned: Mutex::new(None),
        })
    }

    /// A record the spool writer wrote: a deny of a user's process is kept for that user.
    pub(crate) fn note(&self, record: &Record, line: &str) {
        if !matches!(record.event, portcullis_events::EventKind::Deny | portcullis_events::EventKind::WouldDeny) {
            return;
        }
        let Some(uid) = record.process.uid.filter(|&u| u != 0) else { return };
        let mut recent = self.recent.lock_ok();
        let list = recent.entry(uid).or_default();
        list.push_back((line.to_owned(), record.clone()));
        while list.len() > RECENT {
            list.pop_front();
        }
        let body = format!("[{}]", list.iter().map(|(l, _)| l.as_str()).collect::<Vec<_>>().join(","));
        if let Err(e) = write_for(&self.dir.join("denied"), uid, body.as_bytes()) {
            tracing::warn!("telling user {uid} what was denied: {e}");
        }
    }

    /// Once a second: take what users left in the drop box, and refresh their statuses.
    pub(crate) fn tick(&self, users: &Users) {
        {
            let mut scanned = self.scanned.lock_ok();
            if scanned.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
                return;
            }
            *scanned = Some(Instant::now());
        }
        let drops = self.dir.join("requests");
        let entries: Vec<PathBuf> =
            std::fs::read_dir(&drops).into_iter().flatten().flatten().map(|e| e.path()).take(200).collect();
        let mut touched: Vec<u32> = Vec::new();
        for path in entries {
            if let Some(uid) = self.take(&path, users) {
                touched.push(uid);
            }
            let _ = std::fs::remove_file(&path);
        }
        let owners = self.owners();
        touched.extend(owners.values().copied());
        touched.sort_unstable();
        touched.dedup();
        for uid in touched {
            self.publish(uid, &owners);
        }
    }

    /// Check one dropped file and queue its request; the user it came from.
    fn take(&self, path: &Path, users: &Users) -> Option<u32> {
        let file =
            std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(path).ok()?;
        let meta = file.metadata().ok()?;
        let uid = meta.uid();
        if !meta.is_file() || uid == 0 || meta.nlink() != 1 {
            return None;
        }
        let refuse = |file: String, why: String| {
            tracing::warn!("approval request from user {uid} refused: {why}");
            let mut refused = self.refused.lock_ok();
            let list = refused.entry(uid).or_default();
            list.push(UserStatus { id: None, file, status: "refused".into(), policy: None, note: Some(why) });
            if list.len() > RECENT {
                list.remove(0);
            }
            Some(uid)
        };
        if meta.len() > DROP_MAX {
            return refuse(String::new(), format!("a request file is at most {DROP_MAX} bytes"));
        }
        let mut text = String::new();
        if file.take(DROP_MAX).read_to_string(&mut text).is_err() {
            return refuse(String::new(), "a request file is UTF-8 JSON".into());
        }
        let Ok(drop) = serde_json::from_str::<Drop>(&text) else {
            return refuse(String::new(), "a request is {\"file\": SHA-256 or path, \"reason\": text}".into());
        };
        let want = portcullis_protocol::bounded_text(&drop.file, 4096);
        let reason = portcullis_protocol::bounded_text(drop.reason.trim(), portcullis_protocol::limits::REQUEST_REASON);
        if reason.is_empty() {
            return refuse(want, "say why the program is needed".into());
        }
        // The agent's own record of what was denied to this user, never the user's word.
        let found = {
            let recent = self.recent.lock_ok();
            recent.get(&uid).and_then(|list| list.iter().rev().find(|(_, r)| r.names(&want)).cloned())
        };
        let Some((line, record)) = found else {
            return refuse(want, "nothing with that path or SHA-256 was denied to you recently".into());
        };
        {
            let mut queued = self.queued.lock_ok();
            let times = queued.entry(uid).or_default();
            while times.front().is_some_and(|t| t.elapsed() > Duration::from_secs(24 * 3600)) {
                times.pop_front();
            }
            if times.len() >= PER_USER_PER_DAY {
                return refuse(want, format!("at most {PER_USER_PER_DAY} requests a day"));
            }
            times.push_back(Instant::now());
        }
        let mut id = [0u8; 16];
        if getrandom::fill(&mut id).is_err() {
            return refuse(want, "the agent has no randomness for a request id".into());
        }
        let id = portcullis_protocol::hex(&id);
        let user = users.name(uid);
        let body = portcullis_protocol::NewRequest::body(&id, &reason, Some(&user), &line);
        let outbox = self.state_dir.join("requests/outbox");
        if let Err(e) = std::fs::create_dir_all(&outbox)
            .and_then(|()| crate::bypass::write_private(&outbox.join(format!("{id}.json")), body.as_bytes()))
        {
            return refuse(want, format!("the agent cannot queue it: {e}"));
        }
        let mut owners = self.owners();
        owners.insert(id.clone(), uid);
        let _ = crate::bypass::write_private(
            &self.state_dir.join("requests").join(OWNERS_FILE),
            &serde_json::to_vec(&owners).expect("plain data"),
        );
        tracing::info!("approval request {id} from {user} for {} queued", record.file.path);
        Some(uid)
    }

    /// Which user made which request.
    fn owners(&self) -> HashMap<String, u32> {
        std::fs::read(self.state_dir.join("requests").join(OWNERS_FILE))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// Write `status/UID.json`: the user's requests as the server decided them.
    fn publish(&self, uid: u32, owners: &HashMap<String, u32>) {
        let statuses = portcullis_sync_status(&self.state_dir);
        let requests = self.state_dir.join("requests");
        let mut out: Vec<UserStatus> = self.refused.lock_ok().get(&uid).cloned().unwrap_or_default();
        for (id, owner) in owners {
            if *owner != uid {
                continue;
            }
            let file = ["sent", "outbox"]
                .iter()
                .find_map(|d| std::fs::read(requests.join(d).join(format!("{id}.json"))).ok())
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                .and_then(|v| v["record"]["file"]["path"].as_str().map(str::to_owned))
                .unwrap_or_default();
            let s = statuses.iter().find(|s| &s.id == id);
            out.push(UserStatus {
                id: Some(id.clone()),
                file,
                status: s.map_or_else(|| "pending".to_owned(), |s| s.status.clone()),
                policy: s.and_then(|s| s.policy.clone()),
                note: s.and_then(|s| s.note.clone()),
            });
        }
        let bytes = serde_json::to_vec(&out).expect("plain data");
        let path = self.dir.join("status").join(format!("{uid}.json"));
        if std::fs::read(&path).ok().as_deref() == Some(&bytes[..]) {
            return;
        }
        if let Err(e) = write_for(&self.dir.join("status"), uid, &bytes) {
            tracing::warn!("telling user {uid} how their requests stand: {e}");
        }
    }
}

/// How the sent requests stand, as the sync thread last heard (`requests/status.json`).
fn portcullis_sync_status(state_dir: &Path) -> Vec<portcullis_protocol::RequestStatus> {
    std::fs::read(state_dir.join("requests").join("status.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_someone_else_owns_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let theirs = dir.path().join("box");
        std::fs::create_dir(&theirs).unwrap();
        if unsafe { libc::geteuid() } != 0 {
            return;
        }
        std::os::unix::fs::chown(&theirs, Some(65534), None).unwrap();
        let e = UserBox::open(&theirs, dir.path()).unwrap_err();
        assert!(e.to_string().contains("not a directory owned by root"), "{e}");
        let ours = dir.path().join("ours");
        UserBox::open(&ours, dir.path()).unwrap();
        let mode = std::fs::metadata(ours.join("requests")).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o1733);
    }
}
