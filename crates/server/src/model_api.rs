//! The model in the REST API: settings, groups, computers, applications (built-in ones
//! read-only), ringfence profiles, the ordered policy list, blocklist packages with paste → extract → preview →
//! bulk add, the "what would happen" preview, events and unused policies.
//!
//! Every change is checked first: the organization's document with the change applied must
//! load exactly as an agent would load it, or the request is refused with 422 and the
//! problems. So the stored model always compiles into a bundle.

use crate::AppState;
use crate::auth::Caller;
use crate::error::{AppError, AppJson, AppPath, AppQuery, ErrorBody};
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use portcullis_policy::{Engine, FileFacts, FileKind, Os, ProcessFacts, Timestamp};
use portcullis_policy_file::Format;
use portcullis_policy_file::document::{
    ApplicationDoc, ComputerDoc, Document, GroupDoc, OrganizationDoc, PolicyDoc, RingfenceDoc, RuleDoc, SignerDoc,
};
use portcullis_store::{Change, EventFilter, EventRow, Move, now_ms};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/settings", get(settings).put(set_settings))
        .route("/api/groups", get(groups).post(create_group))
        .route("/api/groups/{id}", put(update_group).delete(delete_group))
        .route("/api/computers", get(computers))
        .route("/api/computers/{id}", put(update_computer).delete(delete_computer))
        .route("/api/applications", get(applications).post(create_application))
        .route("/api/applications/{id}", put(update_application).delete(delete_application))
        .route("/api/ringfences", get(ringfences).post(create_ringfence))
        .route("/api/ringfences/{id}", get(ringfence).put(update_ringfence).delete(delete_ringfence))
        .route("/api/policies", get(policies).post(create_policy))
        .route("/api/policies/{id}", put(update_policy).delete(delete_policy))
        .route("/api/policies/{id}/move", post(move_policy))
        .route("/api/policies/unused", get(unused_policies))
        .route("/api/policies/remove", post(remove_policies))
        .route("/api/blocklists", get(blocklists).post(create_blocklist))
        .route("/api/blocklists/extract", post(extract))
        .route("/api/blocklists/{id}", get(blocklist).delete(delete_blocklist))
        .route("/api/blocklists/{id}/hashes", post(add_hashes))
        .route("/api/blocklists/{id}/rules", put(set_blocklist_rules))
        .route("/api/blocklists/{id}/approvals", post(approve).delete(revoke))
        .route("/api/preview", post(preview))
        .route("/api/events", get(events))
        .route("/api/events/{id}", get(event))
        .route("/api/events/{id}/policy", post(policy_from_event))
        .route("/api/document", get(document))
}

fn change(caller: &Caller) -> Change<'_> {
    Change { org_id: caller.user.org_id, actor: &caller.actor }
}

/// Whether a whole model (the organization's document with every computer) can be
/// delivered: it loads exactly as an agent loads a bundle, and so does every distinct
/// computer's bundle — one for each computer that a `computer:` scope names, and one for
/// the rest (their bundles differ only in the computer itself, which the whole model
/// already checked). The one definition used before a change is saved and when bundles
/// are compiled.
pub(crate) fn check_document(whole: &Document) -> Result<portcullis_policy_file::Loaded, Vec<String>> {
    let problems = |e: portcullis_policy_file::LoadError| -> Vec<String> {
        e.diagnostics.into_iter().map(|d| d.message).collect()
    };
    let loaded = portcullis_policy_file::load(&whole.to_json(), Format::Json).map_err(problems)?;
    let named = |scope: &str| {
        scope.parse::<portcullis_policy::Scope>().ok().and_then(|s| s.computer().map(str::to_ascii_lowercase))
    };
    let mut scoped: std::collections::BTreeSet<String> =
        whole.policies.iter().filter_map(|p| p.scope.as_deref().and_then(named)).collect();
    for b in &whole.blocklists {
        scoped.extend(b.approved.iter().chain(&b.approved_monitor).filter_map(|s| named(s)));
    }
    let mut representatives: Vec<&ComputerDoc> =
        whole.computers.iter().filter(|c| scoped.contains(&c.name.to_ascii_lowercase())).collect();
    representatives.extend(whole.computers.iter().find(|c| !scoped.contains(&c.name.to_ascii_lowercase())));
    let org_doc = Document { computers: Vec::new(), ..whole.clone() };
    let org_json = org_doc.to_json();
    for c in representatives {
        let payload = portcullis_protocol::BundlePayload::new("", 0, 0, c.clone(), &org_json)
            .and_then(|p| p.policy_json())
            .map_err(|e| vec![format!("computer {:?}: {e}", c.name)])?;
        // Exactly what the agent does with it: load and compile.
        portcullis_policy_file::compile(&payload, Format::Json).map_err(|e| {
            problems(e)
                .into_iter()
                .map(|m| format!("the bundle of computer {:?} would not load: {m}", c.name))
                .collect::<Vec<_>>()
        })?;
    }
    Ok(loaded)
}

async fn whole_model(state: &AppState, org_id: i64) -> Result<(i64, Document), AppError> {
    let (version, mut doc) = state.store.document(org_id).await?;
    doc.computers = state.store.computers(org_id).await?.into_iter().map(|c| c.doc).collect();
    Ok((version, doc))
}

/// The organization's whole policy (with every computer) at its current version, edited by
/// `edit`, checked by [`check_document`]; what does not load is refused (422).
async fn load_model(
    state: &AppState,
    org_id: i64,
    edit: impl FnOnce(&mut Document),
) -> Result<(i64, portcullis_policy_file::Loaded), AppError> {
    let (version, mut doc) = whole_model(state, org_id).await?;
    edit(&mut doc);
    let loaded = check_document(&doc).map_err(AppError::Invalid)?;
    Ok((version, loaded))
}

/// Refuse unless the organization's document, edited by `edit`, can be delivered
/// ([`check_document`]). If the stored model itself does not load (data from before the
/// checks at the edge), a change that only removes problems is let through, so that
/// deleting the bad row is always possible: one bad row never wedges an organization.
pub(crate) async fn check_model(
    state: &AppState,
    org_id: i64,
    edit: impl FnOnce(&mut Document),
) -> Result<(), AppError> {
    let (_, before) = whole_model(state, org_id).await?;
    let mut after = before.clone();
    edit(&mut after);
    let Err(after_problems) = check_document(&after) else { return Ok(()) };
    if let Err(before_problems) = check_document(&before)
        && after_problems.len() < before_problems.len()
        && after_problems.iter().all(|p| before_problems.contains(p))
    {
        tracing::warn!(
            "organization {org_id}: a change that repairs the model is let through: {}",
            after_problems.join("; ")
        );
        return Ok(());
    }
    Err(AppError::Invalid(after_problems))
}

/// After a change: wake the organization's agents.
pub(crate) async fn announce(state: &AppState, caller: &Caller) -> Result<(), AppError> {
    Ok(state.sync.changed(&state.store, caller.user.org_id).await?)
}

// ----- settings, groups, computers ---------------------------------------------------------

#[utoipa::path(get, path = "/api/settings", tag = "model", responses((status = 200, body = OrganizationDoc), (status = 401, description = "not logged in", body = ErrorBody), (status = 403, description = "role or CSRF", body = ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn settings(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<AppJson<OrganizationDoc>, AppError> {
    Ok(AppJson(state.store.settings(caller.user.org_id).await?))
}

#[utoipa::path(put, path = "/api/settings", tag = "model", request_body = OrganizationDoc, responses((status = 204), (status = 401, description = "not logged in", body = ErrorBody), (status = 403, description = "role or CSRF", body = ErrorBody), (status = 400, description = "malformed", body = ErrorBody), (status = 413, description = "body over 1 MiB", body = ErrorBody), (status = 415, description = "not JSON", body = ErrorBody), (status = 422, description = "refused: the policy would not load, or fields unknown", body = ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn set_settings(
    State(state): State<AppState>,
    caller: Caller,
    AppJson(doc): AppJson<OrganizationDoc>,
) -> Result<StatusCode, AppError> {
    caller.require_change()?;
    check_model(&state, caller.user.org_id, |d| {
        let name = d.organization.as_ref().and_then(|o| o.name.clone());
        d.organization = Some(OrganizationDoc { name, ..doc.clone() });
    })
    .await?;
    state.store.set_settings(change(&caller), &doc).await?;
    announce(&state, &caller).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/groups", tag = "model", responses((status = 200, body = Vec<Object>), (status = 401, description = "not logged in", body = ErrorBody), (status = 403, description = "role or CSRF", body = ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn groups(State(state): State<AppState>, caller: Caller) -> Result<AppJson<Value>, AppError> {
    Ok(AppJson(json!(state.store.groups(caller.user.org_id).await?)))
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Created {
    pub(crate) id: i64,
}

fn check_group_path(path: &str) -> Result<String, AppError> {
    let path = path.trim().trim_matches('/').to_owned();
    if path.is_empty() || path.len() > 200 || path.split('/').any(|p| p.trim().is_empty()) {
        return Err(AppError::BadRequest("a group path is 1 to 200 characters, parts separated by /".into()));
    }
    Ok(path)
}

#[utoipa::path(post, path = "/api/groups", tag = "model", request_body = GroupDoc, responses((status = 201, body = Created), (status = 401, description = "not logged in", body = ErrorBody), (status = 403, description = "role or CSRF", body = ErrorBody), (status = 400, description = "malformed", body = ErrorBody), (status = 413, description = "body over 1 MiB", body = ErrorBody), (status = 415, description = "not JSON", body = ErrorBody), (status = 422, description = "refused: the policy would not load, or fields unknown", body = ErrorBody), (status = 409, body = ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn create_group(
    State(state): State<AppState>,
    caller: Caller,
    AppJson(mut doc): AppJson<GroupDoc>,
) -> Result<(StatusCode, AppJson<Created>), AppError> {
    caller.require_change()?;
    doc.path = check_group_path(&doc.path)?;
    check_model(&state, caller.user.org_id, |d| d.groups.push(doc.clone())).await?;
    let id = state.store.create_group(change(&caller), &doc).await?;
    announce(&state, &caller).await?;
    Ok((StatusCode::CREATED, AppJson(Created { id })))
}

#[utoipa::path(put, path = "/api/groups/{id}", tag = "model", params(("id" = i64, Path, description = "id")), request_body = GroupDoc, responses((status = 204), (status = 401, description = "not logged in", body = ErrorBody), (status = 403, description = "role or CSRF", body = ErrorBody), (status = 400, description = "malformed", body = ErrorBody), (status = 413, description = "body over 1 MiB", body = ErrorBody), (status = 415, description = "not JSON", body = ErrorBody), (status = 422, description = "refused: the policy would not load, or fields unknown", body = ErrorBody), (status = 404, description = "not found", body = ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn update_group(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(id): AppPath<i64>,
    AppJson(doc): AppJson<GroupDoc>,
) -> Result<StatusCode, AppError> {
    caller.require_change()?;
    let old =
        state.store.groups(caller.user.org_id).await?.into_iter().find(|g| g.id == id).ok_or(AppError::NotFound)?;
    let new = GroupDoc { path: old.doc.path.clone(), ..doc };
    check_model(&state, caller.user.org_id, |d| {
        d.groups.retain(|g| g.path != old.doc.path);
        d.groups.push(new.clone());
    })
    .await?;
    state.store.update_group(change(&caller), id, &new).await?;
    announce(&state, &caller).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(delete, path = "/api/groups/{id}", tag = "model", params(("id" = i64, Path, description = "id")), responses((status = 204), (status = 401, description = "not logged in", body = ErrorBody), (status = 403, description = "role or CSRF", body = ErrorBody), (status = 404, description = "not found", body = ErrorBody), (status = 400, body = ErrorBody), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn delete_group(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(id): AppPath<i64>,
) -> Result<StatusCode, AppError> {
    caller.require_change()?;
    let old =
        state.store.groups(caller.user.org_id).await?.into_iter().find(|g| g.id == id).ok_or(AppError::NotFound)?;
    check_model(&state, caller.user.org_id, |d| d.groups.retain(|g| g.path != old.doc.path)).await?;
    state.store.delete_group(change(&caller), id).await?;
    announce(&state, &caller).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// How long an agent may stay silent and still count as online (a long-poll lasts at most
/// 30 s; two missed polls make it offline).
pub const ONLINE_WITHIN_MS: i64 = 75_000;

#[utoipa::path(get, path = "/api/computers", tag = "model", responses((status = 200, body = Vec<Object>), (status = 401, description = "not logged in", body = ErrorBody), (status = 403, description = "role or CSRF", body = ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn computers(State(state): State<AppState>, caller: Caller) -> Result<AppJson<Value>, AppError> {
    let now = now_ms();
    let rows = state.store.computers(caller.user.org_id).await?;
    Ok(AppJson(Value::Array(
        rows.into_iter()
            .map(|c| {
                let online = c.last_seen_ms.is_some_and(|t| now - t <= ONLINE_WITHIN_MS);
                let host: Option<Value> = c.host_json.as_deref().and_then(|h| serde_json::from_str(h).ok());
                let mut v = json!(c);
                v["online"] = json!(online);
                v["host"] = json!(host);
                if let Some(o) = v.as_object_mut() {
                    o.remove("host_json");
                }
                v
            })
            .collect(),
    )))
}

#[utoipa::path(put, path = "/api/computers/{id}", tag = "model", params(("id" = i64, Path, description = "id")), request_body = ComputerDoc, responses((status = 204), (status = 401, description = "not logged in", body = ErrorBody), (status = 403, description = "role or CSRF", body = ErrorBody), (status = 400, description = "malformed", body = ErrorBody), (status = 413, description = "body over 1 MiB", body = ErrorBody), (status = 415, description = "not JSON", body = ErrorBody), (status = 422, description = "refused: the policy would not load, or fields unknown", body = ErrorBody), (status = 404, description = "not found", body = ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn update_computer(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(id): AppPath<i64>,
    AppJson(doc): AppJson<ComputerDoc>,
) -> Result<StatusCode, AppError> {
    caller.require_change()?;
    let old = state.store.computer(caller.user.org_id, id).await?;
    let new = ComputerDoc { name: old.doc.name.clone(), os: old.doc.os.clone(), ..doc };
    check_model(&state, caller.user.org_id, |d| {
        d.computers.retain(|c| c.name != old.doc.name);
        d.computers.push(new.clone());
    })
    .await?;
    state.store.update_computer(change(&caller), id, &new).await?;
    announce(&state, &caller).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(delete, path = "/api/computers/{id}", tag = "model", params(("id" = i64, Path, description = "id")), responses((status = 204), (status = 401, description = "not logged in", body = ErrorBody), (status = 403, description = "role or CSRF", body = ErrorBody), (status = 404, description = "not found", body = ErrorBody), (status = 400, body = ErrorBody), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn delete_computer(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(id): AppPath<i64>,
) -> Result<StatusCode, AppError> {
    caller.require_change()?;
    let old = state.store.computer(caller.user.org_id, id).await?;
    check_model(&state, caller.user.org_id, |d| d.computers.retain(|c| c.name != old.doc.name)).await?;
    state.store.delete_computer(change(&caller), id).await?;
    announce(&state, &caller).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ----- applications ------------------------------------------------------------------------

#[utoipa::path(get, path = "/api/applications", tag = "model", responses((status = 200, body = Vec<Object>), (status = 401, description = "not logged in", body = ErrorBody), (status = 403, description = "role or CSRF", body = ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn applications(State(state): State<AppState>, caller: Caller) -> Result<AppJson<Value>, AppError> {
    let mut out: Vec<Value> = state
        .store
        .applications(caller.user.org_id)
        .await?
        .into_iter()
        .map(|a| {
            let mut v = json!(a);
            v["builtin"] = json!(false);
            v
        })
        .collect();
    for b in portcullis_catalog::builtin_applications() {
        out.push(json!({
            "name": b.name,
            "description": b.description,
            "builtin": true,
            "rules": b.rules.len(),
            "hashes": b.rules.iter().map(|r| r.hashes.flat.len() + r.hashes.authenticode.len()).sum::<usize>(),
        }));
    }
    Ok(AppJson(Value::Array(out)))
}

fn check_name(name: &str, what: &str) -> Result<String, AppError> {
    let name = name.trim();
    if name.is_empty() || name.len() > 200 {
        return Err(AppError::BadRequest(format!("a {what} needs a name of 1 to 200 characters")));
    }
    Ok(name.to_owned())
}

#[utoipa::path(post, path = "/api/applications", tag = "model", request_body = ApplicationDoc, responses((status = 201, body = Created), (status = 401, description = "not logged in", body = ErrorBody), (status = 403, description = "role or CSRF", body = ErrorBody), (status = 400, description = "malformed", body = ErrorBody), (status = 413, description = "body over 1 MiB", body = ErrorBody), (status = 415, description = "not JSON", body = ErrorBody), (status = 422, description = "refused: the policy would not load, or fields unknown", body = ErrorBody), (status = 409, body = ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn create_application(
    State(state): State<AppState>,
    caller: Caller,
    AppJson(mut doc): AppJson<ApplicationDoc>,
) -> Result<(StatusCode, AppJson<Created>), AppError> {
    caller.require_change()?;
    doc.name = check_name(&doc.name, "application")?;
    if doc.rules.is_empty() {
        return Err(AppError::BadRequest("an application needs at least one rule".into()));
    }
    check_model(&state, caller.user.org_id, |d| d.applications.push(doc.clone())).await?;
    let id = state.store.create_application(change(&caller), &doc).await?;
    announce(&state, &caller).await?;
    Ok((StatusCode::CREATED, AppJson(Created { id })))
}

#[utoipa::path(put, path = "/api/applications/{id}", tag = "model", params(("id" = i64, Path, description = "id")), request_body = ApplicationDoc, responses((status = 204), (status = 401, description = "not logged in", body = ErrorBody), (status = 403, description = "role or CSRF", body = ErrorBody), (status = 400, description = "malformed", body = ErrorBody), (status = 413, description = "body over 1 MiB", body = ErrorBody), (status = 415, description = "not JSON", body = ErrorBody), (status = 422, description = "refused: the policy would not load, or fields unknown", body = ErrorBody), (status = 404, description = "not found", body = ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn update_application(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(id): AppPath<i64>,
    AppJson(doc): AppJson<ApplicationDoc>,
) -> Result<StatusCode, AppError> {
    caller.require_change()?;
    let old = state
        .store
        .applications(caller.user.org_id)
        .await?
        .into_iter()
        .find(|a| a.id == id)
        .ok_or(AppError::NotFound)?;
    let new = ApplicationDoc { name: old.doc.name.clone(), ..doc };
    if new.rules.is_empty() {
        return Err(AppError::BadRequest("an application needs at least one rule".into()));
    }
    check_model(&state, caller.user.org_id, |d| {
        d.applications.retain(|a| a.name != old.doc.name);
        d.applications.push(new.clone());
    })
    .await?;
    state.store.update_application(change(&caller), id, &new).await?;
    announce(&state, &caller).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(delete, path = "/api/applications/{id}", tag = "model", params(("id" = i64, Path, description = "id")), responses((status = 204), (status = 401, description = "not logged in", body = ErrorBody), (status = 403, description = "role or CSRF", body = ErrorBody), (status = 404, description = "not found", body = ErrorBody), (status = 400, body = ErrorBody), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn delete_application(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(id): AppPath<i64>,
) -> Result<StatusCode, AppError> {
    caller.require_change()?;
    state.store.delete_application(change(&caller), id).await?;
    announce(&state, &caller).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ----- ringfences --------------------------------------------------------------------------

#[utoipa::path(get, path = "/api/ringfences", tag = "model", responses((status = 200, body = Vec<Object>), (status = 401, description = "not logged in", body = ErrorBody), (status = 403, description = "role or CSRF", body = ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn ringfences(State(state): State<AppState>, caller: Caller) -> Result<AppJson<Value>, AppError> {
    Ok(AppJson(json!(state.store.ringfences(caller.user.org_id).await?)))
}

#[utoipa::path(get, path = "/api/ringfences/{id}", tag = "model", params(("id" = i64, Path, description = "id")), responses((status = 200, body = Object), (status = 401, description = "not logged in", body = ErrorBody), (status = 403, description = "role or CSRF", body = ErrorBody), (status = 404, description = "not found", body = ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn ringfence(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(id): AppPath<i64>,
) -> Result<AppJson<Value>, AppError> {
    Ok(AppJson(json!(state.store.ringfence(caller.user.org_id, id).await?)))
}

#[utoipa::path(post, path = "/api/ringfences", tag = "model", request_body = RingfenceDoc, responses((status = 201, body = Created), (status = 401, description = "not logged in", body = ErrorBody), (status = 403, description = "role or CSRF", body = ErrorBody), (status = 400, description = "malformed", body = ErrorBody), (status = 413, description = "body over 1 MiB", body = ErrorBody), (status = 415, description = "not JSON", body = ErrorBody), (status = 422, description = "refused: the policy would not load, or fields unknown", body = ErrorBody), (status = 409, body = ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn create_ringfence(
    State(state): State<AppState>,
    caller: Caller,
    AppJson(mut doc): AppJson<RingfenceDoc>,
) -> Result<(StatusCode, AppJson<Created>), AppError> {
    caller.require_change()?;
    doc.name = check_name(&doc.name, "ringfence")?;
    check_model(&state, caller.user.org_id, |d| d.ringfences.push(doc.clone())).await?;
    let id = state.store.create_ringfence(change(&caller), &doc).await?;
    announce(&state, &caller).await?;
    Ok((StatusCode::CREATED, AppJson(Created { id })))
}

#[utoipa::path(put, path = "/api/ringfences/{id}", tag = "model", params(("id" = i64, Path, description = "id")), request_body = RingfenceDoc, responses((status = 204), (status = 401, description = "not logged in", body = ErrorBody), (status = 403, description = "role or CSRF", body = ErrorBody), (status = 400, description = "malformed", body = ErrorBody), (status = 413, description = "body over 1 MiB", body = ErrorBody), (status = 415, description = "not JSON", body = ErrorBody), (status = 422, description = "refused: the policy would not load, or fields unknown", body = ErrorBody), (status = 404, description = "not found", body = ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn update_ringfence(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(id): AppPath<i64>,
    AppJson(doc): AppJson<RingfenceDoc>,
) -> Result<StatusCode, AppError> {
    caller.require_change()?;
    let old = state.store.ringfence(caller.user.org_id, id).await?;
    let new = RingfenceDoc { name: old.doc.name.clone(), ..doc };
    check_model(&state, caller.user.org_id, |d| {
        d.ringfences.retain(|r| r.name != old.doc.name);
        d.ringfences.push(new.clone());
    })
    .await?;
    state.store.update_ringfence(change(&caller), id, &new).await?;
    announce(&state, &caller).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(delete, path = "/api/ringfences/{id}", tag = "model", params(("id" = i64, Path, description = "id")), responses((status = 204), (status = 401, description = "not logged in", body = ErrorBody), (status = 403, description = "role or CSRF", body = ErrorBody), (status = 404, description = "not found", body = ErrorBody), (status = 400, body = ErrorBody), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn delete_ringfence(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(id): AppPath<i64>,
) -> Result<StatusCode, AppError> {
    caller.require_change()?;
    state.store.delete_ringfence(change(&caller), id).await?;
    announce(&state, &caller).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ----- policies ----------------------------------------------------------------------------

#[utoipa::path(get, path = "/api/policies", tag = "model", responses((status = 200, body = Vec<Object>), (status = 401, description = "not logged in", body = ErrorBody), (status = 403, description = "role or CSRF", body = ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn policies(State(state): State<AppState>, caller: Caller) -> Result<AppJson<Value>, AppError> {
    Ok(AppJson(json!(state.store.policies(caller.user.org_id).await?)))
}

#[utoipa::path(post, path = "/api/policies", tag = "model", request_body = PolicyDoc, responses((status = 201, body = Created), (status = 401, description = "not logged in", body = ErrorBody), (status = 403, description = "role or CSRF", body = ErrorBody), (status = 400, description = "malformed", body = ErrorBody), (status = 413, description = "body over 1 MiB", body = ErrorBody), (status = 415, description = "not JSON", body = ErrorBody), (status = 422, description = "refused: the policy would not load, or fields unknown", body = ErrorBody), (status = 409, body = ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn create_policy(
    State(state): State<AppState>,
    caller: Caller,
    AppJson(mut doc): AppJson<PolicyDoc>,
) -> Result<(StatusCode, AppJson<Created>), AppError> {
    caller.require_change()?;
    doc.name = check_name(&doc.name, "policy")?;
    let mut checked = doc.clone();
    if checked.position <= 0 {
        checked.position = i64::from(u32::MAX);
    }
    check_model(&state, caller.user.org_id, |d| d.policies.push(checked)).await?;
    let id = state.store.create_policy(change(&caller), &doc).await?;
    announce(&state, &caller).await?;
    Ok((StatusCode::CREATED, AppJson(Created { id })))
}

#[utoipa::path(put, path = "/api/policies/{id}", tag = "model", params(("id" = i64, Path, description = "id")), request_body = PolicyDoc, responses((status = 204), (status = 401, description = "not logged in", body = ErrorBody), (status = 403, description = "role or CSRF", body = ErrorBody), (status = 400, description = "malformed", body = ErrorBody), (status = 413, description = "body over 1 MiB", body = ErrorBody), (status = 415, description = "not JSON", body = ErrorBody), (status = 422, description = "refused: the policy would not load, or fields unknown", body = ErrorBody), (status = 404, description = "not found", body = ErrorBody), (status = 409, body = ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn update_policy(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(id): AppPath<i64>,
    AppJson(mut doc): AppJson<PolicyDoc>,
) -> Result<StatusCode, AppError> {
    caller.require_change()?;
    doc.name = check_name(&doc.name, "policy")?;
    let old = state.store.policy(caller.user.org_id, id).await?;
    let mut checked = doc.clone();
    if checked.position <= 0 {
        checked.position = old.doc.position;
    }
    check_model(&state, caller.user.org_id, |d| {
        d.policies.retain(|p| p.name != old.doc.name);
        d.policies.push(checked);
    })
    .await?;
    state.store.update_policy(change(&caller), id, &doc).await?;
    announce(&state, &caller).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(delete, path = "/api/policies/{id}", tag = "model", params(("id" = i64, Path, description = "id")), responses((status = 204), (status = 401, description = "not logged in", body = ErrorBody), (status = 403, description = "role or CSRF", body = ErrorBody), (status = 404, description = "not found", body = ErrorBody), (status = 400, body = ErrorBody), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn delete_policy(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(id): AppPath<i64>,
) -> Result<StatusCode, AppError> {
    caller.require_change()?;
    state.store.delete_policies(change(&caller), &[id]).await?;
    announce(&state, &caller).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct MoveRequest {
    /// `up`, `down`, `top` or `bottom`.
    pub(crate) to: String,
}

#[utoipa::path(post, path = "/api/policies/{id}/move", tag = "model", params(("id" = i64, Path, description = "id")), request_body = MoveRequest, responses((status = 204), (status = 401, description = "not logged in", body = ErrorBody), (status = 403, description = "role or CSRF", body = ErrorBody), (status = 400, description = "malformed", body = ErrorBody), (status = 413, description = "body over 1 MiB", body = ErrorBody), (status = 415, description = "not JSON", body = ErrorBody), (status = 422, description = "refused: the policy would not load, or fields unknown", body = ErrorBody), (status = 404, description = "not found", body = ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn move_policy(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(id): AppPath<i64>,
    AppJson(req): AppJson<MoveRequest>,
) -> Result<StatusCode, AppError> {
    caller.require_change()?;
    let to = match req.to.as_str() {
        "up" => Move::Up,
        "down" => Move::Down,
        "top" => Move::Top,
        "bottom" => Move::Bottom,
        other => return Err(AppError::BadRequest(format!("cannot move {other:?}; use up, down, top or bottom"))),
    };
    state.store.move_policy(change(&caller), id, to).await?;
    announce(&state, &caller).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
pub(crate) struct UnusedQuery {
    /// Not matched since this moment (Unix milliseconds or a date, `2026-01-31`).
    pub(crate) since: Option<String>,
    /// Policies younger than this many days are exempt (default 7).
    pub(crate) min_age_days: Option<i64>,
}

/// A moment given as Unix milliseconds or as an RFC 3339 date-time or date (UTC).
pub(crate) fn parse_moment(text: &str) -> Result<i64, AppError> {
    let t = text.trim();
    if let Ok(ms) = t.parse::<i64>() {
        return Ok(ms);
    }
    t.parse::<jiff::Timestamp>()
        .map(|ts| ts.as_millisecond())
        .or_else(|_| {
            t.parse::<jiff::civil::Date>()
                .map_err(|e| e.to_string())
                .and_then(|d| d.to_zoned(jiff::tz::TimeZone::UTC).map_err(|e| e.to_string()))
                .map(|z| z.timestamp().as_millisecond())
        })
        .map_err(|_| {
            AppError::BadRequest(format!(
                "{t:?} is not a time; write 2026-01-31, an RFC 3339 time or Unix milliseconds"
            ))
        })
}

#[utoipa::path(get, path = "/api/policies/unused", tag = "hygiene", params(("since" = Option<String>, Query, description = "a date, RFC 3339 time or Unix ms"), ("min_age_days" = Option<i64>, Query)), responses((status = 200, body = Object), (status = 401, description = "not logged in", body = ErrorBody), (status = 403, description = "role or CSRF", body = ErrorBody), (status = 400, body = ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn unused_policies(
    State(state): State<AppState>,
    caller: Caller,
    AppQuery(q): AppQuery<UnusedQuery>,
) -> Result<AppJson<Value>, AppError> {
    let now = now_ms();
    let since = match &q.since {
        Some(s) => parse_moment(s)?,
        None => now - 30 * 86_400_000,
    };
    let min_age = q.min_age_days.unwrap_or(7).clamp(0, 3650);
    let rows = state.store.unused_policies(caller.user.org_id, since, now - min_age * 86_400_000).await?;
    Ok(AppJson(json!({ "since_ms": since, "min_age_days": min_age, "policies": rows })))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RemoveRequest {
    pub(crate) ids: Vec<i64>,
}

#[utoipa::path(post, path = "/api/policies/remove", tag = "hygiene", request_body = RemoveRequest, responses((status = 200, body = Object), (status = 401, description = "not logged in", body = ErrorBody), (status = 403, description = "role or CSRF", body = ErrorBody), (status = 400, description = "malformed", body = ErrorBody), (status = 413, description = "body over 1 MiB", body = ErrorBody), (status = 415, description = "not JSON", body = ErrorBody), (status = 422, description = "refused: the policy would not load, or fields unknown", body = ErrorBody), (status = 404, description = "not found", body = ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn remove_policies(
    State(state): State<AppState>,
    caller: Caller,
    AppJson(req): AppJson<RemoveRequest>,
) -> Result<AppJson<Value>, AppError> {
    caller.require_change()?;
    if req.ids.is_empty() || req.ids.len() > 1000 {
        return Err(AppError::BadRequest("give 1 to 1000 policy ids".into()));
    }
    let all = state.store.policies(caller.user.org_id).await?;
    let names: Vec<String> = all.iter().filter(|p| req.ids.contains(&p.id)).map(|p| p.doc.name.clone()).collect();
    check_model(&state, caller.user.org_id, |d| d.policies.retain(|p| !names.contains(&p.name))).await?;
    let removed = state.store.delete_policies(change(&caller), &req.ids).await?;
    announce(&state, &caller).await?;
    Ok(AppJson(json!({ "removed": removed })))
}

// ----- blocklists --------------------------------------------------------------------------

#[utoipa::path(get, path = "/api/blocklists", tag = "blocklists", responses((status = 200, body = Vec<Object>), (status = 401, description = "not logged in", body = ErrorBody), (status = 403, description = "role or CSRF", body = ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn blocklists(State(state): State<AppState>, caller: Caller) -> Result<AppJson<Value>, AppError> {
    Ok(AppJson(json!(state.store.blocklists(caller.user.org_id).await?)))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewBlocklist {
    pub(crate) name: String,
    pub(crate) description: Option<String>,
}

#[utoipa::path(post, path = "/api/blocklists", tag = "blocklists", request_body = NewBlocklist, responses((status = 201, body = Created), (status = 401, description = "not logged in", body = ErrorBody), (status = 403, description = "role or CSRF", body = ErrorBody), (status = 400, description = "malformed", body = ErrorBody), (status = 413, description = "body over 1 MiB", body = ErrorBody), (status = 415, description = "not JSON", body = ErrorBody), (status = 422, description = "refused: the policy would not load, or fields unknown", body = ErrorBody), (status = 409, body = ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn create_blocklist(
    State(state): State<AppState>,
    caller: Caller,
    AppJson(req): AppJson<NewBlocklist>,
) -> Result<(StatusCode, AppJson<Created>), AppError> {
    caller.require_change()?;
    let name = check_name(&req.name, "blocklist")?;
    let id = state.store.create_blocklist(change(&caller), &name, req.description.as_deref()).await?;
    announce(&state, &caller).await?;
    Ok((StatusCode::CREATED, AppJson(Created { id })))
}

#[utoipa::path(get, path = "/api/blocklists/{id}", tag = "blocklists", params(("id" = i64, Path, description = "id")), responses((status = 200, body = Object), (status = 401, description = "not logged in", body = ErrorBody), (status = 403, description = "role or CSRF", body = ErrorBody), (status = 404, description = "not found", body = ErrorBody), (status = 400, body = ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn blocklist(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(id): AppPath<i64>,
) -> Result<AppJson<Value>, AppError> {
    let row = state.store.blocklist(caller.user.org_id, id).await?;
    let hashes = state.store.blocklist_hashes(caller.user.org_id, id).await?;
    let mut v = json!(row);
    v["hashes"] =
        json!(hashes.into_iter().map(|(hash, kind)| json!({ "hash": hash, "kind": kind })).collect::<Vec<_>>());
    Ok(AppJson(v))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PastedText {
    /// Any text: a vendor's table, a CSV, a report.
    pub(crate) text: String,
    /// Compare with this package's hashes (preview only).
    pub(crate) blocklist: Option<i64>,
}

/// What extraction found, for the preview.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Extracted {
    pub(crate) hashes: Vec<ExtractedHash>,
    pub(crate) sha256: usize,
    pub(crate) sha1: usize,
    pub(crate) md5: usize,
    pub(crate) duplicates: usize,
    pub(crate) skipped: usize,
    pub(crate) skipped_examples: Vec<Value>,
    /// Already in the package named by `blocklist`.
    pub(crate) already: usize,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ExtractedHash {
    pub(crate) hash: String,
    pub(crate) kind: &'static str,
    pub(crate) line: usize,
    pub(crate) already: bool,
}

pub(crate) async fn extract_text(state: &AppState, org_id: i64, req: &PastedText) -> Result<Extracted, AppError> {
    let found = portcullis_hashlist::extract(req.text.as_bytes());
    let existing: std::collections::HashSet<String> = match req.blocklist {
        Some(id) => state.store.blocklist_hashes(org_id, id).await?.into_iter().map(|h| h.0).collect(),
        None => Default::default(),
    };
    let hashes: Vec<ExtractedHash> = found
        .hashes
        .iter()
        .map(|h| {
            let hash = h.hash.to_string();
            let already = existing.contains(&hash);
            ExtractedHash { hash, kind: h.hash.kind().name(), line: h.line, already }
        })
        .collect();
    let count = |k: &str| hashes.iter().filter(|h| h.kind == k).count();
    Ok(Extracted {
        sha256: count("sha256"),
        sha1: count("sha1"),
        md5: count("md5"),
        already: hashes.iter().filter(|h| h.already).count(),
        duplicates: found.duplicates,
        skipped: found.skipped_total,
        skipped_examples: found
            .skipped
            .iter()
            .map(|s| json!({ "line": s.line, "text": s.text, "reason": s.reason.to_string() }))
            .collect(),
        hashes,
    })
}

#[utoipa::path(post, path = "/api/blocklists/extract", tag = "blocklists", request_body = PastedText, responses((status = 200, body = Extracted), (status = 401, description = "not logged in", body = ErrorBody), (status = 403, description = "role or CSRF", body = ErrorBody), (status = 400, description = "malformed", body = ErrorBody), (status = 413, description = "body over 1 MiB", body = ErrorBody), (status = 415, description = "not JSON", body = ErrorBody), (status = 422, description = "refused: the policy would not load, or fields unknown", body = ErrorBody), (status = 404, description = "not found", body = ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn extract(
    State(state): State<AppState>,
    caller: Caller,
    AppJson(req): AppJson<PastedText>,
) -> Result<AppJson<Extracted>, AppError> {
    Ok(AppJson(extract_text(&state, caller.user.org_id, &req).await?))
}

#[utoipa::path(post, path = "/api/blocklists/{id}/hashes", tag = "blocklists", params(("id" = i64, Path, description = "id")), request_body = PastedText, responses((status = 200, body = Object), (status = 401, description = "not logged in", body = ErrorBody), (status = 403, description = "role or CSRF", body = ErrorBody), (status = 400, description = "malformed", body = ErrorBody), (status = 413, description = "body over 1 MiB", body = ErrorBody), (status = 415, description = "not JSON", body = ErrorBody), (status = 422, description = "refused: the policy would not load, or fields unknown", body = ErrorBody), (status = 404, description = "not found", body = ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn add_hashes(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(id): AppPath<i64>,
    AppJson(req): AppJson<PastedText>,
) -> Result<AppJson<Value>, AppError> {
    caller.require_change()?;
    let found = portcullis_hashlist::extract(req.text.as_bytes());
    if found.hashes.is_empty() {
        return Err(AppError::BadRequest("no MD5, SHA-1 or SHA-256 hash found in the text".into()));
    }
    let hashes: Vec<(String, &'static str)> =
        found.hashes.iter().map(|h| (h.hash.to_string(), h.hash.kind().name())).collect();
    let added = state.store.add_blocklist_hashes(change(&caller), id, &hashes).await?;
    announce(&state, &caller).await?;
    Ok(AppJson(json!({ "added": added, "already": hashes.len() as u64 - added, "duplicates": found.duplicates })))
}

#[utoipa::path(put, path = "/api/blocklists/{id}/rules", tag = "blocklists", params(("id" = i64, Path, description = "id")), request_body = Vec<RuleDoc>, responses((status = 204), (status = 401, description = "not logged in", body = ErrorBody), (status = 403, description = "role or CSRF", body = ErrorBody), (status = 400, description = "malformed", body = ErrorBody), (status = 413, description = "body over 1 MiB", body = ErrorBody), (status = 415, description = "not JSON", body = ErrorBody), (status = 422, description = "refused: the policy would not load, or fields unknown", body = ErrorBody), (status = 404, description = "not found", body = ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn set_blocklist_rules(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(id): AppPath<i64>,
    AppJson(rules): AppJson<Vec<RuleDoc>>,
) -> Result<StatusCode, AppError> {
    caller.require_change()?;
    let package = state.store.blocklist(caller.user.org_id, id).await?;
    let hashes = state.store.blocklist_hashes(caller.user.org_id, id).await?;
    check_model(&state, caller.user.org_id, |d| {
        d.blocklists.retain(|b| b.name != package.name);
        if !(rules.is_empty() && hashes.is_empty()) {
            d.blocklists.push(portcullis_policy_file::document::BlocklistDoc {
                name: package.name.clone(),
                hashes: (!hashes.is_empty()).then(|| hashes.iter().map(|h| h.0.clone()).collect()),
                rules: rules.clone(),
                ..Default::default()
            });
        }
    })
    .await?;
    state.store.set_blocklist_rules(change(&caller), id, &rules).await?;
    announce(&state, &caller).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Approval {
    /// `organization`, `group:PATH` or `computer:NAME`.
    pub(crate) scope: String,
    /// `enforce` (default) or `monitor`.
    pub(crate) status: Option<String>,
}

#[utoipa::path(post, path = "/api/blocklists/{id}/approvals", tag = "blocklists", params(("id" = i64, Path, description = "id")), request_body = Approval, responses((status = 204), (status = 401, description = "not logged in", body = ErrorBody), (status = 403, description = "role or CSRF", body = ErrorBody), (status = 400, description = "malformed", body = ErrorBody), (status = 413, description = "body over 1 MiB", body = ErrorBody), (status = 415, description = "not JSON", body = ErrorBody), (status = 422, description = "refused: the policy would not load, or fields unknown", body = ErrorBody), (status = 404, description = "not found", body = ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn approve(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(id): AppPath<i64>,
    AppJson(req): AppJson<Approval>,
) -> Result<StatusCode, AppError> {
    caller.require_change()?;
    let status = req.status.unwrap_or_else(|| "enforce".into());
    if status != "enforce" && status != "monitor" {
        return Err(AppError::BadRequest(format!("unknown status {status:?}; use enforce or monitor")));
    }
    state.store.blocklist(caller.user.org_id, id).await?;
    let scope = check_scope(&state, caller.user.org_id, &req.scope).await?;
    state.store.approve_blocklist(change(&caller), id, &scope, &status).await?;
    announce(&state, &caller).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A scope as stored: `organization`, `group:PATH` or `computer:NAME`, naming what exists.
pub(crate) async fn check_scope(state: &AppState, org_id: i64, text: &str) -> Result<String, AppError> {
    use portcullis_policy::Scope;
    let scope: Scope = text.parse().map_err(|e: portcullis_policy::ScopeError| AppError::BadRequest(e.to_string()))?;
    let missing = match &scope {
        Scope::Organization => None,
        Scope::Group(path) => {
            (!state.store.groups(org_id).await?.iter().any(|g| g.doc.path.eq_ignore_ascii_case(path)))
                .then(|| format!("group {path:?} does not exist"))
        }
        Scope::Computer(name) => {
            (!state.store.computers(org_id).await?.iter().any(|c| c.doc.name.eq_ignore_ascii_case(name)))
                .then(|| format!("computer {name:?} does not exist"))
        }
    };
    match missing {
        Some(m) => Err(AppError::BadRequest(m)),
        None => Ok(scope.to_string()),
    }
}

#[derive(Deserialize)]
pub(crate) struct ScopeQuery {
    pub(crate) scope: String,
}

#[utoipa::path(delete, path = "/api/blocklists/{id}/approvals", tag = "blocklists", params(("id" = i64, Path), ("scope" = String, Query)), responses((status = 204), (status = 401, description = "not logged in", body = ErrorBody), (status = 403, description = "role or CSRF", body = ErrorBody), (status = 404, description = "not found", body = ErrorBody), (status = 400, body = ErrorBody), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(id): AppPath<i64>,
    AppQuery(q): AppQuery<ScopeQuery>,
) -> Result<StatusCode, AppError> {
    caller.require_change()?;
    // As approvals are stored (an unreadable one, from before, by its own text).
    let scope =
        q.scope.parse::<portcullis_policy::Scope>().map_or_else(|_| q.scope.trim().to_owned(), |s| s.to_string());
    state.store.revoke_blocklist(change(&caller), id, &scope).await?;
    announce(&state, &caller).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(delete, path = "/api/blocklists/{id}", tag = "blocklists", params(("id" = i64, Path, description = "id")), responses((status = 204), (status = 401, description = "not logged in", body = ErrorBody), (status = 403, description = "role or CSRF", body = ErrorBody), (status = 404, description = "not found", body = ErrorBody), (status = 400, body = ErrorBody), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn delete_blocklist(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(id): AppPath<i64>,
) -> Result<StatusCode, AppError> {
    caller.require_change()?;
    state.store.delete_blocklist(change(&caller), id).await?;
    announce(&state, &caller).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ----- preview, events, document ------------------------------------------------------------

/// A file's facts as a person can type them, or as an event holds them.
#[derive(Clone, Debug, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FileInput {
    /// Full path.
    pub path: String,
    /// Flat SHA-256, hex.
    #[serde(default)]
    pub sha256: Option<String>,
    /// `elf-executable`, `pe-exe`, `script`…
    #[serde(default)]
    pub kind: Option<String>,
    /// PE OriginalFilename.
    #[serde(default)]
    pub original_filename: Option<String>,
    /// Product name.
    #[serde(default)]
    pub product_name: Option<String>,
    /// Company name.
    #[serde(default)]
    pub company_name: Option<String>,
    /// The platform the file is for (`windows`, `linux`, `macos`).
    #[serde(default)]
    pub os: Option<String>,
    /// Parent process path.
    #[serde(default)]
    pub parent_process: Option<String>,
    /// User.
    #[serde(default)]
    pub user: Option<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PreviewRequest {
    /// Decide for this computer (its group and mode); none: the organization's defaults.
    pub(crate) computer: Option<String>,
    /// Take the file from this event.
    pub(crate) event: Option<i64>,
    /// Or describe the file.
    pub(crate) file: Option<FileInput>,
}

/// A kind as policies name it, or a file format as `portcullis scan` names it.
fn file_kind(name: &str) -> Option<FileKind> {
    FileKind::from_name(name).or(match name {
        "elf-executable" | "elf-pie" | "pe-exe" | "macho" => Some(FileKind::Executable),
        "elf-shared-object" | "pe-dll" => Some(FileKind::Library),
        "msi" | "cab" => Some(FileKind::Installer),
        "elf-other" => Some(FileKind::Other),
        _ => None,
    })
}

fn hex32(text: &str) -> Option<[u8; 32]> {
    match portcullis_hashlist::Hash::from_hex(text.trim())? {
        portcullis_hashlist::Hash::Sha256(b) => Some(b),
        _ => None,
    }
}

/// The stored record of an event, decoded (every stored record was decoded once already,
/// when it came in).
fn record_of(event: &EventRow) -> Option<portcullis_events::Record> {
    serde_json::from_str(&event.fields.record_json).ok()
}

pub(crate) fn file_input_of(event: &EventRow) -> FileInput {
    let file = record_of(event).map(|r| r.file).unwrap_or_default();
    FileInput {
        path: event.fields.file_path.clone(),
        sha256: Some(event.fields.file_sha256.clone()),
        kind: Some(event.fields.file_kind.clone()),
        os: Some("linux".into()),
        parent_process: event.fields.process_exe.clone(),
        user: event.fields.user_name.clone(),
        original_filename: file.original_filename,
        product_name: file.product_name,
        company_name: file.company_name,
    }
}

#[utoipa::path(post, path = "/api/preview", tag = "events", request_body = PreviewRequest, responses((status = 200, body = Object), (status = 401, description = "not logged in", body = ErrorBody), (status = 403, description = "role or CSRF", body = ErrorBody), (status = 400, description = "malformed", body = ErrorBody), (status = 413, description = "body over 1 MiB", body = ErrorBody), (status = 415, description = "not JSON", body = ErrorBody), (status = 422, description = "refused: the policy would not load, or fields unknown", body = ErrorBody), (status = 404, description = "not found", body = ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn preview(
    State(state): State<AppState>,
    caller: Caller,
    AppJson(req): AppJson<PreviewRequest>,
) -> Result<AppJson<Value>, AppError> {
    let org = caller.user.org_id;
    let (input, computer) = match (req.event, req.file) {
        (Some(id), None) => {
            let e = state.store.event(org, id).await?;
            let computer = req.computer.or(Some(e.computer.clone()));
            (file_input_of(&e), computer)
        }
        (None, Some(f)) => (f, req.computer),
        _ => return Err(AppError::BadRequest("give either an event id or a file's facts".into())),
    };
    let os = match input.os.as_deref() {
        None => None,
        Some(o) => Some(Os::from_name(o).ok_or_else(|| AppError::BadRequest(format!("unknown os {o:?}")))?),
    };
    let kind = match input.kind.as_deref().map(str::trim) {
        None | Some("") => FileKind::default(),
        Some(k) => file_kind(k).ok_or_else(|| {
            AppError::BadRequest(format!(
                "unknown file kind {k:?}; use executable, library, script, installer or other (or a format: elf-executable, pe-dll, msi…)"
            ))
        })?,
    };
    let sha256 = match input.sha256.as_deref() {
        None | Some("") => [0; 32],
        Some(h) => hex32(h).ok_or_else(|| AppError::BadRequest(format!("{h:?} is not a SHA-256")))?,
    };
    let file = FileFacts {
        path: input.path.clone(),
        sha256,
        kind,
        platform: os,
        original_filename: input.original_filename.clone(),
        product_name: input.product_name.clone(),
        company_name: input.company_name.clone(),
        ..FileFacts::default()
    };
    let process = ProcessFacts { parent_path: input.parent_process.clone(), user: input.user.clone() };
    let (version, loaded) = load_model(&state, org, |_| ()).await?;
    let engine =
        Engine::new(loaded.set).map_err(|errors| AppError::Invalid(errors.into_iter().map(|e| e.message).collect()))?;
    let target =
        engine.target(computer.as_deref(), os.unwrap_or(Os::Linux)).map_err(|e| AppError::BadRequest(e.to_string()))?;
    let decision = engine.decide(&file, &process, &target, Timestamp(now_ms() / 1000));
    Ok(AppJson(json!({
        "version": version,
        "computer": computer,
        "file": input,
        "verdict": decision.verdict.name(),
        "would_deny": decision.would_deny(),
        "policy": decision.policy(),
        "mode": decision.mode.name(),
        "reason": decision.explain(),
    })))
}

#[derive(Deserialize)]
pub(crate) struct EventQuery {
    pub(crate) computer: Option<String>,
    pub(crate) verdict: Option<String>,
    pub(crate) file: Option<String>,
    pub(crate) policy: Option<String>,
    pub(crate) from: Option<String>,
    pub(crate) to: Option<String>,
    pub(crate) before_id: Option<i64>,
    pub(crate) limit: Option<i64>,
}

#[utoipa::path(get, path = "/api/events", tag = "events", params(("computer" = Option<String>, Query), ("verdict" = Option<String>, Query), ("file" = Option<String>, Query), ("policy" = Option<String>, Query), ("from" = Option<String>, Query), ("to" = Option<String>, Query), ("before_id" = Option<i64>, Query), ("limit" = Option<i64>, Query)), responses((status = 200, body = Vec<Object>), (status = 401, description = "not logged in", body = ErrorBody), (status = 403, description = "role or CSRF", body = ErrorBody), (status = 400, body = ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn events(
    State(state): State<AppState>,
    caller: Caller,
    AppQuery(q): AppQuery<EventQuery>,
) -> Result<AppJson<Value>, AppError> {
    let filter = event_filter(&q)?;
    Ok(AppJson(json!(state.store.events(caller.user.org_id, &filter).await?)))
}

fn event_filter(q: &EventQuery) -> Result<EventFilter, AppError> {
    let some = |s: &Option<String>| s.as_ref().map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
    Ok(EventFilter {
        computer: some(&q.computer),
        verdict: some(&q.verdict),
        file: some(&q.file),
        policy: some(&q.policy),
        from_ms: some(&q.from).map(|t| parse_moment(&t)).transpose()?,
        to_ms: some(&q.to).map(|t| parse_moment(&t)).transpose()?,
        before_id: q.before_id,
        limit: q.limit.unwrap_or(100),
    })
}

#[utoipa::path(get, path = "/api/events/{id}", tag = "events", params(("id" = i64, Path, description = "id")), responses((status = 200, body = Object), (status = 401, description = "not logged in", body = ErrorBody), (status = 403, description = "role or CSRF", body = ErrorBody), (status = 404, description = "not found", body = ErrorBody), (status = 400, body = ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn event(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(id): AppPath<i64>,
) -> Result<AppJson<Value>, AppError> {
    let e = state.store.event(caller.user.org_id, id).await?;
    let mut v = json!(e);
    v["record"] = serde_json::from_str(&e.fields.record_json).unwrap_or(Value::Null);
    Ok(AppJson(v))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct FromEvent {
    /// `permit-hash`, `permit-path`, `permit-publisher` or `deny-hash`.
    pub(crate) kind: String,
    /// The new policy's name (default: made from the file's name).
    pub(crate) name: Option<String>,
    /// Only say what the policy would match; save nothing.
    #[serde(default)]
    pub(crate) preview: bool,
}

/// A rule made from an event, and what it matches in words.
pub(crate) struct EventRule {
    pub(crate) rule: RuleDoc,
    pub(crate) action: &'static str,
    pub(crate) what: &'static str,
    pub(crate) matches: String,
}

/// The verified signer an event's record carries: subject and leaf certificate, only when
/// the agent verified the signature. Company and product names are claims in the file (and
/// the record), not a signer, and never make a publisher rule.
fn verified_signer(record: Option<&portcullis_events::Record>) -> Option<(String, String)> {
    let s = record?.file.signer.as_ref().filter(|s| s.verified)?;
    let subject = Some(s.subject.as_str()).filter(|v| !v.trim().is_empty())?;
    let cert = hex32(&s.cert_sha256)?;
    Some((subject.to_owned(), cert.iter().map(|b| format!("{b:02x}")).collect()))
}

/// The rule "create a policy from this event" makes. Everything taken from the event is
/// literal: a path becomes that one path (glob characters escaped), a hash that hash, a
/// publisher the verified signer's subject *and* its certificate.
pub(crate) fn rule_from_event(e: &EventRow, kind: &str) -> Result<EventRule, AppError> {
    let record = record_of(e);
    let hash = || {
        hex32(&e.fields.file_sha256)
            .map(|_| e.fields.file_sha256.trim().to_ascii_lowercase())
            .ok_or_else(|| AppError::BadRequest("this event carries no SHA-256 of its file; permit it by path".into()))
    };
    Ok(match kind {
        "permit-hash" | "deny-hash" => {
            let h = hash()?;
            EventRule {
                matches: format!("the file whose SHA-256 is {h}, wherever it is"),
                rule: RuleDoc { sha256: Some(vec![h]), ..Default::default() },
                action: if kind == "deny-hash" { "deny" } else { "permit" },
                what: "hash",
            }
        }
        "permit-path" => {
            if !e.fields.file_path.starts_with('/') {
                return Err(AppError::BadRequest("this event's path is not absolute; permit it by hash".into()));
            }
            EventRule {
                matches: format!(
                    "exactly the path {:?}, taken literally (no wildcard), whatever its content",
                    e.fields.file_path
                ),
                rule: RuleDoc {
                    path: Some(portcullis_policy::PathPattern::escape(&e.fields.file_path)),
                    ..Default::default()
                },
                action: "permit",
                what: "path",
            }
        }
        "permit-publisher" => {
            let Some((subject, cert)) = verified_signer(record.as_ref()) else {
                return Err(AppError::BadRequest(
                    "this event carries no verified signer (subject and certificate); permit it by hash or path".into(),
                ));
            };
            EventRule {
                matches: format!(
                    "files whose signature verifies and whose signer is {subject:?} with certificate SHA-256 {cert}"
                ),
                rule: RuleDoc {
                    signer: Some(SignerDoc {
                        subject: Some(portcullis_policy::TextPattern::escape(&subject)),
                        issuer: None,
                        cert_sha256: Some(cert),
                        verified: true,
                    }),
                    ..Default::default()
                },
                action: "permit",
                what: "publisher",
            }
        }
        other => {
            return Err(AppError::BadRequest(format!(
                "unknown kind {other:?}; use permit-hash, permit-path, permit-publisher or deny-hash"
            )));
        }
    })
}

/// "Create a policy from this event": an application with one rule taken from the event's
/// file, and a policy for it placed last (move it where it belongs). With `preview`, only
/// what it would match.
#[utoipa::path(post, path = "/api/events/{id}/policy", tag = "events", params(("id" = i64, Path, description = "id")), request_body = FromEvent, responses((status = 201, body = Object), (status = 200, description = "preview: the rule and what it matches; nothing saved", body = Object), (status = 401, description = "not logged in", body = ErrorBody), (status = 403, description = "role or CSRF", body = ErrorBody), (status = 400, description = "malformed", body = ErrorBody), (status = 413, description = "body over 1 MiB", body = ErrorBody), (status = 415, description = "not JSON", body = ErrorBody), (status = 422, description = "refused: the policy would not load, or fields unknown", body = ErrorBody), (status = 404, description = "not found", body = ErrorBody), (status = 409, body = ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn policy_from_event(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(id): AppPath<i64>,
    AppJson(req): AppJson<FromEvent>,
) -> Result<(StatusCode, AppJson<Value>), AppError> {
    let e = state.store.event(caller.user.org_id, id).await?;
    let made = rule_from_event(&e, &req.kind)?;
    if req.preview {
        return Ok((
            StatusCode::OK,
            AppJson(json!({ "action": made.action, "rule": made.rule, "matches": made.matches })),
        ));
    }
    caller.require_change()?;
    let file_name = e.fields.file_path.rsplit('/').next().unwrap_or(&e.fields.file_path).to_owned();
    let file_name = portcullis_protocol::bounded_text(&file_name, 80);
    let (action, what) = (made.action, made.what);
    let verb = if action == "permit" { "Permit" } else { "Deny" };
    let name = match &req.name {
        Some(n) => check_name(n, "policy")?,
        None => format!("{verb} {file_name} by {what} (event {id})"),
    };
    let app = ApplicationDoc {
        name: format!("{file_name} ({what}, event {id})"),
        description: Some(format!("Made from event {id} on {}: {}", e.computer, made.matches)),
        rules: vec![made.rule],
    };
    let policy = PolicyDoc {
        name: name.clone(),
        applications: vec![app.name.clone()],
        action: action.into(),
        position: 0,
        ..Default::default()
    };
    check_model(&state, caller.user.org_id, |d| {
        d.applications.push(app.clone());
        d.policies.push(PolicyDoc { position: i64::from(u32::MAX), ..policy.clone() });
    })
    .await?;
    state.store.create_application(change(&caller), &app).await?;
    let id = state.store.create_policy(change(&caller), &policy).await?;
    announce(&state, &caller).await?;
    Ok((
        StatusCode::CREATED,
        AppJson(json!({ "id": id, "name": name, "application": app.name, "matches": app.description })),
    ))
}

#[utoipa::path(get, path = "/api/document", tag = "model", responses((status = 200, body = Object), (status = 401, description = "not logged in", body = ErrorBody), (status = 403, description = "role or CSRF", body = ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn document(State(state): State<AppState>, caller: Caller) -> Result<AppJson<Value>, AppError> {
    let (version, doc) = state.store.document(caller.user.org_id).await?;
    Ok(AppJson(json!({ "version": version, "document": doc })))
}
