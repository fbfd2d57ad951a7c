//! Exports: a group's policy for AppLocker, App Control, Santa or fapolicyd. The report on
//! every rule is shown before the files can be downloaded.

use super::*;
use crate::ops::exports as ops_exports;
use portcullis_export::{Format, Outcome};

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/exports", get(exports_page)).route("/exports/download", get(download))
}

struct EntryView {
    label: String,
    what: String,
    outcome: &'static str,
    class: &'static str,
    to: String,
    how: String,
}

struct FileView {
    name: String,
    size: usize,
    href: String,
}

#[derive(Template)]
#[template(path = "exports.html")]
struct ExportsPage {
    page: Page,
    formats: Vec<(&'static str, &'static str)>,
    groups: Vec<String>,
    format: String,
    group: String,
    /// One computer's export instead of a group's (a Mac's Santa rules, say).
    computer: String,
    shown: bool,
    engine: &'static str,
    mode: String,
    version: i64,
    exported: usize,
    approximated: usize,
    not_expressible: usize,
    entries: Vec<EntryView>,
    files: Vec<FileView>,
}

#[derive(Deserialize)]
struct ExportsQuery {
    #[serde(default)]
    format: Option<String>,
    #[serde(default)]
    group: Option<String>,
    #[serde(default)]
    computer: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    version: Option<i64>,
    #[serde(flatten)]
    flash: Flash,
}

async fn exports_page(
    State(state): State<AppState>,
    console: Console,
    Query(q): Query<ExportsQuery>,
) -> Result<Response, AppError> {
    let caller = console.reader();
    let mut groups: Vec<String> =
        ops::computers::groups(&state, &caller).await?.into_iter().map(|g| g.doc.path).collect();
    groups.sort_unstable_by_key(|g| g.to_lowercase());
    let group = q.group.clone().unwrap_or_default();
    let computer = q.computer.clone().unwrap_or_default();
    let mut page = ExportsPage {
        page: console.page("/exports", q.flash),
        formats: Format::ALL.iter().map(|f| (f.name(), f.engine())).collect(),
        groups,
        format: q.format.clone().unwrap_or_default(),
        group: group.clone(),
        computer: computer.clone(),
        shown: false,
        engine: "",
        mode: String::new(),
        version: 0,
        exported: 0,
        approximated: 0,
        not_expressible: 0,
        entries: Vec::new(),
        files: Vec::new(),
    };
    let Some(name) = q.format.as_deref().filter(|f| !f.is_empty()) else { return Ok(html(page)) };
    let format = match ops_exports::format(name) {
        Ok(f) => f,
        Err(e) => return Ok(back("/exports", Err(e))),
    };
    let (version, export) = match ops_exports::export(&state, &caller, format, Some(&group), Some(&computer)).await {
        Ok(x) => x,
        Err(e) => return Ok(back("/exports", Err(e))),
    };
    (page.exported, page.approximated, page.not_expressible) = export.report.counts();
    page.shown = true;
    page.engine = format.engine();
    page.mode = export.report.mode.clone();
    page.version = version;
    page.entries = export
        .report
        .entries
        .iter()
        .map(|e| {
            let (class, to, how) = match &e.outcome {
                Outcome::Exported { to } => ("allow", to.clone(), String::new()),
                Outcome::Approximated { to, how } => ("monitor", to.clone(), how.clone()),
                Outcome::NotExpressible { why } => ("deny", String::new(), why.clone()),
            };
            EntryView {
                label: e.source.label(),
                what: e.source.what.clone(),
                outcome: e.outcome.name(),
                class,
                to,
                how,
            }
        })
        .collect();
    page.files = export
        .files
        .iter()
        .map(|f| FileView {
            name: f.name.clone(),
            size: f.bytes.len(),
            href: format!(
                "/exports/download?format={}&group={}&computer={}&name={}&version={version}",
                format.name(),
                encode(&group),
                encode(&computer),
                encode(&f.name)
            ),
        })
        .collect();
    Ok(html(page))
}

async fn download(
    State(state): State<AppState>,
    console: Console,
    Query(q): Query<ExportsQuery>,
) -> Result<Response, AppError> {
    let caller = console.reader();
    crate::api::exports::download(
        &state,
        &caller,
        q.format.as_deref().unwrap_or_default(),
        q.group.as_deref(),
        q.computer.as_deref(),
        q.name.as_deref(),
        q.version,
    )
    .await
}
