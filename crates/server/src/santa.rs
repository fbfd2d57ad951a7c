//! A Santa sync server (macOS fleets): the four stages of Santa's open sync protocol (v1)
//! at `POST /santa/{preflight,eventupload,ruledownload,postflight}/{machine_id}`.
//!
//! - **Who**: Santa keeps no credential a server could give it, so a machine shows its
//!   group's enrollment token on every request, in the `X-Portcullis-Token` header (Santa's
//!   `SyncExtraHeaders`), and the token must still be its group's current one. The token is
//!   a secret shared by the group's Macs: whoever holds it can speak for any of them (their
//!   machine ids are not secret). The credential stored for a Mac is derived from the token
//!   and its machine id, and the agents' API refuses it. The first preflight enrolls a Mac
//!   into the token's group as a macOS computer named after its host (a name that is taken
//!   waits for an administrator, as for agents).
//! - **What**: the computer's rules and mode come from [`portcullis_export::santa_for_computer`],
//!   the same mapping the Santa export uses. When the model changed since the rules it last
//!   received completely, preflight asks for a CLEAN sync, so removed rules go too.
//! - **Wire**: proto3 JSON of `sync/v1.proto`. Requests are read tolerantly (proto names,
//!   json_names and lowerCamelCase, `null`, unknown keys; zlib/deflate or gzip bodies);
//!   responses use proto names or json_names and enum names, and never carry the fields
//!   that would switch a client to the proprietary v2 protocol (`push_token`,
//!   `push_issuer_token`) or any v2-only field.
//! - **Events** Santa uploads become Portcullis event records, so the console's filters,
//!   hygiene and "make a policy from this event" work on them unchanged.

use crate::AppState;
use crate::error::AppError;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use portcullis_events::{Access, EventKind, FileRecord, ProcessInfo, ProcessRecord, Record, SignerRecord, Verdict};
use portcullis_store::{AgentIdentity, Enrolled, Enrollment, NewEvent, Seen, StoreError, now_ms};
use serde::{Deserialize, Serialize};
use std::io::Read;

/// The header that carries the group's enrollment token.
pub const TOKEN_HEADER: &str = "x-portcullis-token";
/// How a Santa Mac's credential starts (the agents' API refuses it).
pub const CREDENTIAL_PREFIX: &str = "pcs_";
/// Rules per ruledownload page.
const PAGE: usize = 500;
/// Events per upload, as preflight tells the client.
const BATCH_SIZE: u32 = 50;
/// How often a client syncs in full, seconds (always sent: a client without it syncs every
/// minute).
const FULL_SYNC_INTERVAL: u32 = 600;
/// A request body, decompressed, at most.
const MAX_INFLATED: u64 = 8 << 20;

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/santa/{stage}/{machine_id}", post(stage))
}

// ----- wire types (read tolerantly, written as Santa reads them) ---------------------------

/// `PreflightRequest`: only what the server uses.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct PreflightRequest {
    #[serde(alias = "serialNum", alias = "serial_number")]
    serial_num: Option<String>,
    hostname: Option<String>,
    #[serde(alias = "osVersion")]
    os_version: Option<String>,
    #[serde(alias = "osBuild")]
    os_build: Option<String>,
    #[serde(alias = "modelIdentifier")]
    model_identifier: Option<String>,
    #[serde(alias = "santaVersion")]
    santa_version: Option<String>,
    #[serde(alias = "primaryUser")]
    primary_user: Option<String>,
    #[serde(alias = "clientMode")]
    client_mode: Option<serde_json::Value>,
    #[serde(alias = "requestCleanSync")]
    request_clean_sync: Option<bool>,
}

/// `PreflightResponse`, with proto names (json_name where the proto sets one).
#[derive(Debug, Serialize)]
struct PreflightResponse {
    client_mode: &'static str,
    sync_type: &'static str,
    batch_size: u32,
    full_sync_interval: u32,
}

/// `EventUploadRequest`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct EventUploadRequest {
    events: Option<Vec<SantaEvent>>,
}

/// `Event`: what becomes a Portcullis event record.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct SantaEvent {
    #[serde(alias = "fileSha256")]
    file_sha256: Option<String>,
    #[serde(alias = "filePath")]
    file_path: Option<String>,
    #[serde(alias = "fileName")]
    file_name: Option<String>,
    #[serde(alias = "executingUser")]
    executing_user: Option<String>,
    #[serde(alias = "executionTime")]
    execution_time: Option<serde_json::Value>,
    decision: Option<serde_json::Value>,
    pid: Option<serde_json::Value>,
    ppid: Option<serde_json::Value>,
    #[serde(alias = "parentName")]
    parent_name: Option<String>,
    #[serde(alias = "teamId")]
    team_id: Option<String>,
    #[serde(alias = "signingId")]
    signing_id: Option<String>,
    #[serde(alias = "signingChain")]
    signing_chain: Option<Vec<Certificate>>,
}

/// `Certificate` of a signing chain (leaf first).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Certificate {
    sha256: Option<String>,
    cn: Option<String>,
    org: Option<String>,
    ou: Option<String>,
}

/// `RuleDownloadRequest`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RuleDownloadRequest {
    cursor: Option<String>,
}

/// `RuleDownloadResponse`.
#[derive(Debug, Serialize)]
struct RuleDownloadResponse<'a> {
    rules: &'a [portcullis_export::SantaRule],
    #[serde(skip_serializing_if = "Option::is_none")]
    cursor: Option<String>,
}

/// `PostflightRequest`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct PostflightRequest {
    #[serde(alias = "rulesReceived")]
    rules_received: Option<serde_json::Value>,
    #[serde(alias = "rulesProcessed")]
    rules_processed: Option<serde_json::Value>,
    #[serde(alias = "syncType")]
    sync_type: Option<serde_json::Value>,
}

/// A proto3 JSON integer: a number or a string of digits.
fn int(v: &Option<serde_json::Value>) -> Option<i64> {
    match v.as_ref()? {
        serde_json::Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A proto3 JSON enum: its name (or number, as text).
fn enum_name(v: &Option<serde_json::Value>) -> String {
    match v {
        Some(serde_json::Value::String(s)) => s.trim().to_ascii_uppercase(),
        Some(serde_json::Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

// ----- the stages -------------------------------------------------------------------------

/// A stage's refusal, as the response Santa gets (boxed: a response is large).
type Refused = Box<Response>;

/// An error as Santa logs it: a status and a JSON body that says why.
fn refuse(status: StatusCode, why: impl Into<String>) -> Refused {
    Box::new(
        (status, [(header::CONTENT_TYPE, "application/json")], serde_json::json!({ "error": why.into() }).to_string())
            .into_response(),
    )
}

fn refused(e: impl IntoResponse) -> Refused {
    Box::new(e.into_response())
}

fn reply(body: &impl Serialize) -> Response {
    let text = serde_json::to_string(body).expect("plain data");
    ([(header::CONTENT_TYPE, "application/json")], text).into_response()
}

/// The request body, decompressed as its Content-Encoding says.
fn body_of(headers: &HeaderMap, body: &Bytes) -> Result<Vec<u8>, Refused> {
    if headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.to_ascii_lowercase().contains("protobuf"))
    {
        return Err(refuse(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "binary protobuf bodies are not supported: turn SyncEnableProtoTransfer off (JSON is the default)",
        ));
    }
    let encoding =
        headers.get(header::CONTENT_ENCODING).and_then(|v| v.to_str().ok()).unwrap_or("").trim().to_ascii_lowercase();
    if body.is_empty() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    let read = match encoding.as_str() {
        "" | "identity" | "none" => return Ok(body.to_vec()),
        // Santa's "deflate" is zlib (RFC 1950), as "zlib" was before Santa 1.17.
        "deflate" | "zlib" => flate2::read::ZlibDecoder::new(&body[..]).take(MAX_INFLATED + 1).read_to_end(&mut out),
        "gzip" => flate2::read::GzDecoder::new(&body[..]).take(MAX_INFLATED + 1).read_to_end(&mut out),
        other => {
            return Err(refuse(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("Content-Encoding {other:?} is not supported; use deflate (zlib), gzip or none"),
            ));
        }
    };
    match read {
        Ok(_) if out.len() as u64 > MAX_INFLATED => {
            Err(refuse(StatusCode::PAYLOAD_TOO_LARGE, format!("the body inflates to more than {MAX_INFLATED} bytes")))
        }
        Ok(_) => Ok(out),
        Err(e) => Err(refuse(StatusCode::BAD_REQUEST, format!("the {encoding} body does not decompress: {e}"))),
    }
}

fn parse<T: Default + for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, Refused> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(bytes)
        .map_err(|e| refuse(StatusCode::BAD_REQUEST, format!("the body is not the stage's JSON message: {e}")))
}

/// The credential a machine proves itself with: its machine id, keyed by its group's token.
fn credential(token: &str, machine_id: &str) -> String {
    use hmac::{KeyInit, Mac};
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(token.trim().as_bytes()).expect("any key length");
    mac.update(b"portcullis santa machine\0");
    mac.update(machine_id.as_bytes());
    let digest = mac.finalize().into_bytes();
    format!("{CREDENTIAL_PREFIX}{}", digest.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

fn token(headers: &HeaderMap) -> Result<String, Refused> {
    headers
        .get(TOKEN_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            refuse(
                StatusCode::UNAUTHORIZED,
                "send the group's enrollment token in the X-Portcullis-Token header (Santa: SyncExtraHeaders)",
            )
        })
}

fn valid_machine_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn store_error(e: StoreError) -> Refused {
    refused(AppError::from(e))
}

async fn stage(
    State(state): State<AppState>,
    Path((stage, machine_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !valid_machine_id(&machine_id) {
        return *refuse(StatusCode::BAD_REQUEST, "the machine id is 1 to 128 letters, digits, '-', '_' or '.'");
    }
    let token = match token(&headers) {
        Ok(t) => t,
        Err(r) => return *r,
    };
    let credential = credential(&token, &machine_id);
    let known = match state.store.agent(&credential).await {
        Ok(k) => k,
        Err(e) => return *store_error(e),
    };
    // A known Mac still shows its group's current token (revoked or rotated: cut off).
    if let Some(agent) = &known {
        match state.store.token_is_of_computers_group(&token, agent.computer_id).await {
            Ok(true) => {}
            Ok(false) => {
                return *refuse(
                    StatusCode::FORBIDDEN,
                    "the token in X-Portcullis-Token is no longer this Mac's group's: give it the group's current token",
                );
            }
            Err(e) => return *store_error(e),
        }
    }
    let bytes = match body_of(&headers, &body) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let result = match (stage.as_str(), known) {
        ("preflight", known) => preflight(&state, &token, &credential, &machine_id, &bytes, known).await,
        (_, None) => Err(refuse(StatusCode::FORBIDDEN, "this machine is not enrolled: its preflight enrolls it")),
        ("eventupload", Some(agent)) => eventupload(&state, &agent, &bytes).await,
        ("ruledownload", Some(agent)) => ruledownload(&state, &agent, &bytes).await,
        ("postflight", Some(agent)) => postflight(&agent, &bytes).await,
        (other, Some(_)) => Err(refuse(StatusCode::NOT_FOUND, format!("no stage {other:?}"))),
    };
    result.unwrap_or_else(|r| *r)
}

/// The computer's rules and client mode now, with the model version they come from and the
/// name of the computer's mode.
async fn rules_of(
    state: &AppState,
    agent: &AgentIdentity,
) -> Result<(i64, portcullis_export::SantaSync, String), Refused> {
    let (version, doc) = crate::ops::whole_model(state, agent.org_id).await.map_err(refused)?;
    let loaded = crate::ops::check_document(&doc).map_err(|p| refused(AppError::Invalid(p)))?;
    let (sync, report) =
        portcullis_export::santa_for_computer(&loaded.set, &agent.name, portcullis_policy::Timestamp(now_ms() / 1000));
    Ok((version, sync, report.mode))
}

async fn preflight(
    state: &AppState,
    token: &str,
    credential: &str,
    machine_id: &str,
    bytes: &[u8],
    known: Option<AgentIdentity>,
) -> Result<Response, Refused> {
    let req: PreflightRequest = parse(bytes)?;
    let short = |v: &Option<String>| v.as_deref().map(|t| portcullis_protocol::bounded_text(t, 256));
    let client_mode = match &req.client_mode {
        Some(serde_json::Value::String(m)) => Some(portcullis_protocol::bounded_text(m, 32)),
        _ => None,
    };
    let version = short(&req.santa_version).unwrap_or_default();
    let host = |santa_rules: Option<&str>| {
        serde_json::json!({
            "hostname": short(&req.hostname), "machine_id": machine_id, "serial": short(&req.serial_num),
            "os": "macos", "os_version": short(&req.os_version), "os_build": short(&req.os_build),
            "model": short(&req.model_identifier), "primary_user": short(&req.primary_user),
            "client_mode": client_mode, "santa_rules": santa_rules,
        })
        .to_string()
    };
    let agent = match known {
        Some(a) => a,
        None => {
            // One pending enrollment per Mac, not one per sync.
            if state.store.is_pending(credential).await.map_err(store_error)? {
                return Err(refuse(StatusCode::FORBIDDEN, portcullis_protocol::ENROLLMENT_PENDING));
            }
            // The computer's name: its host name if it is one, else its machine id.
            let name = req
                .hostname
                .as_deref()
                .map(str::trim)
                .filter(|h| portcullis_protocol::valid_hostname(h))
                .unwrap_or(machine_id)
                .to_owned();
            let enrolled = state
                .store
                .enroll(&Enrollment {
                    token,
                    hostname: &name,
                    os: "macos",
                    host_json: &host(None),
                    agent_version: &format!("santa {version}"),
                    current_credential: Some(credential),
                    credential: Some(credential),
                })
                .await;
            match enrolled {
                Ok(Enrolled::Active { identity, .. }) => {
                    state.hub.enrolled(identity.org_id, identity.computer_id).await;
                    identity
                }
                Ok(_) => return Err(refuse(StatusCode::FORBIDDEN, portcullis_protocol::ENROLLMENT_PENDING)),
                Err(StoreError::NotFound(_)) => {
                    return Err(refuse(
                        StatusCode::FORBIDDEN,
                        "the enrollment token in X-Portcullis-Token is unknown, expired or used up",
                    ));
                }
                Err(e) => return Err(store_error(e)),
            }
        }
    };
    let (_, sync, _) = rules_of(state, &agent).await?;
    let computer = state.store.computer(agent.org_id, agent.computer_id).await.map_err(store_error)?;
    // The fingerprint of the rules the Mac last received whole, in a clean sync.
    let had = computer
        .host_json
        .as_deref()
        .and_then(|h| serde_json::from_str::<serde_json::Value>(h).ok())
        .and_then(|h| h["santa_rules"].as_str().map(str::to_owned));
    // A clean sync when asked for, or when the rules differ from those (a change of the
    // model, a policy that expired, a Learning period that ended): the client then replaces
    // every rule, so a removed one goes too.
    let now = fingerprint(&sync);
    let clean = req.request_clean_sync == Some(true) || had.as_deref() != Some(now.as_str());
    if clean {
        cleaning().lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(agent.computer_id, now);
    }
    let seen = Seen {
        computer_id: agent.computer_id,
        at_ms: now_ms(),
        bundle_version: computer.bundle_version,
        host: Some((host(had.as_deref()), format!("santa {version}"))),
        bundle_error: None,
        events_lost: 0,
    };
    state.store.agents_seen(&[seen]).await.map_err(store_error)?;
    Ok(reply(&PreflightResponse {
        client_mode: sync.client_mode,
        sync_type: if clean { "CLEAN" } else { "NORMAL" },
        batch_size: BATCH_SIZE,
        full_sync_interval: FULL_SYNC_INTERVAL,
    }))
}

/// What identifies a rule set (and the mode): the SHA-256 of its JSON.
fn fingerprint(sync: &portcullis_export::SantaSync) -> String {
    use sha2::Digest;
    let text = serde_json::to_string(&(sync.client_mode, &sync.rules)).expect("plain data");
    sha2::Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Macs in a clean sync, by computer id: the fingerprint of the rules preflight saw. In
/// memory: a restart (or another server process) between preflight and the last page only
/// costs another clean sync.
fn cleaning() -> &'static std::sync::Mutex<std::collections::HashMap<i64, String>> {
    static CLEANING: std::sync::OnceLock<std::sync::Mutex<std::collections::HashMap<i64, String>>> =
        std::sync::OnceLock::new();
    CLEANING.get_or_init(Default::default)
}

async fn ruledownload(state: &AppState, agent: &AgentIdentity, bytes: &[u8]) -> Result<Response, Refused> {
    let req: RuleDownloadRequest = parse(bytes)?;
    let (version, mut sync, _) = rules_of(state, agent).await?;
    let fingerprint = fingerprint(&sync);
    // The cursor is "VERSION:OFFSET"; one of another version (the model changed between
    // pages) starts over, and that download is not one set: the Mac is asked for a clean
    // sync again next time.
    let resumed = req.cursor.as_deref().and_then(|c| c.split_once(':'));
    let broken = resumed.is_some_and(|(v, _)| v.parse::<i64>().ok() != Some(version));
    let offset =
        resumed.filter(|_| !broken).and_then(|(_, o)| o.parse::<usize>().ok()).unwrap_or(0).min(sync.rules.len());
    if broken {
        cleaning().lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&agent.computer_id);
    }
    if sync.rules.is_empty() {
        // A clean sync with no rule deletes nothing on the client: one harmless REMOVE makes
        // it apply the (empty) set.
        sync.rules.push(portcullis_export::SantaRule {
            identifier: "0".repeat(64),
            policy: "REMOVE",
            rule_type: "BINARY",
            custom_msg: String::new(),
        });
    }
    let end = (offset + PAGE).min(sync.rules.len());
    let last = end == sync.rules.len();
    // The whole set went out in a clean sync, in one piece, as preflight saw it: what the
    // next preflight compares with. (A normal sync only adds rules.)
    let complete = last
        && cleaning()
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&agent.computer_id)
            .is_some_and(|f| f == fingerprint);
    if complete {
        let computer = state.store.computer(agent.org_id, agent.computer_id).await.map_err(store_error)?;
        let mut host: serde_json::Value = computer
            .host_json
            .as_deref()
            .and_then(|h| serde_json::from_str(h).ok())
            .filter(serde_json::Value::is_object)
            .unwrap_or_else(|| serde_json::json!({}));
        host["santa_rules"] = serde_json::json!(fingerprint);
        let seen = Seen {
            computer_id: agent.computer_id,
            at_ms: now_ms(),
            bundle_version: version,
            host: Some((host.to_string(), computer.agent_version.unwrap_or_default())),
            bundle_error: None,
            events_lost: 0,
        };
        state.store.agents_seen(&[seen]).await.map_err(store_error)?;
    }
    Ok(reply(&RuleDownloadResponse {
        rules: &sync.rules[offset..end],
        cursor: (!last).then(|| format!("{version}:{end}")),
    }))
}

async fn postflight(agent: &AgentIdentity, bytes: &[u8]) -> Result<Response, Refused> {
    let req: PostflightRequest = parse(bytes)?;
    let (received, processed) = (int(&req.rules_received), int(&req.rules_processed));
    if received.is_some() && received != processed {
        tracing::warn!(
            "Santa on {}: {} of {} rules processed ({} sync)",
            agent.name,
            processed.unwrap_or(0),
            received.unwrap_or(0),
            enum_name(&req.sync_type)
        );
    }
    Ok(reply(&serde_json::json!({})))
}

async fn eventupload(state: &AppState, agent: &AgentIdentity, bytes: &[u8]) -> Result<Response, Refused> {
    let req: EventUploadRequest = parse(bytes)?;
    let events = req.events.unwrap_or_default();
    if events.len() > 1000 {
        return Err(refuse(StatusCode::BAD_REQUEST, "at most 1000 events per upload"));
    }
    state.hub.quota(agent.computer_id, crate::hub::Quota::Events, events.len() as u64).map_err(refused)?;
    let (_, _, mode) = rules_of(state, agent).await?;
    let received = now_ms();
    let mut rows = Vec::new();
    for e in &events {
        let Some(record) = record_of(e, &agent.name, &mode, received) else { continue };
        let text = serde_json::to_string(&record).expect("plain data");
        if let Ok(fields) = crate::api::agents::event_fields(record, &text, received) {
            rows.push(NewEvent { key: portcullis_protocol::event_key(&text), fields });
        }
    }
    state.store.insert_events(agent.org_id, agent.computer_id, &rows).await.map_err(store_error)?;
    Ok(reply(&serde_json::json!({})))
}

/// A Santa event as a Portcullis event record: blocks are denies, unknown files Santa let
/// run in Monitor mode are would-denies; the rest (allowed by a rule) is not an event
/// Portcullis records.
fn record_of(e: &SantaEvent, computer: &str, mode: &str, received: i64) -> Option<Record> {
    let decision = enum_name(&e.decision);
    let (event, verdict) = match decision.as_str() {
        d if d.starts_with("BLOCK_") => (EventKind::Deny, Verdict::Deny),
        "ALLOW_UNKNOWN" => (EventKind::WouldDeny, Verdict::Allow),
        _ => return None,
    };
    let sha256 = e.file_sha256.as_deref().unwrap_or_default().trim().to_ascii_lowercase();
    if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let bounded = |s: &str, n: usize| s.chars().take(n).collect::<String>();
    let dir = e.file_path.as_deref().unwrap_or_default().trim_end_matches('/');
    let name = e.file_name.as_deref().unwrap_or_default();
    let path = bounded(&if name.is_empty() { dir.to_owned() } else { format!("{dir}/{name}") }, 4096);
    let at = match &e.execution_time {
        Some(serde_json::Value::Number(n)) => n.as_f64().map(|s| (s * 1000.0) as i64),
        Some(serde_json::Value::String(s)) => s.trim().parse::<f64>().ok().map(|s| (s * 1000.0) as i64),
        _ => None,
    }
    .unwrap_or(received);
    let time = jiff::Timestamp::from_millisecond(at).unwrap_or_else(|_| jiff::Timestamp::now()).to_string();
    let chain = e.signing_chain.as_deref().unwrap_or_default();
    let signer = chain.first().map(|leaf| {
        let mut subject = Vec::new();
        for (k, v) in [("CN", &leaf.cn), ("OU", &leaf.ou), ("O", &leaf.org)] {
            if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
                subject.push(format!("{k}={}", bounded(v, 256)));
            }
        }
        SignerRecord {
            subject: subject.join(","),
            issuer: chain
                .get(1)
                .and_then(|c| c.cn.as_deref())
                .map(|cn| format!("CN={}", bounded(cn, 256)))
                .unwrap_or_default(),
            cert_sha256: leaf
                .sha256
                .as_deref()
                .map(str::to_ascii_lowercase)
                .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
                .unwrap_or_default(),
            verified: true,
        }
    });
    let mut reason = format!("Santa ({decision}) on {computer}");
    if let Some(team) = e.team_id.as_deref().filter(|t| !t.is_empty()) {
        reason.push_str(&format!(", team {}", bounded(team, 32)));
    }
    if let Some(id) = e.signing_id.as_deref().filter(|t| !t.is_empty()) {
        reason.push_str(&format!(", signing id {}", bounded(id, 256)));
    }
    let pid = |v: &Option<serde_json::Value>| int(v).and_then(|p| i32::try_from(p).ok());
    Some(Record {
        time,
        event,
        access: Access::Exec,
        verdict,
        mode: if mode.is_empty() { "monitor".into() } else { mode.to_owned() },
        policy: None,
        reason,
        file: FileRecord {
            path,
            sha256,
            kind: "executable".into(),
            signer,
            // Santa reports a signing ID only for a signature macOS verified.
            signing_id: e
                .signing_id
                .as_deref()
                .filter(|id| id.len() <= 256 && portcullis_policy_file::signing_id_form(id))
                .map(str::to_owned),
            ..FileRecord::default()
        },
        process: ProcessRecord {
            pid: pid(&e.pid).unwrap_or(0),
            exe: None,
            uid: None,
            user: e.executing_user.as_deref().map(|u| bounded(u, 256)),
            ancestors: pid(&e.ppid)
                .map(|p| ProcessInfo {
                    pid: p,
                    exe: e.parent_name.as_deref().map(|n| bounded(n, 1024)),
                    uid: None,
                    ppid: None,
                })
                .into_iter()
                .collect(),
        },
        ringfence: None,
        bypass: None,
    })
}
