//! The Audit log page.

use super::*;

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/audit", get(audit_page))
}

struct AuditEntryView {
    at: String,
    actor: String,
    action: String,
    object: String,
    before: String,
    after: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    page: Page,
    entries: Vec<AuditEntryView>,
}

async fn audit_page(
    State(state): State<AppState>,
    console: Console,
    Query(flash): Query<Flash>,
) -> Result<Response, AppError> {
    let short = |s: Option<String>| {
        let s = s.unwrap_or_default();
        if s.chars().count() > 300 { format!("{}…", s.chars().take(300).collect::<String>()) } else { s }
    };
    let json = |v: Option<serde_json::Value>| v.map(|v| v.to_string());
    let entries = ops::accounts::audit(&state, &console.reader(), Some(500))
        .await?
        .into_iter()
        .map(|e| AuditEntryView {
            at: when(Some(e.at_ms)),
            actor: e.actor,
            action: e.action,
            object: e.object,
            before: short(json(e.before)),
            after: short(json(e.after)),
        })
        .collect();
    Ok(html(AuditPage { page: console.page("/audit", flash), entries }))
}
