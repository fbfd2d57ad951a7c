//! Applications: the built-in catalogue (read-only) and the organization's own.

use super::{AppError, AppState, Caller, change, change_model, change_unchecked, check_name};
use portcullis_policy_file::document::{ApplicationDoc, Document};
use portcullis_store::ApplicationRow;
use serde::Serialize;

/// An application as listed: the organization's own with its rules, or a built-in one
/// with how much it holds.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub(crate) enum ApplicationView {
    /// Made in this organization.
    Custom {
        /// Its id, name, description and rules.
        #[serde(flatten)]
        row: ApplicationRow,
        /// Always false.
        builtin: bool,
    },
    /// Shipped with the product, updated with it.
    Builtin {
        /// Its name (policies use it).
        name: String,
        /// What it is.
        description: Option<String>,
        /// Always true.
        builtin: bool,
        /// How many rules it has.
        rules: usize,
        /// How many hashes its rules list.
        hashes: usize,
    },
}

impl ApplicationView {
    /// Its name.
    pub(crate) fn name(&self) -> &str {
        match self {
            ApplicationView::Custom { row, .. } => &row.doc.name,
            ApplicationView::Builtin { name, .. } => name,
        }
    }
}

/// The organization's applications, then the built-in ones.
pub(crate) async fn list(state: &AppState, caller: &Caller) -> Result<Vec<ApplicationView>, AppError> {
    let mut out: Vec<ApplicationView> = state
        .store
        .applications(caller.user.org_id)
        .await?
        .into_iter()
        .map(|row| ApplicationView::Custom { row, builtin: false })
        .collect();
    out.extend(portcullis_catalog::builtin_applications().iter().map(|b| ApplicationView::Builtin {
        name: b.name.clone(),
        description: b.description.clone(),
        builtin: true,
        rules: b.rules.len(),
        hashes: b.rules.iter().map(|r| r.hashes.flat.len() + r.hashes.authenticode.len()).sum(),
    }));
    Ok(out)
}

fn check_rules(doc: &ApplicationDoc) -> Result<(), AppError> {
    if doc.rules.is_empty() {
        return Err(AppError::BadRequest("an application needs at least one rule".into()));
    }
    Ok(())
}

/// Add an application.
pub(crate) async fn create(state: &AppState, caller: &Caller, mut doc: ApplicationDoc) -> Result<i64, AppError> {
    caller.require_change()?;
    doc.name = check_name(&doc.name, "application")?;
    check_rules(&doc)?;
    let edit = |d: &mut Document| d.applications.push(doc.clone());
    change_model(state, caller, edit, async || state.store.create_application(change(caller), &doc).await).await
}

/// Replace an application's description and rules (its name stays: policies use it).
pub(crate) async fn update(state: &AppState, caller: &Caller, id: i64, doc: ApplicationDoc) -> Result<(), AppError> {
    caller.require_change()?;
    let old = state
        .store
        .applications(caller.user.org_id)
        .await?
        .into_iter()
        .find(|a| a.id == id)
        .ok_or(AppError::NotFound)?;
    let new = ApplicationDoc { name: old.doc.name.clone(), ..doc };
    check_rules(&new)?;
    let edit = |d: &mut Document| {
        d.applications.retain(|a| a.name != old.doc.name);
        d.applications.push(new.clone());
    };
    change_model(state, caller, edit, async || state.store.update_application(change(caller), id, &new).await).await
}

/// Remove an application no policy uses (the store refuses one in use, so the model
/// stays whole without a check).
pub(crate) async fn delete(state: &AppState, caller: &Caller, id: i64) -> Result<(), AppError> {
    change_unchecked(state, caller, async || state.store.delete_application(change(caller), id).await).await
}
