//! Administration in the REST API: users (list, change role, disable, delete, reset a
//! password; one's own password), API tokens (list, revoke), sessions (list, end one, log
//! out everywhere), enrollment (token limits and revocation, pending enrollments to accept
//! or reject) and the organization's bundle signing key (rotation). Every change is in the
//! audit log.

use crate::AppState;
use crate::auth::{Caller, SESSION_COOKIE};
use crate::error::{AppError, AppJson, AppPath, AppQuery, ErrorBody};
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{delete, get, post, put};
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::Cookie;
use portcullis_store::{Change, PendingRow, Role, SessionRow, TokenLimits, TokenRow, UserInfo, now_ms};
use serde::{Deserialize, Serialize};

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/users", get(users))
        .route("/api/users/{id}", put(update_user).delete(delete_user))
        .route("/api/users/{id}/password", post(reset_password))
        .route("/api/me/password", post(change_own_password))
        .route("/api/tokens", get(tokens))
        .route("/api/tokens/{id}", delete(revoke_token))
        .route("/api/sessions", get(sessions).delete(end_all_sessions))
        .route("/api/sessions/{id}", delete(end_session))
        .route("/api/groups/{id}/enrollment-token", post(enrollment_token).delete(revoke_enrollment_token))
        .route("/api/enrollments/pending", get(pending))
        .route("/api/enrollments/pending/{id}", delete(reject_pending))
        .route("/api/enrollments/pending/{id}/accept", post(accept_pending))
        .route("/api/bundle-key", get(bundle_key))
        .route("/api/bundle-key/rotate", post(rotate_bundle_key))
}

fn change(caller: &Caller) -> Change<'_> {
    Change { org_id: caller.user.org_id, actor: &caller.actor }
}

/// The shortest password taken.
pub const MIN_PASSWORD: usize = 8;
/// The longest password taken (argon2 would hash any length; a megabyte would cost time).
pub const MAX_PASSWORD: usize = 1024;

pub(crate) fn check_password(password: &str) -> Result<(), AppError> {
    if password.len() < MIN_PASSWORD || password.len() > MAX_PASSWORD {
        return Err(AppError::BadRequest(format!("a password is {MIN_PASSWORD} to {MAX_PASSWORD} bytes long")));
    }
    Ok(())
}

// ----- users ---------------------------------------------------------------------------------

#[utoipa::path(get, path = "/api/users", tag = "accounts", responses((status = 200, body = Vec<Object>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn users(State(state): State<AppState>, caller: Caller) -> Result<AppJson<Vec<UserInfo>>, AppError> {
    if caller.user.role != Role::Admin {
        return Err(AppError::Forbidden(caller.user.role.name()));
    }
    Ok(AppJson(state.store.users(caller.user.org_id).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UserChange {
    /// `admin`, `approver` or `auditor`.
    pub(crate) role: Option<String>,
    /// Disabled users cannot log in; their sessions end and their tokens stop working.
    pub(crate) disabled: Option<bool>,
}

#[utoipa::path(put, path = "/api/users/{id}", tag = "accounts", params(("id" = i64, Path)), request_body = UserChange, responses((status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, description = "would leave no enabled admin", body = ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn update_user(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(id): AppPath<i64>,
    AppJson(req): AppJson<UserChange>,
) -> Result<StatusCode, AppError> {
    caller.require_admin()?;
    let role = match req.role.as_deref() {
        None => None,
        Some(r) => Some(
            Role::from_name(r)
                .ok_or_else(|| AppError::BadRequest(format!("unknown role {r:?}; use admin, approver or auditor")))?,
        ),
    };
    state.store.update_user(change(&caller), id, role, req.disabled).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(delete, path = "/api/users/{id}", tag = "accounts", params(("id" = i64, Path)), responses((status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, description = "would leave no enabled admin", body = ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn delete_user(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(id): AppPath<i64>,
) -> Result<StatusCode, AppError> {
    caller.require_admin()?;
    state.store.delete_user(change(&caller), id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewPassword {
    pub(crate) password: String,
}

#[utoipa::path(post, path = "/api/users/{id}/password", tag = "accounts", params(("id" = i64, Path)), request_body = NewPassword, responses((status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn reset_password(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(id): AppPath<i64>,
    AppJson(req): AppJson<NewPassword>,
) -> Result<StatusCode, AppError> {
    caller.require_admin()?;
    check_password(&req.password)?;
    state.store.set_password(change(&caller), id, &req.password).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct OwnPassword {
    pub(crate) current: String,
    pub(crate) new: String,
}

#[utoipa::path(post, path = "/api/me/password", tag = "accounts", request_body = OwnPassword, responses((status = 204, description = "changed; every session of the user ends"), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, description = "wrong current password, or CSRF", body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn change_own_password(
    State(state): State<AppState>,
    caller: Caller,
    AppJson(req): AppJson<OwnPassword>,
) -> Result<StatusCode, AppError> {
    check_password(&req.new)?;
    if !state.store.password_is(caller.user.id, &req.current).await? {
        return Err(AppError::BadRequest("the current password is wrong".into()));
    }
    state.store.set_password(change(&caller), caller.user.id, &req.new).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ----- tokens and sessions -------------------------------------------------------------------

#[utoipa::path(get, path = "/api/tokens", tag = "accounts", responses((status = 200, description = "an admin sees the organization's tokens, others their own", body = Vec<Object>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn tokens(State(state): State<AppState>, caller: Caller) -> Result<AppJson<Vec<TokenRow>>, AppError> {
    let whose = (caller.user.role != Role::Admin).then_some(caller.user.id);
    Ok(AppJson(state.store.tokens(caller.user.org_id, whose).await?))
}

#[utoipa::path(delete, path = "/api/tokens/{id}", tag = "accounts", params(("id" = i64, Path)), responses((status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn revoke_token(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(id): AppPath<i64>,
) -> Result<StatusCode, AppError> {
    let whose = (caller.user.role != Role::Admin).then_some(caller.user.id);
    state.store.revoke_token(change(&caller), id, whose).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/sessions", tag = "accounts", responses((status = 200, description = "the caller's own sessions", body = Vec<Object>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn sessions(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<AppJson<Vec<SessionRow>>, AppError> {
    Ok(AppJson(state.store.sessions(caller.user.id).await?))
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Ended {
    /// Sessions ended.
    ended: u64,
}

#[utoipa::path(delete, path = "/api/sessions", tag = "accounts", responses((status = 200, description = "log out everywhere: every session of the caller ends", body = Ended), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn end_all_sessions(
    State(state): State<AppState>,
    caller: Caller,
    jar: CookieJar,
) -> Result<impl IntoResponse, AppError> {
    let ended = state.store.end_sessions(change(&caller), &caller.user, None).await?;
    Ok((jar.remove(Cookie::build(SESSION_COOKIE).path("/")), AppJson(Ended { ended })))
}

#[utoipa::path(delete, path = "/api/sessions/{id}", tag = "accounts", params(("id" = String, Path, description = "the id listed by GET /api/sessions")), responses((status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn end_session(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(id): AppPath<String>,
) -> Result<StatusCode, AppError> {
    state.store.end_sessions(change(&caller), &caller.user, Some(&id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ----- enrollment ----------------------------------------------------------------------------

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct EnrollmentToken {
    /// Give to `portcullis agent --enroll-token-file`; shown once.
    pub(crate) token: String,
    /// It stops working at this time, Unix milliseconds.
    pub(crate) expires_ms: Option<i64>,
    /// Enrollments it allows.
    pub(crate) uses: Option<i64>,
}

#[derive(Deserialize, Default)]
pub(crate) struct TokenQuery {
    /// Hours until the token stops working (default 168, a week; 0: never).
    pub(crate) expires_in_hours: Option<i64>,
    /// Enrollments it allows (default: any number).
    pub(crate) uses: Option<i64>,
}

/// The longest an enrollment token may be made to last without "never" (a year).
pub const MAX_TOKEN_HOURS: i64 = 24 * 366;
/// Default enrollment token lifetime.
pub const DEFAULT_TOKEN_HOURS: i64 = 24 * 7;

#[utoipa::path(post, path = "/api/groups/{id}/enrollment-token", tag = "model", params(("id" = i64, Path, description = "id"), ("expires_in_hours" = Option<i64>, Query, description = "hours until it stops working: default 168, 0 for never, at most 8784"), ("uses" = Option<i64>, Query, description = "how many enrollments it allows: 1 to 1000000, default any")), responses((status = 201, body = EnrollmentToken), (status = 401, description = "not logged in", body = ErrorBody), (status = 403, description = "role or CSRF", body = ErrorBody), (status = 404, description = "not found", body = ErrorBody), (status = 400, body = ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn enrollment_token(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(id): AppPath<i64>,
    AppQuery(q): AppQuery<TokenQuery>,
) -> Result<(StatusCode, AppJson<EnrollmentToken>), AppError> {
    caller.require_admin()?;
    let hours = q.expires_in_hours.unwrap_or(DEFAULT_TOKEN_HOURS);
    if !(0..=MAX_TOKEN_HOURS).contains(&hours) {
        return Err(AppError::BadRequest(format!("expires_in_hours is 0 (never) to {MAX_TOKEN_HOURS}")));
    }
    if q.uses.is_some_and(|u| !(1..=1_000_000).contains(&u)) {
        return Err(AppError::BadRequest("uses is 1 to 1000000".into()));
    }
    let limits = TokenLimits { expires_ms: (hours > 0).then(|| now_ms() + hours * 3_600_000), uses: q.uses };
    let token = state.store.rotate_enrollment_token(change(&caller), id, limits).await?;
    Ok((StatusCode::CREATED, AppJson(EnrollmentToken { token, expires_ms: limits.expires_ms, uses: limits.uses })))
}

#[utoipa::path(delete, path = "/api/groups/{id}/enrollment-token", tag = "model", params(("id" = i64, Path, description = "id")), responses((status = 204, description = "no agent enrolls with it any more"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 400, body = ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn revoke_enrollment_token(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(id): AppPath<i64>,
) -> Result<StatusCode, AppError> {
    caller.require_admin()?;
    state.store.revoke_enrollment_token(change(&caller), id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/enrollments/pending", tag = "agents", responses((status = 200, description = "enrollments under a name that is taken, waiting for an administrator", body = Vec<Object>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn pending(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<AppJson<Vec<PendingRow>>, AppError> {
    Ok(AppJson(state.store.pending_enrollments(caller.user.org_id).await?))
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Accepted {
    /// The computer that now holds the pending agent's credential.
    computer: i64,
}

#[utoipa::path(post, path = "/api/enrollments/pending/{id}/accept", tag = "agents", params(("id" = i64, Path)), responses((status = 200, description = "the computer of that name takes the new agent's credential; the old one stops working", body = Accepted), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn accept_pending(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(id): AppPath<i64>,
) -> Result<AppJson<Accepted>, AppError> {
    caller.require_admin()?;
    let computer = state.store.accept_enrollment(change(&caller), id).await?;
    state.sync.enrolled(caller.user.org_id, computer).await;
    Ok(AppJson(Accepted { computer }))
}

#[utoipa::path(delete, path = "/api/enrollments/pending/{id}", tag = "agents", params(("id" = i64, Path)), responses((status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn reject_pending(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(id): AppPath<i64>,
) -> Result<StatusCode, AppError> {
    caller.require_admin()?;
    state.store.reject_enrollment(change(&caller), id).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ----- the bundle signing key ----------------------------------------------------------------

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct BundleKeyView {
    /// The organization's bundle key now (ed25519 public key, hex): what new agents receive.
    pub(crate) public_key: String,
    /// Its rotations, oldest first: each key endorsed by the one before it. Enrolled agents
    /// follow them to the current key with their next bundle.
    pub(crate) rotations: Vec<portcullis_protocol::KeyEndorsement>,
    /// The id of the server's secret key that seals the signing seed (the key itself is
    /// outside the database).
    pub(crate) sealed_with: String,
}

pub(crate) async fn bundle_key_view(state: &AppState, org_id: i64) -> Result<BundleKeyView, AppError> {
    Ok(BundleKeyView {
        public_key: state.store.bundle_key(org_id).await?.public().to_hex(),
        rotations: state.store.bundle_key_chain(org_id).await?,
        sealed_with: state.store.secret_key_ids().into_iter().next().unwrap_or_default(),
    })
}

#[utoipa::path(get, path = "/api/bundle-key", tag = "agents", responses((status = 200, body = BundleKeyView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn bundle_key(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<AppJson<BundleKeyView>, AppError> {
    Ok(AppJson(bundle_key_view(&state, caller.user.org_id).await?))
}

#[utoipa::path(post, path = "/api/bundle-key/rotate", tag = "agents", responses((status = 200, description = "a new key signs from now on, endorsed by the old one; every agent receives a bundle signed by it and keeps it, with no re-enrollment", body = BundleKeyView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, description = "another rotation at the same moment", body = ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn rotate_bundle_key(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<AppJson<BundleKeyView>, AppError> {
    caller.require_admin()?;
    state.store.rotate_bundle_key(change(&caller)).await?;
    state.sync.changed(&state.store, caller.user.org_id).await?;
    Ok(AppJson(bundle_key_view(&state, caller.user.org_id).await?))
}
