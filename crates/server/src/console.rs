//! The web console: server-rendered pages (askama) with a little htmx, over the same
//! operations as the REST API — every form calls the API's handler, so checks, audit and
//! agent notification are the same whichever way a change is made.
//!
//! Pages use the session cookie; every form carries the session's CSRF token in a hidden
//! `_csrf` field. Changes answer with a redirect back to the page (post/redirect/get) and a
//! one-line message in the query string.

use crate::AppState;
use crate::auth::{Caller, SESSION_COOKIE};
use crate::error::{AppError, AppJson};
use crate::model_api as api;
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

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .merge(accounts::router())
        .route("/", get(|| async { Redirect::to("/policies") }))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/static/{*path}", get(asset))
        .route("/policies", get(policies_page).post(create_policy))
        .route("/policies/{id}/move", post(move_policy))
        .route("/policies/{id}/toggle", post(toggle_policy))
        .route("/policies/{id}/delete", post(delete_policy))
        .route("/applications", get(applications_page).post(create_application))
        .route("/applications/{id}/delete", post(delete_application))
        .route("/ringfences", get(ringfences_page).post(create_ringfence))
        .route("/ringfences/{id}/delete", post(delete_ringfence))
        .route("/blocklists", get(blocklists_page).post(create_blocklist))
        .route("/blocklists/{id}", get(blocklist_page))
        .route("/blocklists/{id}/extract", post(extract))
        .route("/blocklists/{id}/hashes", post(add_hashes))
        .route("/blocklists/{id}/rules", post(add_rule))
        .route("/blocklists/{id}/rules/{index}/delete", post(delete_rule))
        .route("/blocklists/{id}/approve", post(approve))
        .route("/blocklists/{id}/revoke", post(revoke))
        .route("/blocklists/{id}/delete", post(delete_blocklist))
        .route("/computers", get(computers_page))
        .route("/settings", post(settings))
        .route("/groups", post(create_group))
        .route("/groups/{id}/token", post(group_token))
        .route("/groups/{id}/token/revoke", post(revoke_group_token))
        .route("/groups/{id}/delete", post(delete_group))
        .route("/computers/{id}", post(update_computer))
        .route("/computers/{id}/delete", post(delete_computer))
        .route("/bundle-key/rotate", post(rotate_bundle_key))
        .route("/enrollments/{id}/accept", post(accept_enrollment))
        .route("/enrollments/{id}/reject", post(reject_enrollment))
        .route("/events", get(events_page))
        .route("/events/{id}", get(event_page))
        .route("/events/{id}/policy", post(policy_from_event))
        .route("/preview", get(preview_page).post(preview))
        .route("/hygiene", get(hygiene_page))
        .route("/hygiene/remove", post(hygiene_remove))
        .route("/audit", get(audit_page))
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

    fn nav(&self) -> [(&'static str, &'static str); 10] {
        [
            ("/policies", "Policies"),
            ("/applications", "Applications"),
            ("/ringfences", "Ringfences"),
            ("/blocklists", "Blocklists"),
            ("/computers", "Computers"),
            ("/events", "Events"),
            ("/preview", "What would happen"),
            ("/hygiene", "Unused policies"),
            ("/audit", "Audit log"),
            ("/accounts", "Accounts"),
        ]
    }
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

fn json_list(v: &Value) -> Vec<Value> {
    v.as_array().cloned().unwrap_or_default()
}

fn text(v: &Value) -> String {
    v.as_str().map(str::to_owned).unwrap_or_default()
}

// ----- login ---------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    ok: Option<String>,
    error: Option<String>,
    organization: String,
    login_token: String,
}

#[derive(Deserialize)]
struct LoginQuery {
    ok: Option<String>,
    error: Option<String>,
    organization: Option<String>,
}

/// The login form's own CSRF cookie: the form carries the same random value, so a page on
/// another site cannot log a browser in to an account of the attacker's choosing.
pub(crate) const LOGIN_COOKIE: &str = "portcullis_login";

async fn login_page(State(state): State<AppState>, jar: CookieJar, Query(q): Query<LoginQuery>) -> Response {
    let login_token = match jar.get(LOGIN_COOKIE) {
        Some(c) if c.value().len() == 64 => c.value().to_owned(),
        _ => {
            let mut b = [0u8; 32];
            if getrandom::fill(&mut b).is_err() {
                return AppError::BadRequest("no randomness for the login form".into()).into_response();
            }
            b.iter().map(|x| format!("{x:02x}")).collect()
        }
    };
    let cookie = Cookie::build((LOGIN_COOKIE, login_token.clone()))
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(state.secure_cookies)
        .path("/login")
        .build();
    (
        jar.add(cookie),
        html(LoginPage { ok: q.ok, error: q.error, organization: q.organization.unwrap_or_default(), login_token }),
    )
        .into_response()
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(rename = "_login", default)]
    login_token: String,
    organization: String,
    user: String,
    password: String,
}

async fn login(
    State(state): State<AppState>,
    jar: CookieJar,
    crate::auth::ClientAddr(client): crate::auth::ClientAddr,
    Form(f): Form<LoginForm>,
) -> Response {
    let expected = jar.get(LOGIN_COOKIE).map(|c| c.value().to_owned()).unwrap_or_default();
    if expected.is_empty() || !bool::from(subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), f.login_token.as_bytes()))
    {
        let url = format!(
            "/login?organization={}&error={}",
            encode(&f.organization),
            encode("the login form expired or came from another site; log in again")
        );
        return Redirect::to(&url).into_response();
    }
    match state.store.login_from(&f.organization, &f.user, &f.password, client.as_deref()).await {
        Ok((sid, session)) => {
            let actor = format!("user {}", session.user.name);
            if let Err(e) = state.store.audit(session.user.org_id, &actor, "login", &actor, None, None).await {
                return AppError::from(e).into_response();
            }
            let cookie = Cookie::build((SESSION_COOKIE, sid))
                .http_only(true)
                .same_site(SameSite::Strict)
                .secure(state.secure_cookies)
                .path("/")
                .build();
            (jar.add(cookie), Redirect::to("/policies")).into_response()
        }
        Err(e) => {
            let url = format!("/login?organization={}&error={}", encode(&f.organization), encode(&e.to_string()));
            Redirect::to(&url).into_response()
        }
    }
}

#[derive(Deserialize)]
struct CsrfOnly {
    #[serde(rename = "_csrf")]
    csrf: String,
}

async fn logout(State(state): State<AppState>, console: Console, jar: CookieJar, Form(f): Form<CsrfOnly>) -> Response {
    if console.caller(&f.csrf).is_err() {
        return AppError::Csrf.into_response();
    }
    if let Some(c) = jar.get(SESSION_COOKIE) {
        let _ = state.store.logout(c.value()).await;
    }
    (jar.remove(Cookie::build(SESSION_COOKIE).path("/")), Redirect::to("/login")).into_response()
}

// ----- policies --------------------------------------------------------------------------------

struct PolicyView {
    id: i64,
    position: i64,
    name: String,
    applications: String,
    action: String,
    denies: bool,
    scope: String,
    monitor: bool,
    enabled: bool,
    expires: String,
    hits: i64,
    last_matched: String,
    builtin: bool,
}

#[derive(Template)]
#[template(path = "policies.html")]
struct PoliciesPage {
    page: Page,
    policies: Vec<PolicyView>,
    applications: Vec<String>,
    scopes: Vec<String>,
    ringfences: Vec<String>,
}

async fn scopes(state: &AppState, org_id: i64) -> Result<Vec<String>, AppError> {
    let mut out = vec!["organization".to_owned()];
    out.extend(state.store.groups(org_id).await?.into_iter().map(|g| format!("group:{}", g.doc.path)));
    out.extend(state.store.computers(org_id).await?.into_iter().map(|c| format!("computer:{}", c.doc.name)));
    Ok(out)
}

async fn application_names(state: &AppState, org_id: i64) -> Result<Vec<String>, AppError> {
    let mut names: Vec<String> = state.store.applications(org_id).await?.into_iter().map(|a| a.doc.name).collect();
    names.extend(portcullis_catalog::builtin_applications().iter().map(|a| a.name.clone()));
    Ok(names)
}

async fn policies_page(
    State(state): State<AppState>,
    console: Console,
    Query(flash): Query<Flash>,
) -> Result<Response, AppError> {
    let org = console.0.user.org_id;
    let policies = state
        .store
        .policies(org)
        .await?
        .into_iter()
        .map(|p| PolicyView {
            id: p.id,
            position: p.doc.position,
            denies: p.doc.action.starts_with("deny"),
            action: match &p.doc.ringfence {
                Some(r) => format!("{} · {r}", p.doc.action),
                None => p.doc.action.clone(),
            },
            applications: p.doc.applications.join(", "),
            scope: p.doc.scope.clone().unwrap_or_default(),
            monitor: p.doc.status.as_deref() == Some("monitor"),
            enabled: p.doc.enabled.unwrap_or(true),
            expires: p.doc.expires.clone().unwrap_or_else(|| "—".into()),
            hits: p.hits,
            last_matched: when(p.last_matched_ms),
            builtin: p.builtin,
            name: p.doc.name,
        })
        .collect();
    Ok(html(PoliciesPage {
        page: console.page("/policies", flash),
        policies,
        applications: application_names(&state, org).await?,
        scopes: scopes(&state, org).await?,
        ringfences: state.store.ringfences(org).await?.into_iter().map(|r| r.doc.name).collect(),
    }))
}

#[derive(Deserialize)]
struct PolicyForm {
    #[serde(rename = "_csrf")]
    csrf: String,
    name: String,
    application: String,
    action: String,
    scope: String,
    status: String,
    #[serde(default)]
    expires: String,
    place: String,
    #[serde(default)]
    ringfence: String,
}

async fn create_policy(State(state): State<AppState>, console: Console, Form(f): Form<PolicyForm>) -> Response {
    let outcome = async {
        let caller = console.caller(&f.csrf)?;
        let doc = PolicyDoc {
            name: f.name.trim().to_owned(),
            position: 0,
            applications: vec![f.application.clone()],
            action: f.action.clone(),
            scope: Some(f.scope.clone()),
            status: Some(f.status.clone()),
            expires: opt(&f.expires),
            ringfence: if f.action == "permit-ringfence" { opt(&f.ringfence) } else { None },
            ..Default::default()
        };
        let (_, AppJson(created)) = api::create_policy(State(state.clone()), caller.clone(), AppJson(doc)).await?;
        if f.place == "top" {
            let req = api::MoveRequest { to: "top".into() };
            api::move_policy(State(state.clone()), caller, crate::error::AppPath(created.id), AppJson(req)).await?;
        }
        Ok(format!("Policy {:?} added", f.name.trim()))
    }
    .await;
    back("/policies", outcome)
}

#[derive(Deserialize)]
struct MoveForm {
    #[serde(rename = "_csrf")]
    csrf: String,
    to: String,
}

async fn move_policy(
    State(state): State<AppState>,
    console: Console,
    Path(id): Path<i64>,
    Form(f): Form<MoveForm>,
) -> Response {
    let outcome = async {
        let caller = console.caller(&f.csrf)?;
        let name = state.store.policy(caller.user.org_id, id).await?.doc.name;
        api::move_policy(
            State(state),
            caller,
            crate::error::AppPath(id),
            AppJson(api::MoveRequest { to: f.to.clone() }),
        )
        .await?;
        Ok(format!("Policy {name:?} moved {}", f.to))
    }
    .await;
    back("/policies", outcome)
}

async fn toggle_policy(
    State(state): State<AppState>,
    console: Console,
    Path(id): Path<i64>,
    Form(f): Form<CsrfOnly>,
) -> Response {
    let outcome = async {
        let caller = console.caller(&f.csrf)?;
        let row = state.store.policy(caller.user.org_id, id).await?;
        let on = !row.doc.enabled.unwrap_or(true);
        let doc = PolicyDoc { enabled: Some(on), ..row.doc.clone() };
        api::update_policy(State(state), caller, crate::error::AppPath(id), AppJson(doc)).await?;
        Ok(format!("Policy {:?} switched {}", row.doc.name, if on { "on" } else { "off" }))
    }
    .await;
    back("/policies", outcome)
}

async fn delete_policy(
    State(state): State<AppState>,
    console: Console,
    Path(id): Path<i64>,
    Form(f): Form<CsrfOnly>,
) -> Response {
    let outcome = async {
        let caller = console.caller(&f.csrf)?;
        let name = state.store.policy(caller.user.org_id, id).await?.doc.name;
        api::delete_policy(State(state), caller, crate::error::AppPath(id)).await?;
        Ok(format!("Policy {name:?} removed"))
    }
    .await;
    back("/policies", outcome)
}

// ----- applications --------------------------------------------------------------------------

struct ApplicationView {
    id: Option<i64>,
    name: String,
    description: String,
    builtin: bool,
    rules: Vec<String>,
}

#[derive(Template)]
#[template(path = "applications.html")]
struct ApplicationsPage {
    page: Page,
    applications: Vec<ApplicationView>,
}

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

async fn applications_page(
    State(state): State<AppState>,
    console: Console,
    Query(flash): Query<Flash>,
) -> Result<Response, AppError> {
    let mut applications: Vec<ApplicationView> = state
        .store
        .applications(console.0.user.org_id)
        .await?
        .into_iter()
        .map(|a| ApplicationView {
            id: Some(a.id),
            rules: a.doc.rules.iter().map(rule_text).collect(),
            description: a.doc.description.unwrap_or_default(),
            name: a.doc.name,
            builtin: false,
        })
        .collect();
    for b in portcullis_catalog::builtin_applications() {
        let hashes: usize = b.rules.iter().map(|r| r.hashes.flat.len() + r.hashes.authenticode.len()).sum();
        applications.push(ApplicationView {
            id: None,
            name: b.name.clone(),
            description: b.description.clone().unwrap_or_default(),
            builtin: true,
            rules: vec![format!("{} rules, {hashes} hashes (published indicators)", b.rules.len())],
        });
    }
    Ok(html(ApplicationsPage { page: console.page("/applications", flash), applications }))
}

#[derive(Deserialize)]
struct ApplicationForm {
    #[serde(rename = "_csrf")]
    csrf: String,
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    hashes: String,
    #[serde(default)]
    path: String,
    #[serde(default)]
    file_name: String,
    #[serde(default)]
    original_filename: String,
    #[serde(default)]
    product_name: String,
    #[serde(default)]
    company_name: String,
    #[serde(default)]
    signer_subject: String,
    #[serde(default)]
    os: String,
}

async fn create_application(
    State(state): State<AppState>,
    console: Console,
    Form(f): Form<ApplicationForm>,
) -> Response {
    let outcome = async {
        let caller = console.caller(&f.csrf)?;
        let hashes: Vec<String> =
            portcullis_hashlist::extract(f.hashes.as_bytes()).hashes.iter().map(|h| h.hash.to_string()).collect();
        let rule = RuleDoc {
            hashes: (!hashes.is_empty()).then_some(hashes),
            path: opt(&f.path),
            file_name: opt(&f.file_name),
            original_filename: opt(&f.original_filename),
            product_name: opt(&f.product_name),
            company_name: opt(&f.company_name),
            signer: opt(&f.signer_subject)
                .map(|s| portcullis_policy_file::document::SignerDoc { subject: Some(s), ..Default::default() }),
            os: opt(&f.os),
            ..Default::default()
        };
        if rule == RuleDoc::default() {
            return Err(AppError::BadRequest("fill in at least one criterion (a hash, a path, a name…)".into()));
        }
        let doc =
            ApplicationDoc { name: f.name.trim().to_owned(), description: opt(&f.description), rules: vec![rule] };
        api::create_application(State(state), caller, AppJson(doc)).await?;
        Ok(format!("Application {:?} added", f.name.trim()))
    }
    .await;
    back("/applications", outcome)
}

async fn delete_application(
    State(state): State<AppState>,
    console: Console,
    Path(id): Path<i64>,
    Form(f): Form<CsrfOnly>,
) -> Response {
    let outcome = async {
        let caller = console.caller(&f.csrf)?;
        api::delete_application(State(state), caller, crate::error::AppPath(id)).await?;
        Ok("Application removed".to_owned())
    }
    .await;
    back("/applications", outcome)
}

// ----- blocklists ------------------------------------------------------------------------------

struct BlocklistView {
    id: i64,
    name: String,
    description: String,
    hashes: i64,
    rules: usize,
    approvals: String,
}

#[derive(Template)]
#[template(path = "blocklists.html")]
struct BlocklistsPage {
    page: Page,
    blocklists: Vec<BlocklistView>,
}

async fn blocklists_page(
    State(state): State<AppState>,
    console: Console,
    Query(flash): Query<Flash>,
) -> Result<Response, AppError> {
    let blocklists = state
        .store
        .blocklists(console.0.user.org_id)
        .await?
        .into_iter()
        .map(|b| BlocklistView {
            id: b.id,
            description: b.description.unwrap_or_default(),
            hashes: b.hash_count,
            rules: b.rules.len(),
            approvals: if b.approvals.is_empty() {
                "not approved".into()
            } else {
                b.approvals.iter().map(|a| format!("{} ({})", a.scope, a.status)).collect::<Vec<_>>().join(", ")
            },
            name: b.name,
        })
        .collect();
    Ok(html(BlocklistsPage { page: console.page("/blocklists", flash), blocklists }))
}

#[derive(Deserialize)]
struct NewBlocklistForm {
    #[serde(rename = "_csrf")]
    csrf: String,
    name: String,
    #[serde(default)]
    description: String,
}

async fn create_blocklist(
    State(state): State<AppState>,
    console: Console,
    Form(f): Form<NewBlocklistForm>,
) -> Response {
    let result = async {
        let caller = console.caller(&f.csrf)?;
        let req = api::NewBlocklist { name: f.name.clone(), description: opt(&f.description) };
        let (_, AppJson(created)) = api::create_blocklist(State(state), caller, AppJson(req)).await?;
        Ok::<_, AppError>(created.id)
    }
    .await;
    match result {
        Ok(id) => {
            back(&format!("/blocklists/{id}"), Ok(format!("Package {:?} created: now paste its hashes", f.name.trim())))
        }
        Err(e) => back("/blocklists", Err(e)),
    }
}

#[derive(Template)]
#[template(path = "blocklist.html")]
struct BlocklistPage {
    page: Page,
    id: i64,
    name: String,
    description: String,
    hash_count: usize,
    hashes: Vec<(String, String)>,
    rules: Vec<(usize, String)>,
    approvals: Vec<(String, String, String)>,
    scopes: Vec<String>,
}

async fn blocklist_page(
    State(state): State<AppState>,
    console: Console,
    Path(id): Path<i64>,
    Query(flash): Query<Flash>,
) -> Result<Response, AppError> {
    let org = console.0.user.org_id;
    let b = state.store.blocklist(org, id).await?;
    let mut hashes = state.store.blocklist_hashes(org, id).await?;
    let hash_count = hashes.len();
    hashes.truncate(500);
    Ok(html(BlocklistPage {
        page: console.page("/blocklists", flash),
        id,
        name: b.name,
        description: b.description.unwrap_or_default(),
        hash_count,
        hashes,
        rules: b.rules.iter().map(rule_text).enumerate().collect(),
        approvals: b.approvals.into_iter().map(|a| (a.scope, a.status, a.approved_by)).collect(),
        scopes: scopes(&state, org).await?,
    }))
}

#[derive(Template)]
#[template(path = "extracted.html")]
struct ExtractedPart {
    id: i64,
    csrf: String,
    text: String,
    total: usize,
    new: usize,
    sha256: usize,
    sha1: usize,
    md5: usize,
    duplicates: usize,
    already: usize,
    skipped: usize,
    hashes: Vec<(String, &'static str, usize, bool)>,
    skipped_examples: Vec<(String, String, String)>,
}

/// The extraction preview's place, when extraction was refused.
#[derive(Template)]
#[template(source = "<p class=\"flash error\">{{ message }}</p>", ext = "html")]
struct ExtractFailed {
    message: String,
}

#[derive(Deserialize)]
struct TextForm {
    #[serde(rename = "_csrf")]
    csrf: String,
    text: String,
}

async fn extract(
    State(state): State<AppState>,
    console: Console,
    Path(id): Path<i64>,
    Form(f): Form<TextForm>,
) -> Response {
    let result = async {
        let caller = console.caller(&f.csrf)?;
        let req = api::PastedText { text: f.text.clone(), blocklist: Some(id) };
        api::extract_text(&state, caller.user.org_id, &req).await
    }
    .await;
    match result {
        Ok(x) => html(ExtractedPart {
            id,
            csrf: console.0.csrf.clone(),
            text: f.text,
            total: x.hashes.len(),
            new: x.hashes.len() - x.already,
            sha256: x.sha256,
            sha1: x.sha1,
            md5: x.md5,
            duplicates: x.duplicates,
            already: x.already,
            skipped: x.skipped,
            hashes: x.hashes.into_iter().map(|h| (h.hash, h.kind, h.line, h.already)).collect(),
            skipped_examples: x
                .skipped_examples
                .iter()
                .map(|s| (s["line"].to_string(), text(&s["text"]), text(&s["reason"])))
                .collect(),
        }),
        Err(e) => html(ExtractFailed { message: e.to_string() }),
    }
}

async fn add_hashes(
    State(state): State<AppState>,
    console: Console,
    Path(id): Path<i64>,
    Form(f): Form<TextForm>,
) -> Response {
    let outcome = async {
        let caller = console.caller(&f.csrf)?;
        let req = api::PastedText { text: f.text, blocklist: None };
        let AppJson(v) = api::add_hashes(State(state), caller, crate::error::AppPath(id), AppJson(req)).await?;
        Ok(format!("Added {} hashes ({} were already in the package)", v["added"], v["already"]))
    }
    .await;
    back(&format!("/blocklists/{id}"), outcome)
}

#[derive(Deserialize)]
struct RuleForm {
    #[serde(rename = "_csrf")]
    csrf: String,
    os: String,
    #[serde(default)]
    original_filename: String,
    #[serde(default)]
    product_name: String,
    #[serde(default)]
    company_name: String,
}

async fn add_rule(
    State(state): State<AppState>,
    console: Console,
    Path(id): Path<i64>,
    Form(f): Form<RuleForm>,
) -> Response {
    let outcome = async {
        let caller = console.caller(&f.csrf)?;
        let rule = RuleDoc {
            os: opt(&f.os),
            original_filename: opt(&f.original_filename),
            product_name: opt(&f.product_name),
            company_name: opt(&f.company_name),
            ..Default::default()
        };
        if rule.original_filename.is_none() && rule.product_name.is_none() && rule.company_name.is_none() {
            return Err(AppError::BadRequest("give an OriginalFilename, a product name or a company".into()));
        }
        let mut rules = state.store.blocklist(caller.user.org_id, id).await?.rules;
        rules.push(rule);
        api::set_blocklist_rules(State(state), caller, crate::error::AppPath(id), AppJson(rules)).await?;
        Ok("Metadata rule added".to_owned())
    }
    .await;
    back(&format!("/blocklists/{id}"), outcome)
}

async fn delete_rule(
    State(state): State<AppState>,
    console: Console,
    Path((id, index)): Path<(i64, usize)>,
    Form(f): Form<CsrfOnly>,
) -> Response {
    let outcome = async {
        let caller = console.caller(&f.csrf)?;
        let mut rules = state.store.blocklist(caller.user.org_id, id).await?.rules;
        if index >= rules.len() {
            return Err(AppError::NotFound);
        }
        rules.remove(index);
        api::set_blocklist_rules(State(state), caller, crate::error::AppPath(id), AppJson(rules)).await?;
        Ok("Metadata rule removed".to_owned())
    }
    .await;
    back(&format!("/blocklists/{id}"), outcome)
}

#[derive(Deserialize)]
struct ApproveForm {
    #[serde(rename = "_csrf")]
    csrf: String,
    scope: String,
    #[serde(default)]
    status: String,
}

async fn approve(
    State(state): State<AppState>,
    console: Console,
    Path(id): Path<i64>,
    Form(f): Form<ApproveForm>,
) -> Response {
    let outcome = async {
        let caller = console.caller(&f.csrf)?;
        let req = api::Approval { scope: f.scope.clone(), status: opt(&f.status) };
        api::approve(State(state), caller, crate::error::AppPath(id), AppJson(req)).await?;
        Ok(format!("Approved at {} ({})", f.scope, if f.status.is_empty() { "enforce" } else { &f.status }))
    }
    .await;
    back(&format!("/blocklists/{id}"), outcome)
}

async fn revoke(
    State(state): State<AppState>,
    console: Console,
    Path(id): Path<i64>,
    Form(f): Form<ApproveForm>,
) -> Response {
    let outcome = async {
        let caller = console.caller(&f.csrf)?;
        api::revoke(
            State(state),
            caller,
            crate::error::AppPath(id),
            crate::error::AppQuery(api::ScopeQuery { scope: f.scope.clone() }),
        )
        .await?;
        Ok(format!("Approval at {} withdrawn", f.scope))
    }
    .await;
    back(&format!("/blocklists/{id}"), outcome)
}

async fn delete_blocklist(
    State(state): State<AppState>,
    console: Console,
    Path(id): Path<i64>,
    Form(f): Form<CsrfOnly>,
) -> Response {
    let outcome = async {
        let caller = console.caller(&f.csrf)?;
        api::delete_blocklist(State(state), caller, crate::error::AppPath(id)).await?;
        Ok("Package removed".to_owned())
    }
    .await;
    back("/blocklists", outcome)
}

// ----- computers, groups, settings -----------------------------------------------------------

const MODES: [&str; 4] = ["secured", "monitor", "learning", "installation"];

struct GroupView {
    id: i64,
    path: String,
    name: String,
    depth: f64,
    mode: String,
    computers: i64,
    enrollment_open: bool,
    /// The open token's limits, for people: "until …", "N uses left".
    enrollment_limits: String,
}

struct ComputerView {
    id: i64,
    name: String,
    online: bool,
    last_seen: String,
    group: String,
    mode: String,
    effective_mode: String,
    os: String,
    agent: String,
    bundle_version: i64,
    /// Online but enforcing an older bundle than the latest (or refusing it).
    lags: bool,
    bundle_error: String,
}

struct PendingView {
    id: i64,
    name: String,
    group: String,
    os: String,
    agent: String,
    requested: String,
    replaces: bool,
}

#[derive(Template)]
#[template(path = "computers.html")]
struct ComputersPage {
    page: Page,
    token: Option<(String, String)>,
    server_url: String,
    modes: [&'static str; 4],
    org_mode: String,
    groups: Vec<GroupView>,
    computers: Vec<ComputerView>,
    latest: i64,
    pending: Vec<PendingView>,
    signing: SigningView,
}

/// The organization's bundle signing key, as the Computers page shows it.
struct SigningView {
    public_key: String,
    rotations: usize,
    last_rotated: String,
    sealed_with: String,
}

async fn computers_view(
    state: &AppState,
    console: &Console,
    flash: Flash,
    token: Option<(String, String)>,
    server_url: String,
) -> Result<Response, AppError> {
    let org = console.0.user.org_id;
    let settings = state.store.settings(org).await?;
    let org_mode = settings.mode.clone().unwrap_or_else(|| "secured".into());
    let groups_rows = state.store.groups(org).await?;
    let computer_rows = state.store.computers(org).await?;
    // Effective modes by the engine's own rule, on the model as agents load it.
    let (_, mut whole) = state.store.document(org).await?;
    whole.computers = computer_rows.iter().map(|c| c.doc.clone()).collect();
    let set = portcullis_policy_file::load(&whole.to_json(), portcullis_policy_file::Format::Json).ok().map(|l| l.set);
    // A group's mode, or the organization's for no group (what a computer without a mode
    // of its own is in).
    let group_mode = |path: Option<&str>| -> String {
        set.as_ref().map_or_else(|| "unknown".into(), |s| s.group_mode(path).name().to_owned())
    };
    let now = now_ms();
    let latest = state.sync.version(&state.store, org).await?;
    let pending = state
        .store
        .pending_enrollments(org)
        .await?
        .into_iter()
        .map(|p| PendingView {
            id: p.id,
            name: p.name,
            group: p.group.unwrap_or_default(),
            os: p.os,
            agent: p.agent_version,
            requested: when(Some(p.requested_ms)),
            replaces: p.existing_computer.is_some(),
        })
        .collect();
    let computers = computer_rows
        .into_iter()
        .map(|c| {
            let group = c.doc.group.clone().unwrap_or_default();
            let online = c.last_seen_ms.is_some_and(|t| now - t <= api::ONLINE_WITHIN_MS);
            ComputerView {
                id: c.id,
                online,
                lags: online && (c.bundle_version < latest || c.bundle_error.is_some()),
                bundle_error: c.bundle_error.clone().unwrap_or_default(),
                last_seen: when(c.last_seen_ms),
                effective_mode: group_mode(c.doc.group.as_deref()),
                mode: c.doc.mode.clone().unwrap_or_default(),
                os: c.doc.os.clone().unwrap_or_default(),
                agent: c.agent_version.clone().unwrap_or_default(),
                bundle_version: c.bundle_version,
                name: c.doc.name,
                group,
            }
        })
        .collect();
    let groups = groups_rows
        .iter()
        .map(|g| GroupView {
            id: g.id,
            name: g.doc.path.rsplit('/').next().unwrap_or(&g.doc.path).to_owned(),
            depth: g.doc.path.matches('/').count() as f64,
            mode: g.doc.mode.clone().unwrap_or_else(|| format!("inherits ({})", group_mode(Some(&g.doc.path)))),
            computers: g.computers,
            enrollment_open: g.enrollment_open,
            enrollment_limits: [
                g.enrollment_expires_ms.map(|t| format!("until {}", when(Some(t)))),
                g.enrollment_uses_left.map(|u| format!("{u} uses left")),
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(", "),
            path: g.doc.path.clone(),
        })
        .collect();
    let key = crate::admin_api::bundle_key_view(state, org).await?;
    let signing = SigningView {
        public_key: key.public_key,
        rotations: key.rotations.len(),
        last_rotated: key.rotations.last().map_or_else(|| "never".into(), |e| when(Some(e.issued_ms))),
        sealed_with: key.sealed_with,
    };
    Ok(html(ComputersPage {
        signing,
        page: console.page("/computers", flash),
        token,
        server_url,
        modes: MODES,
        org_mode,
        groups,
        computers,
        latest,
        pending,
    }))
}

fn server_url(headers: &axum::http::HeaderMap, state: &AppState) -> String {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("SERVER:8443");
    format!("{}://{host}", if state.secure_cookies { "https" } else { "http" })
}

async fn computers_page(
    State(state): State<AppState>,
    console: Console,
    headers: axum::http::HeaderMap,
    Query(flash): Query<Flash>,
) -> Result<Response, AppError> {
    let url = server_url(&headers, &state);
    computers_view(&state, &console, flash, None, url).await
}

#[derive(Deserialize)]
struct ModeForm {
    #[serde(rename = "_csrf")]
    csrf: String,
    mode: String,
    #[serde(default)]
    until: String,
}

async fn settings(State(state): State<AppState>, console: Console, Form(f): Form<ModeForm>) -> Response {
    let outcome = async {
        let caller = console.caller(&f.csrf)?;
        let mut doc: OrganizationDoc = state.store.settings(caller.user.org_id).await?;
        doc.mode = Some(f.mode.clone());
        doc.until = opt(&f.until);
        api::set_settings(State(state), caller, AppJson(doc)).await?;
        Ok(format!("Organization mode set to {}", f.mode))
    }
    .await;
    back("/computers", outcome)
}

#[derive(Deserialize)]
struct GroupForm {
    #[serde(rename = "_csrf")]
    csrf: String,
    path: String,
    #[serde(default)]
    mode: String,
}

async fn create_group(State(state): State<AppState>, console: Console, Form(f): Form<GroupForm>) -> Response {
    let outcome = async {
        let caller = console.caller(&f.csrf)?;
        let doc = GroupDoc { path: f.path.clone(), mode: opt(&f.mode), ..Default::default() };
        api::create_group(State(state), caller, AppJson(doc)).await?;
        Ok(format!("Group {:?} added", f.path.trim()))
    }
    .await;
    back("/computers", outcome)
}

async fn group_token(
    State(state): State<AppState>,
    console: Console,
    headers: axum::http::HeaderMap,
    Path(id): Path<i64>,
    Form(f): Form<CsrfOnly>,
) -> Response {
    let result = async {
        let caller = console.caller(&f.csrf)?;
        let path = state
            .store
            .groups(caller.user.org_id)
            .await?
            .into_iter()
            .find(|g| g.id == id)
            .map(|g| g.doc.path)
            .ok_or(AppError::NotFound)?;
        let (_, AppJson(t)) = crate::admin_api::enrollment_token(
            State(state.clone()),
            caller,
            crate::error::AppPath(id),
            crate::error::AppQuery(Default::default()),
        )
        .await?;
        Ok::<_, AppError>((path, t.token))
    }
    .await;
    match result {
        // Shown on this response only (not in a redirect URL, which browsers and proxies log).
        Ok(token) => {
            let url = server_url(&headers, &state);
            let flash = Flash { ok: Some(format!("New enrollment token for {}", token.0)), error: None };
            computers_view(&state, &console, flash, Some(token), url).await.unwrap_or_else(IntoResponse::into_response)
        }
        Err(e) => back("/computers", Err(e)),
    }
}

async fn revoke_group_token(
    State(state): State<AppState>,
    console: Console,
    Path(id): Path<i64>,
    Form(f): Form<CsrfOnly>,
) -> Response {
    let outcome = async {
        let caller = console.caller(&f.csrf)?;
        crate::admin_api::revoke_enrollment_token(State(state), caller, crate::error::AppPath(id)).await?;
        Ok("Enrollment token revoked: no agent enrolls with it any more".to_owned())
    }
    .await;
    back("/computers", outcome)
}

async fn delete_group(
    State(state): State<AppState>,
    console: Console,
    Path(id): Path<i64>,
    Form(f): Form<CsrfOnly>,
) -> Response {
    let outcome = async {
        let caller = console.caller(&f.csrf)?;
        api::delete_group(State(state), caller, crate::error::AppPath(id)).await?;
        Ok("Group removed".to_owned())
    }
    .await;
    back("/computers", outcome)
}

async fn rotate_bundle_key(State(state): State<AppState>, console: Console, Form(f): Form<CsrfOnly>) -> Response {
    let outcome = async {
        let caller = console.caller(&f.csrf)?;
        let AppJson(key) = crate::admin_api::rotate_bundle_key(State(state), caller).await?;
        Ok(format!(
            "Bundle signing key rotated: agents take the new key {}… with their next bundle, endorsed by the old one",
            &key.public_key[..16]
        ))
    }
    .await;
    back("/computers", outcome)
}

async fn accept_enrollment(
    State(state): State<AppState>,
    console: Console,
    Path(id): Path<i64>,
    Form(f): Form<CsrfOnly>,
) -> Response {
    let outcome = async {
        let caller = console.caller(&f.csrf)?;
        crate::admin_api::accept_pending(State(state), caller, crate::error::AppPath(id)).await?;
        Ok("Enrollment accepted: the computer now answers to the new agent; the old credential no longer works"
            .to_owned())
    }
    .await;
    back("/computers", outcome)
}

async fn reject_enrollment(
    State(state): State<AppState>,
    console: Console,
    Path(id): Path<i64>,
    Form(f): Form<CsrfOnly>,
) -> Response {
    let outcome = async {
        let caller = console.caller(&f.csrf)?;
        crate::admin_api::reject_pending(State(state), caller, crate::error::AppPath(id)).await?;
        Ok("Enrollment rejected".to_owned())
    }
    .await;
    back("/computers", outcome)
}

#[derive(Deserialize)]
struct ComputerForm {
    #[serde(rename = "_csrf")]
    csrf: String,
    #[serde(default)]
    group: String,
    #[serde(default)]
    mode: String,
}

async fn update_computer(
    State(state): State<AppState>,
    console: Console,
    Path(id): Path<i64>,
    Form(f): Form<ComputerForm>,
) -> Response {
    let outcome = async {
        let caller = console.caller(&f.csrf)?;
        let doc = ComputerDoc { group: opt(&f.group), mode: opt(&f.mode), ..Default::default() };
        api::update_computer(State(state), caller, crate::error::AppPath(id), AppJson(doc)).await?;
        Ok(format!("Mode set to {}", if f.mode.is_empty() { "the group's" } else { &f.mode }))
    }
    .await;
    back("/computers", outcome)
}

async fn delete_computer(
    State(state): State<AppState>,
    console: Console,
    Path(id): Path<i64>,
    Form(f): Form<CsrfOnly>,
) -> Response {
    let outcome = async {
        let caller = console.caller(&f.csrf)?;
        api::delete_computer(State(state), caller, crate::error::AppPath(id)).await?;
        Ok("Computer removed; its agent must enroll again".to_owned())
    }
    .await;
    back("/computers", outcome)
}

// ----- events, preview ---------------------------------------------------------------------------

struct EventView {
    id: i64,
    at: String,
    computer: String,
    event: String,
    verdict: String,
    file_path: String,
    policy: String,
    process: String,
}

#[derive(Default, Deserialize)]
struct EventFilterForm {
    #[serde(default)]
    computer: String,
    #[serde(default)]
    verdict: String,
    #[serde(default)]
    file: String,
    #[serde(default)]
    policy: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    ok: Option<String>,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "events.html")]
struct EventsPage {
    page: Page,
    f: EventFilterForm,
    verdicts: Vec<&'static str>,
    events: Vec<EventView>,
}

async fn events_page(
    State(state): State<AppState>,
    console: Console,
    Query(mut f): Query<EventFilterForm>,
) -> Response {
    let flash = Flash { ok: f.ok.take(), error: f.error.take() };
    // A "to" date means through the end of that day.
    let to = opt(&f.to).map(|d| if d.len() == 10 { format!("{d}T23:59:59.999Z") } else { d });
    let q = api::EventQuery {
        computer: opt(&f.computer),
        verdict: opt(&f.verdict),
        file: opt(&f.file),
        policy: opt(&f.policy),
        from: opt(&f.from),
        to,
        before_id: None,
        limit: Some(200),
    };
    let result = api::events(State(state), console.reader(), crate::error::AppQuery(q)).await;
    let (events, flash) = match result {
        Ok(AppJson(v)) => (json_list(&v), flash),
        Err(e) => (Vec::new(), Flash { ok: None, error: Some(e.to_string()) }),
    };
    let events = events
        .iter()
        .map(|e| EventView {
            id: e["id"].as_i64().unwrap_or_default(),
            at: when(e["at_ms"].as_i64()),
            computer: text(&e["computer"]),
            event: text(&e["event"]),
            verdict: text(&e["verdict"]),
            file_path: text(&e["file_path"]),
            policy: text(&e["policy"]),
            process: format!("{} ({})", text(&e["process_exe"]), text(&e["user_name"])),
        })
        .collect();
    html(EventsPage {
        page: console.page("/events", flash),
        f,
        // Any, a verdict, or an event kind: every value the event schema has.
        verdicts: std::iter::once("")
            .chain(portcullis_events::Verdict::ALL.iter().map(|v| v.name()))
            .chain(portcullis_events::EventKind::ALL.iter().map(|k| k.name()).filter(|k| *k != "deny"))
            .collect(),
        events,
    })
}

#[derive(Template)]
#[template(path = "event.html")]
struct EventPage {
    page: Page,
    id: i64,
    event: String,
    computer: String,
    at: String,
    file_path: String,
    reason: String,
    now_verdict: String,
    now_reason: String,
    /// (kind, button, what it would match, whether it can be made from this event).
    kinds: Vec<(&'static str, &'static str, String, bool)>,
    record: String,
}

async fn decide_event(state: &AppState, caller: Caller, id: i64) -> (String, String) {
    let req = api::PreviewRequest { computer: None, event: Some(id), file: None };
    match api::preview(State(state.clone()), caller, AppJson(req)).await {
        Ok(AppJson(v)) => (text(&v["verdict"]), text(&v["reason"])),
        Err(e) => ("unknown".into(), e.to_string()),
    }
}

async fn event_page(
    State(state): State<AppState>,
    console: Console,
    Path(id): Path<i64>,
    Query(flash): Query<Flash>,
) -> Result<Response, AppError> {
    let e = state.store.event(console.0.user.org_id, id).await?;
    let (now_verdict, now_reason) = decide_event(&state, console.reader(), id).await;
    let record = serde_json::from_str::<Value>(&e.fields.record_json)
        .map(|v| serde_json::to_string_pretty(&v).unwrap_or_default())
        .unwrap_or(e.fields.record_json.clone());
    let kinds = [
        ("permit-hash", "Permit this file (by hash)"),
        ("permit-path", "Permit this path"),
        ("permit-publisher", "Permit its publisher"),
        ("deny-hash", "Deny this file (by hash)"),
    ]
    .into_iter()
    .map(|(kind, label)| match api::rule_from_event(&e, kind) {
        Ok(r) => (kind, label, format!("Matches {}.", r.matches), true),
        Err(why) => (kind, label, why.to_string(), false),
    })
    .collect();
    Ok(html(EventPage {
        page: console.page("/events", flash),
        id,
        event: e.fields.event,
        computer: e.computer,
        at: when(Some(e.fields.at_ms)),
        file_path: e.fields.file_path,
        reason: e.fields.reason,
        now_verdict,
        now_reason,
        kinds,
        record,
    }))
}

#[derive(Deserialize)]
struct KindForm {
    #[serde(rename = "_csrf")]
    csrf: String,
    kind: String,
}

async fn policy_from_event(
    State(state): State<AppState>,
    console: Console,
    Path(id): Path<i64>,
    Form(f): Form<KindForm>,
) -> Response {
    let result = async {
        let caller = console.caller(&f.csrf)?;
        let req = api::FromEvent { kind: f.kind.clone(), name: None, preview: false };
        let (_, AppJson(v)) =
            api::policy_from_event(State(state), caller, crate::error::AppPath(id), AppJson(req)).await?;
        Ok::<_, AppError>(format!("Policy {} added at the bottom: move it where it belongs", v["name"]))
    }
    .await;
    match result {
        Ok(m) => back("/policies", Ok(m)),
        Err(e) => back(&format!("/events/{id}"), Err(e)),
    }
}

#[derive(Default, Deserialize)]
struct PreviewForm {
    #[serde(rename = "_csrf", default)]
    csrf: String,
    #[serde(default)]
    path: String,
    #[serde(default)]
    sha256: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    os: String,
    #[serde(default)]
    original_filename: String,
    #[serde(default)]
    product_name: String,
    #[serde(default)]
    company_name: String,
    #[serde(default)]
    computer: String,
}

#[derive(Template)]
#[template(path = "preview.html")]
struct PreviewPage {
    page: Page,
    input: PreviewForm,
    kinds: [&'static str; 5],
    oses: [&'static str; 3],
    computers: Vec<String>,
    decision: Option<(String, String)>,
}

async fn preview_view(
    state: &AppState,
    console: &Console,
    input: PreviewForm,
    decision: Option<(String, String)>,
    flash: Flash,
) -> Result<Response, AppError> {
    let computers = state.store.computers(console.0.user.org_id).await?.into_iter().map(|c| c.doc.name).collect();
    Ok(html(PreviewPage {
        page: console.page("/preview", flash),
        input,
        kinds: ["executable", "library", "script", "installer", "other"],
        oses: ["linux", "windows", "macos"],
        computers,
        decision,
    }))
}

async fn preview_page(
    State(state): State<AppState>,
    console: Console,
    Query(flash): Query<Flash>,
) -> Result<Response, AppError> {
    let input = PreviewForm { kind: "executable".into(), os: "linux".into(), ..Default::default() };
    preview_view(&state, &console, input, None, flash).await
}

async fn preview(
    State(state): State<AppState>,
    console: Console,
    Form(f): Form<PreviewForm>,
) -> Result<Response, AppError> {
    let caller = console.caller(&f.csrf)?;
    let file = api::FileInput {
        path: f.path.clone(),
        sha256: opt(&f.sha256),
        kind: opt(&f.kind),
        os: opt(&f.os),
        original_filename: opt(&f.original_filename),
        product_name: opt(&f.product_name),
        company_name: opt(&f.company_name),
        ..Default::default()
    };
    let req = api::PreviewRequest { computer: opt(&f.computer), event: None, file: Some(file) };
    let (decision, flash) = match api::preview(State(state.clone()), caller, AppJson(req)).await {
        Ok(AppJson(v)) => (Some((text(&v["verdict"]), text(&v["reason"]))), Flash::default()),
        Err(e) => (None, Flash { ok: None, error: Some(e.to_string()) }),
    };
    preview_view(&state, &console, f, decision, flash).await
}

// ----- hygiene, audit ----------------------------------------------------------------------------

struct UnusedView {
    id: i64,
    name: String,
    applications: String,
    created: String,
    last_matched: String,
}

#[derive(Template)]
#[template(path = "hygiene.html")]
struct HygienePage {
    page: Page,
    since: String,
    min_age_days: i64,
    policies: Vec<UnusedView>,
}

#[derive(Deserialize)]
struct HygieneQuery {
    since: Option<String>,
    min_age_days: Option<i64>,
    ok: Option<String>,
    error: Option<String>,
}

async fn hygiene_page(
    State(state): State<AppState>,
    console: Console,
    Query(q): Query<HygieneQuery>,
) -> Result<Response, AppError> {
    let since = q.since.clone().filter(|s| !s.is_empty()).unwrap_or_else(|| {
        jiff::Timestamp::from_millisecond(now_ms() - 30 * 86_400_000)
            .map(|t| t.strftime("%Y-%m-%d").to_string())
            .unwrap_or_default()
    });
    let min_age_days = q.min_age_days.unwrap_or(7);
    let query = api::UnusedQuery { since: Some(since.clone()), min_age_days: Some(min_age_days) };
    let AppJson(v) = api::unused_policies(State(state), console.reader(), crate::error::AppQuery(query)).await?;
    let policies = json_list(&v["policies"])
        .iter()
        .map(|p| UnusedView {
            id: p["id"].as_i64().unwrap_or_default(),
            name: text(&p["name"]),
            applications: json_list(&p["applications"]).iter().map(text).collect::<Vec<_>>().join(", "),
            created: when(p["created_ms"].as_i64()),
            last_matched: when(p["last_matched_ms"].as_i64()),
        })
        .collect();
    let flash = Flash { ok: q.ok, error: q.error };
    Ok(html(HygienePage { page: console.page("/hygiene", flash), since, min_age_days, policies }))
}

#[derive(Deserialize)]
struct RemoveForm {
    #[serde(rename = "_csrf")]
    csrf: String,
    #[serde(default)]
    ids: Vec<i64>,
}

async fn hygiene_remove(
    State(state): State<AppState>,
    console: Console,
    axum_extra::extract::Form(f): axum_extra::extract::Form<RemoveForm>,
) -> Response {
    let outcome = async {
        let caller = console.caller(&f.csrf)?;
        if f.ids.is_empty() {
            return Err(AppError::BadRequest("select the policies to remove first".into()));
        }
        let AppJson(v) = api::remove_policies(State(state), caller, AppJson(api::RemoveRequest { ids: f.ids })).await?;
        let names: Vec<String> = json_list(&v["removed"]).iter().map(text).collect();
        Ok(format!("Removed {}: {}", names.len(), names.join(", ")))
    }
    .await;
    back("/hygiene", outcome)
}

// ----- ringfences -------------------------------------------------------------------------------

struct RingfenceView {
    id: i64,
    name: String,
    description: String,
    files: Vec<String>,
    network: Vec<String>,
    children: Vec<String>,
    used_by: String,
}

#[derive(Template)]
#[template(path = "ringfences.html")]
struct RingfencesPage {
    page: Page,
    ringfences: Vec<RingfenceView>,
    applications: Vec<String>,
}

fn ports_text(ports: &[String]) -> String {
    if ports.is_empty() { "any port".into() } else { format!("port {}", ports.join(",")) }
}

fn ringfence_view(id: i64, r: RingfenceDoc, used_by: String) -> RingfenceView {
    let files = match &r.files {
        None => vec!["built-in protected paths → none".to_owned()],
        Some(f) => {
            let mut lines: Vec<String> = f.rules.iter().map(|x| format!("{} → {}", x.path, x.access)).collect();
            let access = f.protected_access.clone().unwrap_or_else(|| "none".into());
            match &f.protected {
                Some(p) => lines.extend(p.iter().map(|g| format!("protected {g} → {access}"))),
                None => lines.push(format!("built-in protected paths → {access}")),
            }
            lines
        }
    };
    let network = match &r.network {
        None => vec!["not limited".to_owned()],
        Some(n) => {
            let mut lines: Vec<String> =
                n.allow.iter().map(|a| format!("{} {}", a.cidr, ports_text(&a.ports))).collect();
            lines.extend(n.domains.iter().map(|d| format!("{} {}", d.name, ports_text(&d.ports))));
            if n.dns.unwrap_or(true) {
                lines.push("DNS servers, port 53".into());
            }
            if lines.is_empty() {
                lines.push("nothing".into());
            }
            lines
        }
    };
    let children = r.children.clone().unwrap_or_default();
    let mut child_lines: Vec<String> = children.applications.iter().map(|a| format!("may start {a}")).collect();
    child_lines.push(
        match children.others.as_deref().unwrap_or("no-shells") {
            "deny" => "nothing else",
            "allow" => "anything else",
            _ => "anything else but shells and interpreters",
        }
        .to_owned(),
    );
    RingfenceView {
        id,
        description: r.description.clone().unwrap_or_default(),
        name: r.name,
        files,
        network,
        children: child_lines,
        used_by,
    }
}

async fn ringfences_page(
    State(state): State<AppState>,
    console: Console,
    Query(flash): Query<Flash>,
) -> Result<Response, AppError> {
    let org = console.0.user.org_id;
    let policies = state.store.policies(org).await?;
    let ringfences = state
        .store
        .ringfences(org)
        .await?
        .into_iter()
        .map(|r| {
            let users: Vec<String> = policies
                .iter()
                .filter(|p| p.doc.ringfence.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(&r.doc.name)))
                .map(|p| p.doc.name.clone())
                .collect();
            let used_by = if users.is_empty() { "no policy".to_owned() } else { users.join(", ") };
            ringfence_view(r.id, r.doc, used_by)
        })
        .collect();
    Ok(html(RingfencesPage {
        page: console.page("/ringfences", flash),
        ringfences,
        applications: application_names(&state, org).await?,
    }))
}

#[derive(Deserialize)]
struct RingfenceForm {
    #[serde(rename = "_csrf")]
    csrf: String,
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    file_rules: String,
    #[serde(default)]
    protected: String,
    #[serde(default)]
    protected_access: String,
    #[serde(default)]
    limit_network: Option<String>,
    #[serde(default)]
    addresses: String,
    #[serde(default)]
    domains: String,
    #[serde(default)]
    dns: Option<String>,
    #[serde(default)]
    child_applications: Vec<String>,
    #[serde(default)]
    others: String,
}

fn lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines().map(str::trim).filter(|l| !l.is_empty())
}

/// `name 443,5060-5090` → the name and its ports.
fn with_ports(line: &str) -> (String, Vec<String>) {
    let mut parts = line.split_whitespace();
    let first = parts.next().unwrap_or_default().to_owned();
    let ports = parts.flat_map(|p| p.split(',')).map(str::trim).filter(|p| !p.is_empty()).map(str::to_owned).collect();
    (first, ports)
}

fn ringfence_doc(f: &RingfenceForm) -> Result<RingfenceDoc, AppError> {
    let mut rules = Vec::new();
    for line in lines(&f.file_rules) {
        let Some((path, access)) = line.rsplit_once('=') else {
            return Err(AppError::BadRequest(format!(
                "file rule {line:?}: write it as \"glob = none\", \"glob = read\" or \"glob = read-write\""
            )));
        };
        rules.push(FileRuleDoc { path: path.trim().to_owned(), access: access.trim().to_owned() });
    }
    let protected: Vec<String> = lines(&f.protected).map(str::to_owned).collect();
    let files = FileFenceDoc {
        rules,
        protected: (!protected.is_empty()).then_some(protected),
        protected_access: opt(&f.protected_access),
    };
    let network = f.limit_network.is_some().then(|| NetFenceDoc {
        allow: lines(&f.addresses).map(with_ports).map(|(cidr, ports)| NetRuleDoc { cidr, ports }).collect(),
        domains: lines(&f.domains).map(with_ports).map(|(name, ports)| DomainRuleDoc { name, ports }).collect(),
        dns: Some(f.dns.is_some()),
    });
    Ok(RingfenceDoc {
        name: f.name.trim().to_owned(),
        description: opt(&f.description),
        files: Some(files),
        network,
        children: Some(ChildFenceDoc { applications: f.child_applications.clone(), others: opt(&f.others) }),
    })
}

async fn create_ringfence(
    State(state): State<AppState>,
    console: Console,
    axum_extra::extract::Form(f): axum_extra::extract::Form<RingfenceForm>,
) -> Response {
    let outcome = async {
        let caller = console.caller(&f.csrf)?;
        let doc = ringfence_doc(&f)?;
        api::create_ringfence(State(state), caller, AppJson(doc)).await?;
        Ok(format!("Ringfence {:?} added", f.name.trim()))
    }
    .await;
    back("/ringfences", outcome)
}

async fn delete_ringfence(
    State(state): State<AppState>,
    console: Console,
    Path(id): Path<i64>,
    Form(f): Form<CsrfOnly>,
) -> Response {
    let outcome = async {
        let caller = console.caller(&f.csrf)?;
        api::delete_ringfence(State(state), caller, crate::error::AppPath(id)).await?;
        Ok("Ringfence removed".to_owned())
    }
    .await;
    back("/ringfences", outcome)
}

struct AuditView {
    at: String,
    actor: String,
    action: String,
    object: String,
    before: String,
    after: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    page: Page,
    entries: Vec<AuditView>,
}

async fn audit_page(
    State(state): State<AppState>,
    console: Console,
    Query(flash): Query<Flash>,
) -> Result<Response, AppError> {
    let short = |s: Option<String>| {
        let s = s.unwrap_or_default();
        if s.chars().count() > 300 { format!("{}…", s.chars().take(300).collect::<String>()) } else { s }
    };
    let entries = state
        .store
        .audit_log(console.0.user.org_id, 500)
        .await?
        .into_iter()
        .map(|e| AuditView {
            at: when(Some(e.at_ms)),
            actor: e.actor,
            action: e.action,
            object: e.object,
            before: short(e.before_json),
            after: short(e.after_json),
        })
        .collect();
    Ok(html(AuditPage { page: console.page("/audit", flash), entries }))
}
