//! The web console: server-rendered pages (askama) with a little htmx, one module per
//! resource, over the same operations as the REST API (`crate::ops`), so checks, audit and
//! agent notification are the same whichever way a change is made.
//!
//! Pages use the session cookie; every form carries the session's CSRF token in a hidden
//! `_csrf` field, checked by [`Console::act`] before the operation runs. Changes answer with a
//! redirect back to the page (post/redirect/get) and a one-line message in the query string.

use crate::AppState;
use crate::auth::{Caller, SESSION_COOKIE};
use crate::error::AppError;
use crate::ops;
use askama::Template;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};
use portcullis_policy_file::document::{
    ApplicationDoc, ChildFenceDoc, ComputerDoc, DomainRuleDoc, FileFenceDoc, FileRuleDoc, GroupDoc, NetFenceDoc,
    NetRuleDoc, OrganizationDoc, PolicyDoc, RingfenceDoc, RuleDoc,
};
use portcullis_store::{Session, now_ms};
use serde::Deserialize;
use serde_json::Value;

mod accounts;
mod applications;
mod audit;
mod baseline;
mod blocklists;
mod computers;
mod events;
mod exports;
mod forwarding;
mod hygiene;
mod login;
mod policies;
mod requests;
mod ringfences;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/policies") }))
        .route("/static/{*path}", get(asset))
        .merge(accounts::router())
        .merge(applications::router())
        .merge(audit::router())
        .merge(baseline::router())
        .merge(blocklists::router())
        .merge(computers::router())
        .merge(events::router())
        .merge(exports::router())
        .merge(forwarding::router())
        .merge(hygiene::router())
        .merge(login::router())
        .merge(policies::router())
        .merge(requests::router())
        .merge(ringfences::router())
}

#[derive(rust_embed::Embed)]
#[folder = "static/"]
struct Assets;

async fn asset(Path(path): Path<String>) -> Response {
    match Assets::get(&path) {
        Some(f) => (
            [(header::CONTENT_TYPE, f.metadata.mimetype().to_owned()), (header::CACHE_CONTROL, "no-cache".to_owned())],
            f.data,
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

// ----- sessions, pages, messages -----------------------------------------------------------

/// A logged-in console user; pages without one send the browser to the login page.
pub(crate) struct Console(Session, String);

impl FromRequestParts<AppState> for Console {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Console, Response> {
        let jar = CookieJar::from_headers(&parts.headers);
        let Some(sid) = jar.get(SESSION_COOKIE).map(|c| c.value().to_owned()) else {
            return Err(Redirect::to("/login").into_response());
        };
        match state.store.session(&sid).await {
            Ok(Some(s)) => Ok(Console(s, portcullis_store::session_list_id(&sid))),
            Ok(None) => Err(Redirect::to("/login").into_response()),
            Err(e) => Err(AppError::from(e).into_response()),
        }
    }
}

impl Console {
    /// The caller for an operation, once the form's CSRF token is checked.
    fn caller(&self, csrf: &str) -> Result<Caller, AppError> {
        if !bool::from(subtle::ConstantTimeEq::ct_eq(csrf.as_bytes(), self.0.csrf.as_bytes())) {
            return Err(AppError::Csrf);
        }
        Ok(self.reader())
    }

    /// This session's id as `GET /api/sessions` lists it.
    fn session_id_hash(&self) -> String {
        self.1.clone()
    }

    /// A form's change: check its CSRF token, run `op` as the caller, and go back to `to`
    /// with the outcome as a one-line message. Every console form that changes something
    /// goes through here.
    async fn act(&self, csrf: &str, to: &str, op: impl AsyncFnOnce(Caller) -> Result<String, AppError>) -> Response {
        let outcome = match self.caller(csrf) {
            Ok(caller) => op(caller).await,
            Err(e) => Err(e),
        };
        back(to, outcome)
    }

    /// The caller for reading (GET pages need no CSRF token).
    fn reader(&self) -> Caller {
        Caller { user: self.0.user.clone(), actor: format!("user {}", self.0.user.name) }
    }

    fn page(&self, current: &'static str, flash: Flash) -> Page {
        Page {
            user: self.0.user.name.clone(),
            role: self.0.user.role.name(),
            organization: self.0.user.org_name.clone(),
            csrf: self.0.csrf.clone(),
            current,
            ok: flash.ok,
            error: flash.error,
        }
    }
}

/// What every page's frame shows.
pub(crate) struct Page {
    user: String,
    role: &'static str,
    organization: String,
    csrf: String,
    current: &'static str,
    ok: Option<String>,
    error: Option<String>,
}

impl Page {
    fn is_current(&self, href: &str) -> bool {
        href == self.current
    }

    fn nav(&self) -> [(&'static str, &'static str); 13] {
        [
            ("/policies", "Policies"),
            ("/applications", "Applications"),
            ("/ringfences", "Ringfences"),
            ("/blocklists", "Blocklists"),
            ("/computers", "Computers"),
            ("/events", "Events"),
            ("/requests", "Requests"),
            ("/preview", "What would happen"),
            ("/exports", "Exports"),
            ("/forwarding", "Forwarding"),
            ("/hygiene", "Unused policies"),
            ("/audit", "Audit log"),
            ("/accounts", "Accounts"),
        ]
    }
}

/// Every scope a form may offer: the organization, each group, each computer.
async fn scopes(state: &AppState, caller: &Caller) -> Result<Vec<String>, AppError> {
    let mut out = vec!["organization".to_owned()];
    out.extend(ops::computers::groups(state, caller).await?.into_iter().map(|g| format!("group:{}", g.doc.path)));
    out.extend(ops::computers::computers(state, caller).await?.into_iter().map(|c| format!("computer:{}", c.doc.name)));
    Ok(out)
}

/// The names of every application, the organization's and the built-in ones.
async fn application_names(state: &AppState, caller: &Caller) -> Result<Vec<String>, AppError> {
    Ok(ops::applications::list(state, caller).await?.iter().map(|a| a.name().to_owned()).collect())
}

/// A rule in one line: its criteria, long lists counted.
fn rule_text(r: &RuleDoc) -> String {
    let v = serde_json::to_value(r).unwrap_or(Value::Null);
    let mut parts = Vec::new();
    if let Some(o) = v.as_object() {
        for (k, v) in o {
            let shown = match v {
                Value::Array(items) if items.len() > 3 => format!("{} values", items.len()),
                Value::Array(items) => {
                    items.iter().map(|i| i.as_str().unwrap_or_default().to_owned()).collect::<Vec<_>>().join(" ")
                }
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            parts.push(format!("{k} = {shown}"));
        }
    }
    parts.join(" · ")
}

/// A `POST` route for a form that carries only its CSRF token and acts on the item whose
/// id is in the path: `op` runs as the caller once the token is checked, and says what it
/// did; the browser goes back to `to` with that line ([`Console::act`]).
fn on_item<F, Fut>(to: &'static str, op: F) -> axum::routing::MethodRouter<AppState>
where
    F: Fn(AppState, Caller, i64) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<String, AppError>> + Send + 'static,
{
    post(move |State(state): State<AppState>, console: Console, Path(id): Path<i64>, Form(f): Form<CsrfOnly>| {
        let op = op.clone();
        async move { console.act(&f.csrf, to, async move |caller| op(state, caller, id).await).await }
    })
}

/// A form with nothing but its CSRF token.
#[derive(Deserialize)]
struct CsrfOnly {
    #[serde(rename = "_csrf")]
    csrf: String,
}

/// `?ok=…` / `?error=…` after a redirect.
#[derive(Default, Deserialize)]
pub(crate) struct Flash {
    ok: Option<String>,
    error: Option<String>,
}

fn encode(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Back to `path` with the outcome as a message.
fn back(path: &str, outcome: Result<String, AppError>) -> Response {
    let sep = if path.contains('?') { '&' } else { '?' };
    let url = match outcome {
        Ok(m) => format!("{path}{sep}ok={}", encode(&m)),
        Err(e) => format!("{path}{sep}error={}", encode(&e.to_string())),
    };
    Redirect::to(&url).into_response()
}

fn html<T: Template>(t: T) -> Response {
    match t.render() {
        Ok(body) => axum::response::Html(body).into_response(),
        Err(e) => {
            tracing::error!("template: {e}");
            (StatusCode::INTERNAL_SERVER_ERROR, "page could not be rendered").into_response()
        }
    }
}

fn when(ms: Option<i64>) -> String {
    match ms.and_then(|m| jiff::Timestamp::from_millisecond(m).ok()) {
        Some(t) => t.strftime("%Y-%m-%d %H:%M:%S").to_string(),
        None => "never".into(),
    }
}

fn opt(s: &str) -> Option<String> {
    let t = s.trim();
    (!t.is_empty()).then(|| t.to_owned())
}
