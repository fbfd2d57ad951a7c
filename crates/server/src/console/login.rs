//! Logging in and out of the console (the login form has its own CSRF cookie).

use super::*;

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/login", get(login_page).post(login)).route("/logout", post(logout))
}

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
    // The same login as the API's: throttled, audited, the same cookie.
    match ops::accounts::login(&state, &f.organization, &f.user, &f.password, client.as_deref()).await {
        Ok((sid, _)) => {
            (jar.add(crate::api::accounts::session_cookie(&state, sid)), Redirect::to("/policies")).into_response()
        }
        Err(AppError::Store(e)) => {
            // The form stays usable; the cause goes to the log, not into the address bar.
            tracing::error!("console login: {}", portcullis_policy::with_causes(&e));
            let url = format!(
                "/login?organization={}&error={}",
                encode(&f.organization),
                encode("the server could not check the login just now; try again, and tell its operator if this stays")
            );
            Redirect::to(&url).into_response()
        }
        Err(e) => {
            let url = format!("/login?organization={}&error={}", encode(&f.organization), encode(&e.to_string()));
            Redirect::to(&url).into_response()
        }
    }
}

async fn logout(State(state): State<AppState>, console: Console, jar: CookieJar, Form(f): Form<CsrfOnly>) -> Response {
    let caller = match console.caller(&f.csrf) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    // The browser forgets the session whatever happens; a session the store could not end
    // expires on its own.
    if let Err(e) = ops::accounts::logout(&state, &caller, jar.get(SESSION_COOKIE).map(|c| c.value())).await {
        tracing::error!("console logout: {e}");
    }
    (jar.remove(Cookie::build(SESSION_COOKIE).path("/")), Redirect::to("/login")).into_response()
}
