//! `/api/settings`, `/api/groups`, `/api/computers`, enrollment (group tokens, pending
//! enrollments) and `/api/bundle-key`.

use super::{Changes, ChangesOne, Reads, ReadsOne, Taken};
use crate::AppState;
use crate::auth::Caller;
use crate::error::{AppError, AppJson, AppPath, AppQuery, ErrorBody};
use crate::ops::Created;
use crate::ops::computers::{
    self as ops, BundleKeyView, BypassCodeView, ComputerPackages, ComputerView, EnrollmentToken,
};
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use portcullis_policy_file::document::{ComputerDoc, GroupDoc, OrganizationDoc};
use portcullis_store::{GroupRow, PendingRow};
use serde::{Deserialize, Serialize};

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/settings", get(settings).put(set_settings))
        .route("/api/groups", get(groups).post(create_group))
        .route("/api/groups/{id}", put(update_group).delete(delete_group))
        .route("/api/groups/{id}/enrollment-token", post(enrollment_token).delete(revoke_enrollment_token))
        .route("/api/computers", get(computers))
        .route("/api/computers/{id}", put(update_computer).delete(delete_computer))
        .route("/api/computers/{id}/packages", get(computer_packages))
        .route("/api/computers/{id}/bypass-code", post(bypass_code))
        .route("/api/enrollments/pending", get(pending))
        .route("/api/enrollments/pending/{id}", axum::routing::delete(reject_pending))
        .route("/api/enrollments/pending/{id}/accept", post(accept_pending))
        .route("/api/bundle-key", get(bundle_key))
        .route("/api/bundle-key/rotate", post(rotate_bundle_key))
}

#[utoipa::path(get, path = "/api/settings", tag = "model", responses((status = 200, body = OrganizationDoc), Reads), security(("bearer" = [])))]
pub(crate) async fn settings(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<AppJson<OrganizationDoc>, AppError> {
    Ok(AppJson(ops::settings(&state, &caller).await?))
}

#[utoipa::path(put, path = "/api/settings", tag = "model", request_body = OrganizationDoc, responses((status = 204), Changes), security(("bearer" = [])))]
pub(crate) async fn set_settings(
    State(state): State<AppState>,
    caller: Caller,
    AppJson(doc): AppJson<OrganizationDoc>,
) -> Result<StatusCode, AppError> {
    ops::set_settings(&state, &caller, doc).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/groups", tag = "model", responses((status = 200, body = Vec<GroupRow>), Reads), security(("bearer" = [])))]
pub(crate) async fn groups(State(state): State<AppState>, caller: Caller) -> Result<AppJson<Vec<GroupRow>>, AppError> {
    Ok(AppJson(ops::groups(&state, &caller).await?))
}

#[utoipa::path(post, path = "/api/groups", tag = "model", request_body = GroupDoc, responses((status = 201, body = Created), Changes, Taken), security(("bearer" = [])))]
pub(crate) async fn create_group(
    State(state): State<AppState>,
    caller: Caller,
    AppJson(doc): AppJson<GroupDoc>,
) -> Result<(StatusCode, AppJson<Created>), AppError> {
    let id = ops::create_group(&state, &caller, doc).await?;
    Ok((StatusCode::CREATED, AppJson(Created { id })))
}

#[utoipa::path(put, path = "/api/groups/{id}", tag = "model", params(("id" = i64, Path)), request_body = GroupDoc, responses((status = 204), ChangesOne), security(("bearer" = [])))]
pub(crate) async fn update_group(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(id): AppPath<i64>,
    AppJson(doc): AppJson<GroupDoc>,
) -> Result<StatusCode, AppError> {
    ops::update_group(&state, &caller, id, doc).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(delete, path = "/api/groups/{id}", tag = "model", params(("id" = i64, Path)), responses((status = 204), ChangesOne), security(("bearer" = [])))]
pub(crate) async fn delete_group(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(id): AppPath<i64>,
) -> Result<StatusCode, AppError> {
    ops::delete_group(&state, &caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// How long an enrollment token lasts and how often it may be used.
#[derive(Deserialize, Default)]
pub(crate) struct TokenQuery {
    /// Hours until the token stops working (default 168, a week; 0: never).
    pub(crate) expires_in_hours: Option<i64>,
    /// Enrollments it allows (default: any number).
    pub(crate) uses: Option<i64>,
}

#[utoipa::path(post, path = "/api/groups/{id}/enrollment-token", tag = "agents", params(("id" = i64, Path), ("expires_in_hours" = Option<i64>, Query, description = "hours until it stops working: default 168, 0 for never, at most 8784"), ("uses" = Option<i64>, Query, description = "how many enrollments it allows: 1 to 1000000, default any")), responses((status = 201, body = EnrollmentToken), ChangesOne), security(("bearer" = [])))]
pub(crate) async fn enrollment_token(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(id): AppPath<i64>,
    AppQuery(q): AppQuery<TokenQuery>,
) -> Result<(StatusCode, AppJson<EnrollmentToken>), AppError> {
    let token = ops::enrollment_token(&state, &caller, id, q.expires_in_hours, q.uses).await?;
    Ok((StatusCode::CREATED, AppJson(token)))
}

#[utoipa::path(delete, path = "/api/groups/{id}/enrollment-token", tag = "agents", params(("id" = i64, Path)), responses((status = 204, description = "no agent enrolls with it any more"), ChangesOne), security(("bearer" = [])))]
pub(crate) async fn revoke_enrollment_token(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(id): AppPath<i64>,
) -> Result<StatusCode, AppError> {
    ops::revoke_enrollment_token(&state, &caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/computers", tag = "model", responses((status = 200, body = Vec<ComputerView>), Reads), security(("bearer" = [])))]
pub(crate) async fn computers(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<AppJson<Vec<ComputerView>>, AppError> {
    Ok(AppJson(ops::computers(&state, &caller).await?))
}

/// Which of a computer's packages.
#[derive(Deserialize)]
pub(crate) struct PackagesQuery {
    #[serde(default)]
    filter: String,
    limit: Option<i64>,
}

#[utoipa::path(get, path = "/api/computers/{id}/packages", tag = "model", params(("id" = i64, Path), ("filter" = Option<String>, Query, description = "part of the name, ASCII case ignored"), ("limit" = Option<i64>, Query, description = "1 to 50000; 1000 when not given")), responses((status = 200, description = "the packages its agent last reported, by name", body = ComputerPackages), ReadsOne), security(("bearer" = [])))]
pub(crate) async fn computer_packages(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(id): AppPath<i64>,
    AppQuery(q): AppQuery<PackagesQuery>,
) -> Result<AppJson<ComputerPackages>, AppError> {
    Ok(AppJson(ops::computer_packages(&state, &caller, id, &q.filter, q.limit).await?))
}

/// A bypass code's grant.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct BypassRequest {
    /// Minutes of Monitor mode (1 to 10080).
    minutes: u32,
    /// Hours the code stays usable (1 to 720; 24 when not given).
    #[serde(default = "one_day")]
    valid_hours: i64,
}

fn one_day() -> i64 {
    24
}

#[utoipa::path(post, path = "/api/computers/{id}/bypass-code", tag = "model", params(("id" = i64, Path)), request_body = BypassRequest, responses((status = 201, description = "the code, shown once; `portcullis bypass CODE` on the computer", body = BypassCodeView), (status = 409, description = "its agent has not registered a bypass key", body = ErrorBody), ChangesOne), security(("bearer" = [])))]
pub(crate) async fn bypass_code(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(id): AppPath<i64>,
    AppJson(r): AppJson<BypassRequest>,
) -> Result<(StatusCode, AppJson<BypassCodeView>), AppError> {
    Ok((StatusCode::CREATED, AppJson(ops::bypass_code(&state, &caller, id, r.minutes, r.valid_hours).await?)))
}

#[utoipa::path(put, path = "/api/computers/{id}", tag = "model", params(("id" = i64, Path)), request_body = ComputerDoc, responses((status = 204), ChangesOne), security(("bearer" = [])))]
pub(crate) async fn update_computer(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(id): AppPath<i64>,
    AppJson(doc): AppJson<ComputerDoc>,
) -> Result<StatusCode, AppError> {
    ops::update_computer(&state, &caller, id, doc).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(delete, path = "/api/computers/{id}", tag = "model", params(("id" = i64, Path)), responses((status = 204), ChangesOne), security(("bearer" = [])))]
pub(crate) async fn delete_computer(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(id): AppPath<i64>,
) -> Result<StatusCode, AppError> {
    ops::delete_computer(&state, &caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/enrollments/pending", tag = "agents", responses((status = 200, description = "enrollments under a name that is taken, waiting for an administrator", body = Vec<PendingRow>), Reads), security(("bearer" = [])))]
pub(crate) async fn pending(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<AppJson<Vec<PendingRow>>, AppError> {
    Ok(AppJson(ops::pending(&state, &caller).await?))
}

/// The computer that took a pending enrollment's credential.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Accepted {
    /// The computer's id.
    computer: i64,
}

#[utoipa::path(post, path = "/api/enrollments/pending/{id}/accept", tag = "agents", params(("id" = i64, Path)), responses((status = 200, description = "the computer of that name takes the new agent's credential; the old one stops working", body = Accepted), ReadsOne), security(("bearer" = [])))]
pub(crate) async fn accept_pending(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(id): AppPath<i64>,
) -> Result<AppJson<Accepted>, AppError> {
    Ok(AppJson(Accepted { computer: ops::accept_pending(&state, &caller, id).await? }))
}

#[utoipa::path(delete, path = "/api/enrollments/pending/{id}", tag = "agents", params(("id" = i64, Path)), responses((status = 204), ReadsOne), security(("bearer" = [])))]
pub(crate) async fn reject_pending(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(id): AppPath<i64>,
) -> Result<StatusCode, AppError> {
    ops::reject_pending(&state, &caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/bundle-key", tag = "agents", responses((status = 200, body = BundleKeyView), Reads), security(("bearer" = [])))]
pub(crate) async fn bundle_key(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<AppJson<BundleKeyView>, AppError> {
    Ok(AppJson(ops::bundle_key(&state, &caller).await?))
}

#[utoipa::path(post, path = "/api/bundle-key/rotate", tag = "agents", responses((status = 200, description = "a new key signs from now on, endorsed by the old one; every agent receives a bundle signed by it and keeps it, with no re-enrollment", body = BundleKeyView), (status = 409, description = "another rotation won, or the current key does not open (the message says how to repair it)", body = ErrorBody), Changes), security(("bearer" = [])))]
pub(crate) async fn rotate_bundle_key(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<AppJson<BundleKeyView>, AppError> {
    Ok(AppJson(ops::rotate_bundle_key(&state, &caller).await?))
}
