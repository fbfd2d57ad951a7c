//! Ringfence profiles: what a permitted application's tree may open, reach and start.

use super::{AppError, AppState, Caller, change, change_model, change_unchecked, check_name};
use portcullis_policy_file::document::{Document, RingfenceDoc};
use portcullis_store::RingfenceRow;

/// The organization's ringfence profiles.
pub(crate) async fn list(state: &AppState, caller: &Caller) -> Result<Vec<RingfenceRow>, AppError> {
    Ok(state.store.ringfences(caller.user.org_id).await?)
}

/// One profile.
pub(crate) async fn get(state: &AppState, caller: &Caller, id: i64) -> Result<RingfenceRow, AppError> {
    Ok(state.store.ringfence(caller.user.org_id, id).await?)
}

/// Add a profile.
pub(crate) async fn create(state: &AppState, caller: &Caller, mut doc: RingfenceDoc) -> Result<i64, AppError> {
    caller.require_change()?;
    doc.name = check_name(&doc.name, "ringfence")?;
    let edit = |d: &mut Document| d.ringfences.push(doc.clone());
    change_model(state, caller, edit, async || state.store.create_ringfence(change(caller), &doc).await).await
}

/// Replace a profile's rules (its name stays: policies use it).
pub(crate) async fn update(state: &AppState, caller: &Caller, id: i64, doc: RingfenceDoc) -> Result<(), AppError> {
    caller.require_change()?;
    let old = state.store.ringfence(caller.user.org_id, id).await?;
    let new = RingfenceDoc { name: old.doc.name.clone(), ..doc };
    let edit = |d: &mut Document| {
        d.ringfences.retain(|r| r.name != old.doc.name);
        d.ringfences.push(new.clone());
    };
    change_model(state, caller, edit, async || state.store.update_ringfence(change(caller), id, &new).await).await
}

/// Remove a profile no policy uses (the store refuses one in use).
pub(crate) async fn delete(state: &AppState, caller: &Caller, id: i64) -> Result<(), AppError> {
    change_unchecked(state, caller, async || state.store.delete_ringfence(change(caller), id).await).await
}
