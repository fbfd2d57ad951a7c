//! `/api/agent/*`, the agent sync API: enrollment, the long-polled signed bundle, event
//! batches, package reports. What an agent sends is checked and bounded here, where it enters.

use crate::AppState;
use crate::error::{AppError, AppJson, ErrorBody};
use crate::metrics::EventOutcome;
use axum::Router;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use portcullis_events::Record;
use portcullis_protocol::{
    BundlePayload, BypassKey, EnrollRequest, Enrolled, EventBatch, EventBatchReply, PackageReport, PackageReportReply,
    PolicyHit, PollRequest, RequestBatch, RequestStatus, RequestStatuses, SIGNATURE_HEADER, event_key, paths,
};
use portcullis_protocol::{bounded_text, limits};
use portcullis_store::{
    AgentIdentity, Enrolled as StoreEnrolled, Enrollment, EventFields, NewEvent, PackageRow, now_ms,
};
use std::time::Duration;

/// The longest a poll is held before "nothing new" (204).
pub const MAX_WAIT: Duration = Duration::from_secs(30);
/// Events per batch, at most.
pub const MAX_BATCH: usize = 1000;
/// Policy hit entries per batch, at most (an agent reports one per policy that matched).
pub const MAX_HITS: usize = 1000;
/// The longest kept of each event field (paths, reasons, names): longer values are cut.
pub const MAX_EVENT_FIELD: usize = 4096;
/// Event times more than this far in the future are taken as the time they arrived.
pub const MAX_CLOCK_SKEW_MS: i64 = 24 * 60 * 60 * 1000;
/// The most lost events one poll may report (more is counted as this many).
pub const MAX_EVENTS_LOST: u64 = 1 << 32;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route(paths::ENROLL, post(enroll))
        .route(paths::POLL, post(poll))
        .route(paths::EVENTS, post(events))
        .route(paths::BYPASS_KEY, post(bypass_key))
        .route(paths::REQUESTS, post(requests))
        .route(paths::CAPTURES, post(captures))
        // A host's whole package list is larger than any other request.
        .route(
            paths::PACKAGES,
            post(packages).layer(axum::extract::DefaultBodyLimit::max(limits::PACKAGE_REPORT_BYTES)),
        )
}

/// An agent authenticated by its credential.
pub struct AgentCaller(pub AgentIdentity);

impl FromRequestParts<AppState> for AgentCaller {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<AgentCaller, AppError> {
        let credential = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or(AppError::Unauthorized)?;
        let credential = credential.trim();
        // A Santa Mac's credential is derived from its group's token: it speaks Santa's
        // protocol only, never the agents' API.
        if credential.starts_with(crate::santa::CREDENTIAL_PREFIX) {
            return Err(AppError::Unauthorized);
        }
        match state.store.agent(credential).await? {
            Some(agent) => Ok(AgentCaller(agent)),
            None if state.store.is_pending(credential).await? => Err(AppError::Pending),
            None => Err(AppError::Unauthorized),
        }
    }
}

#[utoipa::path(post, path = "/api/agent/enroll", tag = "agents", request_body = portcullis_protocol::EnrollRequest, responses((status = 201, body = portcullis_protocol::Enrolled), (status = 202, description = "the name is taken: held for an administrator", body = portcullis_protocol::Enrolled), (status = 400, body = ErrorBody), (status = 401, description = "unknown, revoked, expired or used-up enrollment token", body = ErrorBody), (status = 409, body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, description = "host name or operating system refused", body = ErrorBody), (status = 429, description = "too many pending enrollments", body = ErrorBody)), security(()))]
pub(crate) async fn enroll(
    State(state): State<AppState>,
    AppJson(req): AppJson<EnrollRequest>,
) -> Result<Response, AppError> {
    let host = req.host.normalized().map_err(|e| AppError::Invalid(vec![e.to_string()]))?;
    let host_json = serde_json::to_string(&host).unwrap_or_default();
    let result = state
        .store
        .enroll(&Enrollment {
            token: &req.token,
            hostname: &host.hostname,
            os: &host.os,
            host_json: &host_json,
            agent_version: &host.agent_version,
            current_credential: req.current_credential.as_deref(),
            credential: None,
        })
        .await;
    let (org_id, body, status) = match result {
        Ok(StoreEnrolled::Active { identity, credential, .. }) => {
            state.hub.enrolled(identity.org_id, identity.computer_id).await;
            let body = Enrolled {
                organization: identity.org_name,
                computer: identity.name,
                credential,
                bundle_key: String::new(),
                pending: false,
            };
            (identity.org_id, body, StatusCode::CREATED)
        }
        Ok(StoreEnrolled::Pending { org_id, org_name, name, credential, .. }) => {
            let body = Enrolled {
                organization: org_name,
                computer: name,
                credential,
                bundle_key: String::new(),
                pending: true,
            };
            (org_id, body, StatusCode::ACCEPTED)
        }
        // An unknown, revoked, expired or used-up token is a failed authentication.
        Err(portcullis_store::StoreError::NotFound(_)) => return Err(AppError::Unauthorized),
        Err(e) => return Err(e.into()),
    };
    // The key the agent's bundles are signed with: the hub's (the last bundle that loads),
    // which a rotation whose model fails to load has not replaced yet.
    let bundle_key = match state.hub.compiled(&state.store, org_id).await {
        Ok(compiled) => compiled.key.public(),
        Err(_) => state.store.bundle_key(org_id).await?.public(),
    }
    .to_hex();
    Ok((status, AppJson(Enrolled { bundle_key, ..body })).into_response())
}

#[utoipa::path(post, path = "/api/agent/poll", tag = "agents", request_body = portcullis_protocol::PollRequest, responses((status = 200, description = "a newer signed bundle", body = portcullis_protocol::BundlePayload, headers(("x-portcullis-signature" = String, description = "ed25519 signature of the body by the organization's bundle key, hex"))), (status = 204, description = "nothing newer before the wait ended"), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, description = "enrollment pending", body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, body = ErrorBody), (status = 429, description = "too many host reports", body = ErrorBody)), security(("agent" = [])))]
pub(crate) async fn poll(
    State(state): State<AppState>,
    AgentCaller(agent): AgentCaller,
    AppJson(req): AppJson<PollRequest>,
) -> Result<Response, AppError> {
    // Host facts that do not pass the checks are not kept; the poll still goes on.
    let host = match &req.host {
        Some(h) => {
            state.hub.quota(agent.computer_id, crate::hub::Quota::HostReports, 1)?;
            h.normalized().ok().map(|h| (serde_json::to_string(&h).unwrap_or_default(), h.agent_version))
        }
        None => None,
    };
    state.hub.seen(portcullis_store::Seen {
        computer_id: agent.computer_id,
        at_ms: now_ms(),
        bundle_version: req.enforcing.unwrap_or(req.after).clamp(0, req.after.max(0)),
        host,
        bundle_error: req.bundle_error.as_deref().map(|e| bounded_text(e, limits::BUNDLE_ERROR)),
        // Bounded: a hostile agent cannot overflow the total (it can only claim losses).
        events_lost: req.events_lost.min(MAX_EVENTS_LOST),
    });
    let wait = req.wait_s.map_or(MAX_WAIT, |s| Duration::from_secs(s).min(MAX_WAIT));
    let deadline = tokio::time::Instant::now() + wait;
    let mut ticks = state.hub.subscribe();
    loop {
        // Subscribe before reading the version, so a change in between is not missed.
        ticks.borrow_and_update();
        if state.hub.version(&state.store, agent.org_id).await? > req.after {
            let compiled = state.hub.compiled(&state.store, agent.org_id).await?;
            if compiled.version > req.after {
                let sent = bundle(&state, &agent, &compiled).await;
                // A change reaching an agent that enforced an older version (not a first
                // fetch, which has nothing to catch up with).
                if sent.is_ok()
                    && req.after > 0
                    && let Some(lag) = state.hub.learned_ago(agent.org_id, compiled.version)
                {
                    state.metrics.propagated(lag);
                }
                return sent;
            }
        }
        match tokio::time::timeout_at(deadline, ticks.changed()).await {
            Ok(Ok(())) => continue,
            _ => return Ok(StatusCode::NO_CONTENT.into_response()),
        }
    }
}

async fn bundle(
    state: &AppState,
    agent: &AgentIdentity,
    compiled: &crate::hub::Compiled,
) -> Result<Response, AppError> {
    let known = compiled.computers.lock().unwrap_or_else(|p| p.into_inner()).get(&agent.computer_id).cloned();
    let computer = match known {
        Some(c) => c,
        None => state.store.computer(agent.org_id, agent.computer_id).await?.doc,
    };
    // The document was parsed once when it was compiled; each bundle copies it.
    let payload = BundlePayload {
        organization: compiled.organization.clone(),
        version: compiled.version,
        issued_ms: now_ms(),
        computer,
        document: compiled.document.clone(),
        key_chain: compiled.key_chain.to_vec(),
    };
    let signed = compiled.key.sign(&payload);
    let signature = signed.signature_hex();
    let mut response = (StatusCode::OK, signed.payload).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Ok(v) = HeaderValue::from_str(&signature) {
        headers.insert(SIGNATURE_HEADER, v);
    }
    Ok(response)
}

/// What is stored of a record: every field bounded where it enters, the time clamped.
/// A time that is not one is refused (with the text given).
pub(crate) fn event_fields(r: Record, text: &str, received: i64) -> Result<EventFields, (String, jiff::Error)> {
    let at_ms = match r.time.parse::<jiff::Timestamp>() {
        Ok(t) => t.as_millisecond(),
        Err(e) => return Err((r.time, e)),
    };
    // A clock far ahead would sort the event above every real one for ever.
    let at_ms = if at_ms > received + MAX_CLOCK_SKEW_MS { received } else { at_ms.max(0) };
    // PostgreSQL text cannot hold NUL, which a Linux path never has but a forged record
    // might; every field is bounded.
    let clean = |s: String| {
        let s = if s.contains('\0') { s.replace('\0', "\u{fffd}") } else { s };
        if s.len() > MAX_EVENT_FIELD { bounded_text(&s, MAX_EVENT_FIELD) } else { s }
    };
    Ok(EventFields {
        at_ms,
        event: r.event.name().to_owned(),
        verdict: r.verdict.name().to_owned(),
        mode: clean(r.mode),
        policy: r.policy.map(clean),
        reason: clean(r.reason),
        file_path: clean(r.file.path),
        file_sha256: clean(r.file.sha256),
        file_kind: clean(r.file.kind),
        process_exe: r.process.exe.map(clean),
        user_name: r.process.user.map(clean),
        // JSON text escapes NUL as \u0000, so the record itself is safe.
        record_json: text.to_owned(),
    })
}

#[utoipa::path(post, path = "/api/agent/events", tag = "agents", operation_id = "agent_events", request_body = portcullis_protocol::EventBatch, responses((status = 200, body = portcullis_protocol::EventBatchReply), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, description = "enrollment pending", body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, body = ErrorBody), (status = 429, description = "over the agent's event quota", body = ErrorBody)), security(("agent" = [])))]
pub(crate) async fn events(
    State(state): State<AppState>,
    AgentCaller(agent): AgentCaller,
    AppJson(batch): AppJson<EventBatch>,
) -> Result<AppJson<EventBatchReply>, AppError> {
    if batch.events.len() > MAX_BATCH {
        return Err(AppError::BadRequest(format!("at most {MAX_BATCH} events per batch")));
    }
    if batch.hits.len() > MAX_HITS {
        return Err(AppError::BadRequest(format!("at most {MAX_HITS} policy hit entries per batch")));
    }
    if let Err(e) = state.hub.quota(agent.computer_id, crate::hub::Quota::Events, batch.events.len() as u64) {
        state.metrics.events(EventOutcome::OverQuota, batch.events.len() as u64);
        return Err(e);
    }
    let received = now_ms();
    let mut rows = Vec::with_capacity(batch.events.len());
    let mut refused = Vec::new();
    for (i, raw) in batch.events.iter().enumerate() {
        let text = raw.get();
        let fields = match serde_json::from_str::<Record>(text) {
            Ok(record) => event_fields(record, text, received)
                .map_err(|(time, e)| format!("event {i}: time {:?}: {e}", bounded_text(&time, 80))),
            Err(e) => Err(format!("event {i} is not an agent event record: {e}")),
        };
        match fields {
            Ok(fields) => rows.push(NewEvent { key: event_key(text), fields }),
            // Refused alone: the agent would otherwise send the same batch for ever.
            Err(why) => refused.push(why),
        }
    }
    if let Some(first) = refused.first() {
        tracing::warn!(
            "computer {}: {} event(s) refused, first: {}",
            agent.computer_id,
            refused.len(),
            bounded_text(first, 300)
        );
    }
    let (stored, duplicates) = state.store.insert_events(agent.org_id, agent.computer_id, &rows).await?;
    state.metrics.events(EventOutcome::Stored, stored);
    state.metrics.events(EventOutcome::Duplicate, duplicates);
    state.metrics.events(EventOutcome::Refused, refused.len() as u64);
    if !batch.hits.is_empty() {
        let hits: Vec<PolicyHit> =
            batch.hits.into_iter().map(|h| PolicyHit { policy: bounded_text(&h.policy, 200), ..h }).collect();
        state.store.record_hits(agent.org_id, &hits).await?;
    }
    Ok(AppJson(EventBatchReply { stored, duplicates, refused: refused.len() as u64 }))
}

#[utoipa::path(post, path = "/api/agent/packages", tag = "agents", operation_id = "agent_packages", request_body = portcullis_protocol::PackageReport, responses((status = 200, body = portcullis_protocol::PackageReportReply), (status = 400, description = "more packages than a report may hold", body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, description = "enrollment pending", body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, body = ErrorBody), (status = 429, description = "over the agent's package report quota", body = ErrorBody)), security(("agent" = [])))]
pub(crate) async fn packages(
    State(state): State<AppState>,
    AgentCaller(agent): AgentCaller,
    AppJson(report): AppJson<PackageReport>,
) -> Result<AppJson<PackageReportReply>, AppError> {
    if report.packages.len() > limits::PACKAGES {
        return Err(AppError::BadRequest(format!("at most {} packages per report", limits::PACKAGES)));
    }
    state.hub.quota(agent.computer_id, crate::hub::Quota::PackageReports, 1)?;
    let mut seen = std::collections::HashSet::new();
    let mut rows = Vec::with_capacity(report.packages.len());
    let mut refused: Vec<String> = Vec::new();
    for p in &report.packages {
        match p.normalized() {
            // The first of a repeated (name, architecture) counts.
            Ok(p) if seen.insert((p.name.clone(), p.arch.clone())) => {
                rows.push(PackageRow { name: p.name, arch: p.arch, version: p.version })
            }
            Ok(p) => refused.push(format!("{} ({}) twice", p.name, p.arch)),
            // One bad entry never holds back the rest of the host's packages.
            Err(e) => refused.push(e.to_string()),
        }
    }
    if let Some(first) = refused.first() {
        tracing::warn!(
            "computer {}: {} package entr(ies) refused, first: {}",
            agent.computer_id,
            refused.len(),
            bounded_text(first, 300)
        );
    }
    state.store.set_computer_packages(agent.computer_id, &rows, now_ms()).await?;
    Ok(AppJson(PackageReportReply { stored: rows.len() as u64, refused: refused.len() as u64 }))
}

#[utoipa::path(post, path = "/api/agent/bypass-key", tag = "agents", request_body = portcullis_protocol::BypassKey, responses((status = 204, description = "kept (sealed); codes issued from now on use it"), (status = 400, description = "not 64 hex digits", body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, description = "enrollment pending", body = ErrorBody), (status = 429, body = ErrorBody)), security(("agent" = [])))]
pub(crate) async fn bypass_key(
    State(state): State<AppState>,
    AgentCaller(agent): AgentCaller,
    AppJson(key): AppJson<BypassKey>,
) -> Result<StatusCode, AppError> {
    let bytes = key.bytes().ok_or_else(|| AppError::BadRequest("a bypass key is 64 hex digits".into()))?;
    if bytes == [0; 32] {
        return Err(AppError::BadRequest("a bypass key of zeros is refused: make a random one".into()));
    }
    // Counted with host reports: an agent sends its key once per start.
    state.hub.quota(agent.computer_id, crate::hub::Quota::HostReports, 1)?;
    state.store.set_bypass_key(agent.computer_id, &bytes).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/agent/requests", tag = "agents", request_body = portcullis_protocol::RequestBatch, responses((status = 200, description = "how the new requests and those asked about stand", body = portcullis_protocol::RequestStatuses), (status = 400, description = "too many, or a request that is not one (the whole batch is refused: the agent's user is told)", body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, description = "enrollment pending", body = ErrorBody), (status = 413, body = ErrorBody), (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)), security(("agent" = [])))]
pub(crate) async fn requests(
    State(state): State<AppState>,
    AgentCaller(agent): AgentCaller,
    AppJson(batch): AppJson<RequestBatch>,
) -> Result<AppJson<RequestStatuses>, AppError> {
    use portcullis_protocol::valid_request_id;
    if batch.requests.len() > limits::REQUESTS || batch.ids.len() > limits::REQUEST_IDS {
        return Err(AppError::BadRequest(format!(
            "at most {} new requests and {} ids per batch",
            limits::REQUESTS,
            limits::REQUEST_IDS
        )));
    }
    if let Some(bad) = batch.ids.iter().chain(batch.requests.iter().map(|r| &r.id)).find(|i| !valid_request_id(i)) {
        return Err(AppError::BadRequest(format!(
            "request id {:?} is refused: 16 to 64 lowercase hex digits",
            bounded_text(bad, 80)
        )));
    }
    // Counted with host reports: a user asks now and then; the agent asks about outcomes
    // every few seconds at most.
    state.hub.quota(agent.computer_id, crate::hub::Quota::HostReports, 1)?;
    let received = now_ms();
    let mut rows = Vec::new();
    for r in &batch.requests {
        let text = r.record.get();
        let record = serde_json::from_str::<Record>(text)
            .map_err(|e| AppError::BadRequest(format!("request {}: not an agent event record: {e}", r.id)))?;
        if !matches!(record.event, portcullis_events::EventKind::Deny | portcullis_events::EventKind::WouldDeny) {
            return Err(AppError::BadRequest(format!("request {}: only a denied program can be requested", r.id)));
        }
        let event = event_fields(record, text, received).map_err(|(time, e)| {
            AppError::BadRequest(format!("request {}: time {:?}: {e}", r.id, bounded_text(&time, 80)))
        })?;
        let reason = bounded_text(&r.reason, limits::REQUEST_REASON);
        if reason.is_empty() {
            return Err(AppError::BadRequest(format!("request {}: say why the program is needed", r.id)));
        }
        rows.push(portcullis_store::NewApprovalRequest {
            key: r.id.clone(),
            reason,
            requester: r.user.as_deref().map(|u| bounded_text(u, 64)).filter(|u| !u.is_empty()),
            event,
        });
    }
    if !rows.is_empty() {
        state.store.insert_requests(agent.org_id, agent.computer_id, &rows).await?;
    }
    let keys: Vec<String> = batch.ids.iter().cloned().chain(batch.requests.iter().map(|r| r.id.clone())).collect();
    let statuses = state
        .store
        .request_states(agent.computer_id, &keys)
        .await?
        .into_iter()
        .map(|(id, status, note, policy, decided_ms)| RequestStatus { id, status, note, policy, decided_ms })
        .collect();
    Ok(AppJson(RequestStatuses { statuses }))
}

#[utoipa::path(post, path = "/api/agent/captures", tag = "agents", request_body = portcullis_protocol::CaptureBatch, responses((status = 200, description = "added to the Installation window's application (entries that are not captures, or not for that application, are left out and logged)", body = portcullis_protocol::CaptureReply), (status = 400, description = "too many in one batch", body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, description = "enrollment pending", body = ErrorBody), (status = 409, description = "the computer is not in an Installation window, or the application is full", body = ErrorBody), (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)), security(("agent" = [])))]
pub(crate) async fn captures(
    State(state): State<AppState>,
    AgentCaller(agent): AgentCaller,
    AppJson(batch): AppJson<portcullis_protocol::CaptureBatch>,
) -> Result<AppJson<portcullis_protocol::CaptureReply>, AppError> {
    // Counted with host reports: an agent sends captures once a second at most, and only
    // during a window.
    state.hub.quota(agent.computer_id, crate::hub::Quota::HostReports, 1)?;
    Ok(AppJson(crate::ops::captures::capture(&state, &agent, &batch).await?))
}
