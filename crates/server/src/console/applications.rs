//! The Applications page: the built-in catalogue and the organization's own.

use super::*;

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/applications", get(applications_page).post(create_application)).route(
        "/applications/{id}/delete",
        on_item("/applications", |state, caller, id| async move {
            ops::applications::delete(&state, &caller, id).await?;
            Ok("Application removed".to_owned())
        }),
    )
}

struct ApplicationRowView {
    id: Option<i64>,
    name: String,
    description: String,
    builtin: bool,
    rules: Vec<String>,
}

#[derive(Template)]
#[template(path = "applications.html")]
struct ApplicationsPage {
    page: Page,
    applications: Vec<ApplicationRowView>,
    /// Every package the organization's agents reported installed, with on how many
    /// computers: offered in the form's package field.
    packages: Vec<(String, i64)>,
}

async fn applications_page(
    State(state): State<AppState>,
    console: Console,
    Query(flash): Query<Flash>,
) -> Result<Response, AppError> {
    use ops::applications::ApplicationView;
    let applications = ops::applications::list(&state, &console.reader())
        .await?
        .into_iter()
        .map(|a| match a {
            ApplicationView::Custom { row, .. } => ApplicationRowView {
                id: Some(row.id),
                rules: row.doc.rules.iter().map(rule_text).collect(),
                description: row.doc.description.unwrap_or_default(),
                name: row.doc.name,
                builtin: false,
            },
            ApplicationView::Builtin { name, description, rules, hashes, .. } => ApplicationRowView {
                id: None,
                name,
                description: description.unwrap_or_default(),
                builtin: true,
                rules: vec![format!("{rules} rules, {hashes} hashes (published indicators)")],
            },
        })
        .collect();
    let packages = state.store.organization_packages(console.reader().user.org_id).await?;
    Ok(html(ApplicationsPage { page: console.page("/applications", flash), applications, packages }))
}

#[derive(Deserialize)]
struct ApplicationForm {
    #[serde(rename = "_csrf")]
    csrf: String,
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    hashes: String,
    #[serde(default)]
    path: String,
    #[serde(default)]
    file_name: String,
    #[serde(default)]
    original_filename: String,
    #[serde(default)]
    product_name: String,
    #[serde(default)]
    company_name: String,
    #[serde(default)]
    signer_subject: String,
    #[serde(default)]
    signing_id: String,
    #[serde(default)]
    os: String,
    #[serde(default)]
    package: String,
}

async fn create_application(
    State(state): State<AppState>,
    console: Console,
    Form(f): Form<ApplicationForm>,
) -> Response {
    console
        .act(&f.csrf, "/applications", async |caller| {
            let hashes: Vec<String> =
                portcullis_hashlist::extract(f.hashes.as_bytes()).hashes.iter().map(|h| h.hash.to_string()).collect();
            let rule = RuleDoc {
                hashes: (!hashes.is_empty()).then_some(hashes),
                path: opt(&f.path),
                file_name: opt(&f.file_name),
                original_filename: opt(&f.original_filename),
                product_name: opt(&f.product_name),
                company_name: opt(&f.company_name),
                signer: opt(&f.signer_subject)
                    .map(|s| portcullis_policy_file::document::SignerDoc { subject: Some(s), ..Default::default() }),
                signing_id: opt(&f.signing_id),
                os: opt(&f.os),
                package: opt(&f.package),
                ..Default::default()
            };
            if rule == RuleDoc::default() {
                return Err(AppError::BadRequest("fill in at least one criterion (a hash, a path, a name…)".into()));
            }
            let doc = ApplicationDoc {
                name: f.name.trim().to_owned(),
                description: opt(&f.description),
                rules: vec![rule],
                except: vec![],
            };
            ops::applications::create(&state, &caller, doc).await?;
            Ok(format!("Application {:?} added", f.name.trim()))
        })
        .await
}
