//! The Portcullis management server: `app(state)` builds the whole HTTP surface as one
//! `Router`, so that tests drive it without a socket and `portcullis server` only binds it.
//!
//! Every request is scoped to the caller's organization: handlers take an [`auth::Caller`]
//! and pass its organization id to the store; nothing takes an organization from the request.
//! Errors are one type, [`error::AppError`], answered as `{"error": "..."}` with the status
//! that fits.

pub mod agent_api;
pub mod auth;
mod console;
pub mod error;
mod model_api;
pub mod openapi;
mod routes;
pub mod sync;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use portcullis_store::Store;
use std::sync::Arc;

/// What every handler shares.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The database.
    pub store: Store,
    /// Session cookies carry `Secure` (the server speaks HTTPS).
    pub secure_cookies: bool,
    /// Versions and compiled documents, for agents.
    pub sync: Arc<sync::SyncHub>,
}

impl AppState {
    /// State over `store`; starts following changes made by other servers sharing the
    /// database (needs a Tokio runtime).
    pub fn new(store: Store, secure_cookies: bool) -> AppState {
        let sync = Arc::new(sync::SyncHub::default());
        sync::SyncHub::watch_database(&sync, store.clone());
        AppState { store, secure_cookies, sync }
    }
}

/// Largest request body accepted.
pub const MAX_BODY: usize = 1 << 20;

/// The whole HTTP surface.
pub fn app(state: AppState) -> Router {
    routes::router()
        .merge(model_api::router())
        .merge(agent_api::router())
        .merge(console::router())
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}
