//! `/api/session`, `/api/me`, `/api/tokens`, `/api/users`, `/api/sessions`, `/api/audit`,
//! and the OpenAPI document itself.

use super::{Changes, ChangesOne, Reads, ReadsOne, Taken};
use crate::AppState;
use crate::auth::{Caller, ClientAddr, SESSION_COOKIE};
use crate::error::{AppError, AppJson, AppPath, AppQuery, ErrorBody};
use crate::ops::accounts::{self as ops, AuditView, Me, NewToken, NewUser};
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{delete, get, post, put};
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};
use portcullis_store::{SessionRow, TokenRow, UserInfo};
use serde::{Deserialize, Serialize};

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/session", post(login).delete(logout))
        .route("/api/me", get(me))
        .route("/api/me/password", post(change_own_password))
        .route("/api/tokens", get(tokens).post(create_token))
        .route("/api/tokens/{id}", delete(revoke_token))
        .route("/api/users", get(users).post(create_user))
        .route("/api/users/{id}", put(update_user).delete(delete_user))
        .route("/api/users/{id}/password", post(reset_password))
        .route("/api/sessions", get(sessions).delete(end_all_sessions))
        .route("/api/sessions/{id}", delete(end_session))
        .route("/api/audit", get(audit))
}

/// The session cookie for a new session: HttpOnly, SameSite=Strict, Secure over HTTPS.
pub(crate) fn session_cookie(state: &AppState, sid: String) -> Cookie<'static> {
    Cookie::build((SESSION_COOKIE, sid))
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(state.secure_cookies)
        .path("/")
        .build()
}

/// Credentials.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LoginRequest {
    organization: String,
    user: String,
    password: String,
}

/// A new session.
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
    ClientAddr(client): ClientAddr,
    AppJson(req): AppJson<LoginRequest>,
) -> Result<impl IntoResponse, AppError> {
    let (sid, session) = ops::login(&state, &req.organization, &req.user, &req.password, client.as_deref()).await?;
    let me = Me {
        organization: session.user.org_name.clone(),
        user: session.user.name.clone(),
        role: session.user.role.name(),
    };
    Ok((jar.add(session_cookie(&state, sid)), AppJson(LoginResponse { me, csrf_token: session.csrf })))
}

#[utoipa::path(delete, path = "/api/session", tag = "accounts", responses((status = 204), Reads), security(("bearer" = [])))]
pub(crate) async fn logout(
    State(state): State<AppState>,
    caller: Caller,
    jar: CookieJar,
) -> Result<impl IntoResponse, AppError> {
    ops::logout(&state, &caller, jar.get(SESSION_COOKIE).map(|c| c.value())).await?;
    Ok((jar.remove(Cookie::build(SESSION_COOKIE).path("/")), StatusCode::NO_CONTENT))
}

#[utoipa::path(get, path = "/api/me", tag = "accounts", responses((status = 200, body = Me), Reads), security(("bearer" = [])))]
pub(crate) async fn me(caller: Caller) -> AppJson<Me> {
    AppJson(ops::me(&caller))
}

/// A new API token.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TokenRequest {
    /// Its name.
    pub(crate) name: String,
    /// Days until it stops working (default 90; 0: never).
    #[serde(default)]
    pub(crate) expires_in_days: Option<i64>,
    /// It may only read (GET), whatever the user's role.
    #[serde(default)]
    pub(crate) read_only: bool,
}

#[utoipa::path(post, path = "/api/tokens", tag = "accounts", request_body = TokenRequest, responses((status = 201, body = NewToken), Changes), security(("bearer" = [])))]
pub(crate) async fn create_token(
    State(state): State<AppState>,
    caller: Caller,
    AppJson(req): AppJson<TokenRequest>,
) -> Result<(StatusCode, AppJson<NewToken>), AppError> {
    let made = ops::create_token(&state, &caller, &req.name, req.expires_in_days, req.read_only).await?;
    Ok((StatusCode::CREATED, AppJson(made)))
}

#[utoipa::path(get, path = "/api/tokens", tag = "accounts", responses((status = 200, description = "an admin sees the organization's tokens, others their own", body = Vec<TokenRow>), Reads), security(("bearer" = [])))]
pub(crate) async fn tokens(State(state): State<AppState>, caller: Caller) -> Result<AppJson<Vec<TokenRow>>, AppError> {
    Ok(AppJson(ops::tokens(&state, &caller).await?))
}

#[utoipa::path(delete, path = "/api/tokens/{id}", tag = "accounts", params(("id" = i64, Path)), responses((status = 204), ReadsOne), security(("bearer" = [])))]
pub(crate) async fn revoke_token(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(id): AppPath<i64>,
) -> Result<StatusCode, AppError> {
    ops::revoke_token(&state, &caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A new user.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UserRequest {
    name: String,
    /// `admin`, `approver` or `auditor`.
    role: String,
    /// 8 to 1024 bytes.
    password: String,
}

#[utoipa::path(post, path = "/api/users", tag = "accounts", request_body = UserRequest, responses((status = 201, body = NewUser), Changes, Taken), security(("bearer" = [])))]
pub(crate) async fn create_user(
    State(state): State<AppState>,
    caller: Caller,
    AppJson(req): AppJson<UserRequest>,
) -> Result<(StatusCode, AppJson<NewUser>), AppError> {
    Ok((StatusCode::CREATED, AppJson(ops::create_user(&state, &caller, &req.name, &req.role, &req.password).await?)))
}

#[utoipa::path(get, path = "/api/users", tag = "accounts", responses((status = 200, body = Vec<UserInfo>), Reads), security(("bearer" = [])))]
pub(crate) async fn users(State(state): State<AppState>, caller: Caller) -> Result<AppJson<Vec<UserInfo>>, AppError> {
    Ok(AppJson(ops::users(&state, &caller).await?))
}

/// A change of a user.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UserChange {
    /// `admin`, `approver` or `auditor`.
    role: Option<String>,
    /// Disabled users cannot log in; their sessions end and their tokens stop working.
    disabled: Option<bool>,
}

#[utoipa::path(put, path = "/api/users/{id}", tag = "accounts", params(("id" = i64, Path)), request_body = UserChange, responses((status = 204), ChangesOne), security(("bearer" = [])))]
pub(crate) async fn update_user(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(id): AppPath<i64>,
    AppJson(req): AppJson<UserChange>,
) -> Result<StatusCode, AppError> {
    ops::update_user(&state, &caller, id, req.role.as_deref(), req.disabled).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(delete, path = "/api/users/{id}", tag = "accounts", params(("id" = i64, Path)), responses((status = 204), ChangesOne), security(("bearer" = [])))]
pub(crate) async fn delete_user(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(id): AppPath<i64>,
) -> Result<StatusCode, AppError> {
    ops::delete_user(&state, &caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A new password.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewPassword {
    password: String,
}

#[utoipa::path(post, path = "/api/users/{id}/password", tag = "accounts", params(("id" = i64, Path)), request_body = NewPassword, responses((status = 204), ChangesOne), security(("bearer" = [])))]
pub(crate) async fn reset_password(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(id): AppPath<i64>,
    AppJson(req): AppJson<NewPassword>,
) -> Result<StatusCode, AppError> {
    ops::reset_password(&state, &caller, id, &req.password).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// One's own password, changed.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct OwnPassword {
    current: String,
    new: String,
}

#[utoipa::path(post, path = "/api/me/password", tag = "accounts", request_body = OwnPassword, responses((status = 204, description = "changed; every session of the user ends"), Changes, (status = 429, body = ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn change_own_password(
    State(state): State<AppState>,
    caller: Caller,
    AppJson(req): AppJson<OwnPassword>,
) -> Result<StatusCode, AppError> {
    ops::change_own_password(&state, &caller, &req.current, &req.new).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/sessions", tag = "accounts", responses((status = 200, description = "the caller's own sessions", body = Vec<SessionRow>), Reads), security(("bearer" = [])))]
pub(crate) async fn sessions(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<AppJson<Vec<SessionRow>>, AppError> {
    Ok(AppJson(ops::sessions(&state, &caller).await?))
}

/// How many sessions ended.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Ended {
    /// Sessions ended.
    ended: u64,
}

#[utoipa::path(delete, path = "/api/sessions", tag = "accounts", responses((status = 200, description = "log out everywhere: every session of the caller ends", body = Ended), Reads), security(("bearer" = [])))]
pub(crate) async fn end_all_sessions(
    State(state): State<AppState>,
    caller: Caller,
    jar: CookieJar,
) -> Result<impl IntoResponse, AppError> {
    let ended = ops::end_sessions(&state, &caller, None).await?;
    Ok((jar.remove(Cookie::build(SESSION_COOKIE).path("/")), AppJson(Ended { ended })))
}

#[utoipa::path(delete, path = "/api/sessions/{id}", tag = "accounts", params(("id" = String, Path, description = "the id listed by GET /api/sessions")), responses((status = 204), ReadsOne), security(("bearer" = [])))]
pub(crate) async fn end_session(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(id): AppPath<String>,
) -> Result<StatusCode, AppError> {
    ops::end_sessions(&state, &caller, Some(&id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// How much of the audit log.
#[derive(Deserialize)]
pub(crate) struct AuditQuery {
    limit: Option<i64>,
}

#[utoipa::path(get, path = "/api/audit", tag = "accounts", params(("limit" = Option<i64>, Query, description = "1 to 1000")), responses((status = 200, description = "newest first", body = Vec<AuditView>), ReadsOne), security(("bearer" = [])))]
pub(crate) async fn audit(
    State(state): State<AppState>,
    caller: Caller,
    AppQuery(q): AppQuery<AuditQuery>,
) -> Result<AppJson<Vec<AuditView>>, AppError> {
    Ok(AppJson(ops::audit(&state, &caller, q.limit).await?))
}
