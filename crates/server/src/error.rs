//! One error type for every handler: a status and a message for the caller, internal faults
//! logged and answered with a generic message.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use portcullis_store::{LoginError, StoreError};

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The request is malformed or names something invalid.
    #[error("{0}")]
    BadRequest(String),
    /// No valid session or token.
    #[error("log in first (session cookie) or send Authorization: Bearer <token>")]
    Unauthorized,
    /// A state-changing request in a session without the session's CSRF token.
    #[error("missing or wrong X-CSRF-Token header for this session")]
    Csrf,
    /// The caller's role may not do this.
    #[error("your role ({0}) may not do this")]
    Forbidden(&'static str),
    /// Not found (also what another organization's ids look like).
    #[error("not found")]
    NotFound,
    /// The name is taken.
    #[error("{0}")]
    Conflict(String),
    /// The change would leave a policy that does not load; every problem is listed.
    #[error("the change is refused: {}", .0.join("; "))]
    Invalid(Vec<String>),
    /// Login refused.
    #[error("{0}")]
    Login(LoginError),
    /// A quota is used up (an agent's reports, pending enrollments).
    #[error("{0}")]
    Quota(String),
    /// The agent's enrollment waits for an administrator.
    #[error("{}", portcullis_protocol::ENROLLMENT_PENDING)]
    Pending,
    /// A read-only API token asked to change something.
    #[error("this API token may only read")]
    ReadOnly,
    /// The body is not the JSON the endpoint takes.
    #[error(transparent)]
    Json(#[from] JsonRejection),
    /// A path parameter is malformed.
    #[error(transparent)]
    Path(#[from] PathRejection),
    /// The query string is malformed.
    #[error(transparent)]
    Query(#[from] QueryRejection),
    /// The database has no connection free in time (a burst of agents): answered 503 with
    /// `Retry-After`, which agents honour by sending again.
    #[error("the server is busy; try again in a second")]
    Busy,
    /// The database failed.
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> AppError {
        match e {
            // A signing key that does not open: the state of the organization, which only
            // its operator can repair (the message says how), not an internal fault.
            StoreError::Exists { .. } | StoreError::Conflict(_) | StoreError::Secret(_) => {
                AppError::Conflict(e.to_string())
            }
            StoreError::NotFound(_) => AppError::NotFound,
            StoreError::Invalid(m) => AppError::Invalid(vec![m]),
            StoreError::Quota(m) => AppError::Quota(m),
            e if e.is_busy() => AppError::Busy,
            other => AppError::Store(other),
        }
    }
}

impl From<LoginError> for AppError {
    fn from(e: LoginError) -> AppError {
        match e {
            LoginError::Store(s) => AppError::Store(s),
            other => AppError::Login(other),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = match &self {
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::Unauthorized => StatusCode::UNAUTHORIZED,
            AppError::Csrf | AppError::Forbidden(_) | AppError::Pending | AppError::ReadOnly => StatusCode::FORBIDDEN,
            AppError::Quota(_) | AppError::Login(LoginError::Busy) => StatusCode::TOO_MANY_REQUESTS,
            AppError::NotFound => StatusCode::NOT_FOUND,
            AppError::Conflict(_) => StatusCode::CONFLICT,
            AppError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            AppError::Login(LoginError::Throttled { .. }) => StatusCode::TOO_MANY_REQUESTS,
            AppError::Login(_) => StatusCode::UNAUTHORIZED,
            AppError::Json(r) => r.status(),
            AppError::Path(r) => r.status(),
            AppError::Query(r) => r.status(),
            AppError::Busy => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let message = match &self {
            AppError::Store(e) => {
                tracing::error!("internal error: {}", portcullis_policy::with_causes(e));
                "internal error".to_owned()
            }
            AppError::Json(r) => r.body_text(),
            AppError::Path(r) => r.body_text(),
            AppError::Query(r) => r.body_text(),
            other => other.to_string(),
        };
        let problems = match &self {
            AppError::Invalid(problems) => Some(problems.clone()),
            _ => None,
        };
        let mut response = (status, Json(ErrorBody { error: message, problems })).into_response();
        if matches!(self, AppError::Busy) {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from_static("1"));
        }
        response
    }
}

/// Every error's body.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong, for people.
    pub error: String,
    /// With 422 from a model change: every problem found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problems: Option<Vec<String>>,
}

/// JSON in and out, with rejections answered as [`AppError`].
#[derive(axum::extract::FromRequest)]
#[from_request(via(axum::Json), rejection(AppError))]
pub struct AppJson<T>(pub T);

impl<T: serde::Serialize> IntoResponse for AppJson<T> {
    fn into_response(self) -> Response {
        Json(self.0).into_response()
    }
}

/// A path parameter, with rejections answered as [`AppError`] (JSON, like every error).
#[derive(axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(AppError))]
pub struct AppPath<T>(pub T);

/// A query string, with rejections answered as [`AppError`].
#[derive(axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(AppError))]
pub struct AppQuery<T>(pub T);
