//! The REST API: sessions, the caller, API tokens, users and the audit log.

use crate::AppState;
use crate::auth::{Caller, SESSION_COOKIE};
use crate::error::{AppError, AppJson, AppQuery, ErrorBody};
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};
use portcullis_store::Role;
use serde::{Deserialize, Serialize};

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/session", post(login).delete(logout))
        .route("/api/me", get(me))
        .route("/api/tokens", post(create_token))
        .route("/api/users", post(create_user))
        .route("/api/audit", get(audit))
        .route("/api/openapi.json", get(openapi_json))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LoginRequest {
    organization: String,
    user: String,
    password: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Me {
    organization: String,
    user: String,
    role: &'static str,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct LoginResponse {
    #[serde(flatten)]
    me: Me,
    /// Send back as X-CSRF-Token on every request that changes something.
    csrf_token: String,
}

#[utoipa::path(post, path = "/api/session", tag = "accounts", request_body = LoginRequest, responses((status = 200, body = LoginResponse), (status = 400, body = ErrorBody), (status = 401, description = "wrong credentials", body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, body = ErrorBody), (status = 429, description = "throttled", body = ErrorBody)), security(()))]
pub(crate) async fn login(
    State(state): State<AppState>,
    jar: CookieJar,
    crate::auth::ClientAddr(client): crate::auth::ClientAddr,
    AppJson(req): AppJson<LoginRequest>,
) -> Result<impl IntoResponse, AppError> {
    if req.password.len() > crate::admin_api::MAX_PASSWORD {
        return Err(AppError::Login(portcullis_store::LoginError::Wrong));
    }
    let (sid, session) = state.store.login_from(&req.organization, &req.user, &req.password, client.as_deref()).await?;
    state
        .store
        .audit(
            session.user.org_id,
            &format!("user {}", session.user.name),
            "login",
            &format!("user {}", session.user.name),
            None,
            None,
        )
        .await?;
    let cookie = Cookie::build((SESSION_COOKIE, sid))
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(state.secure_cookies)
        .path("/")
        .build();
    let body = LoginResponse {
        me: Me {
            organization: session.user.org_name.clone(),
            user: session.user.name.clone(),
            role: session.user.role.name(),
        },
        csrf_token: session.csrf,
    };
    Ok((jar.add(cookie), AppJson(body)))
}

#[utoipa::path(delete, path = "/api/session", tag = "accounts", responses((status = 204), (status = 401, description = "not logged in", body = ErrorBody), (status = 403, description = "role or CSRF", body = ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn logout(
    State(state): State<AppState>,
    caller: Caller,
    jar: CookieJar,
) -> Result<impl IntoResponse, AppError> {
    if let Some(c) = jar.get(SESSION_COOKIE) {
        state.store.logout(c.value()).await?;
    }
    state
        .store
        .audit(caller.user.org_id, &caller.actor, "logout", &format!("user {}", caller.user.name), None, None)
        .await?;
    Ok((jar.remove(Cookie::build(SESSION_COOKIE).path("/")), StatusCode::NO_CONTENT))
}

#[utoipa::path(get, path = "/api/me", tag = "accounts", responses((status = 200, body = Me), (status = 401, description = "not logged in", body = ErrorBody), (status = 403, description = "role or CSRF", body = ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn me(caller: Caller) -> AppJson<Me> {
    AppJson(Me { organization: caller.user.org_name, user: caller.user.name, role: caller.user.role.name() })
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TokenRequest {
    pub(crate) name: String,
    /// Days until it stops working (default 90; 0: never).
    #[serde(default)]
    pub(crate) expires_in_days: Option<i64>,
    /// It may only read (GET), whatever the user's role.
    #[serde(default)]
    pub(crate) read_only: bool,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct TokenResponse {
    pub(crate) name: String,
    /// Shown once; only its hash is kept.
    pub(crate) token: String,
    /// When it stops working, Unix milliseconds.
    expires_ms: Option<i64>,
    /// It may only read.
    read_only: bool,
}

#[utoipa::path(post, path = "/api/tokens", tag = "accounts", request_body = TokenRequest, responses((status = 201, body = TokenResponse), (status = 401, description = "not logged in", body = ErrorBody), (status = 403, description = "role or CSRF", body = ErrorBody), (status = 400, description = "malformed", body = ErrorBody), (status = 413, description = "body over 1 MiB", body = ErrorBody), (status = 415, description = "not JSON", body = ErrorBody), (status = 422, description = "refused: the policy would not load, or fields unknown", body = ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn create_token(
    State(state): State<AppState>,
    caller: Caller,
    AppJson(req): AppJson<TokenRequest>,
) -> Result<(StatusCode, AppJson<TokenResponse>), AppError> {
    let name = req.name.trim();
    if name.is_empty() || name.len() > 100 {
        return Err(AppError::BadRequest("a token needs a name of 1 to 100 characters".into()));
    }
    let days = req.expires_in_days.unwrap_or(90);
    if !(0..=3660).contains(&days) {
        return Err(AppError::BadRequest("expires_in_days is 0 (never) to 3660".into()));
    }
    let opts = portcullis_store::TokenOptions {
        expires_ms: (days > 0).then(|| portcullis_store::now_ms() + days * 86_400_000),
        read_only: req.read_only,
    };
    let token = state.store.create_token_with(caller.user.id, name, opts).await?;
    let after = serde_json::json!({ "name": name, "user": caller.user.name, "expires_ms": opts.expires_ms, "read_only": opts.read_only }).to_string();
    state
        .store
        .audit(caller.user.org_id, &caller.actor, "create", &format!("token {name}"), None, Some(&after))
        .await?;
    Ok((
        StatusCode::CREATED,
        AppJson(TokenResponse { name: name.to_owned(), token, expires_ms: opts.expires_ms, read_only: opts.read_only }),
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewUser {
    pub(crate) name: String,
    pub(crate) role: String,
    pub(crate) password: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct UserCreated {
    id: i64,
    name: String,
    role: &'static str,
}

#[utoipa::path(post, path = "/api/users", tag = "accounts", request_body = NewUser, responses((status = 201, body = UserCreated), (status = 401, description = "not logged in", body = ErrorBody), (status = 403, description = "role or CSRF", body = ErrorBody), (status = 400, description = "malformed", body = ErrorBody), (status = 413, description = "body over 1 MiB", body = ErrorBody), (status = 415, description = "not JSON", body = ErrorBody), (status = 422, description = "refused: the policy would not load, or fields unknown", body = ErrorBody), (status = 409, body = ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn create_user(
    State(state): State<AppState>,
    caller: Caller,
    AppJson(req): AppJson<NewUser>,
) -> Result<(StatusCode, AppJson<UserCreated>), AppError> {
    caller.require_admin()?;
    let role = Role::from_name(&req.role)
        .ok_or_else(|| AppError::BadRequest(format!("unknown role {:?}; use admin, approver or auditor", req.role)))?;
    if req.name.trim().is_empty() || req.name.trim().len() > 100 {
        return Err(AppError::BadRequest("a user needs a name of 1 to 100 characters".into()));
    }
    crate::admin_api::check_password(&req.password)?;
    let id = state.store.create_user(caller.user.org_id, req.name.trim(), role, &req.password).await?;
    let after = serde_json::json!({ "name": req.name.trim(), "role": role.name() }).to_string();
    state
        .store
        .audit(caller.user.org_id, &caller.actor, "create", &format!("user {}", req.name.trim()), None, Some(&after))
        .await?;
    Ok((StatusCode::CREATED, AppJson(UserCreated { id, name: req.name.trim().to_owned(), role: role.name() })))
}

async fn openapi_json() -> impl IntoResponse {
    static DOC: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let body = DOC.get_or_init(crate::openapi::document).clone();
    ([(axum::http::header::CONTENT_TYPE, "application/json")], body)
}

#[derive(Deserialize)]
pub(crate) struct AuditQuery {
    limit: Option<i64>,
}

#[derive(Serialize)]
pub(crate) struct AuditRow {
    id: i64,
    at_ms: i64,
    actor: String,
    action: String,
    object: String,
    before: Option<serde_json::Value>,
    after: Option<serde_json::Value>,
}

#[utoipa::path(get, path = "/api/audit", tag = "accounts", params(("limit" = Option<i64>, Query, description = "1 to 1000")), responses((status = 200, body = Vec<Object>), (status = 401, description = "not logged in", body = ErrorBody), (status = 403, description = "role or CSRF", body = ErrorBody), (status = 400, body = ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn audit(
    State(state): State<AppState>,
    caller: Caller,
    AppQuery(q): AppQuery<AuditQuery>,
) -> Result<AppJson<Vec<AuditRow>>, AppError> {
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let parse = |s: Option<String>| s.and_then(|t| serde_json::from_str(&t).ok());
    let rows = state.store.audit_log(caller.user.org_id, limit).await?;
    Ok(AppJson(
        rows.into_iter()
            .map(|e| AuditRow {
                id: e.id,
                at_ms: e.at_ms,
                actor: e.actor,
                action: e.action,
                object: e.object,
                before: parse(e.before_json),
                after: parse(e.after_json),
            })
            .collect(),
    ))
}
