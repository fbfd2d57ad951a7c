//! The agent's side of server sync.
//!
//! - [`enroll`] trades a group's enrollment token for the agent's own credential and the
//!   organization's bundle key, kept in the state directory ([`Enrollment`], mode 0600).
//! - [`Poller`] long-polls for the signed policy bundle, checks its signature and version,
//!   writes it to the state directory ([`BUNDLE_FILE`]) and tells the agent to reload. The
//!   saved bundle is what the agent enforces after a restart while the server is away. When
//!   the organization rotates its bundle key, the bundle carries the endorsements that lead
//!   from the key the agent holds to the new one; the agent keeps the new key from then on.
//! - [`Uploader`] sends the event spool's complete lines in batches, remembering how far it
//!   got ([`CURSOR_FILE`]) only once the server has stored them; the server keys each event
//!   by its bytes, so sending a batch again after a lost reply stores nothing twice.
//!
//! Everything here is blocking and runs on its own threads beside the enforcing agent: a
//! slow or absent server never delays a permission decision.

use portcullis_events::spool;
use portcullis_protocol::{
    Bundle, BundleError, BundlePayload, BundlePublicKey, EnrollRequest, Enrolled, EventBatchReply, HostFacts,
    MAX_BUNDLE_BYTES, MAX_REPLY_BYTES, NewRequest, PackageReport, PackageReportReply, PolicyHit, PollRequest,
    RequestBatch, RequestStatuses, SIGNATURE_HEADER, paths,
};
use serde::{Deserialize, Serialize};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The agent's enrollment, in the state directory.
pub const ENROLLMENT_FILE: &str = "enrollment.json";
/// The last verified bundle, in the state directory.
pub const BUNDLE_FILE: &str = "bundle.json";
/// How far the spool has been delivered, in the state directory.
pub const CURSOR_FILE: &str = "upload-cursor";
/// Events per batch.
pub const BATCH: usize = 500;

/// A cause of a sync failure, kept whole.
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

/// Why sync failed. Variants keep the error that caused them as their source.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The server could not be reached or the connection broke.
    #[error("cannot reach {url}")]
    Unreachable {
        /// What was asked.
        url: String,
        /// Why.
        #[source]
        error: Cause,
    },
    /// The server's reply could not be read (cut off, not the JSON it should be).
    #[error("the reply of {url} cannot be read")]
    Reply {
        /// What was asked.
        url: String,
        /// Why.
        #[source]
        error: Cause,
    },
    /// The server's reply is larger than the agent reads.
    #[error("the reply of {url} is larger than {limit} bytes; refused unread")]
    TooLarge {
        /// What was asked.
        url: String,
        /// The limit.
        limit: u64,
    },
    /// The server answered with an error.
    #[error("{url} answered {status}: {message}")]
    Refused {
        /// What was asked.
        url: String,
        /// HTTP status.
        status: u16,
        /// The server's message.
        message: String,
    },
    /// The bundle failed its checks.
    #[error(transparent)]
    Bundle(#[from] BundleError),
    /// A state file could not be read or written.
    #[error("{}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        error: io::Error,
    },
    /// A state file is not what it should be.
    #[error("{}: {message}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The server certificate file is not PEM.
    #[error("server CA certificate: {0}")]
    Certificate(String),
    /// The server URL is refused.
    #[error("{0}")]
    Url(String),
    /// A verified bundle does not load into the agent's engine.
    #[error("policy bundle version {version} does not load")]
    Load {
        /// Its version.
        version: i64,
        /// Why.
        #[source]
        error: Cause,
    },
}

use portcullis_policy::with_causes;

impl SyncError {
    /// The server refused the credential (the computer was removed or enrolled again).
    pub fn is_unauthorized(&self) -> bool {
        matches!(self, SyncError::Refused { status: 401, .. })
    }

    /// The enrollment waits for an administrator.
    pub fn is_pending(&self) -> bool {
        matches!(self, SyncError::Refused { status: 403, message, .. } if message == portcullis_protocol::ENROLLMENT_PENDING)
    }
}

/// Check a server URL: `https://` always; `http://` only when `insecure_http` is given
/// (the enrollment token, the credential and the bundle key would cross the network in
/// the clear).
pub fn check_server_url(server: &str, insecure_http: bool) -> Result<(), SyncError> {
    let lower = server.trim().to_ascii_lowercase();
    if lower.starts_with("https://") || (insecure_http && lower.starts_with("http://")) {
        return Ok(());
    }
    if lower.starts_with("http://") {
        return Err(SyncError::Url(format!(
            "{server}: plain http:// would send the enrollment token, the agent's credential and the bundle key in \
             the clear; use https:// (the server's default), or give --insecure-http for a test on loopback"
        )));
    }
    Err(SyncError::Url(format!("{server}: the server URL must start with https://")))
}

fn file_error(path: &Path) -> impl FnOnce(io::Error) -> SyncError + '_ {
    move |error| SyncError::File { path: path.to_owned(), error }
}

/// Write `bytes` to `path` through a temporary file and a rename, readable by root only, so
/// that a crash leaves the old file or the new one, never half of one.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), SyncError> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(file_error(&tmp))?;
    f.write_all(bytes).and_then(|()| f.sync_all()).map_err(file_error(&tmp))?;
    std::fs::rename(&tmp, path).map_err(file_error(path))
}

/// Who this agent is to its server.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Enrollment {
    /// The server's base URL (`https://host:8443`).
    pub server: String,
    /// The CA certificate (PEM) the server's certificate is checked against; none: the
    /// Mozilla roots.
    pub server_ca_pem: Option<String>,
    /// The organization.
    pub organization: String,
    /// This computer's name.
    pub computer: String,
    /// The agent's credential.
    pub credential: String,
    /// The organization's bundle key (hex).
    pub bundle_key: String,
    /// The server holds this enrollment for an administrator to accept.
    #[serde(default)]
    pub pending: bool,
}

impl Enrollment {
    /// Read the enrollment from `state_dir`, if there is one.
    pub fn load(state_dir: &Path) -> Result<Option<Enrollment>, SyncError> {
        let path = state_dir.join(ENROLLMENT_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| SyncError::Corrupt { path, message: e.to_string() }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(SyncError::File { path, error: e }),
        }
    }

    /// Keep the enrollment in `state_dir`.
    pub fn save(&self, state_dir: &Path) -> Result<(), SyncError> {
        std::fs::create_dir_all(state_dir).map_err(file_error(state_dir))?;
        let bytes = serde_json::to_vec_pretty(self).expect("plain data");
        write_atomically(&state_dir.join(ENROLLMENT_FILE), &bytes)
    }

    /// The bundle key.
    pub fn key(&self) -> Result<BundlePublicKey, SyncError> {
        BundlePublicKey::from_hex(&self.bundle_key).ok_or_else(|| SyncError::Corrupt {
            path: PathBuf::from(ENROLLMENT_FILE),
            message: "the bundle key is not an ed25519 public key in hex".into(),
        })
    }
}

fn http(server_ca_pem: Option<&str>, timeout: Duration) -> Result<ureq::Agent, SyncError> {
    let mut tls = ureq::tls::TlsConfig::builder()
        .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::ring::default_provider()));
    if let Some(pem) = server_ca_pem {
        let certs: Vec<ureq::tls::Certificate<'static>> = ureq::tls::parse_pem(pem.as_bytes())
            .filter_map(|item| match item {
                Ok(ureq::tls::PemItem::Certificate(c)) => Some(Ok(c)),
                Ok(_) => None,
                Err(e) => Some(Err(SyncError::Certificate(e.to_string()))),
            })
            .collect::<Result<_, _>>()?;
        if certs.is_empty() {
            return Err(SyncError::Certificate("no CERTIFICATE block in the PEM text".into()));
        }
        tls = tls.root_certs(ureq::tls::RootCerts::Specific(Arc::new(certs)));
    }
    Ok(ureq::Agent::config_builder()
        .tls_config(tls.build())
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .build()
        .into())
}

fn base(server: &str) -> &str {
    server.trim_end_matches('/')
}

fn post_json<T: Serialize>(
    agent: &ureq::Agent,
    url: &str,
    credential: Option<&str>,
    body: &T,
) -> Result<ureq::http::Response<ureq::Body>, SyncError> {
    let mut req = agent.post(url).header("content-type", "application/json");
    if let Some(c) = credential {
        req = req.header("authorization", &format!("Bearer {c}"));
    }
    let body = serde_json::to_vec(body).expect("plain data");
    let res = req.send(&body[..]).map_err(|e| SyncError::Unreachable { url: url.to_owned(), error: e.into() })?;
    let status = res.status().as_u16();
    if status >= 400 {
        let mut res = res;
        let text = res.body_mut().read_to_string().unwrap_or_default();
        let message = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_owned))
            .unwrap_or(text);
        return Err(SyncError::Refused { url: url.to_owned(), status, message });
    }
    Ok(res)
}

/// At most `limit` bytes of a reply body; `None` when it is longer (the rest is not read).
fn read_limited(
    url: &str,
    res: &mut ureq::http::Response<ureq::Body>,
    limit: u64,
) -> Result<Option<Vec<u8>>, SyncError> {
    let mut bytes = Vec::new();
    res.body_mut()
        .as_reader()
        .take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| SyncError::Reply { url: url.to_owned(), error: e.into() })?;
    Ok((bytes.len() as u64 <= limit).then_some(bytes))
}

fn read_json<T: serde::de::DeserializeOwned>(
    url: &str,
    mut res: ureq::http::Response<ureq::Body>,
) -> Result<T, SyncError> {
    let bytes = read_limited(url, &mut res, MAX_REPLY_BYTES)?
        .ok_or_else(|| SyncError::TooLarge { url: url.to_owned(), limit: MAX_REPLY_BYTES })?;
    serde_json::from_slice(&bytes).map_err(|e| SyncError::Reply { url: url.to_owned(), error: e.into() })
}

/// Enroll with a group's token. `current` is this agent's enrollment with the same server
/// if it has one: its credential proves that this is the computer already enrolled under
/// that name (a re-key); without it a taken name waits for an administrator
/// ([`Enrollment::pending`]).
pub fn enroll(
    server: &str,
    server_ca_pem: Option<&str>,
    token: &str,
    host: &HostFacts,
    current: Option<&Enrollment>,
) -> Result<Enrollment, SyncError> {
    let agent = http(server_ca_pem, Duration::from_secs(30))?;
    let url = format!("{}{}", base(server), paths::ENROLL);
    let current_credential = current.filter(|c| c.server == base(server) && !c.pending).map(|c| c.credential.clone());
    let req = EnrollRequest { token: token.trim().to_owned(), host: host.clone(), current_credential };
    let res = post_json(&agent, &url, None, &req)?;
    let e: Enrolled = read_json(&url, res)?;
    Ok(Enrollment {
        server: base(server).to_owned(),
        server_ca_pem: server_ca_pem.map(str::to_owned),
        organization: e.organization,
        computer: e.computer,
        credential: e.credential,
        bundle_key: e.bundle_key,
        pending: e.pending,
    })
}

/// The saved form of a bundle: exactly the bytes that were signed, and the signature.
#[derive(Serialize, Deserialize)]
struct SavedBundle {
    signature: String,
    payload: String,
}

/// A verified bundle, ready to enforce.
#[derive(Debug)]
pub struct Verified {
    /// Its version.
    pub version: i64,
    /// The policy document for this computer, JSON.
    pub policy_json: String,
    /// The signed bytes and signature, to save.
    bundle: Bundle,
    /// The key that signed it (the organization's key now, reached from the agent's key
    /// through the bundle's endorsements).
    pub signer: BundlePublicKey,
}

/// Verify a bundle's signature and version, and that it is made for this organization and
/// computer.
fn verify(bundle: Bundle, enrollment: &Enrollment, key: &BundlePublicKey, have: i64) -> Result<Verified, SyncError> {
    let signer = bundle.signer(key)?;
    let payload: BundlePayload = bundle.verify(&signer, have)?;
    payload.check_target(&enrollment.organization, &enrollment.computer)?;
    Ok(Verified { version: payload.version, policy_json: payload.policy_json()?, bundle, signer })
}

/// Whether a verified bundle's policy loads into the agent's engine (the agent's own
/// loader); a bundle is saved only when it does.
pub type BundleCheck = Box<dyn Fn(&Verified) -> Result<(), Cause> + Send>;

impl Verified {
    /// Keep it in `state_dir` (atomically).
    pub fn save(&self, state_dir: &Path) -> Result<(), SyncError> {
        let saved = SavedBundle {
            signature: self.bundle.signature_hex(),
            payload: String::from_utf8_lossy(&self.bundle.payload).into_owned(),
        };
        write_atomically(&state_dir.join(BUNDLE_FILE), &serde_json::to_vec(&saved).expect("plain data"))
    }
}

/// The saved bundle, checked again with the organization's key and against the
/// enrollment: a bundle changed on disk, or another computer's, is refused.
pub fn load_bundle(path: &Path, enrollment: &Enrollment) -> Result<Verified, SyncError> {
    let key = enrollment.key()?;
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(2 * MAX_BUNDLE_BYTES + 1).read_to_end(&mut bytes))
        .map_err(file_error(path))?;
    if bytes.len() as u64 > 2 * MAX_BUNDLE_BYTES {
        return Err(SyncError::Bundle(BundleError::TooLarge));
    }
    let saved: SavedBundle = serde_json::from_slice(&bytes)
        .map_err(|e| SyncError::Corrupt { path: path.to_owned(), message: e.to_string() })?;
    let bundle = Bundle::from_parts(saved.payload.into_bytes(), &saved.signature)?;
    verify(bundle, enrollment, &key, 0)
}

/// The agent's policy match counters, as the uploader reports them.
pub struct HitCounters {
    /// Matches since the last call (taken: the counters restart).
    pub take: Box<dyn Fn() -> Vec<PolicyHit> + Send>,
    /// Give back matches that could not be reported.
    pub restore: Box<dyn Fn(Vec<PolicyHit>) + Send>,
}

/// The host's installed packages, as the uploader reports them.
pub struct PackageReports {
    /// The list to report, when it changed since it was last taken.
    pub take: Box<dyn Fn() -> Option<PackageReport> + Send>,
    /// Give back a list that could not be reported.
    pub restore: Box<dyn Fn(PackageReport) + Send>,
}

/// The captures of Installation windows to send: the agent keeps them, the sync thread
/// sends them and says how the server took them.
pub struct CaptureQueue {
    /// Captures the server has not acknowledged (a batch at most).
    pub take: Box<dyn Fn() -> Vec<portcullis_protocol::CapturedFile> + Send>,
    /// The server keeps them as of this model version (`None`: it refused them for good).
    pub done: Box<dyn Fn(Vec<portcullis_protocol::CapturedFile>, Option<i64>) + Send>,
}

/// How soon after a request went up the agent asks how it stands, and the longest it waits
/// between two asks while nobody decides.
const REQUEST_ASK_FIRST: Duration = Duration::from_secs(3);
const REQUEST_ASK_MAX: Duration = Duration::from_secs(60);

/// Where approval requests wait (`outbox/`), are kept once sent (`sent/`), and how they stand.
pub const REQUESTS_DIR: &str = "requests";
/// How the sent requests stand (JSON list of [`portcullis_protocol::RequestStatus`]).
pub const REQUEST_STATUS_FILE: &str = "status.json";

/// How the requests sent from this host stand, as last heard.
pub fn read_statuses(state_dir: &Path) -> Vec<portcullis_protocol::RequestStatus> {
    std::fs::read(state_dir.join(REQUESTS_DIR).join(REQUEST_STATUS_FILE))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// How long a package report that failed waits before it is sent again (the server allows
/// a few a minute).
const PACKAGE_RETRY: Duration = Duration::from_secs(30);

/// Long-polls for bundles.
pub struct Poller {
    enrollment: Enrollment,
    key: BundlePublicKey,
    state_dir: PathBuf,
    version: i64,
    /// The newest version received and refused (it did not load), and why.
    refused: Option<(i64, String)>,
    /// Why the last bundle received could not be verified (its signature, its target), if
    /// it could not: reported with the next poll, which asks again from the same version.
    unverified: Option<String>,
    check: BundleCheck,
    host: Option<HostFacts>,
    http: ureq::Agent,
    /// How long the server may hold a poll.
    pub wait: Duration,
    /// Told the server's time (Unix seconds, from its `Date`) at each answer.
    server_time: Option<Box<dyn Fn(i64) + Send>>,
    /// Events the agent could not keep so far, and how many of them the server was told of.
    lost: Option<(Arc<std::sync::atomic::AtomicU64>, u64)>,
}

impl Poller {
    /// A poller that starts from `version` (the saved bundle's, or 0) and saves only
    /// bundles that pass `check`.
    pub fn new(
        enrollment: Enrollment,
        state_dir: &Path,
        version: i64,
        host: HostFacts,
        check: BundleCheck,
    ) -> Result<Poller, SyncError> {
        let wait = Duration::from_secs(25);
        let http = http(enrollment.server_ca_pem.as_deref(), wait + Duration::from_secs(15))?;
        let key = enrollment.key()?;
        Ok(Poller {
            enrollment,
            key,
            state_dir: state_dir.to_owned(),
            version,
            refused: None,
            unverified: None,
            check,
            host: Some(host),
            http,
            wait,
            server_time: None,
            lost: None,
        })
    }

    /// The version enforced.
    pub fn version(&self) -> i64 {
        self.version
    }

    /// Report the events counted by `lost` (ones the agent could not keep) with each poll,
    /// each once.
    pub fn report_losses(&mut self, lost: Arc<std::sync::atomic::AtomicU64>) {
        self.lost = Some((lost, 0));
    }

    /// Call `tell` with the server's time (Unix seconds) at each answer to a poll (an
    /// answer over TLS from the enrolled server; its `Date` header, to the second).
    pub fn on_server_time(&mut self, tell: impl Fn(i64) + Send + 'static) {
        self.server_time = Some(Box::new(tell));
    }

    /// Why the newest bundle received was refused, if it was.
    pub fn refused(&self) -> Option<&(i64, String)> {
        self.refused.as_ref()
    }

    /// One poll: a newer bundle, verified, checked to load and saved, or `None` when the
    /// wait ended. A bundle that fails is not saved (the one in force stays), reported to
    /// the server with the next poll, and not asked for again.
    pub fn poll_once(&mut self, wait: Duration) -> Result<Option<Verified>, SyncError> {
        let url = format!("{}{}", self.enrollment.server, paths::POLL);
        let after = self.refused.as_ref().map_or(self.version, |(v, _)| (*v).max(self.version));
        let req = PollRequest {
            after,
            host: self.host.clone(),
            wait_s: Some(wait.as_secs()),
            enforcing: (after != self.version).then_some(self.version),
            bundle_error: self.refused.as_ref().map(|(_, e)| e.clone()).or_else(|| self.unverified.clone()),
            events_lost: 0,
        };
        let lost_now =
            self.lost.as_ref().map(|(count, told)| (count.load(std::sync::atomic::Ordering::Relaxed), *told));
        let req = PollRequest { events_lost: lost_now.map_or(0, |(now, told)| now.saturating_sub(told)), ..req };
        let mut res = post_json(&self.http, &url, Some(&self.enrollment.credential), &req)?;
        // The server has the count now.
        if let (Some((_, told)), Some((now, _))) = (self.lost.as_mut(), lost_now) {
            *told = now;
        }
        // The server has the host now.
        self.host = None;
        if let Some(tell) = &self.server_time
            && let Some(date) = res.headers().get("date").and_then(|v| v.to_str().ok())
            && let Ok(at) = jiff::fmt::rfc2822::parse(date)
        {
            tell(at.timestamp().as_second());
        }
        if res.status().as_u16() == 204 {
            return Ok(None);
        }
        let received = (|| {
            let signature = res
                .headers()
                .get(SIGNATURE_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
                .ok_or(BundleError::BadSignature)?;
            let payload = read_limited(&url, &mut res, MAX_BUNDLE_BYTES)?.ok_or(BundleError::TooLarge)?;
            verify(Bundle::from_parts(payload, &signature)?, &self.enrollment, &self.key, after)
        })();
        // A bundle this agent cannot verify (signed by a key it was never led to, after a
        // reset or a restore of the server's database) is told to the server, which shows
        // the computer as lagging with the reason; the version asked for stays.
        let verified = match received {
            Ok(v) => v,
            Err(e) => {
                if matches!(e, SyncError::Bundle(_)) {
                    self.unverified = Some(portcullis_protocol::bounded_text(
                        &format!("bundle refused: {}", with_causes(&e)),
                        portcullis_protocol::limits::BUNDLE_ERROR,
                    ));
                }
                return Err(e);
            }
        };
        self.unverified = None;
        if let Err(error) = (self.check)(&verified) {
            let message =
                portcullis_protocol::bounded_text(&with_causes(&*error), portcullis_protocol::limits::BUNDLE_ERROR);
            self.refused = Some((verified.version, message));
            return Err(SyncError::Load { version: verified.version, error });
        }
        verified.save(&self.state_dir)?;
        self.version = verified.version;
        self.refused = None;
        // The organization rotated its key: keep the new one. Saved after the bundle, so a
        // crash in between leaves a bundle that the old key still reaches through its chain.
        // A bundle also means a pending enrollment was accepted.
        if verified.signer != self.key || self.enrollment.pending {
            if verified.signer != self.key {
                tracing::info!(
                    "the organization's bundle key is now {} (endorsed by {})",
                    verified.signer.to_hex(),
                    self.key.to_hex()
                );
            }
            self.enrollment.bundle_key = verified.signer.to_hex();
            self.enrollment.pending = false;
            self.enrollment.save(&self.state_dir)?;
            self.key = verified.signer.clone();
        }
        Ok(Some(verified))
    }

    /// Poll until the process ends: save each newer bundle and call `reload` to have the
    /// agent load it. Failures are logged (once until it recovers) and retried with back-off.
    pub fn run(mut self, reload: impl Fn(i64)) {
        let mut backoff = Duration::from_secs(1);
        let mut failing = false;
        loop {
            match self.poll_once(self.wait) {
                Ok(new) => {
                    if failing {
                        tracing::info!("server {} reachable again", self.enrollment.server);
                        failing = false;
                    }
                    backoff = Duration::from_secs(1);
                    if let Some(v) = new {
                        tracing::info!("policy bundle version {} received", v.version);
                        reload(v.version);
                    }
                }
                Err(e) => {
                    if !failing || e.is_unauthorized() || matches!(e, SyncError::Load { .. }) {
                        tracing::warn!(
                            "policy sync: {}; enforcing bundle version {} meanwhile",
                            with_causes(&e),
                            self.version
                        );
                    }
                    failing = true;
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            }
        }
    }
}

/// Where delivery stands: the spool file number and the byte offset in it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cursor {
    /// Spool file number.
    pub file: u64,
    /// Bytes of it delivered.
    pub offset: u64,
}

impl Cursor {
    /// The cursor saved in `state_dir` (the start, if none is).
    pub fn load(state_dir: &Path) -> Result<Cursor, SyncError> {
        let path = state_dir.join(CURSOR_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let mut parts = text.split_whitespace().map(str::parse::<u64>);
                match (parts.next(), parts.next()) {
                    (Some(Ok(file)), Some(Ok(offset))) => Ok(Cursor { file, offset }),
                    _ => Err(SyncError::Corrupt { path, message: "expected \"FILE OFFSET\"".into() }),
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Cursor::default()),
            Err(e) => Err(SyncError::File { path, error: e }),
        }
    }
}

/// Bytes of the spool in `spool_dir` not yet delivered, by the cursor saved in `state_dir`.
pub fn backlog(spool_dir: &Path, state_dir: &Path) -> Result<u64, SyncError> {
    let cursor = Cursor::load(state_dir)?;
    let files = spool::files(spool_dir).map_err(|e| SyncError::File { path: spool_dir.to_owned(), error: e })?;
    let mut bytes = 0u64;
    for (number, path) in files.iter().filter(|(n, _)| *n >= cursor.file) {
        // A file rotated away meanwhile is simply not counted.
        let size = std::fs::metadata(path).map_or(0, |m| m.len());
        bytes += if *number == cursor.file { size.saturating_sub(cursor.offset) } else { size };
    }
    Ok(bytes)
}

/// Sends the spool's events.
pub struct Uploader {
    enrollment: Enrollment,
    spool_dir: PathBuf,
    state_dir: PathBuf,
    http: ureq::Agent,
    cursor: Cursor,
    /// The offline bypass key, until the server has it.
    bypass_key: Option<[u8; 32]>,
}

impl Uploader {
    /// An uploader that resumes from the saved cursor.
    pub fn new(enrollment: Enrollment, spool_dir: &Path, state_dir: &Path) -> Result<Uploader, SyncError> {
        let http = http(enrollment.server_ca_pem.as_deref(), Duration::from_secs(60))?;
        let cursor = Cursor::load(state_dir)?;
        Ok(Uploader {
            enrollment,
            spool_dir: spool_dir.to_owned(),
            state_dir: state_dir.to_owned(),
            http,
            cursor,
            bypass_key: None,
        })
    }

    /// Where delivery stands.
    pub fn cursor(&self) -> Cursor {
        self.cursor
    }

    /// Send every complete line not yet delivered, and `hits` with the first batch; returns
    /// how many events went up.
    pub fn upload_pending(&mut self, mut hits: Vec<PolicyHit>) -> Result<u64, SyncError> {
        let mut sent = 0;
        let files = match spool::files(&self.spool_dir) {
            Ok(f) => f,
            // The agent makes it when it starts.
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(SyncError::File { path: self.spool_dir.clone(), error: e }),
        };
        for (number, path) in &files {
            if *number < self.cursor.file {
                continue;
            }
            if *number > self.cursor.file {
                if self.cursor.file != 0 && !files.iter().any(|(n, _)| *n == self.cursor.file) {
                    tracing::warn!(
                        "spool file {} was removed before delivery (the spool is bounded); its remaining events are lost",
                        self.cursor.file
                    );
                }
                self.cursor = Cursor { file: *number, offset: 0 };
            }
            loop {
                let (lines, end, skipped) =
                    spool::read_lines(path, self.cursor.offset, BATCH).map_err(file_error(path))?;
                for at in skipped {
                    tracing::warn!("{}: skipping a malformed event line at byte {at}", path.display());
                }
                if lines.is_empty() {
                    // Only torn lines: step over them, once.
                    if end > self.cursor.offset {
                        self.cursor.offset = end;
                        self.save_cursor()?;
                    }
                    break;
                }
                sent += self.send(&lines, std::mem::take(&mut hits))?;
                self.cursor.offset = end;
                self.save_cursor()?;
            }
        }
        if !hits.is_empty() {
            self.send(&[], hits)?;
        }
        Ok(sent)
    }

    fn send(&self, lines: &[String], hits: Vec<PolicyHit>) -> Result<u64, SyncError> {
        let url = format!("{}{}", self.enrollment.server, paths::EVENTS);
        // The lines are JSON already: splice them in verbatim, so their bytes (and keys) stay.
        let hits = serde_json::to_string(&hits).expect("plain data");
        let body = format!("{{\"events\":[{}],\"hits\":{hits}}}", lines.join(","));
        let raw: Box<serde_json::value::RawValue> = serde_json::value::RawValue::from_string(body)
            .map_err(|e| SyncError::Corrupt { path: self.spool_dir.clone(), message: e.to_string() })?;
        let res = post_json(&self.http, &url, Some(&self.enrollment.credential), &raw)?;
        let reply: EventBatchReply = read_json(&url, res)?;
        if reply.refused > 0 {
            tracing::warn!("the server refused {} event line(s) of a batch as not event records", reply.refused);
        }
        Ok(reply.stored + reply.duplicates)
    }

    fn save_cursor(&self) -> Result<(), SyncError> {
        let text = format!("{} {}\n", self.cursor.file, self.cursor.offset);
        write_atomically(&self.state_dir.join(CURSOR_FILE), text.as_bytes())
    }

    /// Send this agent's offline bypass key to the server from [`Uploader::run`] (until it
    /// is taken).
    pub fn register_bypass_key(&mut self, key: [u8; 32]) {
        self.bypass_key = Some(key);
    }

    fn send_bypass_key(&self, key: &[u8; 32]) -> Result<(), SyncError> {
        let url = format!("{}{}", self.enrollment.server, paths::BYPASS_KEY);
        let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
        post_json(&self.http, &url, Some(&self.enrollment.credential), &portcullis_protocol::BypassKey { key: hex })?;
        Ok(())
    }

    /// Send the approval requests `portcullis request` left in the state directory
    /// ([`REQUESTS_DIR`]) and ask how the sent ones stand, keeping the answers in
    /// [`REQUEST_STATUS_FILE`]. `ask` also asks about requests sent before. Whether new
    /// requests went up.
    pub fn sync_requests(&self, ask: bool) -> Result<bool, SyncError> {
        let dir = self.state_dir.join(REQUESTS_DIR);
        let outbox = dir.join("outbox");
        let sent = dir.join("sent");
        let mut new = Vec::new();
        let mut files = Vec::new();
        if let Ok(entries) = std::fs::read_dir(&outbox) {
            for e in entries.flatten().take(portcullis_protocol::limits::REQUESTS) {
                let path = e.path();
                match std::fs::read(&path).ok().and_then(|b| serde_json::from_slice::<NewRequest>(&b).ok()) {
                    Some(r) => {
                        new.push(r);
                        files.push(path);
                    }
                    None => {
                        tracing::warn!("approval request {} is not one: removed", path.display());
                        let _ = std::fs::remove_file(&path);
                    }
                }
            }
        }
        let mut ids: Vec<String> = Vec::new();
        if ask {
            let known = read_statuses(&self.state_dir);
            if let Ok(entries) = std::fs::read_dir(&sent) {
                for e in entries.flatten() {
                    let id = e.path().file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
                    let decided = known.iter().any(|s| s.id == id && s.status != "pending");
                    if !decided && portcullis_protocol::valid_request_id(&id) {
                        ids.push(id);
                    }
                }
            }
            ids.truncate(portcullis_protocol::limits::REQUEST_IDS);
        }
        if new.is_empty() && ids.is_empty() {
            return Ok(false);
        }
        let url = format!("{}{}", self.enrollment.server, paths::REQUESTS);
        let new_ids: Vec<String> = new.iter().map(|r| r.id.clone()).collect();
        let sent_new = !new_ids.is_empty();
        let reply: RequestStatuses = match post_json(
            &self.http,
            &url,
            Some(&self.enrollment.credential),
            &RequestBatch { requests: new, ids },
        ) {
            Ok(res) => read_json(&url, res)?,
            // Refused as it is: sending it again changes nothing, so the user is told.
            Err(SyncError::Refused { status: 400 | 413 | 415 | 422, message, .. }) if !new_ids.is_empty() => {
                RequestStatuses {
                    statuses: new_ids
                        .into_iter()
                        .map(|id| portcullis_protocol::RequestStatus {
                            id,
                            status: "refused".into(),
                            note: Some(message.clone()),
                            policy: None,
                            decided_ms: None,
                        })
                        .collect(),
                }
            }
            Err(e) => return Err(e),
        };
        std::fs::create_dir_all(&sent).map_err(|error| SyncError::File { path: sent.clone(), error })?;
        for f in files {
            if let Some(name) = f.file_name() {
                let _ = std::fs::rename(&f, sent.join(name));
            }
        }
        let mut statuses = read_statuses(&self.state_dir);
        for s in reply.statuses {
            statuses.retain(|k| k.id != s.id);
            statuses.push(s);
        }
        let bytes = serde_json::to_vec(&statuses).expect("plain data");
        write_atomically(&dir.join(REQUEST_STATUS_FILE), &bytes)?;
        Ok(sent_new)
    }

    /// Send files an Installation window captured.
    pub fn send_captures(
        &self,
        files: &[portcullis_protocol::CapturedFile],
    ) -> Result<portcullis_protocol::CaptureReply, SyncError> {
        let url = format!("{}{}", self.enrollment.server, paths::CAPTURES);
        let body = portcullis_protocol::CaptureBatch { files: files.to_vec() };
        let res = post_json(&self.http, &url, Some(&self.enrollment.credential), &body)?;
        read_json(&url, res)
    }

    /// Report the host's installed packages (the whole list replaces what the server knew).
    pub fn report_packages(&self, report: &PackageReport) -> Result<PackageReportReply, SyncError> {
        let url = format!("{}{}", self.enrollment.server, paths::PACKAGES);
        let res = post_json(&self.http, &url, Some(&self.enrollment.credential), report)?;
        read_json(&url, res)
    }

    /// Upload every second until the process ends; failures are retried, and the match
    /// counts that could not be sent are given back. The package list is reported when it
    /// changed, and again after a failure, every [`PACKAGE_RETRY`].
    pub fn run(mut self, hits: HitCounters, packages: PackageReports, captures: CaptureQueue) {
        let mut failing = false;
        let mut packages_after = std::time::Instant::now();
        let mut key_after = std::time::Instant::now();
        let mut asked = std::time::Instant::now();
        let mut ask_every = REQUEST_ASK_FIRST;
        let mut requests_failing = false;
        loop {
            // New requests at once; outcomes every few seconds after a request went up, less
            // and less often while nobody decides (a request may wait for days).
            let ask = asked.elapsed() >= ask_every;
            match self.sync_requests(ask) {
                Ok(sent) => {
                    requests_failing = false;
                    ask_every = if sent {
                        REQUEST_ASK_FIRST
                    } else if ask {
                        (ask_every * 2).min(REQUEST_ASK_MAX)
                    } else {
                        ask_every
                    };
                }
                Err(e) => {
                    if !requests_failing {
                        tracing::warn!("approval requests: {}; kept and sent again", with_causes(&e));
                    }
                    requests_failing = true;
                }
            }
            if ask {
                asked = std::time::Instant::now();
            }
            if let Some(key) = self.bypass_key
                && std::time::Instant::now() >= key_after
            {
                match self.send_bypass_key(&key) {
                    Ok(()) => {
                        tracing::info!("offline bypass key registered with the server");
                        self.bypass_key = None;
                    }
                    Err(e) => {
                        tracing::warn!(
                            "registering the offline bypass key: {}; trying again in {} s",
                            with_causes(&e),
                            PACKAGE_RETRY.as_secs()
                        );
                        key_after = std::time::Instant::now() + PACKAGE_RETRY;
                    }
                }
            }
            if std::time::Instant::now() >= packages_after
                && let Some(report) = (packages.take)()
            {
                match self.report_packages(&report) {
                    Ok(reply) => {
                        tracing::info!("{} installed packages reported to the server", reply.stored);
                        if reply.refused > 0 {
                            tracing::warn!(
                                "the server refused {} package entr(ies) as not package names",
                                reply.refused
                            );
                        }
                    }
                    Err(e) => {
                        tracing::warn!(
                            "reporting installed packages: {}; trying again in {} s",
                            with_causes(&e),
                            PACKAGE_RETRY.as_secs()
                        );
                        (packages.restore)(report);
                        packages_after = std::time::Instant::now() + PACKAGE_RETRY;
                    }
                }
            }
            let files = (captures.take)();
            if !files.is_empty() {
                match self.send_captures(&files) {
                    Ok(reply) => {
                        tracing::info!(
                            "{} captured file(s) sent: {} added to the application, {} known already (model version {})",
                            files.len(),
                            reply.added,
                            reply.known,
                            reply.version
                        );
                        (captures.done)(files, Some(reply.version));
                    }
                    // Refused as they are (the window is over on the server, or the files
                    // are not its application's): sending them again changes nothing.
                    Err(SyncError::Refused { status: 400 | 409 | 413 | 422, message, .. }) => {
                        tracing::warn!("the server refused {} captured file(s): {message}", files.len());
                        (captures.done)(files, None);
                    }
                    Err(e) => {
                        if !failing {
                            tracing::warn!("sending captured files: {}; sent again later", with_causes(&e));
                        }
                    }
                }
            }
            let taken = (hits.take)();
            let result = self.upload_pending(taken.clone());
            // Counts went with the first batch; if nothing was stored, give them back.
            if result.as_ref().is_err() {
                (hits.restore)(taken);
            }
            match result {
                Ok(n) => {
                    if n > 0 {
                        tracing::debug!("{n} events delivered");
                    }
                    failing = false;
                }
                Err(e) => {
                    if !failing {
                        tracing::warn!(
                            "event delivery: {}; events stay in the spool until the server is back",
                            with_causes(&e)
                        );
                    }
                    failing = true;
                }
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    }
}

/// This host, as the agent reports it.
pub fn host_facts(agent_version: &str) -> HostFacts {
    let read = |p: &str| std::fs::read_to_string(p).map(|s| s.trim().to_owned()).unwrap_or_default();
    let os_release = std::fs::read_to_string("/etc/os-release")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME=").map(|v| v.trim_matches('"').to_owned()))
        .unwrap_or_default();
    HostFacts {
        hostname: read("/proc/sys/kernel/hostname"),
        os: "linux".into(),
        os_release,
        kernel: read("/proc/sys/kernel/osrelease"),
        arch: std::env::consts::ARCH.into(),
        agent_version: agent_version.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_is_refused_unless_asked_for() {
        assert!(check_server_url("https://console:8443", false).is_ok());
        assert!(check_server_url("HTTPS://console", false).is_ok());
        let e = check_server_url("http://console:8443", false).unwrap_err().to_string();
        assert!(e.contains("in the clear") && e.contains("--insecure-http"), "{e}");
        assert!(check_server_url("http://127.0.0.1:8080", true).is_ok());
        assert!(check_server_url("ftp://console", true).is_err());
        assert!(check_server_url("console:8443", false).is_err());
    }

    #[test]
    fn a_saved_bundle_of_another_computer_or_organization_is_refused() {
        let dir = std::env::temp_dir().join(format!("portcullis-sync-bundle-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = portcullis_protocol::BundleKey::from_seed([9; 32]);
        let enrollment = Enrollment {
            server: "https://s".into(),
            server_ca_pem: None,
            organization: "acme".into(),
            computer: "web-01".into(),
            credential: "pca_x".into(),
            bundle_key: key.public().to_hex(),
            pending: false,
        };
        let save = |organization: &str, computer: &str| {
            let c = portcullis_policy_file::document::ComputerDoc { name: computer.into(), ..Default::default() };
            let payload = BundlePayload::new(organization, 3, 0, c, "{}").unwrap();
            let b = key.sign(&payload);
            let v = Verified { version: 3, policy_json: String::new(), bundle: b, signer: key.public() };
            v.save(&dir).unwrap();
            load_bundle(&dir.join(BUNDLE_FILE), &enrollment)
        };
        assert_eq!(save("acme", "WEB-01").unwrap().version, 3);
        assert!(matches!(save("acme", "db-01"), Err(SyncError::Bundle(BundleError::WrongTarget { .. }))));
        assert!(matches!(save("other", "web-01"), Err(SyncError::Bundle(BundleError::WrongTarget { .. }))));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_saved_bundle_signed_by_a_rotated_key_loads_through_its_endorsements_only() {
        let dir = tempfile::tempdir().unwrap();
        let (old, new) =
            (portcullis_protocol::BundleKey::from_seed([1; 32]), portcullis_protocol::BundleKey::from_seed([2; 32]));
        let enrollment = Enrollment {
            server: "https://s".into(),
            server_ca_pem: None,
            organization: "acme".into(),
            computer: "web-01".into(),
            credential: "pca_x".into(),
            bundle_key: old.public().to_hex(),
            pending: false,
        };
        let save = |chain: Vec<portcullis_protocol::KeyEndorsement>| {
            let c = portcullis_policy_file::document::ComputerDoc { name: "web-01".into(), ..Default::default() };
            let mut payload = BundlePayload::new("acme", 4, 0, c, "{}").unwrap();
            payload.key_chain = chain;
            let v =
                Verified { version: 4, policy_json: String::new(), bundle: new.sign(&payload), signer: new.public() };
            v.save(dir.path()).unwrap();
            load_bundle(&dir.path().join(BUNDLE_FILE), &enrollment)
        };
        let loaded = save(vec![old.endorse("acme", &new.public(), 1)]).unwrap();
        assert_eq!((loaded.version, loaded.signer), (4, new.public()));
        // Without the endorsement, or with one made by a key the agent never held, refused.
        assert!(matches!(save(vec![]), Err(SyncError::Bundle(BundleError::BadSignature))));
        let mut forged = new.endorse("acme", &new.public(), 1);
        forged.previous = old.public().to_hex();
        assert!(matches!(save(vec![forged]), Err(SyncError::Bundle(BundleError::BadSignature))));
    }
}
