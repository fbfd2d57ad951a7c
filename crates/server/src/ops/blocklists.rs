//! Blocklist packages: paste any text → extract (typed, de-duplicated, previewed) → bulk add;
//! metadata rules; approval at a scope.

use super::{AppError, AppState, Caller, change, change_model, change_unchecked, check_name};
use portcullis_policy_file::document::{BlocklistDoc, Document, RuleDoc};
use portcullis_store::BlocklistRow;
use serde::{Deserialize, Serialize};

/// The organization's packages.
pub(crate) async fn list(state: &AppState, caller: &Caller) -> Result<Vec<BlocklistRow>, AppError> {
    Ok(state.store.blocklists(caller.user.org_id).await?)
}

/// A hash of a package.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct HashEntry {
    /// Lower-case hex.
    pub(crate) hash: String,
    /// `sha256`, `sha1` or `md5`.
    pub(crate) kind: String,
}

/// A package with its hashes.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct BlocklistDetail {
    /// The package.
    #[serde(flatten)]
    pub(crate) row: BlocklistRow,
    /// Every hash it holds.
    pub(crate) hashes: Vec<HashEntry>,
}

/// One package with its hashes.
pub(crate) async fn get(state: &AppState, caller: &Caller, id: i64) -> Result<BlocklistDetail, AppError> {
    let row = state.store.blocklist(caller.user.org_id, id).await?;
    let hashes = state.store.blocklist_hashes(caller.user.org_id, id).await?;
    Ok(BlocklistDetail { row, hashes: hashes.into_iter().map(|(hash, kind)| HashEntry { hash, kind }).collect() })
}

/// Make an empty package (it denies nothing until it has hashes or rules and is approved).
pub(crate) async fn create(
    state: &AppState,
    caller: &Caller,
    name: &str,
    description: Option<&str>,
) -> Result<i64, AppError> {
    caller.require_change()?;
    let name = check_name(name, "blocklist")?;
    change_unchecked(state, caller, async || state.store.create_blocklist(change(caller), &name, description).await)
        .await
}

/// Text to extract hashes from.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PastedText {
    /// Any text: a vendor's table, a CSV, a report.
    pub(crate) text: String,
    /// Compare with this package's hashes (preview only).
    pub(crate) blocklist: Option<i64>,
}

/// What extraction found, for the preview.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Extracted {
    /// The hashes, in the order found, each once.
    pub(crate) hashes: Vec<ExtractedHash>,
    /// How many SHA-256.
    pub(crate) sha256: usize,
    /// How many SHA-1.
    pub(crate) sha1: usize,
    /// How many MD5.
    pub(crate) md5: usize,
    /// Repeats dropped.
    pub(crate) duplicates: usize,
    /// Hex runs that were not taken as hashes.
    pub(crate) skipped: usize,
    /// Some of them, with why.
    pub(crate) skipped_examples: Vec<SkippedRun>,
    /// Already in the package named by `blocklist`.
    pub(crate) already: usize,
}

/// One hash found.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ExtractedHash {
    /// Lower-case hex.
    pub(crate) hash: String,
    /// `sha256`, `sha1` or `md5`.
    pub(crate) kind: &'static str,
    /// The line it was first found on.
    pub(crate) line: usize,
    /// Already in the package.
    pub(crate) already: bool,
}

/// A hex run that is not a hash.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct SkippedRun {
    /// Its line.
    pub(crate) line: usize,
    /// The run.
    pub(crate) text: String,
    /// Why it was not taken.
    pub(crate) reason: String,
}

/// Extract hashes from pasted text, saying which the package already holds.
pub(crate) async fn extract(state: &AppState, caller: &Caller, req: &PastedText) -> Result<Extracted, AppError> {
    let found = portcullis_hashlist::extract(req.text.as_bytes());
    let existing: std::collections::HashSet<String> = match req.blocklist {
        Some(id) => state.store.blocklist_hashes(caller.user.org_id, id).await?.into_iter().map(|h| h.0).collect(),
        None => Default::default(),
    };
    let hashes: Vec<ExtractedHash> = found
        .hashes
        .iter()
        .map(|h| {
            let hash = h.hash.to_string();
            let already = existing.contains(&hash);
            ExtractedHash { hash, kind: h.hash.kind().name(), line: h.line, already }
        })
        .collect();
    let count = |k: &str| hashes.iter().filter(|h| h.kind == k).count();
    Ok(Extracted {
        sha256: count("sha256"),
        sha1: count("sha1"),
        md5: count("md5"),
        already: hashes.iter().filter(|h| h.already).count(),
        duplicates: found.duplicates,
        skipped: found.skipped_total,
        skipped_examples: found
            .skipped
            .iter()
            .map(|s| SkippedRun { line: s.line, text: s.text.clone(), reason: s.reason.to_string() })
            .collect(),
        hashes,
    })
}

/// What a bulk add did.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Added {
    /// New hashes.
    pub(crate) added: u64,
    /// Already in the package.
    pub(crate) already: u64,
    /// Repeats in the text.
    pub(crate) duplicates: usize,
}

/// Add every hash found in `text` to a package. Unchecked: hashes cannot make a model fail
/// to load, and the check would load every one of possibly millions.
pub(crate) async fn add_hashes(state: &AppState, caller: &Caller, id: i64, text: &str) -> Result<Added, AppError> {
    caller.require_change()?;
    let found = portcullis_hashlist::extract(text.as_bytes());
    if found.hashes.is_empty() {
        return Err(AppError::BadRequest("no MD5, SHA-1 or SHA-256 hash found in the text".into()));
    }
    let hashes: Vec<(String, &'static str)> =
        found.hashes.iter().map(|h| (h.hash.to_string(), h.hash.kind().name())).collect();
    let added =
        change_unchecked(state, caller, async || state.store.add_blocklist_hashes(change(caller), id, &hashes).await)
            .await?;
    Ok(Added { added, already: hashes.len() as u64 - added, duplicates: found.duplicates })
}

/// Replace a package's metadata rules.
pub(crate) async fn set_rules(state: &AppState, caller: &Caller, id: i64, rules: Vec<RuleDoc>) -> Result<(), AppError> {
    caller.require_change()?;
    let package = state.store.blocklist(caller.user.org_id, id).await?;
    let hashes = state.store.blocklist_hashes(caller.user.org_id, id).await?;
    let edit = |d: &mut Document| {
        d.blocklists.retain(|b| b.name != package.name);
        if !(rules.is_empty() && hashes.is_empty()) {
            d.blocklists.push(BlocklistDoc {
                name: package.name.clone(),
                hashes: (!hashes.is_empty()).then(|| hashes.iter().map(|h| h.0.clone()).collect()),
                rules: rules.clone(),
                ..Default::default()
            });
        }
    };
    change_model(state, caller, edit, async || state.store.set_blocklist_rules(change(caller), id, &rules).await).await
}

/// An approval of a package at a scope.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Approval {
    /// `organization`, `group:PATH` or `computer:NAME`.
    pub(crate) scope: String,
    /// `enforce` (default) or `monitor`.
    pub(crate) status: Option<String>,
}

/// Approve a package at a scope that exists: from now on it denies (or reports) what it
/// matches there.
pub(crate) async fn approve(state: &AppState, caller: &Caller, id: i64, req: &Approval) -> Result<String, AppError> {
    caller.require_change()?;
    let status = req.status.clone().unwrap_or_else(|| "enforce".into());
    if status != "enforce" && status != "monitor" {
        return Err(AppError::BadRequest(format!("unknown status {status:?}; use enforce or monitor")));
    }
    state.store.blocklist(caller.user.org_id, id).await?;
    let scope = check_scope(state, caller.user.org_id, &req.scope).await?;
    change_unchecked(state, caller, async || state.store.approve_blocklist(change(caller), id, &scope, &status).await)
        .await?;
    Ok(scope)
}

/// A scope as stored: `organization`, `group:PATH` or `computer:NAME`, naming what exists.
pub(crate) async fn check_scope(state: &AppState, org_id: i64, text: &str) -> Result<String, AppError> {
    use portcullis_policy::Scope;
    let scope: Scope = text.parse().map_err(|e: portcullis_policy::ScopeError| AppError::BadRequest(e.to_string()))?;
    let missing = match &scope {
        Scope::Organization => None,
        Scope::Group(path) => {
            (!state.store.groups(org_id).await?.iter().any(|g| g.doc.path.eq_ignore_ascii_case(path)))
                .then(|| format!("group {path:?} does not exist"))
        }
        Scope::Computer(name) => {
            (!state.store.computers(org_id).await?.iter().any(|c| c.doc.name.eq_ignore_ascii_case(name)))
                .then(|| format!("computer {name:?} does not exist"))
        }
    };
    match missing {
        Some(m) => Err(AppError::BadRequest(m)),
        None => Ok(scope.to_string()),
    }
}

/// Withdraw an approval, by any spelling of its scope (an unreadable one, stored before
/// scopes were read one way, by its own text).
pub(crate) async fn revoke(state: &AppState, caller: &Caller, id: i64, scope: &str) -> Result<(), AppError> {
    caller.require_change()?;
    let scope = scope.parse::<portcullis_policy::Scope>().map_or_else(|_| scope.trim().to_owned(), |s| s.to_string());
    change_unchecked(state, caller, async || state.store.revoke_blocklist(change(caller), id, &scope).await).await
}

/// Remove a package with its hashes and approvals.
pub(crate) async fn delete(state: &AppState, caller: &Caller, id: i64) -> Result<(), AppError> {
    change_unchecked(state, caller, async || state.store.delete_blocklist(change(caller), id).await).await
}
