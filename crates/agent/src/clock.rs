//! The time policies are judged at: this computer's clock, corrected by how far it is from
//! its server's when that is more than [`TOLERANCE_S`].
//!
//! Expiries, Learning and Installation deadlines and the last usable hour of a bypass code
//! are absolute times set by the server, by its clock. An agent whose clock is a day behind
//! would keep a temporary permit or an Installation window a day too long, and one a day
//! ahead would refuse every fresh bypass code. So the sync thread measures the difference at
//! every answer from the server (its `Date`), the agent judges at local time plus that
//! difference, and the difference is kept in the state directory ([`OFFSET_FILE`]) for a
//! restart without the server. Events keep the computer's own time (what its other logs
//! say); the server clamps times from the future.

use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};

/// Where the difference is kept, in seconds (server minus local).
pub const OFFSET_FILE: &str = "clock-offset";
/// Differences this small are taken as none (a clock kept by NTP; the `Date` header has
/// whole seconds and the answer takes time to arrive).
pub const TOLERANCE_S: i64 = 120;

static OFFSET_S: AtomicI64 = AtomicI64::new(0);

/// This computer's clock, Unix seconds.
pub fn local_s() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// The time policies are judged at, Unix seconds.
pub fn now_s() -> i64 {
    local_s().saturating_add(OFFSET_S.load(Ordering::Relaxed))
}

/// The correction in force, seconds.
pub fn offset_s() -> i64 {
    OFFSET_S.load(Ordering::Relaxed)
}

/// What to correct by, given the server's time and this computer's at the same moment: none
/// within the tolerance.
pub fn offset_between(server_s: i64, local_s: i64) -> i64 {
    let d = server_s.saturating_sub(local_s);
    if d.unsigned_abs() <= TOLERANCE_S as u64 { 0 } else { d }
}

/// Correct by `offset` from now on; returns whether that changed it by more than the
/// tolerance (worth saving and saying).
pub fn set_offset(offset: i64) -> bool {
    let old = OFFSET_S.swap(offset, Ordering::Relaxed);
    old.abs_diff(offset) > TOLERANCE_S as u64 || (old == 0) != (offset == 0)
}

/// The difference kept in `state_dir` (0 if none or unreadable).
pub fn load(state_dir: &Path) -> i64 {
    std::fs::read_to_string(state_dir.join(OFFSET_FILE)).ok().and_then(|t| t.trim().parse().ok()).unwrap_or(0)
}

/// Keep the difference in `state_dir`.
pub fn save(state_dir: &Path, offset: i64) -> std::io::Result<()> {
    let path = state_dir.join(OFFSET_FILE);
    let tmp = state_dir.join(format!("{OFFSET_FILE}.tmp"));
    std::fs::write(&tmp, format!("{offset}\n"))?;
    std::fs::rename(tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_differences_are_none_and_the_offset_is_kept_across_a_restart() {
        assert_eq!(offset_between(1_000, 1_000 + TOLERANCE_S), 0);
        assert_eq!(offset_between(1_000, 1_000 - TOLERANCE_S), 0);
        assert_eq!(offset_between(1_000, 1_000 + 86_400), -86_400);
        assert_eq!(offset_between(i64::MIN, i64::MAX), i64::MIN);
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(dir.path()), 0);
        save(dir.path(), -86_400).unwrap();
        assert_eq!(load(dir.path()), -86_400);
        std::fs::write(dir.path().join(OFFSET_FILE), "garbage").unwrap();
        assert_eq!(load(dir.path()), 0, "unreadable: no correction");
    }
}
