//! The Unused policies page: not matched since a date, removed in bulk.

use super::*;

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/hygiene", get(hygiene_page)).route("/hygiene/remove", post(hygiene_remove))
}

struct UnusedView {
    id: i64,
    name: String,
    applications: String,
    created: String,
    last_matched: String,
}

#[derive(Template)]
#[template(path = "hygiene.html")]
struct HygienePage {
    page: Page,
    since: String,
    min_age_days: i64,
    policies: Vec<UnusedView>,
}

#[derive(Deserialize)]
struct HygieneQuery {
    since: Option<String>,
    min_age_days: Option<i64>,
    ok: Option<String>,
    error: Option<String>,
}

async fn hygiene_page(
    State(state): State<AppState>,
    console: Console,
    Query(q): Query<HygieneQuery>,
) -> Result<Response, AppError> {
    let since = q.since.clone().filter(|s| !s.is_empty()).unwrap_or_else(|| {
        jiff::Timestamp::from_millisecond(now_ms() - 30 * 86_400_000)
            .map(|t| t.strftime("%Y-%m-%d").to_string())
            .unwrap_or_default()
    });
    let min_age_days = q.min_age_days.unwrap_or(7);
    let unused = ops::policies::unused(&state, &console.reader(), Some(&since), Some(min_age_days)).await?;
    let policies = unused
        .policies
        .into_iter()
        .map(|p| UnusedView {
            id: p.id,
            name: p.doc.name,
            applications: p.doc.applications.join(", "),
            created: when(Some(p.created_ms)),
            last_matched: when(p.last_matched_ms),
        })
        .collect();
    let flash = Flash { ok: q.ok, error: q.error };
    Ok(html(HygienePage { page: console.page("/hygiene", flash), since, min_age_days, policies }))
}

#[derive(Deserialize)]
struct RemoveForm {
    #[serde(rename = "_csrf")]
    csrf: String,
    #[serde(default)]
    ids: Vec<i64>,
}

async fn hygiene_remove(
    State(state): State<AppState>,
    console: Console,
    axum_extra::extract::Form(f): axum_extra::extract::Form<RemoveForm>,
) -> Response {
    console
        .act(&f.csrf, "/hygiene", async |caller| {
            if f.ids.is_empty() {
                return Err(AppError::BadRequest("select the policies to remove first".into()));
            }
            let names = ops::policies::remove(&state, &caller, &f.ids).await?.removed;
            Ok(format!("Removed {}: {}", names.len(), names.join(", ")))
        })
        .await
}
