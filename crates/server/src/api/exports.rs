//! `/api/exports`: a group's policy for AppLocker, App Control, Santa or fapolicyd, with the
//! report on every rule; and each file of it for download.

use super::Reads;
use crate::AppState;
use crate::auth::Caller;
use crate::error::{AppError, AppJson, AppPath, AppQuery};
use crate::ops::exports as ops;
use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use portcullis_export::{Format, Report};
use serde::{Deserialize, Serialize};

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/api/exports/{format}", get(export)).route("/api/exports/{format}/file", get(file))
}

/// Which group, and (for a download) which file.
#[derive(Deserialize)]
pub(crate) struct ExportQuery {
    #[serde(default)]
    group: Option<String>,
    /// One computer instead of a group (its own mode and computer-scoped policies too).
    #[serde(default)]
    computer: Option<String>,
    #[serde(default)]
    name: Option<String>,
    /// The model version the report that was read came from: a download of another is
    /// refused (409), so what is deployed is what was reviewed.
    #[serde(default)]
    version: Option<i64>,
}

/// An export: its files and the report on every rule.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ExportView {
    /// The engine.
    format: Format,
    /// The model version it was made from.
    version: i64,
    /// The engine's files.
    files: Vec<ExportFile>,
    /// What became of each rule: read it before deploying the files.
    report: Report,
}

/// One file of an export.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ExportFile {
    /// Its name (with the directory the engine reads it from, where it has one).
    name: String,
    /// Size in bytes.
    size: usize,
    /// Its SHA-256, to compare with what was deployed.
    sha256: String,
    /// Its text (none for a binary file: App Control's `.cip`; download it).
    content: Option<String>,
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

impl ExportView {
    pub(crate) fn new(version: i64, e: portcullis_export::Export) -> ExportView {
        ExportView {
            format: e.format,
            version,
            files: e
                .files
                .into_iter()
                .map(|f| ExportFile {
                    size: f.bytes.len(),
                    sha256: sha256_hex(&f.bytes),
                    content: String::from_utf8(f.bytes.clone()).ok(),
                    name: f.name,
                })
                .collect(),
            report: e.report,
        }
    }
}

#[utoipa::path(get, path = "/api/exports/{format}", tag = "model", params(("format" = String, Path, description = "applocker, appcontrol, santa or fapolicyd"), ("group" = Option<String>, Query, description = "a group path; without it, computers in no group"), ("computer" = Option<String>, Query, description = "one computer instead (its own mode and the policies scoped to it too)")), responses((status = 200, description = "the files and the report on every rule (exported, approximated and how, not expressible and why)", body = ExportView), Reads), security(("bearer" = [])))]
pub(crate) async fn export(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(format): AppPath<String>,
    AppQuery(q): AppQuery<ExportQuery>,
) -> Result<AppJson<ExportView>, AppError> {
    let (version, e) =
        ops::export(&state, &caller, ops::format(&format)?, q.group.as_deref(), q.computer.as_deref()).await?;
    Ok(AppJson(ExportView::new(version, e)))
}

#[utoipa::path(get, path = "/api/exports/{format}/file", tag = "model", params(("format" = String, Path), ("group" = Option<String>, Query), ("computer" = Option<String>, Query), ("name" = Option<String>, Query, description = "which file (the first without it)"), ("version" = Option<i64>, Query, description = "the model version of the report read: 409 if the model changed since")), responses((status = 200, description = "the file, as an attachment", content_type = "application/octet-stream"), (status = 409, description = "the model changed since that version: read the report again", body = crate::error::ErrorBody), Reads), security(("bearer" = [])))]
pub(crate) async fn file(
    State(state): State<AppState>,
    caller: Caller,
    AppPath(format): AppPath<String>,
    AppQuery(q): AppQuery<ExportQuery>,
) -> Result<Response, AppError> {
    download(&state, &caller, &format, q.group.as_deref(), q.computer.as_deref(), q.name.as_deref(), q.version).await
}

/// One file of an export as an attachment (the console's download link too).
pub(crate) async fn download(
    state: &AppState,
    caller: &Caller,
    format: &str,
    group: Option<&str>,
    computer: Option<&str>,
    name: Option<&str>,
    reviewed: Option<i64>,
) -> Result<Response, AppError> {
    let (version, e) = ops::export(state, caller, ops::format(format)?, group, computer).await?;
    if reviewed.is_some_and(|v| v != version) {
        return Err(AppError::Conflict(format!(
            "the policy changed since the report you read (version {} then, {version} now): read the report again",
            reviewed.unwrap_or_default()
        )));
    }
    let Some(f) = e.files.into_iter().find(|f| name.is_none_or(|n| n == f.name)) else {
        return Err(AppError::NotFound);
    };
    let content_type = match f.name.rsplit('.').next() {
        Some("xml") => "application/xml; charset=utf-8",
        Some("json") => "application/json",
        Some("cip") => "application/octet-stream",
        _ => "text/plain; charset=utf-8",
    };
    // A plain file name for the browser: the engine's directory is said in the report.
    let base: String = f
        .name
        .rsplit('/')
        .next()
        .unwrap_or("export")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') { c } else { '_' })
        .collect();
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{base}\"")),
        ],
        f.bytes,
    )
        .into_response())
}
