//! `portcullis bypass`: hand an offline bypass code to the running agent and say what it did.

use crate::args::BypassArgs;
use crate::exit::{BYPASS_REFUSED, OrExit, UNREADABLE, fail};
use portcullis_agent::bypass::{self, BypassConfig, BypassResult, BypassState};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// The time the agent judges codes at: this computer's clock corrected by the difference to
/// the server's that the agent keeps in its state directory.
fn now_s(state_dir: &std::path::Path) -> i64 {
    portcullis_agent::clock::local_s().saturating_add(portcullis_agent::clock::load(state_dir))
}

fn when(s: i64) -> String {
    jiff::Timestamp::from_second(s).map_or_else(|_| s.to_string(), |t| t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string())
}

pub fn run(a: BypassArgs) -> anyhow::Result<ExitCode> {
    let dir = &a.state_dir;
    let state =
        BypassState::load(dir).map_err(|e| fail(UNREADABLE, format!("the bypass state cannot be read: {e}")))?;
    if a.status {
        let active = state.active(now_s(dir));
        if a.json {
            println!(
                "{}",
                serde_json::json!({"active": active.is_some(), "code": active, "until_s": active.map(|_| state.until_s), "last_code": state.last_counter})
            );
        } else {
            match active {
                Some(c) => println!("bypass {c} in force: Monitor mode until {}", when(state.until_s)),
                None => println!("no bypass in force (last code used: {})", state.last_counter),
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let code = a.code.clone().unwrap_or_default();
    let enrollment = portcullis_sync::Enrollment::load(dir)
        .or_exit(UNREADABLE, format!("reading the enrollment in {}", dir.display()))?
        .ok_or_else(|| {
            fail(
                BYPASS_REFUSED,
                format!("{} holds no enrollment: bypass codes work for agents run with --server", dir.display()),
            )
        })?;
    let key_path = dir.join(bypass::KEY_FILE);
    let key_text = std::fs::read_to_string(&key_path).or_exit(UNREADABLE, format!("reading {}", key_path.display()))?;
    let key = portcullis_protocol::BypassKey { key: key_text.trim().to_owned() }
        .bytes()
        .ok_or_else(|| fail(UNREADABLE, format!("{} is not a bypass key", key_path.display())))?;
    let cfg = BypassConfig { state_dir: dir.clone(), key, computer: enrollment.computer.clone() };
    // Checked here first, so that a mistyped, expired or used code is said at once.
    let granted =
        bypass::redeem(&cfg, &mut state.clone(), &code, now_s(dir)).map_err(|e| fail(BYPASS_REFUSED, e.to_string()))?;
    let result_path = dir.join(bypass::RESULT_FILE);
    let _ = std::fs::remove_file(&result_path);
    let request = dir.join(bypass::REQUEST_FILE);
    bypass::write_private(&request, code.trim().as_bytes())
        .or_exit(UNREADABLE, format!("writing {}", request.display()))?;
    let t0 = Instant::now();
    let result: BypassResult = loop {
        if let Some(r) = std::fs::read(&result_path).ok().and_then(|b| serde_json::from_slice::<BypassResult>(&b).ok())
        {
            break r;
        }
        if t0.elapsed() >= Duration::from_secs(a.wait) {
            let _ = std::fs::remove_file(&request);
            return Err(fail(
                BYPASS_REFUSED,
                format!(
                    "the agent did not take the code within {} s: is `portcullis agent --server … --state-dir {}` running?",
                    a.wait,
                    dir.display()
                ),
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    match (result.error, result.until_s) {
        (None, Some(until)) => {
            if a.json {
                println!(
                    "{}",
                    serde_json::json!({"code": granted.counter, "minutes": granted.minutes, "until_s": until})
                );
            } else {
                println!(
                    "bypass {} accepted: Monitor mode until {} ({} minute(s)); what runs meanwhile is recorded and reported",
                    granted.counter,
                    when(until),
                    granted.minutes
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        (error, _) => Err(fail(BYPASS_REFUSED, format!("the agent refused the code: {}", error.unwrap_or_default()))),
    }
}
