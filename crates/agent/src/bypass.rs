//! Offline one-time bypass codes on the host ([`portcullis_protocol::bypass`]): `portcullis
//! bypass CODE` leaves the code in the state directory; the agent checks it with its key,
//! accepts each counter once and in rising order, and enforces in Monitor mode until the
//! bypass ends, marking what it records meanwhile with the code's counter.
//!
//! Files in the state directory (root only): [`KEY_FILE`] (the agent's key, hex),
//! [`STATE_FILE`] (the last counter used and the bypass in force), [`REQUEST_FILE`] (a code
//! waiting for the agent) and [`RESULT_FILE`] (the agent's answer to it).

use portcullis_protocol::bypass::{self, BypassCode, BypassError};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The agent's bypass key, 64 hex digits.
pub const KEY_FILE: &str = "bypass.key";
/// The last counter used and the bypass in force.
pub const STATE_FILE: &str = "bypass-state.json";
/// A code waiting for the agent.
pub const REQUEST_FILE: &str = "bypass-request";
/// The agent's answer to the last request.
pub const RESULT_FILE: &str = "bypass-result.json";

/// Where bypass codes are taken from, and what checks them.
#[derive(Clone, Debug)]
pub struct BypassConfig {
    /// The state directory.
    pub state_dir: PathBuf,
    /// The key shared with the server.
    pub key: [u8; 32],
    /// This computer's name, as the server knows it.
    pub computer: String,
}

/// Codes used, and the bypass in force.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BypassState {
    /// The highest counter accepted: lower or equal ones are refused.
    pub last_counter: u64,
    /// The counter of the bypass in force (or the last one).
    pub counter: u64,
    /// When it ends, Unix seconds.
    pub until_s: i64,
}

/// The agent's answer to a request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BypassResult {
    /// The code's counter, when it was read.
    pub counter: Option<u64>,
    /// When the bypass ends, Unix seconds (accepted).
    pub until_s: Option<i64>,
    /// Why it was refused.
    pub error: Option<String>,
}

impl BypassState {
    /// The state kept in `dir` (none yet: nothing used).
    pub fn load(dir: &Path) -> Result<BypassState, String> {
        let path = dir.join(STATE_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BypassState::default()),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    /// Keep it (atomically, readable by root only).
    pub fn save(&self, dir: &Path) -> std::io::Result<()> {
        write_private(&dir.join(STATE_FILE), &serde_json::to_vec(self).expect("plain data"))
    }

    /// The counter of the bypass in force at `now_s`, if one is.
    pub fn active(&self, now_s: i64) -> Option<u64> {
        (now_s < self.until_s).then_some(self.counter)
    }

    /// Take a checked code at `now_s`: refused when its counter was used (or a newer one).
    pub fn accept(&mut self, code: BypassCode, now_s: i64) -> Result<(), BypassError> {
        if code.counter <= self.last_counter {
            return Err(BypassError::Used);
        }
        self.last_counter = code.counter;
        self.counter = code.counter;
        self.until_s = now_s + i64::from(code.minutes) * 60;
        Ok(())
    }
}

/// Write `bytes` to `path` through a temporary file, mode 0600.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// Check `text` as a code for this computer against `state` at `now_s`, and take it.
pub fn redeem(cfg: &BypassConfig, state: &mut BypassState, text: &str, now_s: i64) -> Result<BypassCode, BypassError> {
    let code = bypass::check(&cfg.key, &cfg.computer, text, now_s)?;
    state.accept(code, now_s)?;
    Ok(code)
}

/// A request left by `portcullis bypass`, taken (the file is removed) and answered in
/// [`RESULT_FILE`]. `None` when there is none.
pub(crate) fn take_request(cfg: &BypassConfig, state: &mut BypassState, now_s: i64) -> Option<BypassResult> {
    let path = cfg.state_dir.join(REQUEST_FILE);
    let text = std::fs::read(&path).ok()?;
    let _ = std::fs::remove_file(&path);
    // A code is short: anything longer is not one.
    let text = String::from_utf8_lossy(&text[..text.len().min(200)]).into_owned();
    let before = state.clone();
    let result = match redeem(cfg, state, &text, now_s) {
        Ok(code) => match state.save(&cfg.state_dir) {
            Ok(()) => BypassResult { counter: Some(code.counter), until_s: Some(state.until_s), error: None },
            Err(e) => {
                // Not kept, not used: a code whose use is not recorded could be used again.
                *state = before;
                BypassResult { counter: Some(code.counter), until_s: None, error: Some(format!("{}: {e}", STATE_FILE)) }
            }
        },
        Err(e) => BypassResult { counter: None, until_s: None, error: Some(e.to_string()) },
    };
    if let Err(e) = write_private(&cfg.state_dir.join(RESULT_FILE), &serde_json::to_vec(&result).expect("plain data")) {
        tracing::error!("bypass: cannot answer in {}: {e}", RESULT_FILE);
    }
    Some(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(dir: &Path) -> BypassConfig {
        BypassConfig { state_dir: dir.to_owned(), key: [5; 32], computer: "web-01".into() }
    }

    #[test]
    fn each_code_is_taken_once_in_rising_order_and_its_bypass_ends_on_time() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = cfg(dir.path());
        let now = 480_000 * 3600;
        let code = |counter, minutes| {
            bypass::issue(&cfg.key, "web-01", &BypassCode { counter, minutes, expires_hour: 480_000 })
        };
        let mut state = BypassState::default();
        std::fs::write(dir.path().join(REQUEST_FILE), code(2, 30)).unwrap();
        let r = take_request(&cfg, &mut state, now).unwrap();
        assert_eq!(r, BypassResult { counter: Some(2), until_s: Some(now + 1800), error: None });
        assert!(!dir.path().join(REQUEST_FILE).exists());
        assert_eq!(state.active(now + 1799), Some(2));
        assert_eq!(state.active(now + 1800), None);
        assert_eq!(BypassState::load(dir.path()).unwrap(), state, "kept across restarts");
        for (text, why) in
            [(code(2, 30), "used already"), (code(1, 600), "used already"), ("nonsense".into(), "not a bypass code")]
        {
            std::fs::write(dir.path().join(REQUEST_FILE), &text).unwrap();
            let r = take_request(&cfg, &mut state, now + 10).unwrap();
            assert!(r.error.as_deref().unwrap().contains(why), "{text}: {r:?}");
        }
        assert_eq!(state.until_s, now + 1800, "a refused code changes nothing");
        std::fs::write(dir.path().join(REQUEST_FILE), code(3, 5)).unwrap();
        assert_eq!(take_request(&cfg, &mut state, now + 60).unwrap().until_s, Some(now + 360));
        assert!(take_request(&cfg, &mut state, now).is_none(), "no request, no answer");
    }
}
