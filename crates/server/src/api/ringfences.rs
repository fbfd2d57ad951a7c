//! `/api/ringfences`: ringfence profiles.

use super::{Changes, ChangesOne, Reads, ReadsOne, Taken};
use crate::AppState;
use crate::auth::Caller;
use crate::error::{AppError, AppJson, AppPath};
use crate::ops::Created;
use crate::ops::ringfences as ops;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use portcullis_policy_file::document::RingfenceDoc;
use portcullis_store::RingfenceRow;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/ringfences", get(ringfences).post(create_ringfence))
        .route("/api/ringfences/{id}", get(ringfence).put(update_ringfence).delete(delete_ringfence))
}

#[utoipa::path(get, path = "/api/ringfences", tag = "model", responses((status = 200, body = Vec<RingfenceRow>), Reads), security(("bearer" = [])))]
pub(crate) async fn ringfences(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<AppJson<Vec<RingfenceRow>>, AppError> {
    Ok(AppJson(ops::list(&state, &caller).await?))
}

#[utoipa::path(get, path = "/api/ringfences/{id}", tag = "model", params(("id" = i64, Path)), responses((status = 200, body = RingfenceRow), ReadsOne), security(("bearer" = [])))]
pub(crate) async fn ringfence(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(id): AppPath<i64>,
) -> Result<AppJson<RingfenceRow>, AppError> {
    Ok(AppJson(ops::get(&state, &caller, id).await?))
}

#[utoipa::path(post, path = "/api/ringfences", tag = "model", request_body = RingfenceDoc, responses((status = 201, body = Created), Changes, Taken), security(("bearer" = [])))]
pub(crate) async fn create_ringfence(
    State(state): State<AppState>,
    caller: Caller,
    AppJson(doc): AppJson<RingfenceDoc>,
) -> Result<(StatusCode, AppJson<Created>), AppError> {
    let id = ops::create(&state, &caller, doc).await?;
    Ok((StatusCode::CREATED, AppJson(Created { id })))
}

#[utoipa::path(put, path = "/api/ringfences/{id}", tag = "model", params(("id" = i64, Path)), request_body = RingfenceDoc, responses((status = 204), ChangesOne), security(("bearer" = [])))]
pub(crate) async fn update_ringfence(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(id): AppPath<i64>,
    AppJson(doc): AppJson<RingfenceDoc>,
) -> Result<StatusCode, AppError> {
    ops::update(&state, &caller, id, doc).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(delete, path = "/api/ringfences/{id}", tag = "model", params(("id" = i64, Path)), responses((status = 204), ChangesOne), security(("bearer" = [])))]
pub(crate) async fn delete_ringfence(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(id): AppPath<i64>,
) -> Result<StatusCode, AppError> {
    ops::delete(&state, &caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
