//! The server's Prometheus metrics: counters and histograms the handlers add to as they go
//! ([`Metrics`]), and what is read at each scrape (agents online and stale per organization,
//! the database pool). Served by [`router`] on a listener of its own (`--metrics-listen`),
//! never on the console's port: it needs no login and says how big each organization is.

use crate::AppState;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// The content type of the text [`render`] writes (OpenMetrics, which Prometheus reads).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What became of an event an agent sent.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum EventOutcome {
    /// Stored.
    Stored,
    /// Already stored (sent again after a lost reply).
    Duplicate,
    /// Not an event record, or a time that is not one.
    Refused,
    /// Over the agent's per-minute quota (answered 429; the agent sends it again).
    OverQuota,
}

impl EncodeLabelValue for EventOutcome {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(match self {
            EventOutcome::Stored => "stored",
            EventOutcome::Duplicate => "duplicate",
            EventOutcome::Refused => "refused",
            EventOutcome::OverQuota => "over_quota",
        })
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    outcome: EventOutcome,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

/// The counters and histograms the server keeps while it runs (one per process: several
/// servers on one database each have theirs, and Prometheus adds them up).
#[derive(Debug)]
pub struct Metrics {
    events: Family<EventLabels, Counter>,
    propagation: Histogram,
    requests: Family<RequestLabels, Histogram>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics {
            events: Family::default(),
            propagation: Histogram::new([0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0]),
            requests: Family::new_with_constructor(|| {
                Histogram::new([
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                ])
            }),
        }
    }
}

impl Metrics {
    /// Count `n` events an agent sent by what became of them.
    pub fn events(&self, outcome: EventOutcome, n: u64) {
        self.events.get_or_create(&EventLabels { outcome }).inc_by(n);
    }

    /// A bundle went to an agent this long after this server learned of its version.
    pub fn propagated(&self, lag: Duration) {
        self.propagation.observe(lag.as_secs_f64());
    }

    fn request(&self, method: &str, route: &str, status: StatusCode, took: Duration) {
        let labels = RequestLabels { method: method.to_owned(), route: route.to_owned(), status: status.as_u16() };
        self.requests.get_or_create(&labels).observe(took.as_secs_f64());
    }
}

/// Times every request by its route's pattern (`/api/policies/{id}`, never the id itself:
/// the label set stays small whatever the requests say); a path no route matches counts
/// as `unmatched`.
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", |m| m.as_str()).to_owned();
    // A fixed set: a method is the client's text, and every label value is kept for good.
    let method = match *request.method() {
        axum::http::Method::GET => "GET",
        axum::http::Method::POST => "POST",
        axum::http::Method::PUT => "PUT",
        axum::http::Method::DELETE => "DELETE",
        axum::http::Method::PATCH => "PATCH",
        axum::http::Method::HEAD => "HEAD",
        axum::http::Method::OPTIONS => "OPTIONS",
        _ => "other",
    };
    let started = Instant::now();
    let response = next.run(request).await;
    state.metrics.request(method, &route, response.status(), started.elapsed());
    response
}

/// What is read from the database at a scrape.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// `(organization, agents seen within [`crate::ONLINE_WITHIN_MS`], the others)`.
    pub agents: Vec<(String, i64, i64)>,
    /// `(open connections, idle, most)`.
    pub pool: (u32, u32, u32),
    /// Versions read on a timer, and announcements heard (see [`crate::hub::SyncHub`]).
    pub version_polls: u64,
    /// Announcements of changed versions heard from the database.
    pub announcements: u64,
}

/// The text Prometheus scrapes.
pub fn render(metrics: &Metrics, snapshot: &Snapshot) -> String {
    let mut r = Registry::with_prefix("portcullis_server");
    r.register("events", "Events agents sent, by what became of them", metrics.events.clone());
    r.register_with_unit(
        "bundle_propagation",
        "Time from this server learning of a new policy version to sending it to an agent that enforced an older one",
        Unit::Seconds,
        metrics.propagation.clone(),
    );
    r.register_with_unit(
        "http_request_duration",
        "Requests by method, route pattern and status",
        Unit::Seconds,
        metrics.requests.clone(),
    );
    let agents = Family::<[(&'static str, String); 2], prometheus_client::metrics::gauge::Gauge>::default();
    for (org, online, stale) in &snapshot.agents {
        agents.get_or_create(&[("organization", org.clone()), ("state", "online".into())]).set(*online);
        agents.get_or_create(&[("organization", org.clone()), ("state", "stale".into())]).set(*stale);
    }
    r.register("agents", "Enrolled agents by organization: online (in contact recently) or stale", agents);
    let (size, idle, max) = snapshot.pool;
    let pool = Family::<[(&'static str, &'static str); 1], prometheus_client::metrics::gauge::Gauge>::default();
    pool.get_or_create(&[("state", "busy")]).set(i64::from(size.saturating_sub(idle)));
    pool.get_or_create(&[("state", "idle")]).set(i64::from(idle));
    r.register("db_connections", "Database connections of this server's pool, busy or idle", pool);
    r.register("db_connections_max", "Most connections the pool opens", ConstGauge::new(i64::from(max)));
    r.register(
        "version_polls",
        "Reads of every organization's version on a timer (none on PostgreSQL while LISTEN works)",
        ConstCounter::new(snapshot.version_polls),
    );
    r.register(
        "version_announcements",
        "Announcements of a changed version heard from the database (PostgreSQL NOTIFY)",
        ConstCounter::new(snapshot.announcements),
    );
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &r).expect("writing to a String");
    out
}

async fn scrape(State(state): State<AppState>) -> Response {
    let since = portcullis_store::now_ms() - crate::ONLINE_WITHIN_MS;
    let agents = match state.store.agent_presence(since).await {
        Ok(a) => a,
        Err(e) => {
            tracing::error!("metrics: reading agents: {e}");
            return (StatusCode::SERVICE_UNAVAILABLE, format!("the database cannot be read: {e}\n")).into_response();
        }
    };
    let snapshot = Snapshot {
        agents,
        pool: state.store.pool_use(),
        version_polls: state.hub.version_polls(),
        announcements: state.hub.announcements(),
    };
    let mut response = render(&state.metrics, &snapshot).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    response
}

/// `GET /metrics`, for the metrics listener.
pub fn router(state: AppState) -> axum::Router {
    axum::Router::new().route("/metrics", axum::routing::get(scrape)).with_state(state)
}
