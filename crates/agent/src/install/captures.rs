//! The agent's own record of what Installation windows captured: allowed until a bundle
//! carries it, kept across restarts (a JSON file, and a journal of the captures since it was
//! written), sent to the server by the sync thread.

use crate::locks::Unpoisoned;
use portcullis_protocol::CapturedFile;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

/// The file in the state directory that keeps the captures the server does not have yet.
pub const CAPTURES_FILE: &str = "captures.json";
/// New captures since [`CAPTURES_FILE`] was written, one JSON line each: a capture is one
/// appended line (an install writes thousands of files), folded into the file when the
/// server acknowledges some.
pub const CAPTURES_JOURNAL: &str = "captures.journal";

pub(crate) use portcullis_protocol::hex;

fn unhex(text: &str) -> Option<[u8; 32]> {
    portcullis_protocol::unhex(text)?.try_into().ok()
}

/// One capture as the agent keeps it.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
struct Kept {
    file: CapturedFile,
    /// The model version the server said has it.
    #[serde(default)]
    acknowledged: Option<i64>,
}

/// The captures the server's bundles do not carry yet: kept on disk, so that a restart
/// (or a server out of reach for days) never denies what an installer put in place.
#[derive(Debug)]
pub struct Captures {
    path: Option<PathBuf>,
    kept: Mutex<Vec<Kept>>,
    /// Application by content hash, for the judge.
    index: Mutex<HashMap<[u8; 32], String>>,
    any: AtomicBool,
    /// The newest bundle version the sync thread saved.
    bundle_seen: AtomicI64,
    /// The newest bundle version in force (loaded after it was seen).
    applied: AtomicI64,
    /// Captures dropped because a bundle carries them: content hash → (application, the
    /// bundle version from which on they are carried, when). A worker that took the previous
    /// policy before the reload and asks after it still finds them (see [`Captures::lookup`]).
    retired: Mutex<HashMap<[u8; 32], (String, i64, std::time::Instant)>>,
}

/// How long a retired capture stays visible to policies older than the bundle carrying it:
/// far longer than any judgement takes.
const RETIRED_FOR: std::time::Duration = std::time::Duration::from_secs(60);

impl Captures {
    /// Captures kept in `state_dir` ([`CAPTURES_FILE`] and [`CAPTURES_JOURNAL`]); an
    /// unreadable file is set aside (`captures.json.bad`) and said, a torn journal line
    /// skipped, never a reason not to start.
    pub fn open(state_dir: &Path) -> Captures {
        let path = state_dir.join(CAPTURES_FILE);
        let mut kept: Vec<Kept> = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                let bad = path.with_extension("json.bad");
                tracing::error!(
                    "{} is not a list of captures ({e}); moved to {} and starting with none",
                    path.display(),
                    bad.display()
                );
                let _ = std::fs::rename(&path, &bad);
                Vec::new()
            }),
            Err(_) => Vec::new(),
        };
        let journal = std::fs::read_to_string(state_dir.join(CAPTURES_JOURNAL)).unwrap_or_default();
        for line in journal.lines() {
            if let Ok(file) = serde_json::from_str::<CapturedFile>(line)
                && !kept.iter().any(|k| k.file.sha256 == file.sha256)
            {
                kept.push(Kept { file, acknowledged: None });
            }
        }
        let c = Captures::with(Some(path), kept);
        c.reindex();
        c
    }

    /// Captures kept in memory only (a policy file without a state directory, tests).
    pub fn in_memory() -> Captures {
        Captures::with(None, Vec::new())
    }

    fn with(path: Option<PathBuf>, kept: Vec<Kept>) -> Captures {
        Captures {
            path,
            kept: Mutex::new(kept),
            index: Mutex::new(HashMap::new()),
            any: AtomicBool::new(false),
            bundle_seen: AtomicI64::new(0),
            applied: AtomicI64::new(0),
            retired: Mutex::new(HashMap::new()),
        }
    }

    fn reindex(&self) {
        let kept = self.kept.lock_ok();
        let index: HashMap<[u8; 32], String> =
            kept.iter().filter_map(|k| Some((unhex(&k.file.sha256)?, k.file.application.clone()))).collect();
        let mut retired = self.retired.lock_ok();
        retired.retain(|_, (_, _, at)| at.elapsed() < RETIRED_FOR);
        self.any.store(!index.is_empty() || !retired.is_empty(), Ordering::Release);
        *self.index.lock_ok() = index;
    }

    /// Write every capture to [`CAPTURES_FILE`] and empty the journal (a crash in between
    /// leaves a capture in both: read once).
    fn save(&self, kept: &[Kept]) {
        let Some(path) = &self.path else { return };
        let bytes = serde_json::to_vec(kept).expect("plain data");
        if let Err(e) = crate::bypass::write_private(path, &bytes) {
            tracing::error!("keeping captures in {}: {e}", path.display());
            return;
        }
        let _ = std::fs::remove_file(path.with_file_name(CAPTURES_JOURNAL));
    }

    /// Append one capture to the journal.
    fn append(&self, file: &CapturedFile) {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let Some(path) = &self.path else { return };
        let journal = path.with_file_name(CAPTURES_JOURNAL);
        let line = format!("{}\n", serde_json::to_string(file).expect("plain data"));
        let written = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&journal)
            .and_then(|mut f| f.write_all(line.as_bytes()).and_then(|()| f.sync_data()));
        if let Err(e) = written {
            tracing::error!("keeping a capture in {}: {e}", journal.display());
        }
    }

    /// The application a file with this content was captured into, if it was, for a policy
    /// loaded from bundle version `as_of`: a capture that a newer bundle carries (and that
    /// the record dropped) still counts for an older policy.
    pub(crate) fn lookup(&self, sha256: &[u8; 32], as_of: i64) -> Option<String> {
        if !self.any.load(Ordering::Acquire) {
            return None;
        }
        if let Some(application) = self.index.lock_ok().get(sha256) {
            return Some(application.clone());
        }
        match self.retired.lock_ok().get(sha256) {
            Some((application, carried_from, _)) if as_of < *carried_from => Some(application.clone()),
            _ => None,
        }
    }

    /// Keep a capture; false when this content was captured already.
    pub(crate) fn add(&self, file: CapturedFile) -> bool {
        let Some(sha) = unhex(&file.sha256) else { return false };
        let mut kept = self.kept.lock_ok();
        if kept.iter().any(|k| k.file.sha256 == file.sha256) {
            return false;
        }
        self.index.lock_ok().insert(sha, file.application.clone());
        self.any.store(true, Ordering::Release);
        self.append(&file);
        kept.push(Kept { file, acknowledged: None });
        true
    }

    /// How many captures the agent keeps.
    pub fn len(&self) -> usize {
        self.kept.lock_ok().len()
    }

    /// Whether it keeps none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Captures the server has not acknowledged yet (at most `max`).
    pub fn unsent(&self, max: usize) -> Vec<CapturedFile> {
        self.kept.lock_ok().iter().filter(|k| k.acknowledged.is_none()).take(max).map(|k| k.file.clone()).collect()
    }

    /// The server keeps `files` as of model `version`. A bundle of that version may be in
    /// force already (the poll can be quicker than the upload's reply): then they go now.
    pub fn acknowledged(&self, files: &[CapturedFile], version: i64) {
        {
            let mut kept = self.kept.lock_ok();
            for k in kept.iter_mut() {
                if files.iter().any(|f| f.sha256 == k.file.sha256) {
                    k.acknowledged = Some(version);
                }
            }
            self.save(&kept);
        }
        self.forget_upto(self.applied.load(Ordering::Acquire));
    }

    /// The server refused `files` for good (the window was closed there, or they were
    /// not for its application): they are still allowed here until the next bundle, which is
    /// the server's word on them.
    pub fn refused(&self, files: &[CapturedFile]) {
        self.acknowledged(files, self.applied.load(Ordering::Acquire) + 1);
    }

    /// The sync thread saved a bundle of `version`.
    pub fn bundle_seen(&self, version: i64) {
        self.bundle_seen.fetch_max(version, Ordering::AcqRel);
    }

    /// The newest bundle version saved, read before a reload: what the reload loads is at
    /// least that.
    pub(crate) fn seen(&self) -> i64 {
        self.bundle_seen.load(Ordering::Acquire)
    }

    /// A bundle of at least `version` is in force: forget what it carries.
    pub(crate) fn bundle_applied(&self, version: i64) {
        self.applied.fetch_max(version, Ordering::AcqRel);
        self.forget_upto(version);
    }

    fn forget_upto(&self, version: i64) {
        let mut kept = self.kept.lock_ok();
        let before = kept.len();
        let now = std::time::Instant::now();
        let mut retired = Vec::new();
        kept.retain(|k| {
            let carried = k.acknowledged.is_some_and(|v| v <= version);
            if carried && let Some(sha) = unhex(&k.file.sha256) {
                retired.push((sha, (k.file.application.clone(), version, now)));
            }
            !carried
        });
        self.retired.lock_ok().extend(retired);
        if kept.len() != before {
            tracing::info!(
                "{} captured file(s) are in the server's bundle now; the agent's own record of them is dropped",
                before - kept.len()
            );
            self.save(&kept);
            drop(kept);
            self.reindex();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn capture(sha: u8, app: &str) -> CapturedFile {
        CapturedFile {
            sha256: hex(&[sha; 32]),
            path: format!("/opt/vendor/bin/t{sha}"),
            size: 10,
            application: app.into(),
            installer: "/root/install.sh".into(),
            at_ms: 1,
        }
    }

    #[test]
    fn captures_survive_a_restart_and_go_once_a_bundle_carries_them() {
        let dir = tempfile::tempdir().unwrap();
        let c = Captures::open(dir.path());
        assert!(c.add(capture(1, "Vendor")));
        assert!(!c.add(capture(1, "Vendor")), "the same content is kept once");
        assert!(c.add(capture(2, "Vendor")));
        assert_eq!(c.lookup(&[1; 32], 0).as_deref(), Some("Vendor"));
        // A torn last line (a crash mid-append) is skipped, the rest kept.
        let journal = dir.path().join(CAPTURES_JOURNAL);
        let mut text = std::fs::read_to_string(&journal).unwrap();
        text.push_str("{\"sha256\": \"ab");
        std::fs::write(&journal, text).unwrap();
        let again = Captures::open(dir.path());
        assert_eq!(again.len(), 2, "kept on disk");
        assert_eq!(again.lookup(&[2; 32], 0).as_deref(), Some("Vendor"));
        again.acknowledged(&[capture(1, "Vendor")], 7);
        assert_eq!(again.unsent(10), vec![capture(2, "Vendor")]);
        // A bundle older than the acknowledgement does not carry it yet.
        again.bundle_applied(6);
        assert!(again.lookup(&[1; 32], 6).is_some());
        // Refused: allowed until the next bundle, the server's word on it.
        again.refused(&[capture(2, "Vendor")]);
        assert!(again.lookup(&[2; 32], 6).is_some());
        again.acknowledged(&[capture(2, "Vendor")], 99);
        assert!(again.lookup(&[1; 32], 6).is_some());
        again.bundle_applied(7);
        assert!(again.lookup(&[1; 32], 7).is_none(), "the policy of bundle 7 carries it");
        // A worker that took the policy of bundle 6 before the reload still finds it.
        assert_eq!(again.lookup(&[1; 32], 6).as_deref(), Some("Vendor"));
        assert!(again.lookup(&[2; 32], 7).is_some(), "acknowledged at a newer version: kept");
        assert_eq!(Captures::open(dir.path()).len(), 1);
        assert!(!journal.exists(), "folded into the file");
        // Acknowledged at a version already in force (the poll was quicker): gone at once.
        again.acknowledged(&[capture(2, "Vendor")], 7);
        assert!(again.is_empty() && again.lookup(&[2; 32], 7).is_none());
        assert!(again.lookup(&[2; 32], 6).is_some(), "for the policy before bundle 7");
        assert!(Captures::open(dir.path()).lookup(&[2; 32], 0).is_none(), "never kept on disk once carried");
    }

    #[test]
    fn an_unreadable_captures_file_is_set_aside_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CAPTURES_FILE), "{not json").unwrap();
        let c = Captures::open(dir.path());
        assert!(c.is_empty());
        assert!(dir.path().join("captures.json.bad").exists());
    }
}
