//! The approval queue: what users asked for, with the file's facts, where it was denied and
//! on how many computers it was seen; approve (by hash, path or publisher, at a scope, with an
//! optional expiry) or reject.

use super::*;
use crate::ops::requests::{self as ops_requests, Decide};

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/requests", get(requests_page)).route("/requests/{id}/decide", post(decide))
}

struct RequestView {
    row: portcullis_store::ApprovalRequestRow,
    asked: String,
    decided: String,
    scope: String,
}

#[derive(Template)]
#[template(path = "requests.html")]
struct RequestsPage {
    page: Page,
    pending: Vec<RequestView>,
    decided: Vec<RequestView>,
}

async fn requests_page(
    State(state): State<AppState>,
    console: Console,
    Query(flash): Query<Flash>,
) -> Result<Response, AppError> {
    let caller = console.reader();
    let (pending, decided): (Vec<_>, Vec<_>) = ops_requests::list(&state, &caller, None)
        .await?
        .into_iter()
        .map(|row| RequestView {
            asked: when(Some(row.created_ms)),
            decided: when(row.decided_ms),
            scope: format!("computer:{}", row.computer),
            row,
        })
        .partition(|r| r.row.status == "pending");
    Ok(html(RequestsPage { page: console.page("/requests", flash), pending, decided }))
}

#[derive(Deserialize)]
struct DecideForm {
    #[serde(rename = "_csrf")]
    csrf: String,
    decision: String,
    #[serde(default)]
    scope: String,
    #[serde(default)]
    expires: String,
    #[serde(default)]
    note: String,
}

async fn decide(
    State(state): State<AppState>,
    console: Console,
    Path(id): Path<i64>,
    Form(f): Form<DecideForm>,
) -> Response {
    let d = Decide { decision: f.decision.clone(), scope: Some(f.scope), expires: Some(f.expires), note: Some(f.note) };
    console
        .act(&f.csrf, "/requests", async |caller| {
            let done = ops_requests::decide(&state, &caller, id, &d).await?;
            Ok(match done.policy {
                Some(p) => format!("Request {id} approved: policy {p:?} permits {}", done.matches.unwrap_or_default()),
                None => format!("Request {id} rejected"),
            })
        })
        .await
}
