//! The Blocklists pages: packages, paste → extract → preview → bulk add, rules, approvals.

use super::*;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/blocklists", get(blocklists_page).post(create_blocklist))
        .route("/blocklists/{id}", get(blocklist_page))
        .route("/blocklists/{id}/extract", post(extract))
        .route("/blocklists/{id}/hashes", post(add_hashes))
        .route("/blocklists/{id}/rules", post(add_rule))
        .route("/blocklists/{id}/rules/{index}/delete", post(delete_rule))
        .route("/blocklists/{id}/approve", post(approve))
        .route("/blocklists/{id}/revoke", post(revoke))
        .route(
            "/blocklists/{id}/delete",
            on_item("/blocklists", |state, caller, id| async move {
                ops::blocklists::delete(&state, &caller, id).await?;
                Ok("Package removed".to_owned())
            }),
        )
}

struct BlocklistView {
    id: i64,
    name: String,
    description: String,
    hashes: i64,
    rules: usize,
    approvals: String,
}

#[derive(Template)]
#[template(path = "blocklists.html")]
struct BlocklistsPage {
    page: Page,
    blocklists: Vec<BlocklistView>,
}

async fn blocklists_page(
    State(state): State<AppState>,
    console: Console,
    Query(flash): Query<Flash>,
) -> Result<Response, AppError> {
    let blocklists = ops::blocklists::list(&state, &console.reader())
        .await?
        .into_iter()
        .map(|b| BlocklistView {
            id: b.id,
            description: b.description.unwrap_or_default(),
            hashes: b.hash_count,
            rules: b.rules.len(),
            approvals: if b.approvals.is_empty() {
                "not approved".into()
            } else {
                b.approvals.iter().map(|a| format!("{} ({})", a.scope, a.status)).collect::<Vec<_>>().join(", ")
            },
            name: b.name,
        })
        .collect();
    Ok(html(BlocklistsPage { page: console.page("/blocklists", flash), blocklists }))
}

#[derive(Deserialize)]
struct NewBlocklistForm {
    #[serde(rename = "_csrf")]
    csrf: String,
    name: String,
    #[serde(default)]
    description: String,
}

async fn create_blocklist(
    State(state): State<AppState>,
    console: Console,
    Form(f): Form<NewBlocklistForm>,
) -> Response {
    let result = async {
        let caller = console.caller(&f.csrf)?;
        ops::blocklists::create(&state, &caller, &f.name, opt(&f.description).as_deref()).await
    }
    .await;
    match result {
        Ok(id) => {
            back(&format!("/blocklists/{id}"), Ok(format!("Package {:?} created: now paste its hashes", f.name.trim())))
        }
        Err(e) => back("/blocklists", Err(e)),
    }
}

#[derive(Template)]
#[template(path = "blocklist.html")]
struct BlocklistPage {
    page: Page,
    id: i64,
    name: String,
    description: String,
    hash_count: usize,
    hashes: Vec<(String, String)>,
    rules: Vec<(usize, String)>,
    approvals: Vec<(String, String, String)>,
    scopes: Vec<String>,
}

async fn blocklist_page(
    State(state): State<AppState>,
    console: Console,
    Path(id): Path<i64>,
    Query(flash): Query<Flash>,
) -> Result<Response, AppError> {
    let ops::blocklists::BlocklistDetail { row: b, hashes } =
        ops::blocklists::get(&state, &console.reader(), id).await?;
    let hash_count = hashes.len();
    let hashes = hashes.into_iter().take(500).map(|h| (h.hash, h.kind)).collect();
    Ok(html(BlocklistPage {
        page: console.page("/blocklists", flash),
        id,
        name: b.name,
        description: b.description.unwrap_or_default(),
        hash_count,
        hashes,
        rules: b.rules.iter().map(rule_text).enumerate().collect(),
        approvals: b.approvals.into_iter().map(|a| (a.scope, a.status, a.approved_by)).collect(),
        scopes: scopes(&state, &console.reader()).await?,
    }))
}

#[derive(Template)]
#[template(path = "extracted.html")]
struct ExtractedPart {
    id: i64,
    csrf: String,
    text: String,
    total: usize,
    new: usize,
    sha256: usize,
    sha1: usize,
    md5: usize,
    duplicates: usize,
    already: usize,
    skipped: usize,
    hashes: Vec<(String, &'static str, usize, bool)>,
    skipped_examples: Vec<(String, String, String)>,
}

/// The extraction preview's place, when extraction was refused.
#[derive(Template)]
#[template(source = "<p class=\"flash error\">{{ message }}</p>", ext = "html")]
struct ExtractFailed {
    message: String,
}

#[derive(Deserialize)]
struct TextForm {
    #[serde(rename = "_csrf")]
    csrf: String,
    text: String,
}

async fn extract(
    State(state): State<AppState>,
    console: Console,
    Path(id): Path<i64>,
    Form(f): Form<TextForm>,
) -> Response {
    let result = async {
        let caller = console.caller(&f.csrf)?;
        let req = ops::blocklists::PastedText { text: f.text.clone(), blocklist: Some(id) };
        ops::blocklists::extract(&state, &caller, &req).await
    }
    .await;
    match result {
        Ok(x) => html(ExtractedPart {
            id,
            csrf: console.0.csrf.clone(),
            text: f.text,
            total: x.hashes.len(),
            new: x.hashes.len() - x.already,
            sha256: x.sha256,
            sha1: x.sha1,
            md5: x.md5,
            duplicates: x.duplicates,
            already: x.already,
            skipped: x.skipped,
            hashes: x.hashes.into_iter().map(|h| (h.hash, h.kind, h.line, h.already)).collect(),
            skipped_examples: x.skipped_examples.into_iter().map(|s| (s.line.to_string(), s.text, s.reason)).collect(),
        }),
        Err(e) => html(ExtractFailed { message: e.to_string() }),
    }
}

async fn add_hashes(
    State(state): State<AppState>,
    console: Console,
    Path(id): Path<i64>,
    Form(f): Form<TextForm>,
) -> Response {
    console
        .act(&f.csrf, &format!("/blocklists/{id}"), async |caller| {
            let added = ops::blocklists::add_hashes(&state, &caller, id, &f.text).await?;
            Ok(format!("Added {} hashes ({} were already in the package)", added.added, added.already))
        })
        .await
}

#[derive(Deserialize)]
struct RuleForm {
    #[serde(rename = "_csrf")]
    csrf: String,
    os: String,
    #[serde(default)]
    original_filename: String,
    #[serde(default)]
    product_name: String,
    #[serde(default)]
    company_name: String,
}

async fn add_rule(
    State(state): State<AppState>,
    console: Console,
    Path(id): Path<i64>,
    Form(f): Form<RuleForm>,
) -> Response {
    console
        .act(&f.csrf, &format!("/blocklists/{id}"), async |caller| {
            let rule = RuleDoc {
                os: opt(&f.os),
                original_filename: opt(&f.original_filename),
                product_name: opt(&f.product_name),
                company_name: opt(&f.company_name),
                ..Default::default()
            };
            if rule.original_filename.is_none() && rule.product_name.is_none() && rule.company_name.is_none() {
                return Err(AppError::BadRequest("give an OriginalFilename, a product name or a company".into()));
            }
            let mut rules = state.store.blocklist(caller.user.org_id, id).await?.rules;
            rules.push(rule);
            ops::blocklists::set_rules(&state, &caller, id, rules).await?;
            Ok("Metadata rule added".to_owned())
        })
        .await
}

async fn delete_rule(
    State(state): State<AppState>,
    console: Console,
    Path((id, index)): Path<(i64, usize)>,
    Form(f): Form<CsrfOnly>,
) -> Response {
    console
        .act(&f.csrf, &format!("/blocklists/{id}"), async |caller| {
            let mut rules = state.store.blocklist(caller.user.org_id, id).await?.rules;
            if index >= rules.len() {
                return Err(AppError::NotFound);
            }
            rules.remove(index);
            ops::blocklists::set_rules(&state, &caller, id, rules).await?;
            Ok("Metadata rule removed".to_owned())
        })
        .await
}

#[derive(Deserialize)]
struct ApproveForm {
    #[serde(rename = "_csrf")]
    csrf: String,
    scope: String,
    #[serde(default)]
    status: String,
}

async fn approve(
    State(state): State<AppState>,
    console: Console,
    Path(id): Path<i64>,
    Form(f): Form<ApproveForm>,
) -> Response {
    console
        .act(&f.csrf, &format!("/blocklists/{id}"), async |caller| {
            let req = ops::blocklists::Approval { scope: f.scope.clone(), status: opt(&f.status) };
            ops::blocklists::approve(&state, &caller, id, &req).await?;
            Ok(format!("Approved at {} ({})", f.scope, if f.status.is_empty() { "enforce" } else { &f.status }))
        })
        .await
}

async fn revoke(
    State(state): State<AppState>,
    console: Console,
    Path(id): Path<i64>,
    Form(f): Form<ApproveForm>,
) -> Response {
    console
        .act(&f.csrf, &format!("/blocklists/{id}"), async |caller| {
            ops::blocklists::revoke(&state, &caller, id, &f.scope).await?;
            Ok(format!("Approval at {} withdrawn", f.scope))
        })
        .await
}
