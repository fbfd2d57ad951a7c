//! The Computers page: the organization's mode, the group tree with enrollment tokens, the
//! computers, pending enrollments and the bundle signing key.

use super::*;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/computers", get(computers_page))
        .route("/settings", post(settings))
        .route("/groups", post(create_group))
        .route("/groups/{id}/token", post(group_token))
        .route(
            "/groups/{id}/token/revoke",
            on_item("/computers", |state, caller, id| async move {
                ops::computers::revoke_enrollment_token(&state, &caller, id).await?;
                Ok("Enrollment token revoked: no agent enrolls with it any more".to_owned())
            }),
        )
        .route(
            "/groups/{id}/delete",
            on_item("/computers", |state, caller, id| async move {
                ops::computers::delete_group(&state, &caller, id).await?;
                Ok("Group removed".to_owned())
            }),
        )
        .route("/computers/{id}", post(update_computer))
        .route("/groups/{id}/installation", post(group_installation))
        .route("/computers/{id}/packages", get(packages_page))
        .route("/computers/{id}/bypass-code", post(bypass_code))
        .route(
            "/computers/{id}/delete",
            on_item("/computers", |state, caller, id| async move {
                ops::computers::delete_computer(&state, &caller, id).await?;
                Ok("Computer removed; its agent must enroll again".to_owned())
            }),
        )
        .route("/bundle-key/rotate", post(rotate_bundle_key))
        .route(
            "/enrollments/{id}/accept",
            on_item("/computers", |state, caller, id| async move {
                ops::computers::accept_pending(&state, &caller, id).await?;
                Ok("Enrollment accepted: the computer now answers to the new agent; the old credential no longer works"
                    .to_owned())
            }),
        )
        .route(
            "/enrollments/{id}/reject",
            on_item("/computers", |state, caller, id| async move {
                ops::computers::reject_pending(&state, &caller, id).await?;
                Ok("Enrollment rejected".to_owned())
            }),
        )
}

const MODES: [&str; 4] = ["monitor", "learning", "secured", "installation"];

struct GroupView {
    id: i64,
    path: String,
    name: String,
    depth: f64,
    mode: String,
    /// Its Installation window, for people.
    window: String,
    computers: i64,
    enrollment_open: bool,
    /// The open token's limits, for people: "until …", "N uses left".
    enrollment_limits: String,
    /// Its learning baseline's page.
    baseline: String,
}

struct ComputerRowView {
    id: i64,
    name: String,
    online: bool,
    last_seen: String,
    group: String,
    mode: String,
    effective_mode: String,
    /// Its own Installation window, for people.
    window: String,
    os: String,
    agent: String,
    bundle_version: i64,
    /// Online but enforcing an older bundle than the latest (or refusing it).
    lags: bool,
    bundle_error: String,
    /// Events its agent could not keep.
    events_lost: i64,
    /// Packages its agent reported (`None`: none reported yet).
    packages: Option<i64>,
    /// Its learning baseline's page.
    baseline: String,
    /// A Mac's Santa rules, with where Santa's precedence differs (empty for other systems).
    santa: String,
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
    /// The organization's mode as it stands now (a Learning period that ended is Monitor).
    org_mode_now: String,
    groups: Vec<GroupView>,
    computers: Vec<ComputerRowView>,
    latest: i64,
    pending: Vec<PendingView>,
    /// The signing key, or why it cannot be read.
    signing: Result<SigningView, String>,
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
    let caller = console.reader();
    let org = caller.user.org_id;
    let settings = ops::computers::settings(state, &caller).await?;
    let org_mode = settings.mode.clone().unwrap_or_else(|| "monitor".into());
    let groups_rows = ops::computers::groups(state, &caller).await?;
    let computer_rows = ops::computers::computers(state, &caller).await?;
    // A group's mode, or the organization's for no group (what a computer without a mode
    // of its own is in), by the engine's rule of inheritance on the stored rows: the page
    // works even when the stored model does not load, when it is needed most.
    let org_mode_now = mode_now(&org_mode, settings.until.as_deref());
    let group_mode = |path: Option<&str>| -> String {
        portcullis_policy::PolicySet::inherited(path, |p| {
            groups_rows
                .iter()
                .find(|g| g.doc.path.eq_ignore_ascii_case(p))
                .and_then(|g| g.doc.mode.as_deref().map(|m| mode_now(m, g.doc.until.as_deref())))
        })
        .unwrap_or_else(|| org_mode_now.clone())
    };
    let latest = state.hub.version(&state.store, org).await?;
    let pending = ops::computers::pending(state, &caller)
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
            ComputerRowView {
                id: c.id,
                online: c.online,
                lags: c.online && (c.bundle_version < latest || c.bundle_error.is_some()),
                bundle_error: c.bundle_error.clone().unwrap_or_default(),
                events_lost: c.events_lost,
                last_seen: when(c.last_seen_ms),
                effective_mode: group_mode(c.doc.group.as_deref()),
                window: window_text(c.doc.mode.as_deref(), c.doc.until.as_deref(), c.doc.capture_into.as_deref()),
                mode: c.doc.mode.clone().unwrap_or_default(),
                os: c.doc.os.clone().unwrap_or_default(),
                agent: c.agent_version.clone().unwrap_or_default(),
                bundle_version: c.bundle_version,
                packages: c.packages_ms.map(|_| c.package_count),
                baseline: format!("/baseline?scope={}", encode(&format!("computer:{}", c.doc.name))),
                santa: if c.doc.os.as_deref().is_some_and(|o| o.eq_ignore_ascii_case("macos")) {
                    format!("/exports?format=santa&computer={}", encode(&c.doc.name))
                } else {
                    String::new()
                },
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
            mode: g.doc.mode.as_deref().map_or_else(
                || format!("inherits ({})", group_mode(Some(&g.doc.path))),
                |m| mode_now(m, g.doc.until.as_deref()),
            ),
            window: window_text(g.doc.mode.as_deref(), g.doc.until.as_deref(), g.doc.capture_into.as_deref()),
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
            baseline: format!("/baseline?scope={}", encode(&format!("group:{}", g.doc.path))),
            path: g.doc.path.clone(),
        })
        .collect();
    // A key that does not open (a lost secret key, a damaged row) must not take the page
    // with it: the page says so, and how to repair it.
    let signing = match ops::computers::bundle_key(state, &caller).await {
        Ok(key) => Ok(SigningView {
            public_key: key.public_key,
            rotations: key.rotations.len(),
            last_rotated: key.rotations.last().map_or_else(|| "never".into(), |e| when(Some(e.issued_ms))),
            sealed_with: key.sealed_with,
        }),
        Err(e @ (AppError::Conflict(_) | AppError::Store(_))) => Err(e.to_string()),
        Err(e) => return Err(e),
    };
    Ok(html(ComputersPage {
        signing,
        page: console.page("/computers", flash),
        token,
        server_url,
        modes: MODES,
        org_mode,
        org_mode_now,
        groups,
        computers,
        latest,
        pending,
    }))
}

/// A stored mode as it stands now, for people: a Learning period that is over is Monitor,
/// and says why (the engine's rule, [`portcullis_policy::Mode::at`]).
fn mode_now(mode: &str, until: Option<&str>) -> String {
    let now = portcullis_policy::Timestamp(jiff::Timestamp::now().as_second());
    let ended = until.filter(|u| portcullis_policy_file::parse_time(u).is_some_and(|t| t <= now));
    match (mode, ended) {
        ("learning", Some(u)) => format!("monitor: learning ended {u} with no accepted baseline"),
        ("installation", Some(u)) => format!("secured: installation ended {u}"),
        (m, _) => m.to_owned(),
    }
}

/// An Installation window for people: until when, into which application (whose rules are
/// what it captured).
fn window_text(mode: Option<&str>, until: Option<&str>, capture_into: Option<&str>) -> String {
    if !mode.is_some_and(|m| m.trim().eq_ignore_ascii_case("installation")) {
        return String::new();
    }
    let now = portcullis_policy::Timestamp(jiff::Timestamp::now().as_second());
    let end = until.and_then(portcullis_policy_file::parse_time);
    let app = capture_into.unwrap_or("?");
    match end {
        Some(t) if t > now => format!("open until {}, capturing into {app:?}", t.date()),
        Some(t) => format!("closed {}; its captures are in {app:?}", t.date()),
        None => format!("capturing into {app:?}"),
    }
}

/// The end of a window `hours` from now (1 to 168), as policy files write times.
fn window_end(hours: &str) -> Result<String, AppError> {
    let h: i64 = hours
        .trim()
        .parse()
        .ok()
        .filter(|h| (1..=168).contains(h))
        .ok_or_else(|| AppError::BadRequest(format!("{:?} hours: a window lasts 1 to 168 hours", hours.trim())))?;
    let end = jiff::Timestamp::from_second(jiff::Timestamp::now().as_second() + h * 3600)
        .map_err(|e| AppError::BadRequest(e.to_string()))?;
    Ok(end.to_string())
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
    /// `yes` once the administrator saw what Secured mode would deny.
    #[serde(default)]
    confirm: String,
}

/// Whether a mode chosen in a form is Secured, or ends in it (Installation), in any of the
/// spellings policy files accept.
fn enters_secured(mode: &str) -> bool {
    matches!(mode.trim().to_ascii_lowercase().as_str(), "secured" | "secure" | "enforce" | "installation")
}

/// The computer's name when setting its mode to `mode` (empty: its group's) puts it in
/// Secured mode and it is not in Secured mode now; `None` otherwise.
async fn secured_now(state: &AppState, console: &Console, id: i64, mode: &str) -> Result<Option<String>, AppError> {
    let caller = console.reader();
    let c =
        ops::computers::computers(state, &caller).await?.into_iter().find(|c| c.id == id).ok_or(AppError::NotFound)?;
    let settings = ops::computers::settings(state, &caller).await?;
    let groups = ops::computers::groups(state, &caller).await?;
    let org_mode = mode_now(settings.mode.as_deref().unwrap_or("monitor"), settings.until.as_deref());
    let group_mode = portcullis_policy::PolicySet::inherited(c.doc.group.as_deref(), |p| {
        groups
            .iter()
            .find(|g| g.doc.path.eq_ignore_ascii_case(p))
            .and_then(|g| g.doc.mode.as_deref().map(|m| mode_now(m, g.doc.until.as_deref())))
    })
    .unwrap_or(org_mode);
    let after = if mode.trim().is_empty() { group_mode.clone() } else { mode.to_owned() };
    let before = c.doc.mode.as_deref().map_or(group_mode, |m| mode_now(m, c.doc.until.as_deref()));
    let secured = |m: &str| enters_secured(m) || m.starts_with("secured");
    Ok((secured(&after) && !secured(&before)).then_some(c.doc.name))
}

/// How far back the Secured confirmation looks for would-deny events.
const CONFIRM_DAYS: i64 = 7;
/// How many files the confirmation lists.
const CONFIRM_FILES: usize = 50;

#[derive(Template)]
#[template(path = "confirm_secured.html")]
struct ConfirmSecuredPage {
    page: Page,
    what: String,
    where_: String,
    days: i64,
    would_deny: usize,
    files: Vec<WouldDenyView>,
    more: usize,
    action: String,
    fields: Vec<(&'static str, String)>,
}

struct WouldDenyView {
    path: String,
    sha256: String,
    count: usize,
    computers: String,
}

/// Before a switch to Secured: what it would have denied there lately, and a button that
/// repeats the form with `confirm=yes`.
async fn confirm_secured(
    state: &AppState,
    console: &Console,
    csrf: &str,
    (what, where_): (String, String),
    computers: Option<Vec<String>>,
    (action, fields): (String, Vec<(&'static str, String)>),
) -> Result<Response, AppError> {
    let caller = console.caller(csrf)?;
    let summary = ops::computers::would_deny(state, &caller, computers.as_deref(), CONFIRM_DAYS).await?;
    let more = summary.files.len().saturating_sub(CONFIRM_FILES);
    let files = summary
        .files
        .into_iter()
        .take(CONFIRM_FILES)
        .map(|f| WouldDenyView {
            path: f.path,
            sha256: f.sha256,
            count: f.count,
            computers: f.computers.into_iter().collect::<Vec<_>>().join(", "),
        })
        .collect();
    Ok(html(ConfirmSecuredPage {
        page: console.page("/computers", Flash::default()),
        what,
        where_,
        days: CONFIRM_DAYS,
        would_deny: summary.events,
        files,
        more,
        action,
        fields,
    }))
}

async fn settings(State(state): State<AppState>, console: Console, Form(f): Form<ModeForm>) -> Response {
    if enters_secured(&f.mode) && f.confirm != "yes" {
        let shown = confirm_secured(
            &state,
            &console,
            &f.csrf,
            ("the organization".into(), "on its computers".into()),
            None,
            ("/settings".into(), vec![("mode", f.mode.clone()), ("until", f.until.clone())]),
        )
        .await;
        return shown.unwrap_or_else(|e| back("/computers", Err(e)));
    }
    console
        .act(&f.csrf, "/computers", async |caller| {
            let mut doc: OrganizationDoc = ops::computers::settings(&state, &caller).await?;
            doc.mode = Some(f.mode.clone());
            doc.until = opt(&f.until);
            ops::computers::set_settings(&state, &caller, doc).await?;
            Ok(format!("Organization mode set to {}", f.mode))
        })
        .await
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
    console
        .act(&f.csrf, "/computers", async |caller| {
            let doc = GroupDoc { path: f.path.clone(), mode: opt(&f.mode), ..Default::default() };
            ops::computers::create_group(&state, &caller, doc).await?;
            Ok(format!("Group {:?} added", f.path.trim()))
        })
        .await
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
        let path = ops::computers::groups(&state, &caller)
            .await?
            .into_iter()
            .find(|g| g.id == id)
            .map(|g| g.doc.path)
            .ok_or(AppError::NotFound)?;
        let t = ops::computers::enrollment_token(&state, &caller, id, None, None).await?;
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

async fn rotate_bundle_key(State(state): State<AppState>, console: Console, Form(f): Form<CsrfOnly>) -> Response {
    console
        .act(&f.csrf, "/computers", async |caller| {
            let key = ops::computers::rotate_bundle_key(&state, &caller).await?;
            Ok(format!(
                "Bundle signing key rotated: agents take the new key {}… with their next bundle, endorsed by the old one",
                &key.public_key[..16]
            ))
        })
        .await
}

#[derive(Deserialize)]
struct ComputerForm {
    #[serde(rename = "_csrf")]
    csrf: String,
    #[serde(default)]
    group: String,
    #[serde(default)]
    mode: String,
    /// An Installation window's length in hours (the window form).
    #[serde(default)]
    hours: String,
    /// The application an Installation window captures into.
    #[serde(default)]
    capture_into: String,
    /// `yes` once the administrator saw what Secured mode would deny.
    #[serde(default)]
    confirm: String,
}

async fn update_computer(
    State(state): State<AppState>,
    console: Console,
    Path(id): Path<i64>,
    Form(f): Form<ComputerForm>,
) -> Response {
    // "Inherit" enters Secured too when the group is Secured; a computer already Secured is
    // not asked again.
    let entering = match secured_now(&state, &console, id, &f.mode).await {
        Ok(e) => e,
        Err(e) => return back("/computers", Err(e)),
    };
    if let (Some(name), true) = (entering, f.confirm != "yes") {
        let shown = confirm_secured(
            &state,
            &console,
            &f.csrf,
            (format!("{name:?}"), format!("on {name:?}")),
            Some(vec![name]),
            (
                format!("/computers/{id}"),
                vec![
                    ("mode", f.mode.clone()),
                    ("group", f.group.clone()),
                    ("hours", f.hours.clone()),
                    ("capture_into", f.capture_into.clone()),
                ],
            ),
        )
        .await;
        return shown.unwrap_or_else(|e| back("/computers", Err(e)));
    }
    console
        .act(&f.csrf, "/computers", async |caller| {
            let mut doc = ComputerDoc { group: opt(&f.group), mode: opt(&f.mode), ..Default::default() };
            if !f.hours.trim().is_empty() {
                doc.until = Some(window_end(&f.hours)?);
                doc.capture_into = opt(&f.capture_into);
            }
            ops::computers::update_computer(&state, &caller, id, doc).await?;
            Ok(match (f.mode.as_str(), &doc_window(&f)) {
                (_, Some(w)) => w.clone(),
                ("", _) => "Mode set to the group's".into(),
                (m, _) => format!("Mode set to {m}"),
            })
        })
        .await
}

fn doc_window(f: &ComputerForm) -> Option<String> {
    (f.mode.trim().eq_ignore_ascii_case("installation") && !f.hours.trim().is_empty()).then(|| {
        format!(
            "Installation window open for {} h: what named installers write is captured into {:?}; everything else \
             is enforced",
            f.hours.trim(),
            f.capture_into.trim()
        )
    })
}

#[derive(Deserialize)]
struct WindowForm {
    #[serde(rename = "_csrf")]
    csrf: String,
    hours: String,
    capture_into: String,
    /// `yes` once the administrator saw what Secured mode would deny.
    #[serde(default)]
    confirm: String,
}

/// Open an Installation window for a group: its computers enforce everything but what named
/// installers write, which is captured into the application.
async fn group_installation(
    State(state): State<AppState>,
    console: Console,
    Path(id): Path<i64>,
    Form(f): Form<WindowForm>,
) -> Response {
    let caller = console.reader();
    let group = match ops::computers::groups(&state, &caller).await {
        Ok(g) => g.into_iter().find(|g| g.id == id),
        Err(e) => return back("/computers", Err(e)),
    };
    let Some(group) = group else { return back("/computers", Err(AppError::NotFound)) };
    if f.confirm != "yes" {
        // Its computers, and those of the groups below it.
        let path = group.doc.path.to_ascii_lowercase();
        let members = match ops::computers::computers(&state, &caller).await {
            Ok(list) => list
                .into_iter()
                .filter(|c| {
                    c.doc.group.as_deref().map(str::to_ascii_lowercase).is_some_and(|g| {
                        g == path || g.strip_prefix(path.as_str()).is_some_and(|rest| rest.starts_with('/'))
                    })
                })
                .map(|c| c.doc.name)
                .collect(),
            Err(e) => return back("/computers", Err(e)),
        };
        let shown = confirm_secured(
            &state,
            &console,
            &f.csrf,
            (format!("group {:?}", group.doc.path), format!("in group {:?}", group.doc.path)),
            Some(members),
            (
                format!("/groups/{id}/installation"),
                vec![("hours", f.hours.clone()), ("capture_into", f.capture_into.clone())],
            ),
        )
        .await;
        return shown.unwrap_or_else(|e| back("/computers", Err(e)));
    }
    console
        .act(&f.csrf, "/computers", async |caller| {
            let doc = GroupDoc {
                mode: Some("installation".into()),
                until: Some(window_end(&f.hours)?),
                capture_into: opt(&f.capture_into),
                ..group.doc.clone()
            };
            ops::computers::update_group(&state, &caller, id, doc).await?;
            Ok(format!(
                "Installation window open for group {:?} for {} h, capturing into {:?}",
                group.doc.path,
                f.hours.trim(),
                f.capture_into.trim()
            ))
        })
        .await
}

/// Packages shown on one page at most (the filter finds the others).
const PACKAGES_SHOWN: i64 = 2000;

#[derive(Template)]
#[template(path = "packages.html")]
struct PackagesPage {
    page: Page,
    id: i64,
    computer: String,
    reported: String,
    total: i64,
    filter: String,
    packages: Vec<portcullis_store::PackageRow>,
    /// More match the filter than are shown.
    cut: bool,
}

#[derive(Deserialize)]
struct PackagesForm {
    #[serde(default)]
    q: String,
}

async fn packages_page(
    State(state): State<AppState>,
    console: Console,
    Path(id): Path<i64>,
    Query(f): Query<PackagesForm>,
) -> Result<Response, AppError> {
    let caller = console.reader();
    let filter = f.q.trim().to_owned();
    let mut list = ops::computers::computer_packages(&state, &caller, id, &filter, Some(PACKAGES_SHOWN + 1)).await?;
    let cut = list.packages.len() as i64 > PACKAGES_SHOWN;
    list.packages.truncate(PACKAGES_SHOWN as usize);
    Ok(html(PackagesPage {
        page: console.page("/computers", Flash::default()),
        id,
        computer: list.computer,
        reported: when(list.reported_ms),
        total: list.total,
        filter,
        packages: list.packages,
        cut,
    }))
}

#[derive(Template)]
#[template(path = "bypass.html")]
struct BypassPage {
    page: Page,
    code: ops::computers::BypassCodeView,
}

#[derive(Deserialize)]
struct BypassForm {
    #[serde(rename = "_csrf")]
    csrf: String,
    minutes: u32,
    #[serde(default = "default_valid_hours")]
    valid_hours: i64,
}

fn default_valid_hours() -> i64 {
    24
}

/// A one-time bypass code, shown on this response only (never in a redirect URL).
async fn bypass_code(
    State(state): State<AppState>,
    console: Console,
    Path(id): Path<i64>,
    Form(f): Form<BypassForm>,
) -> Response {
    let result = async {
        let caller = console.caller(&f.csrf)?;
        ops::computers::bypass_code(&state, &caller, id, f.minutes, f.valid_hours).await
    }
    .await;
    match result {
        Ok(code) => html(BypassPage { page: console.page("/computers", Flash::default()), code }),
        Err(e) => back("/computers", Err(e)),
    }
}
