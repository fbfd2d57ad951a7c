//! The Portcullis management server: `app(state)` builds the whole HTTP surface as one
//! `Router`, so that tests drive it without a socket and `portcullis server` only binds it.
//!
//! Every request is scoped to the caller's organization: handlers take an [`auth::Caller`]
//! and pass its organization id to the store; nothing takes an organization from the request.
//! Errors are one type, [`error::AppError`], answered as `{"error": "..."}` with the status
//! that fits.

pub mod auth;
pub mod error;
mod routes;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use portcullis_store::Store;

/// What every handler shares.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The database.
    pub store: Store,
    /// Session cookies carry `Secure` (the server speaks HTTPS).
    pub secure_cookies: bool,
}

/// Largest request body accepted.
pub const MAX_BODY: usize = 1 << 20;

/// The whole HTTP surface.
pub fn app(state: AppState) -> Router {
    routes::router().layer(DefaultBodyLimit::max(MAX_BODY)).with_state(state)
}
