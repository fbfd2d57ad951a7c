//! The Portcullis management server: `app(state)` builds the whole HTTP surface as one
//! `Router`, so that tests drive it without a socket and `portcullis server` only binds it.
//!
//! By resource, under the same names in each layer: `ops/` holds the operations (the one
//! path of every change: role → model check → store → wake the agents; reads as typed
//! views), `api/` the JSON adapters with their OpenAPI annotations, `console/` the web
//! pages and forms. `hub` is what long-polling agents wait on.
//!
//! Every request is scoped to the caller's organization: handlers take an [`auth::Caller`]
//! and pass its organization id to the store; nothing takes an organization from the request.
//! Errors are one type, [`error::AppError`], answered as `{"error": "..."}` with the status
//! that fits.

mod api;
pub mod auth;
pub mod background;
mod console;
pub mod error;
pub mod hub;
pub mod metrics;
pub mod openapi;
mod ops;
pub mod santa;

pub use api::agents::{MAX_BATCH, MAX_CLOCK_SKEW_MS, MAX_EVENT_FIELD, MAX_HITS, MAX_WAIT};
pub use hub::{EVENTS_PER_MINUTE, HOST_REPORTS_PER_MINUTE, PACKAGE_REPORTS_PER_MINUTE};
pub use ops::computers::ONLINE_WITHIN_MS;

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
    pub hub: Arc<hub::SyncHub>,
    /// Counters and histograms for Prometheus.
    pub metrics: Arc<metrics::Metrics>,
}

impl AppState {
    /// State over `store`; starts following changes made by other servers sharing the
    /// database (needs a Tokio runtime).
    pub fn new(store: Store, secure_cookies: bool) -> AppState {
        let hub = Arc::new(hub::SyncHub::default());
        hub::SyncHub::watch_database(&hub, store.clone());
        AppState { store, secure_cookies, hub, metrics: Arc::default() }
    }
}

/// Largest request body accepted.
pub const MAX_BODY: usize = 1 << 20;

/// The Content-Security-Policy of every response: scripts and styles from this server only
/// (no inline script; inline `style` attributes are allowed, the console's tree indents
/// use them), no framing, no plugins, forms post only here.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

async fn security_headers(
    axum::extract::State(tls): axum::extract::State<bool>,
    mut res: axum::response::Response,
) -> axum::response::Response {
    use axum::http::{HeaderValue, header};
    let h = res.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    // Pages and answers carry tokens, credentials and the organization's model: no cache
    // keeps them (the console's static files say otherwise for themselves).
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if tls {
        h.insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static("max-age=31536000"));
    }
    res
}

/// The whole HTTP surface.
pub fn app(state: AppState) -> Router {
    let tls = state.secure_cookies;
    api::router()
        .merge(openapi::router())
        .merge(console::router())
        .merge(santa::router())
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), metrics::track))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::map_response_with_state(tls, security_headers))
        .with_state(state)
}
