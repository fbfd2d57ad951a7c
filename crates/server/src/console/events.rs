//! The Events pages and "what would happen": events with filters, one event with a
//! policy made from it, and the preview form.

use super::*;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/events", get(events_page))
        .route("/events/{id}", get(event_page))
        .route("/events/{id}/policy", post(policy_from_event))
        .route("/preview", get(preview_page).post(preview))
}

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
    let q = ops::events::EventQuery {
        computer: opt(&f.computer),
        verdict: opt(&f.verdict),
        file: opt(&f.file),
        policy: opt(&f.policy),
        from: opt(&f.from),
        to,
        before_id: None,
        limit: Some(200),
    };
    let (events, flash) = match ops::events::list(&state, &console.reader(), &q).await {
        Ok(rows) => (rows, flash),
        Err(e) => (Vec::new(), Flash { ok: None, error: Some(e.to_string()) }),
    };
    let events = events
        .into_iter()
        .map(|e| EventView {
            id: e.id,
            at: when(Some(e.fields.at_ms)),
            computer: e.computer,
            event: e.fields.event,
            verdict: e.fields.verdict,
            file_path: e.fields.file_path,
            policy: e.fields.policy.unwrap_or_default(),
            process: format!(
                "{} ({})",
                e.fields.process_exe.unwrap_or_default(),
                e.fields.user_name.unwrap_or_default()
            ),
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

async fn decide_event(state: &AppState, caller: &Caller, id: i64) -> (String, String) {
    let req = ops::events::PreviewRequest { computer: None, event: Some(id), file: None };
    match ops::events::preview(state, caller, req).await {
        Ok(p) => (p.verdict.to_owned(), p.reason),
        Err(e) => ("unknown".into(), e.to_string()),
    }
}

async fn event_page(
    State(state): State<AppState>,
    console: Console,
    Path(id): Path<i64>,
    Query(flash): Query<Flash>,
) -> Result<Response, AppError> {
    let caller = console.reader();
    let ops::events::EventDetail { row: e, record } = ops::events::get(&state, &caller, id).await?;
    let (now_verdict, now_reason) = decide_event(&state, &caller, id).await;
    let record = match record {
        Some(r) => serde_json::to_string_pretty(&r).unwrap_or_default(),
        None => e.fields.record_json.clone(),
    };
    let kinds = [
        ("permit-hash", "Permit this file (by hash)"),
        ("permit-path", "Permit this path"),
        ("permit-publisher", "Permit its publisher"),
        ("permit-signing-id", "Permit its signing ID (Mac)"),
        ("deny-hash", "Deny this file (by hash)"),
        ("deny-signing-id", "Deny its signing ID (Mac)"),
    ]
    .into_iter()
    .map(|(kind, label)| match ops::events::rule_from_event(&e, kind) {
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
        let req = ops::events::FromEvent { kind: f.kind.clone(), name: None, preview: false };
        let made = ops::events::policy_from_event(&state, &caller, id, &req).await?;
        Ok::<_, AppError>(format!("Policy {:?} added at the bottom: move it where it belongs", made.name))
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
    let computers =
        ops::computers::computers(state, &console.reader()).await?.into_iter().map(|c| c.doc.name).collect();
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
    let file = ops::events::FileInput {
        path: f.path.clone(),
        sha256: opt(&f.sha256),
        kind: opt(&f.kind),
        os: opt(&f.os),
        original_filename: opt(&f.original_filename),
        product_name: opt(&f.product_name),
        company_name: opt(&f.company_name),
        ..Default::default()
    };
    let req = ops::events::PreviewRequest { computer: opt(&f.computer), event: None, file: Some(file) };
    let (decision, flash) = match ops::events::preview(&state, &caller, req).await {
        Ok(p) => (Some((p.verdict.to_owned(), p.reason)), Flash::default()),
        Err(e) => (None, Flash { ok: None, error: Some(e.to_string()) }),
    };
    preview_view(&state, &console, f, decision, flash).await
}
