//! Operations: the one path of every change and read, shared by the JSON API (`api/`) and
//! the console (`console/`), one module per resource under the same names.
//!
//! A change is always: the caller's role, the check that the organization's model with
//! the change applied still loads for every computer exactly as agents load it
//! ([`check_model`]), the store call (one transaction with its audit entry and a version
//! bump), and waking the agents ([`announce`]) — [`change_model`] is that sequence.
//! Reads return typed views, which the API serializes (their schemas are the OpenAPI
//! document's) and the console renders.

pub(crate) mod accounts;
pub(crate) mod applications;
pub(crate) mod baseline;
pub(crate) mod blocklists;
pub(crate) mod captures;
pub(crate) mod computers;
pub(crate) mod events;
pub(crate) mod exports;
pub(crate) mod forwarding;
pub(crate) mod policies;
pub(crate) mod requests;
pub(crate) mod ringfences;

use crate::AppState;
use crate::auth::Caller;
use crate::error::AppError;
use portcullis_policy_file::Format;
use portcullis_policy_file::document::{ComputerDoc, Document};
use portcullis_store::{Change, StoreError};
use serde::Serialize;

/// Who changes the model, for the store's audit entry.
pub(crate) fn change(caller: &Caller) -> Change<'_> {
    Change { org_id: caller.user.org_id, actor: &caller.actor }
}

/// A new item's id.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Created {
    /// Its id.
    pub(crate) id: i64,
}

/// The one path of a model change: a role that may change the model, the organization's
/// model with `edit` applied must still load for every computer, then `save` (the store's
/// transaction with its audit entry and version bump), then the agents are woken.
pub(crate) async fn change_model<T>(
    state: &AppState,
    caller: &Caller,
    edit: impl FnOnce(&mut Document),
    save: impl AsyncFnOnce() -> Result<T, StoreError>,
) -> Result<T, AppError> {
    caller.require_change()?;
    check_model(state, caller.user.org_id, edit).await?;
    let out = save().await?;
    announce(state, caller).await?;
    Ok(out)
}

/// [`change_model`] for changes that cannot make the model fail to load and would be costly
/// to check: ordering policies, adding hashes to a package (millions of them), an empty
/// package. The role, the store, the wake-up are the same.
pub(crate) async fn change_unchecked<T>(
    state: &AppState,
    caller: &Caller,
    save: impl AsyncFnOnce() -> Result<T, StoreError>,
) -> Result<T, AppError> {
    caller.require_change()?;
    let out = save().await?;
    announce(state, caller).await?;
    Ok(out)
}

/// A name for a new item: trimmed, 1 to 200 characters.
pub(crate) fn check_name(name: &str, what: &str) -> Result<String, AppError> {
    let name = name.trim();
    if name.is_empty() || name.len() > 200 {
        return Err(AppError::BadRequest(format!("a {what} needs a name of 1 to 200 characters")));
    }
    Ok(name.to_owned())
}

/// A moment given as Unix milliseconds or as an RFC 3339 date-time or date (UTC).
pub(crate) fn parse_moment(text: &str) -> Result<i64, AppError> {
    let t = text.trim();
    if let Ok(ms) = t.parse::<i64>() {
        return Ok(ms);
    }
    t.parse::<jiff::Timestamp>()
        .map(|ts| ts.as_millisecond())
        .or_else(|_| {
            t.parse::<jiff::civil::Date>()
                .map_err(|e| e.to_string())
                .and_then(|d| d.to_zoned(jiff::tz::TimeZone::UTC).map_err(|e| e.to_string()))
                .map(|z| z.timestamp().as_millisecond())
        })
        .map_err(|_| {
            AppError::BadRequest(format!(
                "{t:?} is not a time; write 2026-01-31, an RFC 3339 time or Unix milliseconds"
            ))
        })
}

/// Whether a whole model (the organization's document with every computer) can be
/// delivered: it loads exactly as an agent loads a bundle, and so does every distinct
/// computer's bundle — one for each computer that a `computer:` scope names, and one for
/// the rest (their bundles differ only in the computer itself, which the whole model
/// already checked). The one definition used before a change is saved and when bundles
/// are compiled.
pub(crate) fn check_document(whole: &Document) -> Result<portcullis_policy_file::Loaded, Vec<String>> {
    let problems = |e: portcullis_policy_file::LoadError| -> Vec<String> {
        e.diagnostics.into_iter().map(|d| d.message).collect()
    };
    let loaded = portcullis_policy_file::load(&whole.to_json(), Format::Json).map_err(problems)?;
    let named = |scope: &str| {
        scope.parse::<portcullis_policy::Scope>().ok().and_then(|s| s.computer().map(str::to_ascii_lowercase))
    };
    let mut scoped: std::collections::BTreeSet<String> =
        whole.policies.iter().filter_map(|p| p.scope.as_deref().and_then(named)).collect();
    for b in &whole.blocklists {
        scoped.extend(b.approved.iter().chain(&b.approved_monitor).filter_map(|s| named(s)));
    }
    let mut representatives: Vec<&ComputerDoc> =
        whole.computers.iter().filter(|c| scoped.contains(&c.name.to_ascii_lowercase())).collect();
    representatives.extend(whole.computers.iter().find(|c| !scoped.contains(&c.name.to_ascii_lowercase())));
    let org_doc = Document { computers: Vec::new(), ..whole.clone() };
    let org_json = org_doc.to_json();
    for c in representatives {
        let payload = portcullis_protocol::BundlePayload::new("", 0, 0, c.clone(), &org_json)
            .and_then(|p| p.policy_json())
            .map_err(|e| vec![format!("computer {:?}: {e}", c.name)])?;
        // Exactly what the agent does with it: load and compile.
        portcullis_policy_file::compile(&payload, Format::Json).map_err(|e| {
            problems(e)
                .into_iter()
                .map(|m| format!("the bundle of computer {:?} would not load: {m}", c.name))
                .collect::<Vec<_>>()
        })?;
    }
    Ok(loaded)
}

pub(crate) async fn whole_model(state: &AppState, org_id: i64) -> Result<(i64, Document), AppError> {
    let (version, mut doc) = state.store.document(org_id).await?;
    doc.computers = state.store.computer_docs(org_id).await?.into_iter().map(|(_, c)| c).collect();
    Ok((version, doc))
}

/// The organization's whole policy (with every computer) at its current version, edited by
/// `edit`, checked by [`check_document`]; what does not load is refused (422).
pub(crate) async fn load_model(
    state: &AppState,
    org_id: i64,
    edit: impl FnOnce(&mut Document),
) -> Result<(i64, portcullis_policy_file::Loaded), AppError> {
    let (version, mut doc) = whole_model(state, org_id).await?;
    edit(&mut doc);
    let loaded = check_document(&doc).map_err(AppError::Invalid)?;
    Ok((version, loaded))
}

/// Refuse unless the organization's document, edited by `edit`, can be delivered
/// ([`check_document`]). If the stored model itself does not load (data from before the
/// checks at the edge), a change that only removes problems is let through, so that
/// deleting the bad row is always possible: one bad row never wedges an organization.
pub(crate) async fn check_model(
    state: &AppState,
    org_id: i64,
    edit: impl FnOnce(&mut Document),
) -> Result<(), AppError> {
    let (_, before) = whole_model(state, org_id).await?;
    let mut after = before.clone();
    edit(&mut after);
    let Err(after_problems) = check_document(&after) else { return Ok(()) };
    if let Err(before_problems) = check_document(&before)
        && after_problems.len() < before_problems.len()
        && after_problems.iter().all(|p| before_problems.contains(p))
    {
        tracing::warn!(
            "organization {org_id}: a change that repairs the model is let through: {}",
            after_problems.join("; ")
        );
        return Ok(());
    }
    Err(AppError::Invalid(after_problems))
}

/// After a change: wake the organization's agents.
pub(crate) async fn announce(state: &AppState, caller: &Caller) -> Result<(), AppError> {
    Ok(state.hub.changed(&state.store, caller.user.org_id).await?)
}
