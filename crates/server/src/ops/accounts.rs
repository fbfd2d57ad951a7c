//! Accounts: logging in and out (one path for the API and the console), API tokens, users,
//! sessions, passwords, and the audit log.

use super::{AppError, AppState, Caller, change};
use portcullis_store::{LoginError, Role, Session, SessionRow, TokenOptions, TokenRow, UserInfo, now_ms};
use serde::Serialize;

/// The shortest password taken.
pub const MIN_PASSWORD: usize = 8;
/// The longest password taken (argon2 would hash any length; a megabyte would cost time).
pub const MAX_PASSWORD: usize = 1024;

fn check_password(password: &str) -> Result<(), AppError> {
    if password.len() < MIN_PASSWORD || password.len() > MAX_PASSWORD {
        return Err(AppError::BadRequest(format!("a password is {MIN_PASSWORD} to {MAX_PASSWORD} bytes long")));
    }
    Ok(())
}

/// Log in (throttled per user and per client address, audited): the session's cookie
/// value and the session. The one login of the API and the console.
pub(crate) async fn login(
    state: &AppState,
    organization: &str,
    user: &str,
    password: &str,
    client: Option<&str>,
) -> Result<(String, Session), AppError> {
    if password.len() > MAX_PASSWORD {
        return Err(AppError::Login(LoginError::Wrong));
    }
    let (sid, session) = state.store.login_from(organization, user, password, client).await?;
    let actor = format!("user {}", session.user.name);
    state.store.audit(session.user.org_id, &actor, "login", &actor, None, None).await?;
    Ok((sid, session))
}

/// End the session with this cookie value.
pub(crate) async fn logout(state: &AppState, caller: &Caller, sid: Option<&str>) -> Result<(), AppError> {
    if let Some(sid) = sid {
        state.store.logout(sid).await?;
    }
    let object = format!("user {}", caller.user.name);
    Ok(state.store.audit(caller.user.org_id, &caller.actor, "logout", &object, None, None).await?)
}

/// Who the caller is.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Me {
    /// The organization.
    pub(crate) organization: String,
    /// The user.
    pub(crate) user: String,
    /// `admin`, `approver` or `auditor`.
    pub(crate) role: &'static str,
}

/// Who the caller is.
pub(crate) fn me(caller: &Caller) -> Me {
    Me { organization: caller.user.org_name.clone(), user: caller.user.name.clone(), role: caller.user.role.name() }
}

/// A new API token, shown once.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct NewToken {
    /// Its name.
    pub(crate) name: String,
    /// Shown once; only its hash is kept.
    pub(crate) token: String,
    /// When it stops working, Unix milliseconds.
    pub(crate) expires_ms: Option<i64>,
    /// It may only read.
    pub(crate) read_only: bool,
}

/// A new API token of the caller's, expiring in `days` (default 90, 0: never).
pub(crate) async fn create_token(
    state: &AppState,
    caller: &Caller,
    name: &str,
    days: Option<i64>,
    read_only: bool,
) -> Result<NewToken, AppError> {
    let name = name.trim();
    if name.is_empty() || name.len() > 100 {
        return Err(AppError::BadRequest("a token needs a name of 1 to 100 characters".into()));
    }
    let days = days.unwrap_or(90);
    if !(0..=3660).contains(&days) {
        return Err(AppError::BadRequest("expires_in_days is 0 (never) to 3660".into()));
    }
    let opts = TokenOptions { expires_ms: (days > 0).then(|| now_ms() + days * 86_400_000), read_only };
    let token = state.store.create_token_with(caller.user.id, name, opts).await?;
    let after = serde_json::json!({ "name": name, "user": caller.user.name, "expires_ms": opts.expires_ms, "read_only": read_only });
    state
        .store
        .audit(caller.user.org_id, &caller.actor, "create", &format!("token {name}"), None, Some(&after.to_string()))
        .await?;
    Ok(NewToken { name: name.to_owned(), token, expires_ms: opts.expires_ms, read_only })
}

/// Tokens: an admin sees the organization's, others their own.
pub(crate) async fn tokens(state: &AppState, caller: &Caller) -> Result<Vec<TokenRow>, AppError> {
    let whose = (caller.user.role != Role::Admin).then_some(caller.user.id);
    Ok(state.store.tokens(caller.user.org_id, whose).await?)
}

/// Revoke a token (an admin any of the organization's, others their own).
pub(crate) async fn revoke_token(state: &AppState, caller: &Caller, id: i64) -> Result<(), AppError> {
    let whose = (caller.user.role != Role::Admin).then_some(caller.user.id);
    Ok(state.store.revoke_token(change(caller), id, whose).await?)
}

/// A new user.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct NewUser {
    /// Its id.
    pub(crate) id: i64,
    /// Its name.
    pub(crate) name: String,
    /// Its role.
    pub(crate) role: &'static str,
}

fn role(name: &str) -> Result<Role, AppError> {
    Role::from_name(name)
        .ok_or_else(|| AppError::BadRequest(format!("unknown role {name:?}; use admin, approver or auditor")))
}

/// Add a user (admins).
pub(crate) async fn create_user(
    state: &AppState,
    caller: &Caller,
    name: &str,
    role_name: &str,
    password: &str,
) -> Result<NewUser, AppError> {
    caller.require_admin()?;
    let role = role(role_name)?;
    let name = name.trim();
    if name.is_empty() || name.len() > 100 {
        return Err(AppError::BadRequest("a user needs a name of 1 to 100 characters".into()));
    }
    check_password(password)?;
    let id = state.store.create_user(caller.user.org_id, name, role, password).await?;
    let after = serde_json::json!({ "name": name, "role": role.name() }).to_string();
    state.store.audit(caller.user.org_id, &caller.actor, "create", &format!("user {name}"), None, Some(&after)).await?;
    Ok(NewUser { id, name: name.to_owned(), role: role.name() })
}

/// The organization's users (admins).
pub(crate) async fn users(state: &AppState, caller: &Caller) -> Result<Vec<UserInfo>, AppError> {
    caller.require_admin()?;
    Ok(state.store.users(caller.user.org_id).await?)
}

/// Change a user's role or whether they may log in (admins; never the last enabled admin).
pub(crate) async fn update_user(
    state: &AppState,
    caller: &Caller,
    id: i64,
    role_name: Option<&str>,
    disabled: Option<bool>,
) -> Result<(), AppError> {
    caller.require_admin()?;
    let role = role_name.map(role).transpose()?;
    Ok(state.store.update_user(change(caller), id, role, disabled).await?)
}

/// Remove a user (admins; never the last enabled admin).
pub(crate) async fn delete_user(state: &AppState, caller: &Caller, id: i64) -> Result<(), AppError> {
    caller.require_admin()?;
    Ok(state.store.delete_user(change(caller), id).await?)
}

/// Set a user's password (admins): their sessions end.
pub(crate) async fn reset_password(state: &AppState, caller: &Caller, id: i64, password: &str) -> Result<(), AppError> {
    caller.require_admin()?;
    check_password(password)?;
    Ok(state.store.set_password(change(caller), id, password).await?)
}

/// Change one's own password, knowing the current one: every session of the user ends.
pub(crate) async fn change_own_password(
    state: &AppState,
    caller: &Caller,
    current: &str,
    new: &str,
) -> Result<(), AppError> {
    check_password(new)?;
    if !state.store.password_is(caller.user.id, current).await? {
        return Err(AppError::BadRequest("the current password is wrong".into()));
    }
    Ok(state.store.set_password(change(caller), caller.user.id, new).await?)
}

/// The caller's own sessions.
pub(crate) async fn sessions(state: &AppState, caller: &Caller) -> Result<Vec<SessionRow>, AppError> {
    Ok(state.store.sessions(caller.user.id).await?)
}

/// End one of the caller's sessions (`Some`), or all of them: how many ended.
pub(crate) async fn end_sessions(state: &AppState, caller: &Caller, id: Option<&str>) -> Result<u64, AppError> {
    Ok(state.store.end_sessions(change(caller), &caller.user, id).await?)
}

/// One entry of the audit log.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct AuditView {
    /// Id, increasing.
    pub(crate) id: i64,
    /// When, Unix milliseconds.
    pub(crate) at_ms: i64,
    /// Who: `user NAME`, `token of NAME`, `command line`.
    pub(crate) actor: String,
    /// What was done: `create`, `update`, `delete`, `login`, `rotate`…
    pub(crate) action: String,
    /// What it was done to.
    pub(crate) object: String,
    /// The object before, as JSON.
    #[schema(value_type = Option<Object>)]
    pub(crate) before: Option<serde_json::Value>,
    /// The object after, as JSON.
    #[schema(value_type = Option<Object>)]
    pub(crate) after: Option<serde_json::Value>,
}

/// The newest entries of the audit log (1 to 1000, default 100).
pub(crate) async fn audit(state: &AppState, caller: &Caller, limit: Option<i64>) -> Result<Vec<AuditView>, AppError> {
    let limit = limit.unwrap_or(100).clamp(1, 1000);
    let parse = |s: Option<String>| s.and_then(|t| serde_json::from_str(&t).ok());
    let rows = state.store.audit_log(caller.user.org_id, limit).await?;
    Ok(rows
        .into_iter()
        .map(|e| AuditView {
            id: e.id,
            at_ms: e.at_ms,
            actor: e.actor,
            action: e.action,
            object: e.object,
            before: parse(e.before_json),
            after: parse(e.after_json),
        })
        .collect())
}
