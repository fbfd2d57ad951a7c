//! What agents wait on: each organization's model version, and its policy document compiled
//! once per version.
//!
//! A change saved through this server announces itself at once ([`SyncHub::changed`]); a
//! change saved through another server sharing the PostgreSQL database arrives by LISTEN/
//! NOTIFY ([`SyncHub::watch_database`]: the store's [`portcullis_store::VersionFeed`]), with
//! no polling. SQLite has one server, but a command run beside it (`server reset-bundle-key`)
//! changes versions too, so there the versions are read every [`DB_POLL`]. Long-polls wait on
//! one `watch` channel and re-read the version map when it ticks, so thousands of waiting
//! agents cost one task each and no database query while nothing changes.

use portcullis_policy_file::document::ComputerDoc;
use portcullis_protocol::{BundleKey, KeyEndorsement};
use portcullis_store::{Seen, Store, StoreError};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How often a SQLite database is asked for versions changed beside the server (and a
/// PostgreSQL one, only while its listener cannot connect).
pub const DB_POLL: Duration = Duration::from_millis(250);

/// An organization's document at one version, ready to put in bundles.
pub struct Compiled {
    /// The version it was read at.
    pub version: i64,
    /// The document, JSON (checked: it loads), parsed once for all the bundles it goes into.
    pub document: Box<serde_json::value::RawValue>,
    /// The organization's name.
    pub organization: String,
    /// The key that signs its bundles (read at this version: a rotation raises it).
    pub key: Arc<BundleKey>,
    /// The endorsements that lead agents holding an older key to this one.
    pub key_chain: Arc<[KeyEndorsement]>,
    /// The organization's computers when it was compiled; a computer enrolled (or enrolled
    /// again) since is not here and is read from the database.
    pub computers: Mutex<HashMap<i64, ComputerDoc>>,
}

/// Versions, the change signal and compiled documents, shared by every request.
pub struct SyncHub {
    versions: Mutex<HashMap<i64, i64>>,
    /// When each organization's latest change was learned, with its version.
    learned: Mutex<HashMap<i64, (i64, Instant)>>,
    tick: watch::Sender<u64>,
    /// Read by every delivery without waiting; written after a compile.
    compiled: Mutex<HashMap<i64, Arc<Compiled>>>,
    /// Held while compiling, so that one request compiles a version and the others wait for
    /// it instead of compiling it again.
    compiling: tokio::sync::Mutex<()>,
    seen: Mutex<HashMap<i64, Seen>>,
    quotas: Mutex<HashMap<(i64, Quota), (tokio::time::Instant, u64)>>,
    /// The version of each organization that could not be delivered (logged once; not
    /// tried again by every poll until the version moves).
    undeliverable: Mutex<HashMap<i64, i64>>,
    /// Reads of every version on a timer (SQLite, or PostgreSQL without its listener).
    version_polls: std::sync::atomic::AtomicU64,
    /// Announcements of a changed version heard from the database (PostgreSQL).
    announcements: std::sync::atomic::AtomicU64,
}

/// Events one agent may deliver per minute (to this server); more answer 429 and stay in
/// the agent's spool.
pub const EVENTS_PER_MINUTE: u64 = 20_000;
/// Requests carrying host facts (enrollments, polls with a host) one agent may make per
/// minute; more answer 429.
pub const HOST_REPORTS_PER_MINUTE: u64 = 30;
/// Package reports one agent may send per minute (it sends one at start and one after each
/// package change); more answer 429 and the agent sends the newest list again later.
pub const PACKAGE_REPORTS_PER_MINUTE: u64 = 6;
/// What an agent's quota counts (per minute, per server).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Quota {
    /// Events delivered.
    Events,
    /// Requests carrying host facts.
    HostReports,
    /// Package reports.
    PackageReports,
}

impl Quota {
    fn per_minute(self) -> u64 {
        match self {
            Quota::Events => EVENTS_PER_MINUTE,
            Quota::HostReports => HOST_REPORTS_PER_MINUTE,
            Quota::PackageReports => PACKAGE_REPORTS_PER_MINUTE,
        }
    }
}

/// How often agents' contacts are written (one transaction for all of them).
pub const SEEN_FLUSH: Duration = Duration::from_secs(1);

impl std::fmt::Debug for SyncHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncHub").finish_non_exhaustive()
    }
}

impl Default for SyncHub {
    fn default() -> SyncHub {
        SyncHub {
            versions: Mutex::default(),
            learned: Mutex::default(),
            tick: watch::channel(0).0,
            compiled: Mutex::default(),
            compiling: tokio::sync::Mutex::default(),
            seen: Mutex::default(),
            quotas: Mutex::default(),
            undeliverable: Mutex::default(),
            version_polls: std::sync::atomic::AtomicU64::new(0),
            announcements: std::sync::atomic::AtomicU64::new(0),
        }
    }
}

impl SyncHub {
    fn set(&self, org_id: i64, version: i64) -> bool {
        let mut map = self.versions.lock().unwrap_or_else(|p| p.into_inner());
        let old = map.insert(org_id, version);
        if old.is_some_and(|o| o < version) {
            // A change seen happening (not a version first read): propagation counts from here.
            self.learned.lock().unwrap_or_else(|p| p.into_inner()).insert(org_id, (version, Instant::now()));
        }
        old.is_none_or(|o| o < version)
    }

    /// How long ago this server learned that the organization's version became `version`
    /// (saved here, or announced by another server); `None` if it has moved on since, or was
    /// only read.
    pub fn learned_ago(&self, org_id: i64, version: i64) -> Option<Duration> {
        let learned = self.learned.lock().unwrap_or_else(|p| p.into_inner());
        learned.get(&org_id).filter(|(v, _)| *v == version).map(|(_, at)| at.elapsed())
    }

    fn notify(&self) {
        self.tick.send_modify(|t| *t = t.wrapping_add(1));
    }

    /// The organization's version, as last seen.
    pub async fn version(&self, store: &Store, org_id: i64) -> Result<i64, StoreError> {
        if let Some(v) = self.versions.lock().unwrap_or_else(|p| p.into_inner()).get(&org_id) {
            return Ok(*v);
        }
        let v = store.org_version(org_id).await?;
        self.set(org_id, v);
        Ok(v)
    }

    /// A change was saved here: wake the organization's agents now.
    pub async fn changed(&self, store: &Store, org_id: i64) -> Result<(), StoreError> {
        let v = store.org_version(org_id).await?;
        if self.set(org_id, v) {
            self.notify();
        }
        Ok(())
    }

    /// Note an agent's contact; written with the others within [`SEEN_FLUSH`]. A host
    /// report is kept until written even if later polls come without one, and losses
    /// reported meanwhile add up.
    pub fn seen(&self, seen: Seen) {
        let mut map = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let earlier = map.get(&seen.computer_id);
        let host = seen.host.clone().or_else(|| earlier.and_then(|s| s.host.clone()));
        let events_lost = seen.events_lost.saturating_add(earlier.map_or(0, |s| s.events_lost));
        map.insert(seen.computer_id, Seen { host, events_lost, ..seen });
    }

    /// Count `n` against one agent's per-minute quota; refused (429) when it is used up,
    /// and then nothing is counted.
    pub fn quota(&self, computer_id: i64, kind: Quota, n: u64) -> Result<(), crate::error::AppError> {
        let now = tokio::time::Instant::now();
        let mut map = self.quotas.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > 100_000 {
            map.retain(|_, (start, _)| now.duration_since(*start) < Duration::from_secs(60));
        }
        let entry = map.entry((computer_id, kind)).or_insert((now, 0));
        if now.duration_since(entry.0) >= Duration::from_secs(60) {
            *entry = (now, 0);
        }
        if entry.1.saturating_add(n) > kind.per_minute() {
            let wait = 60 - now.duration_since(entry.0).as_secs().min(59);
            return Err(crate::error::AppError::Quota(format!(
                "this agent sent more than {} {} in a minute; try again in {wait} s",
                kind.per_minute(),
                match kind {
                    Quota::Events => "events",
                    Quota::HostReports => "host reports",
                    Quota::PackageReports => "package reports",
                }
            )));
        }
        entry.1 += n;
        Ok(())
    }

    /// A computer enrolled (again): its group may differ from the compiled one's. A compile
    /// under way may have read the computer before the enrollment: this waits for it, then
    /// forgets the computer in what it made.
    pub async fn enrolled(&self, org_id: i64, computer_id: i64) {
        let _compiling = self.compiling.lock().await;
        if let Some(c) = self.compiled.lock().unwrap_or_else(|p| p.into_inner()).get(&org_id) {
            c.computers.lock().unwrap_or_else(|p| p.into_inner()).remove(&computer_id);
        }
    }

    /// Write the contacts collected so far.
    pub async fn flush_seen(&self, store: &Store) -> Result<(), StoreError> {
        let batch: Vec<Seen> =
            std::mem::take(&mut *self.seen.lock().unwrap_or_else(|p| p.into_inner())).into_values().collect();
        let written = store.agents_seen(&batch).await;
        if written.is_err() {
            // Kept for the next flush (merged with what came meanwhile): losses an agent
            // reported are said once and must not vanish.
            let mut map = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            for old in batch {
                match map.get_mut(&old.computer_id) {
                    // A newer contact came meanwhile: it stays, with the older one's losses.
                    Some(newer) => {
                        newer.events_lost = newer.events_lost.saturating_add(old.events_lost);
                        if newer.host.is_none() {
                            newer.host = old.host;
                        }
                    }
                    None => {
                        map.insert(old.computer_id, old);
                    }
                }
            }
        }
        written
    }

    /// A receiver that ticks on every change.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.tick.subscribe()
    }

    /// How many times every version was read on a timer: never on PostgreSQL while its
    /// listener is connected.
    pub fn version_polls(&self) -> u64 {
        self.version_polls.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// How many announcements of a changed version (from any server) were heard.
    pub fn announcements(&self) -> u64 {
        self.announcements.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Follow versions changed by other servers and write agents' contacts, until the hub
    /// is dropped.
    pub fn watch_database(hub: &Arc<SyncHub>, store: Store) {
        let weak = Arc::downgrade(hub);
        let seen_store = store.clone();
        let seen_hub = Arc::downgrade(hub);
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(SEEN_FLUSH);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                let Some(hub) = seen_hub.upgrade() else { return };
                if let Err(e) = hub.flush_seen(&seen_store).await {
                    tracing::warn!("writing agents' last contact: {e}");
                }
            }
        });
        tokio::spawn(async move {
            let mut feed = match store.version_feed().await {
                Ok(feed) => feed,
                Err(e) => {
                    tracing::error!(
                        "cannot LISTEN for other servers' changes ({e}); reading versions every {DB_POLL:?} instead \
                         (a connection pooler in transaction mode does not pass LISTEN: connect servers directly)"
                    );
                    None
                }
            };
            let mut interval = tokio::time::interval(DB_POLL);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut resync = true;
            loop {
                match feed.as_mut() {
                    // PostgreSQL: wait for an announcement; after a reconnection read all.
                    Some(f) if !resync => match f.next().await {
                        Ok(portcullis_store::VersionNews::Changed(org)) => {
                            let Some(hub) = weak.upgrade() else { return };
                            hub.announcements.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            match store.org_version(org).await {
                                Ok(v) if hub.set(org, v) => hub.notify(),
                                Ok(_) => {}
                                Err(e) => tracing::warn!("reading organization {org}'s version: {e}"),
                            }
                            continue;
                        }
                        Ok(portcullis_store::VersionNews::Resync) => resync = true,
                        Err(e) => {
                            tracing::warn!("listening for other servers' changes: {e}; trying again");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                            resync = true;
                            continue;
                        }
                    },
                    Some(_) => {}
                    None => {
                        interval.tick().await;
                        if let Some(hub) = weak.upgrade() {
                            hub.version_polls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                }
                let Some(hub) = weak.upgrade() else { return };
                match store.org_versions().await {
                    Ok(all) => {
                        resync = false;
                        let mut any = false;
                        for (org, v) in all {
                            any |= hub.set(org, v);
                        }
                        if any {
                            hub.notify();
                        }
                    }
                    Err(e) => {
                        tracing::warn!("reading organization versions: {e}");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        });
    }

    /// The organization's document at its current version, compiled once per version and
    /// checked to load. If the stored model does not load (two concurrent changes that
    /// contradict each other) or the signing key does not open, the last good document is
    /// kept and the error logged, once per version.
    pub async fn compiled(&self, store: &Store, org_id: i64) -> Result<Arc<Compiled>, StoreError> {
        let current = self.version(store, org_id).await?;
        // Tens of thousands of long-polls wake together after a change: once the version is
        // compiled they take it without queueing behind one another.
        if let Some(c) = self.usable(org_id, current) {
            return Ok(c);
        }
        let _compiling = self.compiling.lock().await;
        // Compiled meanwhile by the request this one waited for.
        if let Some(c) = self.usable(org_id, current) {
            return Ok(c);
        }
        match compile(store, org_id).await {
            Ok(compiled) => {
                self.compiled.lock().unwrap_or_else(|p| p.into_inner()).insert(org_id, compiled.clone());
                Ok(compiled)
            }
            Err((version, e)) => {
                let first = self.undeliverable.lock().unwrap_or_else(|p| p.into_inner()).insert(org_id, version)
                    != Some(version);
                if first {
                    tracing::error!("organization {org_id} version {version}: {e}; agents keep the previous bundle");
                }
                self.compiled.lock().unwrap_or_else(|p| p.into_inner()).get(&org_id).cloned().ok_or(e)
            }
        }
    }

    /// The compiled document to deliver at version `current`: the one compiled at it (or
    /// later), or the last good one when `current` is known not to compile.
    fn usable(&self, org_id: i64, current: i64) -> Option<Arc<Compiled>> {
        let known_bad = self.undeliverable.lock().unwrap_or_else(|p| p.into_inner()).get(&org_id) == Some(&current);
        let cache = self.compiled.lock().unwrap_or_else(|p| p.into_inner());
        cache.get(&org_id).filter(|c| c.version >= current || known_bad).cloned()
    }
}

/// Compile the organization's current document, or say which version failed and why.
async fn compile(store: &Store, org_id: i64) -> Result<Arc<Compiled>, (i64, StoreError)> {
    let (version, doc) = store.document(org_id).await.map_err(|e| (0, e))?;
    let json = doc.to_json();
    let computers = store.computer_docs(org_id).await.map_err(|e| (version, e))?;
    // The same check every change passed before it was saved: the whole model with its
    // computers, and each distinct computer's bundle.
    let mut whole = doc.clone();
    whole.computers = computers.iter().map(|(_, c)| c.clone()).collect();
    if let Err(problems) = crate::ops::check_document(&whole) {
        let e = StoreError::Invalid(format!("the organization's policy does not load: {}", problems.join("; ")));
        return Err((version, e));
    }
    // Read with the document: a rotation is a change like any other. A key that does
    // not open (a lost secret key, a damaged or forged row) signs nothing, until
    // `portcullis server reset-bundle-key` gives a new one.
    let key = Arc::new(store.bundle_key(org_id).await.map_err(|e| (version, e))?);
    let key_chain = store.bundle_key_chain(org_id).await.map_err(|e| (version, e))?.into();
    let organization = doc.organization.as_ref().and_then(|o| o.name.clone()).unwrap_or_default();
    let computers = Mutex::new(computers.into_iter().collect());
    let document = serde_json::value::RawValue::from_string(json)
        .map_err(|e| (version, StoreError::Invalid(format!("the organization's document is not JSON: {e}"))))?;
    Ok(Arc::new(Compiled { version, document, organization, key, key_chain, computers }))
}
