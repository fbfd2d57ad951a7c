//! `/api/policies`: the ordered list, its order, unused policies; `/api/document`.

use super::{Changes, ChangesOne, Reads, ReadsOne, Taken};
use crate::AppState;
use crate::auth::Caller;
use crate::error::{AppError, AppJson, AppPath, AppQuery};
use crate::ops::Created;
use crate::ops::policies::{self as ops, Removed, Unused, Versioned};
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use portcullis_policy_file::document::PolicyDoc;
use portcullis_store::PolicyRow;
use serde::Deserialize;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/policies", get(policies).post(create_policy))
        .route("/api/policies/{id}", put(update_policy).delete(delete_policy))
        .route("/api/policies/{id}/move", post(move_policy))
        .route("/api/policies/unused", get(unused_policies))
        .route("/api/policies/remove", post(remove_policies))
        .route("/api/document", get(document))
}

#[utoipa::path(get, path = "/api/policies", tag = "model", responses((status = 200, description = "in decision order", body = Vec<PolicyRow>), Reads), security(("bearer" = [])))]
pub(crate) async fn policies(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<AppJson<Vec<PolicyRow>>, AppError> {
    Ok(AppJson(ops::list(&state, &caller).await?))
}

#[utoipa::path(post, path = "/api/policies", tag = "model", request_body = PolicyDoc, responses((status = 201, body = Created), Changes, Taken), security(("bearer" = [])))]
pub(crate) async fn create_policy(
    State(state): State<AppState>,
    caller: Caller,
    AppJson(doc): AppJson<PolicyDoc>,
) -> Result<(StatusCode, AppJson<Created>), AppError> {
    let id = ops::create(&state, &caller, doc).await?;
    Ok((StatusCode::CREATED, AppJson(Created { id })))
}

#[utoipa::path(put, path = "/api/policies/{id}", tag = "model", params(("id" = i64, Path)), request_body = PolicyDoc, responses((status = 204), ChangesOne, Taken), security(("bearer" = [])))]
pub(crate) async fn update_policy(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(id): AppPath<i64>,
    AppJson(doc): AppJson<PolicyDoc>,
) -> Result<StatusCode, AppError> {
    ops::update(&state, &caller, id, doc).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(delete, path = "/api/policies/{id}", tag = "model", params(("id" = i64, Path)), responses((status = 204), ChangesOne), security(("bearer" = [])))]
pub(crate) async fn delete_policy(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(id): AppPath<i64>,
) -> Result<StatusCode, AppError> {
    ops::delete(&state, &caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Where to move a policy.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct MoveRequest {
    /// `up`, `down`, `top` or `bottom`.
    pub(crate) to: String,
}

#[utoipa::path(post, path = "/api/policies/{id}/move", tag = "model", params(("id" = i64, Path)), request_body = MoveRequest, responses((status = 204), ChangesOne), security(("bearer" = [])))]
pub(crate) async fn move_policy(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(id): AppPath<i64>,
    AppJson(req): AppJson<MoveRequest>,
) -> Result<StatusCode, AppError> {
    caller.require_change()?;
    ops::move_to(&state, &caller, id, ops::parse_move(&req.to)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Which policies count as unused.
#[derive(Deserialize)]
pub(crate) struct UnusedQuery {
    /// Not matched since this moment (Unix milliseconds or a date, `2026-01-31`).
    pub(crate) since: Option<String>,
    /// Policies younger than this many days are exempt (default 7).
    pub(crate) min_age_days: Option<i64>,
}

#[utoipa::path(get, path = "/api/policies/unused", tag = "hygiene", params(("since" = Option<String>, Query, description = "a date, RFC 3339 time or Unix ms"), ("min_age_days" = Option<i64>, Query)), responses((status = 200, body = Unused), ReadsOne), security(("bearer" = [])))]
pub(crate) async fn unused_policies(
    State(state): State<AppState>,
    caller: Caller,
    AppQuery(q): AppQuery<UnusedQuery>,
) -> Result<AppJson<Unused>, AppError> {
    Ok(AppJson(ops::unused(&state, &caller, q.since.as_deref(), q.min_age_days).await?))
}

/// Policies to remove.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RemoveRequest {
    /// 1 to 1000 policy ids.
    pub(crate) ids: Vec<i64>,
}

#[utoipa::path(post, path = "/api/policies/remove", tag = "hygiene", request_body = RemoveRequest, responses((status = 200, body = Removed), ChangesOne), security(("bearer" = [])))]
pub(crate) async fn remove_policies(
    State(state): State<AppState>,
    caller: Caller,
    AppJson(req): AppJson<RemoveRequest>,
) -> Result<AppJson<Removed>, AppError> {
    Ok(AppJson(ops::remove(&state, &caller, &req.ids).await?))
}

#[utoipa::path(get, path = "/api/document", tag = "model", responses((status = 200, description = "the organization's policy as a policy-file document (without computers)", body = Versioned), Reads), security(("bearer" = [])))]
pub(crate) async fn document(State(state): State<AppState>, caller: Caller) -> Result<AppJson<Versioned>, AppError> {
    Ok(AppJson(ops::document(&state, &caller).await?))
}
