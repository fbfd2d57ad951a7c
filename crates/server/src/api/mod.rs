//! The REST API, one module per resource: thin adapters from HTTP (JSON bodies, paths,
//! queries, statuses) to the operations in `ops/`, with the `utoipa` annotations the OpenAPI
//! document is made from. Every answer is a typed view with a schema.

pub(crate) mod accounts;
pub(crate) mod agents;
pub(crate) mod applications;
pub(crate) mod baseline;
pub(crate) mod blocklists;
pub(crate) mod computers;
pub(crate) mod events;
pub(crate) mod exports;
pub(crate) mod forwarding;
pub(crate) mod policies;
pub(crate) mod requests;
pub(crate) mod ringfences;

use crate::AppState;
use crate::error::ErrorBody;
use axum::Router;

/// Every endpoint of the API.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .merge(accounts::router())
        .merge(agents::router())
        .merge(baseline::router())
        .merge(applications::router())
        .merge(blocklists::router())
        .merge(computers::router())
        .merge(events::router())
        .merge(forwarding::router())
        .merge(exports::router())
        .merge(policies::router())
        .merge(requests::router())
        .merge(ringfences::router())
}

/// What a read can answer besides its result.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub(crate) enum Reads {
    /// No session or token.
    #[response(status = 401, description = "not logged in")]
    Unauthorized(ErrorBody),
    /// The role may not, or a session's CSRF token is missing.
    #[response(status = 403, description = "role or CSRF")]
    Forbidden(ErrorBody),
}

/// What a read of one item by id can answer besides it.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub(crate) enum ReadsOne {
    /// A malformed id.
    #[response(status = 400, description = "malformed")]
    BadRequest(ErrorBody),
    /// No session or token.
    #[response(status = 401, description = "not logged in")]
    Unauthorized(ErrorBody),
    /// The role may not, or a session's CSRF token is missing.
    #[response(status = 403, description = "role or CSRF")]
    Forbidden(ErrorBody),
    /// No such item in the caller's organization (another organization's ids look the same).
    #[response(status = 404, description = "not found")]
    NotFound(ErrorBody),
}

/// What a change can answer besides its result.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub(crate) enum Changes {
    /// Malformed input.
    #[response(status = 400, description = "malformed")]
    BadRequest(ErrorBody),
    /// No session or token.
    #[response(status = 401, description = "not logged in")]
    Unauthorized(ErrorBody),
    /// The role may not, a read-only token, or a session's CSRF token is missing.
    #[response(status = 403, description = "role, read-only token or CSRF")]
    Forbidden(ErrorBody),
    /// Over 1 MiB.
    #[response(status = 413, description = "body over 1 MiB")]
    TooLarge(ErrorBody),
    /// Not JSON.
    #[response(status = 415, description = "not JSON")]
    NotJson(ErrorBody),
    /// Refused: the organization's policy would not load (every problem listed), or fields
    /// are unknown.
    #[response(status = 422, description = "refused: the policy would not load, or fields unknown")]
    Refused(ErrorBody),
}

/// What a change of one item by id can answer besides its result.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub(crate) enum ChangesOne {
    /// Malformed input.
    #[response(status = 400, description = "malformed")]
    BadRequest(ErrorBody),
    /// No session or token.
    #[response(status = 401, description = "not logged in")]
    Unauthorized(ErrorBody),
    /// The role may not, a read-only token, or a session's CSRF token is missing.
    #[response(status = 403, description = "role, read-only token or CSRF")]
    Forbidden(ErrorBody),
    /// No such item in the caller's organization.
    #[response(status = 404, description = "not found")]
    NotFound(ErrorBody),
    /// Over 1 MiB.
    #[response(status = 413, description = "body over 1 MiB")]
    TooLarge(ErrorBody),
    /// Not JSON.
    #[response(status = 415, description = "not JSON")]
    NotJson(ErrorBody),
    /// Refused: the organization's policy would not load, the item is in use, or fields are
    /// unknown.
    #[response(status = 422, description = "refused: the policy would not load, in use, or fields unknown")]
    Refused(ErrorBody),
}

/// A name that is taken.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub(crate) enum Taken {
    /// The name is taken.
    #[response(status = 409, description = "name taken")]
    Conflict(ErrorBody),
}
