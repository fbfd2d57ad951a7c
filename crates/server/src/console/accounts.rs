//! The Accounts page: one's own password, sessions and API tokens for everyone; the
//! organization's users and every token for admins. Each form calls the REST API's handler
//! (`admin_api`, `routes`), so the role checks and the audit entries are the same.

use super::{Console, CsrfOnly, Flash, Page, back, html, when};
use crate::AppState;
use crate::auth::Caller;
use crate::error::{AppError, AppJson, AppPath};
use askama::Template;
use axum::Form;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum_extra::extract::CookieJar;
use portcullis_store::Role;
use serde::Deserialize;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/accounts", get(accounts_page))
        .route("/accounts/password", post(change_password))
        .route("/accounts/sessions/{id}/end", post(end_session))
        .route("/accounts/sessions/end-all", post(end_all_sessions))
        .route("/accounts/tokens", post(create_token))
        .route("/accounts/tokens/{id}/revoke", post(revoke_token))
        .route("/accounts/users", post(create_user))
        .route("/accounts/users/{id}", post(update_user))
        .route("/accounts/users/{id}/password", post(reset_password))
        .route("/accounts/users/{id}/delete", post(delete_user))
}

const PAGE: &str = "/accounts";

/// A form's change: check its CSRF token, run `op` as the caller, and go back to the page
/// with the outcome as a one-line message.
async fn act(console: &Console, csrf: &str, op: impl AsyncFnOnce(Caller) -> Result<String, AppError>) -> Response {
    let outcome = match console.caller(csrf) {
        Ok(caller) => op(caller).await,
        Err(e) => Err(e),
    };
    back(PAGE, outcome)
}

struct UserView {
    id: i64,
    name: String,
    role: String,
    disabled: bool,
    created: String,
    is_me: bool,
}

struct TokenView {
    id: i64,
    name: String,
    user: String,
    created: String,
    expires: String,
    last_used: String,
    read_only: bool,
    state: &'static str,
}

struct SessionView {
    id: String,
    short: String,
    created: String,
    expires: String,
    current: bool,
}

#[derive(Template)]
#[template(path = "accounts.html")]
struct AccountsPage {
    page: Page,
    is_admin: bool,
    roles: [&'static str; 3],
    new_token: Option<(String, String)>,
    users: Vec<UserView>,
    tokens: Vec<TokenView>,
    sessions: Vec<SessionView>,
}

async fn accounts_view(
    state: &AppState,
    console: &Console,
    flash: Flash,
    new_token: Option<(String, String)>,
) -> Result<Response, AppError> {
    let me = &console.0.user;
    let is_admin = me.role == Role::Admin;
    let users = if is_admin {
        state
            .store
            .users(me.org_id)
            .await?
            .into_iter()
            .map(|u| UserView {
                is_me: u.id == me.id,
                id: u.id,
                name: u.name,
                role: u.role,
                disabled: u.disabled,
                created: when(Some(u.created_ms)),
            })
            .collect()
    } else {
        Vec::new()
    };
    let now = portcullis_store::now_ms();
    let tokens = state
        .store
        .tokens(me.org_id, (!is_admin).then_some(me.id))
        .await?
        .into_iter()
        .map(|t| TokenView {
            state: if t.revoked {
                "revoked"
            } else if t.expires_ms.is_some_and(|e| e <= now) {
                "expired"
            } else {
                "active"
            },
            id: t.id,
            name: t.name,
            user: t.user,
            created: when(Some(t.created_ms)),
            expires: t.expires_ms.map_or_else(|| "never".into(), |e| when(Some(e))),
            last_used: when(t.last_used_ms),
            read_only: t.read_only,
        })
        .collect();
    let current = console.session_id_hash();
    let sessions = state
        .store
        .sessions(me.id)
        .await?
        .into_iter()
        .map(|s| SessionView {
            current: s.id == current,
            created: when(Some(s.created_ms)),
            expires: when(Some(s.expires_ms)),
            short: s.id.chars().take(12).collect(),
            id: s.id,
        })
        .collect();
    Ok(html(AccountsPage {
        page: console.page(PAGE, flash),
        is_admin,
        roles: ["admin", "approver", "auditor"],
        new_token,
        users,
        tokens,
        sessions,
    }))
}

async fn accounts_page(State(state): State<AppState>, console: Console, Query(flash): Query<Flash>) -> Response {
    accounts_view(&state, &console, flash, None).await.unwrap_or_else(IntoResponse::into_response)
}

#[derive(Deserialize)]
struct PasswordForm {
    #[serde(rename = "_csrf")]
    csrf: String,
    current: String,
    new: String,
    #[serde(default)]
    again: String,
}

/// One's own password. Every session of the user ends with it, this one included: back to
/// the login page.
async fn change_password(State(state): State<AppState>, console: Console, Form(f): Form<PasswordForm>) -> Response {
    let outcome = async {
        let caller = console.caller(&f.csrf)?;
        if f.new != f.again {
            return Err(AppError::BadRequest("the new password and its repetition differ".into()));
        }
        let req = crate::admin_api::OwnPassword { current: f.current, new: f.new };
        crate::admin_api::change_own_password(State(state), caller, AppJson(req)).await?;
        Ok(())
    }
    .await;
    match outcome {
        Ok(()) => to_login(&console, "Password changed: every session of yours has ended; log in with the new one"),
        Err(e) => back(PAGE, Err(e)),
    }
}

fn to_login(console: &Console, message: &str) -> Response {
    let url = format!("/login?organization={}&ok={}", super::encode(&console.0.user.org_name), super::encode(message));
    Redirect::to(&url).into_response()
}

async fn end_session(
    State(state): State<AppState>,
    console: Console,
    Path(id): Path<String>,
    Form(f): Form<CsrfOnly>,
) -> Response {
    let current = id == console.session_id_hash();
    let outcome = match console.caller(&f.csrf) {
        Ok(caller) => crate::admin_api::end_session(State(state), caller, AppPath(id)).await,
        Err(e) => Err(e),
    };
    match outcome {
        Ok(_) if current => to_login(&console, "This session has ended"),
        Ok(_) => back(PAGE, Ok("Session ended".into())),
        Err(e) => back(PAGE, Err(e)),
    }
}

async fn end_all_sessions(
    State(state): State<AppState>,
    console: Console,
    jar: CookieJar,
    Form(f): Form<CsrfOnly>,
) -> Response {
    let outcome = match console.caller(&f.csrf) {
        Ok(caller) => {
            crate::admin_api::end_all_sessions(State(state), caller, jar).await.map(IntoResponse::into_response)
        }
        Err(e) => Err(e),
    };
    match outcome {
        Ok(_) => to_login(&console, "Logged out everywhere: every session of yours has ended"),
        Err(e) => back(PAGE, Err(e)),
    }
}

#[derive(Deserialize)]
struct TokenForm {
    #[serde(rename = "_csrf")]
    csrf: String,
    name: String,
    #[serde(default)]
    expires_in_days: String,
    #[serde(default)]
    read_only: Option<String>,
}

/// A new API token, shown on this response only (never in a redirect URL, which browsers
/// and proxies keep).
async fn create_token(State(state): State<AppState>, console: Console, Form(f): Form<TokenForm>) -> Response {
    let result = async {
        let caller = console.caller(&f.csrf)?;
        let days = match f.expires_in_days.trim() {
            "" => None,
            d => Some(d.parse::<i64>().map_err(|_| {
                AppError::BadRequest(format!("days until it expires: {d:?} is not a number (0: never)"))
            })?),
        };
        let req = crate::routes::TokenRequest { name: f.name, expires_in_days: days, read_only: f.read_only.is_some() };
        let (_, AppJson(t)) = crate::routes::create_token(State(state.clone()), caller, AppJson(req)).await?;
        Ok::<_, AppError>((t.name, t.token))
    }
    .await;
    match result {
        Ok(token) => {
            let flash = Flash { ok: Some(format!("API token {:?} made", token.0)), error: None };
            accounts_view(&state, &console, flash, Some(token)).await.unwrap_or_else(IntoResponse::into_response)
        }
        Err(e) => back(PAGE, Err(e)),
    }
}

async fn revoke_token(
    State(state): State<AppState>,
    console: Console,
    Path(id): Path<i64>,
    Form(f): Form<CsrfOnly>,
) -> Response {
    act(&console, &f.csrf, async |caller| {
        crate::admin_api::revoke_token(State(state), caller, AppPath(id)).await?;
        Ok("API token revoked: it no longer works".to_owned())
    })
    .await
}

#[derive(Deserialize)]
struct NewUserForm {
    #[serde(rename = "_csrf")]
    csrf: String,
    name: String,
    role: String,
    password: String,
}

async fn create_user(State(state): State<AppState>, console: Console, Form(f): Form<NewUserForm>) -> Response {
    act(&console, &f.csrf, async |caller| {
        let name = f.name.trim().to_owned();
        let req = crate::routes::NewUser { name: f.name, role: f.role, password: f.password };
        crate::routes::create_user(State(state), caller, AppJson(req)).await?;
        Ok(format!("User {name:?} added"))
    })
    .await
}

#[derive(Deserialize)]
struct UserForm {
    #[serde(rename = "_csrf")]
    csrf: String,
    role: String,
    /// `enabled` or `disabled`.
    state: String,
}

async fn update_user(
    State(state): State<AppState>,
    console: Console,
    Path(id): Path<i64>,
    Form(f): Form<UserForm>,
) -> Response {
    act(&console, &f.csrf, async |caller| {
        let disabled = match f.state.as_str() {
            "enabled" => false,
            "disabled" => true,
            other => return Err(AppError::BadRequest(format!("state {other:?}: use enabled or disabled"))),
        };
        let req = crate::admin_api::UserChange { role: Some(f.role.clone()), disabled: Some(disabled) };
        crate::admin_api::update_user(State(state), caller, AppPath(id), AppJson(req)).await?;
        Ok(format!("User saved: {}, {}", f.role, f.state))
    })
    .await
}

#[derive(Deserialize)]
struct ResetForm {
    #[serde(rename = "_csrf")]
    csrf: String,
    password: String,
}

async fn reset_password(
    State(state): State<AppState>,
    console: Console,
    Path(id): Path<i64>,
    Form(f): Form<ResetForm>,
) -> Response {
    act(&console, &f.csrf, async |caller| {
        let req = crate::admin_api::NewPassword { password: f.password };
        crate::admin_api::reset_password(State(state), caller, AppPath(id), AppJson(req)).await?;
        Ok("Password reset: the user's sessions have ended".to_owned())
    })
    .await
}

async fn delete_user(
    State(state): State<AppState>,
    console: Console,
    Path(id): Path<i64>,
    Form(f): Form<CsrfOnly>,
) -> Response {
    act(&console, &f.csrf, async |caller| {
        crate::admin_api::delete_user(State(state), caller, AppPath(id)).await?;
        Ok("User removed; their sessions and API tokens no longer work".to_owned())
    })
    .await
}
