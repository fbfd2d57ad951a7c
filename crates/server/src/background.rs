//! What a server process does on its own: forwarding events to every enabled destination
//! (one task per destination, holding its lease), and applying retention. Started by
//! `portcullis server`; tests start them with their own timings.

use portcullis_forward::{Destination, Forwarder, Outgoing};
use portcullis_store::{ForwarderJob, Store};
use std::collections::HashMap;
use std::time::Duration;
use tokio::task::JoinHandle;

/// Events per batch.
pub const BATCH: i64 = 2_000;
/// How long a destination's lease lasts (renewed every batch); another server takes over a
/// destination this long after its sender died.
pub const LEASE: Duration = Duration::from_secs(30);
/// The longest wait after failures, doubled from one second.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// How the background work runs.
#[derive(Clone, Debug)]
pub struct Background {
    /// Destinations may be on loopback or private networks (`--forward-to-private`).
    pub forward_to_private: bool,
    /// How often the list of destinations is read again.
    pub forwarders_every: Duration,
    /// How often retention is applied.
    pub retention_every: Duration,
    /// Only this organization (tests that share one database with others); `None`: all.
    pub only_organization: Option<i64>,
}

impl Default for Background {
    fn default() -> Background {
        Background {
            forward_to_private: false,
            forwarders_every: Duration::from_secs(5),
            retention_every: Duration::from_secs(600),
            only_organization: None,
        }
    }
}

/// Start forwarding and retention; they run until the runtime stops.
pub fn start(store: Store, config: Background) {
    tokio::spawn(supervise_forwarders(store.clone(), config.clone()));
    tokio::spawn(apply_retention(store, config));
}

/// When a lease taken now ends, Unix milliseconds.
fn lease_end() -> i64 {
    portcullis_store::now_ms() + LEASE.as_millis() as i64
}

/// Who holds leases: this process, among every server sharing the database.
fn owner() -> String {
    let mut r = [0u8; 8];
    let _ = getrandom::fill(&mut r);
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    format!("{} pid {} {}", host.trim(), std::process::id(), r.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

/// What a running sender was started with: a change restarts it.
fn fingerprint(job: &ForwarderJob) -> String {
    format!("{}\n{:?}\n{:?}\n{}", job.url, job.ca_pem, job.token, job.organization)
}

async fn supervise_forwarders(store: Store, config: Background) {
    let owner = owner();
    let mut running: HashMap<i64, (String, JoinHandle<()>)> = HashMap::new();
    loop {
        match store.forwarder_jobs().await {
            Ok(mut jobs) => {
                jobs.retain(|j| config.only_organization.is_none_or(|o| o == j.org_id));
                let wanted: HashMap<i64, &ForwarderJob> = jobs.iter().map(|j| (j.id, j)).collect();
                running.retain(|id, (print, task)| {
                    let keep = wanted.get(id).is_some_and(|j| fingerprint(j) == *print) && !task.is_finished();
                    if !keep {
                        task.abort();
                    }
                    keep
                });
                for job in jobs {
                    running.entry(job.id).or_insert_with(|| {
                        let print = fingerprint(&job);
                        (print, tokio::spawn(send_loop(store.clone(), job.clone(), owner.clone(), config.clone())))
                    });
                }
            }
            Err(e) => tracing::warn!("forwarding: reading destinations: {e}"),
        }
        tokio::time::sleep(config.forwarders_every).await;
    }
}

/// Send one destination's events, oldest first, for as long as it is enabled and unchanged
/// (the supervisor stops this task otherwise).
async fn send_loop(store: Store, job: ForwarderJob, owner: String, config: Background) {
    // Logged when it changes (the console shows every failure's time).
    let logged = std::sync::Mutex::new(String::new());
    let fail = async |why: String| {
        {
            let mut last = logged.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if *last != why {
                tracing::warn!("forwarding to {}: {why}", job.url);
                last.clone_from(&why);
            }
        }
        if let Err(e) = store.forward_failed(job.id, &owner, &why).await {
            tracing::warn!("forwarding: {e}");
        }
    };
    // A destination that cannot be used as it is set (its token does not open with this
    // server's keys): said, and said again now and then, until an admin changes it (which
    // restarts this task).
    let unusable = async |why: String| -> ! {
        loop {
            if store.lease_forwarder(job.id, &owner, lease_end()).await.unwrap_or(false) {
                fail(why.clone()).await;
            }
            tokio::time::sleep(MAX_BACKOFF).await;
        }
    };
    let token = match &job.token {
        Ok(t) => t.clone(),
        Err(e) => unusable(e.clone()).await,
    };
    let forwarder = Destination::parse(&job.url).map_err(|e| e.to_string()).and_then(|d| {
        Forwarder::new(d, job.ca_pem.as_deref(), token.as_deref(), config.forward_to_private).map_err(|e| e.to_string())
    });
    let mut forwarder = match forwarder {
        Ok(f) => Some(f),
        Err(e) => unusable(e).await,
    };
    let mut cursor: Option<i64> = None;
    let mut backoff = Duration::from_secs(1);
    loop {
        match store.lease_forwarder(job.id, &owner, lease_end()).await {
            Ok(true) => {}
            Ok(false) => {
                // Another server sends (or the destination went); ours starts from its cursor.
                cursor = None;
                tokio::time::sleep(LEASE / 3).await;
                continue;
            }
            Err(e) => {
                tracing::warn!("forwarding: {e}");
                tokio::time::sleep(backoff).await;
                continue;
            }
        }
        let after = match cursor {
            Some(c) => c,
            None => match store.forwarder_cursor(job.id).await {
                Ok(Some(c)) => c,
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!("forwarding: {e}");
                    tokio::time::sleep(backoff).await;
                    continue;
                }
            },
        };
        let events = match store.events_to_forward(job.org_id, after, BATCH).await {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!("forwarding: reading events: {e}");
                tokio::time::sleep(backoff).await;
                continue;
            }
        };
        let Some(last) = events.last().map(|e| e.id) else {
            cursor = Some(after);
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        };
        let n = events.len() as i64;
        let organization = job.organization.clone();
        let mut sender = forwarder.take().expect("the sender is back after each batch");
        let sent = tokio::task::spawn_blocking(move || {
            let batch: Vec<Outgoing<'_>> = events
                .iter()
                .map(|e| Outgoing {
                    id: e.id,
                    organization: &organization,
                    computer: &e.computer,
                    received_ms: e.received_ms,
                    record_json: &e.record_json,
                })
                .collect();
            let result = sender.send(&batch);
            (sender, result)
        })
        .await;
        let result = match sent {
            Ok((sender, result)) => {
                forwarder = Some(sender);
                result
            }
            Err(e) => {
                // A panic in the sender: this task ends, the supervisor starts another.
                return fail(format!("the sender failed: {e}")).await;
            }
        };
        match result {
            Ok(()) => {
                backoff = Duration::from_secs(1);
                logged.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clear();
                match store.forwarded(job.id, &owner, last, n).await {
                    Ok(true) => cursor = Some(last),
                    // The lease went meanwhile: read the cursor again (the batch may go twice).
                    Ok(false) => cursor = None,
                    Err(e) => {
                        tracing::warn!("forwarding: saving the cursor: {e}");
                        cursor = None;
                    }
                }
                if n < BATCH {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
            Err(e) => {
                fail(e.to_string()).await;
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// Apply every organization's retention, now and every `config.retention_every`.
async fn apply_retention(store: Store, config: Background) {
    loop {
        match store.retentions().await {
            Ok(all) => {
                for (org, _) in all.into_iter().filter(|(o, _)| config.only_organization.is_none_or(|x| x == *o)) {
                    match store.prune_events(org, portcullis_store::now_ms(), 1_000).await {
                        Ok(0) => {}
                        Ok(n) => tracing::info!("retention: {n} event(s) of organization {org} removed"),
                        Err(e) => tracing::warn!("retention of organization {org}: {e}"),
                    }
                }
            }
            Err(e) => tracing::warn!("retention: {e}"),
        }
        tokio::time::sleep(config.retention_every).await;
    }
}
