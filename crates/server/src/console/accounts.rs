//! The Accounts page: one's own password, sessions and API tokens for everyone; the
//! organization's users and every token for admins, through the same operations as the
//! API (`ops::accounts`), so the role checks and the audit entries are the same.

use super::*;
use portcullis_store::Role;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/accounts", get(accounts_page))
        .route("/accounts/password", post(change_password))
        .route("/accounts/sessions/{id}/end", post(end_session))
        .route("/accounts/sessions/end-all", post(end_all_sessions))
        .route("/accounts/tokens", post(create_token))
        .route(
            "/accounts/tokens/{id}/revoke",
            on_item(PAGE, |state, caller, id| async move {
                ops::accounts::revoke_token(&state, &caller, id).await?;
                Ok("API token revoked: it no longer works".to_owned())
            }),
        )
        .route("/accounts/users", post(create_user))
        .route("/accounts/users/{id}", post(update_user))
        .route("/accounts/users/{id}/password", post(reset_password))
        .route(
            "/accounts/users/{id}/delete",
            on_item(PAGE, |state, caller, id| async move {
                ops::accounts::delete_user(&state, &caller, id).await?;
                Ok("User removed; their sessions and API tokens no longer work".to_owned())
            }),
        )
}

const PAGE: &str = "/accounts";

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
        ops::accounts::users(state, &console.reader())
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
    let caller = console.reader();
    let tokens = ops::accounts::tokens(state, &caller)
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
    let sessions = ops::accounts::sessions(state, &caller)
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
        ops::accounts::change_own_password(&state, &caller, &f.current, &f.new).await?;
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
        Ok(caller) => ops::accounts::end_sessions(&state, &caller, Some(&id)).await,
        Err(e) => Err(e),
    };
    match outcome {
        Ok(_) if current => to_login(&console, "This session has ended"),
        Ok(_) => back(PAGE, Ok("Session ended".into())),
        Err(e) => back(PAGE, Err(e)),
    }
}

async fn end_all_sessions(State(state): State<AppState>, console: Console, Form(f): Form<CsrfOnly>) -> Response {
    let outcome = match console.caller(&f.csrf) {
        Ok(caller) => ops::accounts::end_sessions(&state, &caller, None).await,
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
        let t = ops::accounts::create_token(&state, &caller, &f.name, days, f.read_only.is_some()).await?;
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

#[derive(Deserialize)]
struct NewUserForm {
    #[serde(rename = "_csrf")]
    csrf: String,
    name: String,
    role: String,
    password: String,
}

async fn create_user(State(state): State<AppState>, console: Console, Form(f): Form<NewUserForm>) -> Response {
    console
        .act(&f.csrf, PAGE, async |caller| {
            let made = ops::accounts::create_user(&state, &caller, &f.name, &f.role, &f.password).await?;
            Ok(format!("User {:?} added", made.name))
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
    console
        .act(&f.csrf, PAGE, async |caller| {
            let disabled = match f.state.as_str() {
                "enabled" => false,
                "disabled" => true,
                other => return Err(AppError::BadRequest(format!("state {other:?}: use enabled or disabled"))),
            };
            ops::accounts::update_user(&state, &caller, id, Some(&f.role), Some(disabled)).await?;
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
    console
        .act(&f.csrf, PAGE, async |caller| {
            ops::accounts::reset_password(&state, &caller, id, &f.password).await?;
            Ok("Password reset: the user's sessions have ended".to_owned())
        })
        .await
}
