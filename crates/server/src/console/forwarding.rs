//! The Forwarding page: where events go (each destination with its backlog and last error),
//! and how long they stay. Admins change it; everyone can see it.

use super::*;
use crate::ops::forwarding::{self as ops_forwarding, ForwarderInput};
use portcullis_store::{ForwarderRow, Retention};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/forwarding", get(forwarding_page))
        .route("/forwarding/new", post(create))
        .route("/forwarding/{id}/switch", post(switch))
        .route("/forwarding/{id}/delete", post(delete))
        .route("/forwarding/retention", post(retention))
}

struct ForwarderView {
    row: ForwarderRow,
    last_sent: String,
    failed: String,
}

#[derive(Template)]
#[template(path = "forwarding.html")]
struct ForwardingPage {
    page: Page,
    forwarders: Vec<ForwarderView>,
    days: String,
    events: String,
}

async fn forwarding_page(
    State(state): State<AppState>,
    console: Console,
    Query(flash): Query<Flash>,
) -> Result<Response, AppError> {
    let caller = console.reader();
    let forwarders = ops_forwarding::list(&state, &caller)
        .await?
        .into_iter()
        .map(|row| ForwarderView { last_sent: when(row.last_sent_ms), failed: when(row.last_error_ms), row })
        .collect();
    let r = ops_forwarding::retention(&state, &caller).await?;
    let text = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_default();
    Ok(html(ForwardingPage {
        page: console.page("/forwarding", flash),
        forwarders,
        days: text(r.days),
        events: text(r.events),
    }))
}

#[derive(Deserialize)]
struct NewForm {
    #[serde(rename = "_csrf")]
    csrf: String,
    name: String,
    url: String,
    #[serde(default)]
    ca_pem: String,
    #[serde(default)]
    token: String,
    #[serde(default)]
    from_start: Option<String>,
}

async fn create(State(state): State<AppState>, console: Console, Form(f): Form<NewForm>) -> Response {
    let input = ForwarderInput {
        name: f.name.clone(),
        url: f.url,
        ca_pem: Some(f.ca_pem),
        token: Some(f.token),
        clear_token: false,
        enabled: true,
        from_start: f.from_start.is_some(),
    };
    console
        .act(&f.csrf, "/forwarding", async |caller| {
            ops_forwarding::create(&state, &caller, &input).await?;
            Ok(format!("Destination {:?} added", f.name.trim()))
        })
        .await
}

#[derive(Deserialize)]
struct CsrfOnly {
    #[serde(rename = "_csrf")]
    csrf: String,
}

/// Turn a destination on or off (everything else as it is).
async fn switch(
    State(state): State<AppState>,
    console: Console,
    Path(id): Path<i64>,
    Form(f): Form<CsrfOnly>,
) -> Response {
    console
        .act(&f.csrf, "/forwarding", async |caller| {
            let row = state.store.forwarder(caller.user.org_id, id).await?;
            let input = ForwarderInput {
                name: row.name.clone(),
                url: row.url,
                ca_pem: row.ca_pem,
                enabled: !row.enabled.0,
                ..Default::default()
            };
            ops_forwarding::update(&state, &caller, id, &input).await?;
            Ok(format!("Destination {:?} {}", row.name, if input.enabled { "sends again" } else { "paused" }))
        })
        .await
}

async fn delete(
    State(state): State<AppState>,
    console: Console,
    Path(id): Path<i64>,
    Form(f): Form<CsrfOnly>,
) -> Response {
    console
        .act(&f.csrf, "/forwarding", async |caller| {
            ops_forwarding::delete(&state, &caller, id).await?;
            Ok("Destination removed".to_owned())
        })
        .await
}

#[derive(Deserialize)]
struct RetentionForm {
    #[serde(rename = "_csrf")]
    csrf: String,
    #[serde(default)]
    days: String,
    #[serde(default)]
    events: String,
}

async fn retention(State(state): State<AppState>, console: Console, Form(f): Form<RetentionForm>) -> Response {
    let number = |what: &str, text: &str| -> Result<Option<i64>, AppError> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(None);
        }
        text.parse()
            .map(Some)
            .map_err(|_| AppError::BadRequest(format!("{what}: a whole number, or empty for no limit")))
    };
    console
        .act(&f.csrf, "/forwarding", async |caller| {
            let r = Retention { days: number("days", &f.days)?, events: number("events", &f.events)? };
            ops_forwarding::set_retention(&state, &caller, r).await?;
            Ok("Retention saved; it applies within ten minutes".to_owned())
        })
        .await
}
