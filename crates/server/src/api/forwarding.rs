//! `/api/forwarders` and `/api/retention`: where events go, and how long they stay.

use super::{Changes, ChangesOne, Reads, Taken};
use crate::AppState;
use crate::auth::Caller;
use crate::error::{AppError, AppJson, AppPath};
use crate::ops::Created;
use crate::ops::forwarding::{self as ops, ForwarderInput};
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, put};
use portcullis_store::{ForwarderRow, Retention};

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/forwarders", get(forwarders).post(create_forwarder))
        .route("/api/forwarders/{id}", put(update_forwarder).delete(delete_forwarder))
        .route("/api/retention", get(retention).put(set_retention))
}

#[utoipa::path(get, path = "/api/forwarders", tag = "events", responses((status = 200, description = "each destination with its cursor, backlog and last error (never its token)", body = Vec<ForwarderRow>), Reads), security(("bearer" = [])))]
pub(crate) async fn forwarders(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<AppJson<Vec<ForwarderRow>>, AppError> {
    Ok(AppJson(ops::list(&state, &caller).await?))
}

#[utoipa::path(post, path = "/api/forwarders", tag = "events", request_body = ForwarderInput, responses((status = 201, body = Created), Changes, Taken), security(("bearer" = [])))]
pub(crate) async fn create_forwarder(
    State(state): State<AppState>,
    caller: Caller,
    AppJson(input): AppJson<ForwarderInput>,
) -> Result<(StatusCode, AppJson<Created>), AppError> {
    let id = ops::create(&state, &caller, &input).await?;
    Ok((StatusCode::CREATED, AppJson(Created { id })))
}

#[utoipa::path(put, path = "/api/forwarders/{id}", tag = "events", params(("id" = i64, Path)), request_body = ForwarderInput, responses((status = 204), ChangesOne, Taken), security(("bearer" = [])))]
pub(crate) async fn update_forwarder(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(id): AppPath<i64>,
    AppJson(input): AppJson<ForwarderInput>,
) -> Result<StatusCode, AppError> {
    ops::update(&state, &caller, id, &input).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(delete, path = "/api/forwarders/{id}", tag = "events", params(("id" = i64, Path)), responses((status = 204), ChangesOne), security(("bearer" = [])))]
pub(crate) async fn delete_forwarder(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(id): AppPath<i64>,
) -> Result<StatusCode, AppError> {
    ops::delete(&state, &caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/retention", tag = "events", responses((status = 200, body = Retention), Reads), security(("bearer" = [])))]
pub(crate) async fn retention(State(state): State<AppState>, caller: Caller) -> Result<AppJson<Retention>, AppError> {
    Ok(AppJson(ops::retention(&state, &caller).await?))
}

#[utoipa::path(put, path = "/api/retention", tag = "events", request_body = Retention, responses((status = 204), Changes), security(("bearer" = [])))]
pub(crate) async fn set_retention(
    State(state): State<AppState>,
    caller: Caller,
    AppJson(r): AppJson<Retention>,
) -> Result<StatusCode, AppError> {
    ops::set_retention(&state, &caller, r).await?;
    Ok(StatusCode::NO_CONTENT)
}
