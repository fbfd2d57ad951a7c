//! The Policies page: the one ordered list, added to, moved, switched on and off, removed.

use super::*;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/policies", get(policies_page).post(create_policy))
        .route("/policies/{id}/move", post(move_policy))
        .route(
            "/policies/{id}/toggle",
            on_item("/policies", |state, caller, id| async move {
                let row = state.store.policy(caller.user.org_id, id).await?;
                let on = !row.doc.enabled.unwrap_or(true);
                ops::policies::set_enabled(&state, &caller, id, on).await?;
                Ok(format!("Policy {:?} switched {}", row.doc.name, if on { "on" } else { "off" }))
            }),
        )
        .route(
            "/policies/{id}/delete",
            on_item("/policies", |state, caller, id| async move {
                let name = state.store.policy(caller.user.org_id, id).await?.doc.name;
                ops::policies::delete(&state, &caller, id).await?;
                Ok(format!("Policy {name:?} removed"))
            }),
        )
}

struct PolicyView {
    id: i64,
    position: i64,
    name: String,
    applications: String,
    action: String,
    denies: bool,
    scope: String,
    monitor: bool,
    enabled: bool,
    expires: String,
    hits: i64,
    last_matched: String,
    builtin: bool,
}

#[derive(Template)]
#[template(path = "policies.html")]
struct PoliciesPage {
    page: Page,
    policies: Vec<PolicyView>,
    applications: Vec<String>,
    scopes: Vec<String>,
    ringfences: Vec<String>,
}

async fn policies_page(
    State(state): State<AppState>,
    console: Console,
    Query(flash): Query<Flash>,
) -> Result<Response, AppError> {
    let caller = console.reader();
    let policies = ops::policies::list(&state, &caller)
        .await?
        .into_iter()
        .map(|p| PolicyView {
            id: p.id,
            position: p.doc.position,
            denies: p.doc.action.starts_with("deny"),
            action: match &p.doc.ringfence {
                Some(r) => format!("{} · {r}", p.doc.action),
                None => p.doc.action.clone(),
            },
            applications: p.doc.applications.join(", "),
            scope: p.doc.scope.clone().unwrap_or_default(),
            monitor: p.doc.status.as_deref() == Some("monitor"),
            enabled: p.doc.enabled.unwrap_or(true),
            expires: p.doc.expires.clone().unwrap_or_else(|| "—".into()),
            hits: p.hits,
            last_matched: when(p.last_matched_ms),
            builtin: p.builtin,
            name: p.doc.name,
        })
        .collect();
    Ok(html(PoliciesPage {
        page: console.page("/policies", flash),
        policies,
        applications: application_names(&state, &caller).await?,
        scopes: scopes(&state, &caller).await?,
        ringfences: ops::ringfences::list(&state, &caller).await?.into_iter().map(|r| r.doc.name).collect(),
    }))
}

#[derive(Deserialize)]
struct PolicyForm {
    #[serde(rename = "_csrf")]
    csrf: String,
    name: String,
    application: String,
    action: String,
    scope: String,
    status: String,
    #[serde(default)]
    expires: String,
    place: String,
    #[serde(default)]
    ringfence: String,
}

async fn create_policy(State(state): State<AppState>, console: Console, Form(f): Form<PolicyForm>) -> Response {
    console
        .act(&f.csrf, "/policies", async |caller| {
            let doc = PolicyDoc {
                name: f.name.trim().to_owned(),
                position: 0,
                applications: vec![f.application.clone()],
                action: f.action.clone(),
                scope: Some(f.scope.clone()),
                status: Some(f.status.clone()),
                expires: opt(&f.expires),
                ringfence: if f.action == "permit-ringfence" { opt(&f.ringfence) } else { None },
                ..Default::default()
            };
            let id = ops::policies::create(&state, &caller, doc).await?;
            if f.place == "top" {
                ops::policies::move_to(&state, &caller, id, portcullis_store::Move::Top).await?;
            }
            Ok(format!("Policy {:?} added", f.name.trim()))
        })
        .await
}

#[derive(Deserialize)]
struct MoveForm {
    #[serde(rename = "_csrf")]
    csrf: String,
    to: String,
}

async fn move_policy(
    State(state): State<AppState>,
    console: Console,
    Path(id): Path<i64>,
    Form(f): Form<MoveForm>,
) -> Response {
    console
        .act(&f.csrf, "/policies", async |caller| {
            let name = state.store.policy(caller.user.org_id, id).await?.doc.name;
            ops::policies::move_to(&state, &caller, id, ops::policies::parse_move(&f.to)?).await?;
            Ok(format!("Policy {name:?} moved {}", f.to))
        })
        .await
}
