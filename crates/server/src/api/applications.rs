//! `/api/applications`: the built-in catalogue and the organization's own.

use super::{Changes, ChangesOne, Reads, Taken};
use crate::AppState;
use crate::auth::Caller;
use crate::error::{AppError, AppJson, AppPath};
use crate::ops::Created;
use crate::ops::applications::{self as ops, ApplicationView};
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, put};
use portcullis_policy_file::document::ApplicationDoc;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/applications", get(applications).post(create_application))
        .route("/api/applications/{id}", put(update_application).delete(delete_application))
}

#[utoipa::path(get, path = "/api/applications", tag = "model", responses((status = 200, body = Vec<ApplicationView>), Reads), security(("bearer" = [])))]
pub(crate) async fn applications(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<AppJson<Vec<ApplicationView>>, AppError> {
    Ok(AppJson(ops::list(&state, &caller).await?))
}

#[utoipa::path(post, path = "/api/applications", tag = "model", request_body = ApplicationDoc, responses((status = 201, body = Created), Changes, Taken), security(("bearer" = [])))]
pub(crate) async fn create_application(
    State(state): State<AppState>,
    caller: Caller,
    AppJson(doc): AppJson<ApplicationDoc>,
) -> Result<(StatusCode, AppJson<Created>), AppError> {
    let id = ops::create(&state, &caller, doc).await?;
    Ok((StatusCode::CREATED, AppJson(Created { id })))
}

#[utoipa::path(put, path = "/api/applications/{id}", tag = "model", params(("id" = i64, Path)), request_body = ApplicationDoc, responses((status = 204), ChangesOne), security(("bearer" = [])))]
pub(crate) async fn update_application(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(id): AppPath<i64>,
    AppJson(doc): AppJson<ApplicationDoc>,
) -> Result<StatusCode, AppError> {
    ops::update(&state, &caller, id, doc).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(delete, path = "/api/applications/{id}", tag = "model", params(("id" = i64, Path)), responses((status = 204), ChangesOne), security(("bearer" = [])))]
pub(crate) async fn delete_application(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(id): AppPath<i64>,
) -> Result<StatusCode, AppError> {
    ops::delete(&state, &caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
