//! `/api/baseline`: the learning baseline proposed for a scope, and its acceptance.

use super::{Changes, Reads, Taken as NameTaken};
use crate::AppState;
use crate::auth::Caller;
use crate::error::{AppError, AppJson, AppQuery};
use crate::ops::baseline::{self as ops, Acceptance, Accepted, Proposal};
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use serde::Deserialize;

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/api/baseline", get(proposal).post(accept))
}

/// Which baseline.
#[derive(Deserialize)]
pub(crate) struct ProposalQuery {
    scope: String,
    #[serde(default = "ops::default_days")]
    days: i64,
}

#[utoipa::path(get, path = "/api/baseline", tag = "model", params(("scope" = String, Query, description = "organization, group:PATH or computer:NAME"), ("days" = Option<i64>, Query, description = "candidate events of the last 1 to 366 days (30)")), responses((status = 200, description = "the learning candidates as proposed applications", body = Proposal), Reads), security(("bearer" = [])))]
pub(crate) async fn proposal(
    State(state): State<AppState>,
    caller: Caller,
    AppQuery(q): AppQuery<ProposalQuery>,
) -> Result<AppJson<Proposal>, AppError> {
    Ok(AppJson(ops::proposal(&state, &caller, &q.scope, q.days).await?))
}

#[utoipa::path(post, path = "/api/baseline", tag = "model", request_body = Acceptance, responses((status = 201, description = "the applications and the permit policy made, in one audited change", body = Accepted), Changes, NameTaken), security(("bearer" = [])))]
pub(crate) async fn accept(
    State(state): State<AppState>,
    caller: Caller,
    AppJson(a): AppJson<Acceptance>,
) -> Result<(StatusCode, AppJson<Accepted>), AppError> {
    Ok((StatusCode::CREATED, AppJson(ops::accept(&state, &caller, &a).await?)))
}
