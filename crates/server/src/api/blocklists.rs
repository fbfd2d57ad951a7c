//! `/api/blocklists`: packages, paste → extract → preview → bulk add, rules, approvals.

use super::{Changes, ChangesOne, Reads, ReadsOne, Taken};
use crate::AppState;
use crate::auth::Caller;
use crate::error::{AppError, AppJson, AppPath, AppQuery};
use crate::ops::Created;
use crate::ops::blocklists::{self as ops, Added, Approval, BlocklistDetail, Extracted, PastedText};
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use portcullis_policy_file::document::RuleDoc;
use portcullis_store::BlocklistRow;
use serde::Deserialize;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/blocklists", get(blocklists).post(create_blocklist))
        .route("/api/blocklists/extract", post(extract))
        .route("/api/blocklists/{id}", get(blocklist).delete(delete_blocklist))
        .route("/api/blocklists/{id}/hashes", post(add_hashes))
        .route("/api/blocklists/{id}/rules", put(set_blocklist_rules))
        .route("/api/blocklists/{id}/approvals", post(approve).delete(revoke))
}

#[utoipa::path(get, path = "/api/blocklists", tag = "blocklists", responses((status = 200, body = Vec<BlocklistRow>), Reads), security(("bearer" = [])))]
pub(crate) async fn blocklists(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<AppJson<Vec<BlocklistRow>>, AppError> {
    Ok(AppJson(ops::list(&state, &caller).await?))
}

/// A new, empty package.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewBlocklist {
    /// Its name.
    pub(crate) name: String,
    /// For people.
    pub(crate) description: Option<String>,
}

#[utoipa::path(post, path = "/api/blocklists", tag = "blocklists", request_body = NewBlocklist, responses((status = 201, body = Created), Changes, Taken), security(("bearer" = [])))]
pub(crate) async fn create_blocklist(
    State(state): State<AppState>,
    caller: Caller,
    AppJson(req): AppJson<NewBlocklist>,
) -> Result<(StatusCode, AppJson<Created>), AppError> {
    let id = ops::create(&state, &caller, &req.name, req.description.as_deref()).await?;
    Ok((StatusCode::CREATED, AppJson(Created { id })))
}

#[utoipa::path(get, path = "/api/blocklists/{id}", tag = "blocklists", params(("id" = i64, Path)), responses((status = 200, body = BlocklistDetail), ReadsOne), security(("bearer" = [])))]
pub(crate) async fn blocklist(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(id): AppPath<i64>,
) -> Result<AppJson<BlocklistDetail>, AppError> {
    Ok(AppJson(ops::get(&state, &caller, id).await?))
}

#[utoipa::path(post, path = "/api/blocklists/extract", tag = "blocklists", request_body = PastedText, responses((status = 200, body = Extracted), ChangesOne), security(("bearer" = [])))]
pub(crate) async fn extract(
    State(state): State<AppState>,
    caller: Caller,
    AppJson(req): AppJson<PastedText>,
) -> Result<AppJson<Extracted>, AppError> {
    Ok(AppJson(ops::extract(&state, &caller, &req).await?))
}

#[utoipa::path(post, path = "/api/blocklists/{id}/hashes", tag = "blocklists", params(("id" = i64, Path)), request_body = PastedText, responses((status = 200, body = Added), ChangesOne), security(("bearer" = [])))]
pub(crate) async fn add_hashes(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(id): AppPath<i64>,
    AppJson(req): AppJson<PastedText>,
) -> Result<AppJson<Added>, AppError> {
    Ok(AppJson(ops::add_hashes(&state, &caller, id, &req.text).await?))
}

#[utoipa::path(put, path = "/api/blocklists/{id}/rules", tag = "blocklists", params(("id" = i64, Path)), request_body = Vec<RuleDoc>, responses((status = 204), ChangesOne), security(("bearer" = [])))]
pub(crate) async fn set_blocklist_rules(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(id): AppPath<i64>,
    AppJson(rules): AppJson<Vec<RuleDoc>>,
) -> Result<StatusCode, AppError> {
    ops::set_rules(&state, &caller, id, rules).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/blocklists/{id}/approvals", tag = "blocklists", params(("id" = i64, Path)), request_body = Approval, responses((status = 204), ChangesOne), security(("bearer" = [])))]
pub(crate) async fn approve(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(id): AppPath<i64>,
    AppJson(req): AppJson<Approval>,
) -> Result<StatusCode, AppError> {
    ops::approve(&state, &caller, id, &req).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The scope of the approval to withdraw.
#[derive(Deserialize)]
pub(crate) struct ScopeQuery {
    pub(crate) scope: String,
}

#[utoipa::path(delete, path = "/api/blocklists/{id}/approvals", tag = "blocklists", params(("id" = i64, Path), ("scope" = String, Query)), responses((status = 204), ChangesOne), security(("bearer" = [])))]
pub(crate) async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(id): AppPath<i64>,
    AppQuery(q): AppQuery<ScopeQuery>,
) -> Result<StatusCode, AppError> {
    ops::revoke(&state, &caller, id, &q.scope).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(delete, path = "/api/blocklists/{id}", tag = "blocklists", params(("id" = i64, Path)), responses((status = 204), ChangesOne), security(("bearer" = [])))]
pub(crate) async fn delete_blocklist(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(id): AppPath<i64>,
) -> Result<StatusCode, AppError> {
    ops::delete(&state, &caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
