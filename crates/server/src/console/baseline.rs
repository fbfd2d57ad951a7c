//! The learning baseline of a computer, a group or the organization: the candidates Learning
//! recorded, proposed as applications to pick, rename and accept as one permit policy.

use super::*;
use crate::ops::baseline::{self as ops_baseline, Acceptance, Proposed, Taken};

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/baseline", get(baseline_page).post(accept))
}

#[derive(Template)]
#[template(path = "baseline.html")]
struct BaselinePage {
    page: Page,
    scope: String,
    days: i64,
    events: usize,
    applications: Vec<Proposed>,
}

#[derive(Deserialize)]
struct BaselineQuery {
    #[serde(default = "organization")]
    scope: String,
    #[serde(default = "ops_baseline::default_days")]
    days: i64,
    #[serde(flatten)]
    flash: Flash,
}

fn organization() -> String {
    "organization".into()
}

async fn baseline_page(
    State(state): State<AppState>,
    console: Console,
    Query(q): Query<BaselineQuery>,
) -> Result<Response, AppError> {
    let caller = console.reader();
    let proposal = ops_baseline::proposal(&state, &caller, &q.scope, q.days).await?;
    Ok(html(BaselinePage {
        page: console.page("/computers", q.flash),
        scope: proposal.scope,
        days: q.days,
        events: proposal.events,
        applications: proposal.applications,
    }))
}

#[derive(Deserialize)]
struct AcceptForm {
    #[serde(rename = "_csrf")]
    csrf: String,
    scope: String,
    days: i64,
    /// Every proposed application's key, in the order of `name`.
    #[serde(default)]
    key: Vec<String>,
    #[serde(default)]
    name: Vec<String>,
    /// The keys ticked.
    #[serde(default)]
    take: Vec<String>,
    #[serde(default)]
    policy: String,
}

async fn accept(
    State(state): State<AppState>,
    console: Console,
    axum_extra::extract::Form(f): axum_extra::extract::Form<AcceptForm>,
) -> Response {
    let to = format!("/baseline?scope={}&days={}", encode(&f.scope), f.days);
    let take = f
        .take
        .iter()
        .map(|k| Taken { key: k.clone(), name: f.key.iter().position(|x| x == k).and_then(|i| f.name.get(i)).cloned() })
        .collect();
    let a = Acceptance { scope: f.scope.clone(), days: f.days, take, policy: Some(f.policy.clone()) };
    console
        .act(&f.csrf, &to, async |caller| {
            let made = ops_baseline::accept(&state, &caller, &a).await?;
            Ok(format!(
                "Baseline accepted: policy {:?} permits {} application(s): {}",
                made.policy,
                made.applications.len(),
                made.applications.join(", ")
            ))
        })
        .await
}
