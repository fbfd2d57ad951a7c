//! Who is calling: a session cookie (with its CSRF token on every state-changing request) or
//! an API token (`Authorization: Bearer`), and what their role allows.

use crate::AppState;
use crate::error::AppError;
use axum::extract::FromRequestParts;
use axum::http::Method;
use axum::http::request::Parts;
use axum_extra::extract::CookieJar;
use portcullis_store::{Role, User};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "portcullis_session";
/// The header that carries a session's CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// An authenticated caller.
#[derive(Clone, Debug)]
pub struct Caller {
    /// The user.
    pub user: User,
    /// How they authenticated, for the audit log: `user NAME` or `token of NAME`.
    pub actor: String,
}

impl Caller {
    /// Refuse unless the role may change the organization's model.
    pub fn require_change(&self) -> Result<(), AppError> {
        if self.user.role.can_change() { Ok(()) } else { Err(AppError::Forbidden(self.user.role.name())) }
    }

    /// Refuse unless the caller is an admin.
    pub fn require_admin(&self) -> Result<(), AppError> {
        if self.user.role == Role::Admin { Ok(()) } else { Err(AppError::Forbidden(self.user.role.name())) }
    }
}

fn changes_state(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Caller, AppError> {
        if let Some(value) = parts.headers.get(axum::http::header::AUTHORIZATION) {
            let token = value.to_str().ok().and_then(|v| v.strip_prefix("Bearer ")).ok_or(AppError::Unauthorized)?;
            let used = state.store.token_use(token.trim()).await?.ok_or(AppError::Unauthorized)?;
            // The one place read-only tokens are held to reading: no handler that changes
            // anything is reached with one.
            if used.read_only && changes_state(&parts.method) {
                return Err(AppError::ReadOnly);
            }
            let actor = format!("token of {}", used.user.name);
            return Ok(Caller { user: used.user, actor });
        }
        let jar = CookieJar::from_headers(&parts.headers);
        let sid = jar.get(SESSION_COOKIE).map(|c| c.value().to_owned()).ok_or(AppError::Unauthorized)?;
        let session = state.store.session(&sid).await?.ok_or(AppError::Unauthorized)?;
        if changes_state(&parts.method) {
            let sent = parts.headers.get(CSRF_HEADER).map(|v| v.as_bytes()).unwrap_or_default();
            if !bool::from(subtle::ConstantTimeEq::ct_eq(sent, session.csrf.as_bytes())) {
                return Err(AppError::Csrf);
            }
        }
        let actor = format!("user {}", session.user.name);
        Ok(Caller { user: session.user, actor })
    }
}

/// The client's address, when the server knows it (the socket's peer; behind a proxy, the
/// proxy's), for per-address login throttling.
pub struct ClientAddr(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<ClientAddr, Self::Rejection> {
        let peer = parts.extensions.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>();
        Ok(ClientAddr(peer.map(|c| c.0.ip().to_string())))
    }
}
