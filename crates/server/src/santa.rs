//! A Santa sync server (macOS fleets): the four stages of Santa's open sync protocol (v1)
//! at `POST /santa/{preflight,eventupload,ruledownload,postflight}/{machine_id}`.
//!
//! - **Who**: Santa keeps no credential a server could give it, so a machine proves itself
//!   with its group's enrollment token, sent on every request in the `X-Portcullis-Token`
//!   header (Santa's `SyncExtraHeaders`). Its credential is derived from that token and its
//!   machine id; the first preflight enrolls it into the token's group as a macOS computer
//!   named after its host (a name that is taken waits for an administrator, as for agents).
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
    format!("pcs_{}", digest.iter().map(|b| format!("{b:02x}")).collect::<String>())
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
    let bytes = match body_of(&headers, &body) {
        Ok(b) => b,
        Err(r) => return *r,
    };
    let credential = credential(&token, &machine_id);
    let known = match state.store.agent(&credential).await {
        Ok(k) => k,
        Err(e) => return *store_error(e),
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
    let host = serde_json::json!({
        "hostname": req.hostname, "machine_id": machine_id, "serial": req.serial_num, "os": "macos",
        "os_version": req.os_version, "os_build": req.os_build, "model": req.model_identifier,
        "primary_user": req.primary_user, "client_mode": req.client_mode,
    })
    .to_string();
    let version = req.santa_version.clone().unwrap_or_default();
    let agent = match known {
        Some(a) => a,
        None => {
            // The computer's name: its host name, else its machine id.
            let name =
                req.hostname.as_deref().map(str::trim).filter(|h| !h.is_empty()).unwrap_or(machine_id).to_owned();
            let enrolled = state
                .store
                .enroll(&Enrollment {
                    token,
                    hostname: &name,
                    os: "macos",
                    host_json: &host,
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
                Ok(_) => {
                    return Err(refuse(StatusCode::FORBIDDEN, portcullis_protocol::ENROLLMENT_PENDING));
                }
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
    let (current, sync, _) = rules_of(state, &agent).await?;
    let computer = state.store.computer(agent.org_id, agent.computer_id).await.map_err(store_error)?;
    // A clean sync when asked for, or when the model changed since the last complete rule
    // download: the client then replaces every rule, so a removed one goes too.
    let clean = req.request_clean_sync == Some(true) || computer.bundle_version != current;
    let seen = Seen {
        computer_id: agent.computer_id,
        at_ms: now_ms(),
        bundle_version: computer.bundle_version,
        host: Some((host, format!("santa {version}"))),
        bundle_error: None,
    };
    state.store.agents_seen(&[seen]).await.map_err(store_error)?;
    Ok(reply(&PreflightResponse {
        client_mode: sync.client_mode,
        sync_type: if clean { "CLEAN" } else { "NORMAL" },
        batch_size: BATCH_SIZE,
        full_sync_interval: FULL_SYNC_INTERVAL,
    }))
}

async fn ruledownload(state: &AppState, agent: &AgentIdentity, bytes: &[u8]) -> Result<Response, Refused> {
    let req: RuleDownloadRequest = parse(bytes)?;
    let (version, mut sync, _) = rules_of(state, agent).await?;
    // The cursor is "VERSION:OFFSET"; one of another version (the model changed between
    // pages) starts over: a rule sent twice replaces itself, and the next preflight finds
    // the download incomplete and asks for a clean sync.
    let offset = req
        .cursor
        .as_deref()
        .and_then(|c| c.split_once(':'))
        .filter(|(v, _)| v.parse::<i64>().ok() == Some(version))
        .and_then(|(_, o)| o.parse::<usize>().ok())
        .unwrap_or(0)
        .min(sync.rules.len());
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
    if last {
        // The whole set went out: what the next preflight compares with.
        let seen = Seen {
            computer_id: agent.computer_id,
            at_ms: now_ms(),
            bundle_version: version,
            host: None,
            bundle_error: None,
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
            cert_sha256: leaf.sha256.as_deref().unwrap_or_default().to_ascii_lowercase(),
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
        file: FileRecord { path, sha256, kind: "executable".into(), signer, ..FileRecord::default() },
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
