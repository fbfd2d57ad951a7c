//! Approval requests: the queue approvers work through, and their decisions. An approval
//! makes an application and a permit policy from the denied event (by hash, path or
//! publisher, literally, as "create a policy from this event" does) at the scope and with
//! the expiry the approver chose, through the one change path; the agent enforces it with
//! its next bundle.

use super::events::rule_from_event;
use super::{AppError, AppState, Caller, change, change_model};
use portcullis_policy_file::document::{ApplicationDoc, Document, PolicyDoc};
use portcullis_store::{ApprovalRequestRow, EventRow};
use serde::{Deserialize, Serialize};

/// The organization's requests, newest first (`status`: pending, approved, rejected).
pub(crate) async fn list(
    state: &AppState,
    caller: &Caller,
    status: Option<&str>,
) -> Result<Vec<ApprovalRequestRow>, AppError> {
    if let Some(s) = status
        && !matches!(s, "pending" | "approved" | "rejected")
    {
        return Err(AppError::BadRequest("status is pending, approved or rejected".into()));
    }
    Ok(state.store.approval_requests(caller.user.org_id, status).await?)
}

/// An approver's decision.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Decide {
    /// `permit-hash`, `permit-path`, `permit-publisher` or `reject`.
    pub(crate) decision: String,
    /// Where the permit applies: `organization`, `group:PATH` or `computer:NAME` (default:
    /// the requesting computer).
    #[serde(default)]
    pub(crate) scope: Option<String>,
    /// When the permit ends (RFC 3339 or YYYY-MM-DD); none: it stays.
    #[serde(default)]
    pub(crate) expires: Option<String>,
    /// A note for the requester.
    #[serde(default)]
    pub(crate) note: Option<String>,
}

/// What a decision did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Decided {
    /// `approved` or `rejected`.
    pub(crate) status: &'static str,
    /// The policy made, when approved.
    pub(crate) policy: Option<String>,
    /// What it permits.
    pub(crate) matches: Option<String>,
}

fn opt(s: &Option<String>) -> Option<String> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned)
}

/// Decide a pending request.
pub(crate) async fn decide(state: &AppState, caller: &Caller, id: i64, d: &Decide) -> Result<Decided, AppError> {
    caller.require_change()?;
    let r = state.store.approval_request(caller.user.org_id, id).await?;
    if r.status != "pending" {
        return Err(AppError::Conflict(format!("request {id} was {} already", r.status)));
    }
    let note = opt(&d.note).map(|n| portcullis_protocol::bounded_text(&n, 1000));
    if d.decision == "reject" {
        state.store.decide_request(change(caller), id, "rejected", note.as_deref(), None).await?;
        return Ok(Decided { status: "rejected", policy: None, matches: None });
    }
    if !d.decision.starts_with("permit-") {
        return Err(AppError::BadRequest(format!(
            "unknown decision {:?}; use permit-hash, permit-path, permit-publisher or reject",
            portcullis_protocol::bounded_text(&d.decision, 40)
        )));
    }
    let event = EventRow { id: 0, computer: r.computer.clone(), fields: r.event.clone() };
    let made = rule_from_event(&event, &d.decision)?;
    let file_name = r.event.file_path.rsplit('/').next().unwrap_or(&r.event.file_path).to_owned();
    let file_name = portcullis_protocol::bounded_text(&file_name, 80);
    let scope = opt(&d.scope).unwrap_or_else(|| format!("computer:{}", r.computer));
    let app = ApplicationDoc {
        name: format!("{file_name} ({}, request {id})", made.what),
        description: Some(format!(
            "Requested by {} on {}: {}. Permits {}",
            r.requester.as_deref().unwrap_or("a user"),
            r.computer,
            r.reason,
            made.matches
        )),
        rules: vec![made.rule],
        except: vec![],
    };
    let policy = PolicyDoc {
        name: format!("Approved {file_name} by {} (request {id})", made.what),
        description: note.clone(),
        applications: vec![app.name.clone()],
        action: "permit".into(),
        scope: Some(scope),
        expires: opt(&d.expires),
        position: 0,
        ..Default::default()
    };
    let edit = |doc: &mut Document| {
        doc.applications.push(app.clone());
        doc.policies.push(PolicyDoc { position: i64::from(u32::MAX), ..policy.clone() });
    };
    change_model(state, caller, edit, async || {
        state
            .store
            .create_policy_with_applications(change(caller), "approve request", std::slice::from_ref(&app), &policy)
            .await
    })
    .await?;
    state.store.decide_request(change(caller), id, "approved", note.as_deref(), Some(&policy.name)).await?;
    Ok(Decided { status: "approved", policy: Some(policy.name), matches: Some(made.matches) })
}
