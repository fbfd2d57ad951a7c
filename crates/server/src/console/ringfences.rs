//! The Ringfences page: profiles made from lines of text.

use super::*;

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/ringfences", get(ringfences_page).post(create_ringfence)).route(
        "/ringfences/{id}/delete",
        on_item("/ringfences", |state, caller, id| async move {
            ops::ringfences::delete(&state, &caller, id).await?;
            Ok("Ringfence removed".to_owned())
        }),
    )
}

struct RingfenceView {
    id: i64,
    name: String,
    description: String,
    files: Vec<String>,
    network: Vec<String>,
    children: Vec<String>,
    used_by: String,
}

#[derive(Template)]
#[template(path = "ringfences.html")]
struct RingfencesPage {
    page: Page,
    ringfences: Vec<RingfenceView>,
    applications: Vec<String>,
}

fn ports_text(ports: &[String]) -> String {
    if ports.is_empty() { "any port".into() } else { format!("port {}", ports.join(",")) }
}

fn ringfence_view(id: i64, r: RingfenceDoc, used_by: String) -> RingfenceView {
    let files = match &r.files {
        None => vec!["built-in protected paths → none".to_owned()],
        Some(f) => {
            let mut lines: Vec<String> = f.rules.iter().map(|x| format!("{} → {}", x.path, x.access)).collect();
            let access = f.protected_access.clone().unwrap_or_else(|| "none".into());
            match &f.protected {
                Some(p) => lines.extend(p.iter().map(|g| format!("protected {g} → {access}"))),
                None => lines.push(format!("built-in protected paths → {access}")),
            }
            lines
        }
    };
    let network = match &r.network {
        None => vec!["not limited".to_owned()],
        Some(n) => {
            let mut lines: Vec<String> =
                n.allow.iter().map(|a| format!("{} {}", a.cidr, ports_text(&a.ports))).collect();
            lines.extend(n.domains.iter().map(|d| format!("{} {}", d.name, ports_text(&d.ports))));
            if n.dns.unwrap_or(true) {
                lines.push("DNS servers, port 53".into());
            }
            if lines.is_empty() {
                lines.push("nothing".into());
            }
            lines
        }
    };
    let children = r.children.clone().unwrap_or_default();
    let mut child_lines: Vec<String> = children.applications.iter().map(|a| format!("may start {a}")).collect();
    child_lines.push(
        match children.others.as_deref().unwrap_or("no-shells") {
            "deny" => "nothing else",
            "allow" => "anything else",
            _ => "anything else but shells and interpreters",
        }
        .to_owned(),
    );
    RingfenceView {
        id,
        description: r.description.clone().unwrap_or_default(),
        name: r.name,
        files,
        network,
        children: child_lines,
        used_by,
    }
}

async fn ringfences_page(
    State(state): State<AppState>,
    console: Console,
    Query(flash): Query<Flash>,
) -> Result<Response, AppError> {
    let caller = console.reader();
    let policies = ops::policies::list(&state, &caller).await?;
    let ringfences = ops::ringfences::list(&state, &caller)
        .await?
        .into_iter()
        .map(|r| {
            let users: Vec<String> = policies
                .iter()
                .filter(|p| p.doc.ringfence.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(&r.doc.name)))
                .map(|p| p.doc.name.clone())
                .collect();
            let used_by = if users.is_empty() { "no policy".to_owned() } else { users.join(", ") };
            ringfence_view(r.id, r.doc, used_by)
        })
        .collect();
    Ok(html(RingfencesPage {
        page: console.page("/ringfences", flash),
        ringfences,
        applications: application_names(&state, &caller).await?,
    }))
}

#[derive(Deserialize)]
struct RingfenceForm {
    #[serde(rename = "_csrf")]
    csrf: String,
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    file_rules: String,
    #[serde(default)]
    protected: String,
    #[serde(default)]
    protected_access: String,
    #[serde(default)]
    limit_network: Option<String>,
    #[serde(default)]
    addresses: String,
    #[serde(default)]
    domains: String,
    #[serde(default)]
    dns: Option<String>,
    #[serde(default)]
    child_applications: Vec<String>,
    #[serde(default)]
    others: String,
}

fn lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines().map(str::trim).filter(|l| !l.is_empty())
}

/// `name 443,5060-5090` → the name and its ports.
fn with_ports(line: &str) -> (String, Vec<String>) {
    let mut parts = line.split_whitespace();
    let first = parts.next().unwrap_or_default().to_owned();
    let ports = parts.flat_map(|p| p.split(',')).map(str::trim).filter(|p| !p.is_empty()).map(str::to_owned).collect();
    (first, ports)
}

fn ringfence_doc(f: &RingfenceForm) -> Result<RingfenceDoc, AppError> {
    let mut rules = Vec::new();
    for line in lines(&f.file_rules) {
        let Some((path, access)) = line.rsplit_once('=') else {
            return Err(AppError::BadRequest(format!(
                "file rule {line:?}: write it as \"glob = none\", \"glob = read\" or \"glob = read-write\""
            )));
        };
        rules.push(FileRuleDoc { path: path.trim().to_owned(), access: access.trim().to_owned() });
    }
    let protected: Vec<String> = lines(&f.protected).map(str::to_owned).collect();
    let files = FileFenceDoc {
        rules,
        protected: (!protected.is_empty()).then_some(protected),
        protected_access: opt(&f.protected_access),
    };
    let network = f.limit_network.is_some().then(|| NetFenceDoc {
        allow: lines(&f.addresses).map(with_ports).map(|(cidr, ports)| NetRuleDoc { cidr, ports }).collect(),
        domains: lines(&f.domains).map(with_ports).map(|(name, ports)| DomainRuleDoc { name, ports }).collect(),
        dns: Some(f.dns.is_some()),
    });
    Ok(RingfenceDoc {
        name: f.name.trim().to_owned(),
        description: opt(&f.description),
        files: Some(files),
        network,
        children: Some(ChildFenceDoc { applications: f.child_applications.clone(), others: opt(&f.others) }),
    })
}

async fn create_ringfence(
    State(state): State<AppState>,
    console: Console,
    axum_extra::extract::Form(f): axum_extra::extract::Form<RingfenceForm>,
) -> Response {
    console
        .act(&f.csrf, "/ringfences", async |caller| {
            let doc = ringfence_doc(&f)?;
            ops::ringfences::create(&state, &caller, doc).await?;
            Ok(format!("Ringfence {:?} added", f.name.trim()))
        })
        .await
}
