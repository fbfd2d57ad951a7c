//! `/api/requests`: the approval queue and its decisions.

use super::{ChangesOne, Reads};
use crate::AppState;
use crate::auth::Caller;
use crate::error::{AppError, AppJson, AppPath, AppQuery};
use crate::ops::requests::{self as ops, Decide, Decided};
use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use portcullis_store::ApprovalRequestRow;
use serde::Deserialize;

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/api/requests", get(requests)).route("/api/requests/{id}/decide", post(decide))
}

/// Which requests.
#[derive(Deserialize)]
pub(crate) struct RequestsQuery {
    status: Option<String>,
}

#[utoipa::path(get, path = "/api/requests", tag = "events", params(("status" = Option<String>, Query, description = "pending, approved or rejected")), responses((status = 200, description = "newest first, with the denied event and on how many computers the file was seen", body = Vec<ApprovalRequestRow>), Reads), security(("bearer" = [])))]
pub(crate) async fn requests(
    State(state): State<AppState>,
    caller: Caller,
    AppQuery(q): AppQuery<RequestsQuery>,
) -> Result<AppJson<Vec<ApprovalRequestRow>>, AppError> {
    Ok(AppJson(ops::list(&state, &caller, q.status.as_deref()).await?))
}

#[utoipa::path(post, path = "/api/requests/{id}/decide", tag = "events", params(("id" = i64, Path)), request_body = Decide, responses((status = 200, body = Decided), ChangesOne), security(("bearer" = [])))]
pub(crate) async fn decide(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(id): AppPath<i64>,
    AppJson(d): AppJson<Decide>,
) -> Result<AppJson<Decided>, AppError> {
    Ok(AppJson(ops::decide(&state, &caller, id, &d).await?))
}
