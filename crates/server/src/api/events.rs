//! `/api/events`, `/api/preview` and policies made from events.

use super::{ChangesOne, ReadsOne, Taken};
use crate::AppState;
use crate::auth::Caller;
use crate::error::{AppError, AppJson, AppPath, AppQuery};
use crate::ops::events::{
    self as ops, EventDetail, EventQuery, FromEvent, MadePolicy, Preview, PreviewRequest, RulePreview,
};
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use portcullis_store::EventRow;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/preview", post(preview))
        .route("/api/events", get(events))
        .route("/api/events/{id}", get(event))
        .route("/api/events/{id}/policy", post(policy_from_event))
}

#[utoipa::path(post, path = "/api/preview", tag = "events", request_body = PreviewRequest, responses((status = 200, body = Preview), ChangesOne), security(("bearer" = [])))]
pub(crate) async fn preview(
    State(state): State<AppState>,
    caller: Caller,
    AppJson(req): AppJson<PreviewRequest>,
) -> Result<AppJson<Preview>, AppError> {
    Ok(AppJson(ops::preview(&state, &caller, req).await?))
}

#[utoipa::path(get, path = "/api/events", tag = "events", params(("computer" = Option<String>, Query), ("verdict" = Option<String>, Query, description = "allow, deny, or an event kind: would-deny, candidate, overload, ringfence-deny, ringfence-would-deny"), ("file" = Option<String>, Query), ("policy" = Option<String>, Query), ("from" = Option<String>, Query), ("to" = Option<String>, Query), ("before_id" = Option<i64>, Query), ("limit" = Option<i64>, Query)), responses((status = 200, description = "newest first", body = Vec<EventRow>), ReadsOne), security(("bearer" = [])))]
pub(crate) async fn events(
    State(state): State<AppState>,
    caller: Caller,
    AppQuery(q): AppQuery<EventQuery>,
) -> Result<AppJson<Vec<EventRow>>, AppError> {
    Ok(AppJson(ops::list(&state, &caller, &q).await?))
}

#[utoipa::path(get, path = "/api/events/{id}", tag = "events", params(("id" = i64, Path)), responses((status = 200, body = EventDetail), ReadsOne), security(("bearer" = [])))]
pub(crate) async fn event(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(id): AppPath<i64>,
) -> Result<AppJson<EventDetail>, AppError> {
    Ok(AppJson(ops::get(&state, &caller, id).await?))
}

/// "Create a policy from this event": an application with one rule taken from the event's
/// file, and a policy for it placed last (move it where it belongs). With `preview`, only
/// what it would match (any role may look).
#[utoipa::path(post, path = "/api/events/{id}/policy", tag = "events", params(("id" = i64, Path)), request_body = FromEvent, responses((status = 201, body = MadePolicy), (status = 200, description = "preview: the rule and what it matches; nothing saved", body = RulePreview), ChangesOne, Taken), security(("bearer" = [])))]
pub(crate) async fn policy_from_event(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(id): AppPath<i64>,
    AppJson(req): AppJson<FromEvent>,
) -> Result<Response, AppError> {
    if req.preview {
        return Ok(AppJson(ops::preview_policy_from_event(&state, &caller, id, &req.kind).await?).into_response());
    }
    let made = ops::policy_from_event(&state, &caller, id, &req).await?;
    Ok((StatusCode::CREATED, AppJson(made)).into_response())
}
