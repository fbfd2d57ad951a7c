//! The ordered policy list: changes, order, unused policies, and the whole organization's
//! policy as a document.

use super::{AppError, AppState, Caller, change, change_model, change_unchecked, check_name, parse_moment};
use portcullis_policy_file::document::{Document, PolicyDoc};
use portcullis_store::{Move, PolicyRow, now_ms};
use serde::Serialize;

/// The policies in decision order.
pub(crate) async fn list(state: &AppState, caller: &Caller) -> Result<Vec<PolicyRow>, AppError> {
    Ok(state.store.policies(caller.user.org_id).await?)
}

/// Add a policy (position 0 or less: last).
pub(crate) async fn create(state: &AppState, caller: &Caller, mut doc: PolicyDoc) -> Result<i64, AppError> {
    caller.require_change()?;
    doc.name = check_name(&doc.name, "policy")?;
    let mut checked = doc.clone();
    if checked.position <= 0 {
        checked.position = i64::from(u32::MAX);
    }
    let edit = |d: &mut Document| d.policies.push(checked);
    change_model(state, caller, edit, async || state.store.create_policy(change(caller), &doc).await).await
}

/// Replace a policy (position 0 or less: where it is).
pub(crate) async fn update(state: &AppState, caller: &Caller, id: i64, mut doc: PolicyDoc) -> Result<(), AppError> {
    caller.require_change()?;
    doc.name = check_name(&doc.name, "policy")?;
    let old = state.store.policy(caller.user.org_id, id).await?;
    let mut checked = doc.clone();
    if checked.position <= 0 {
        checked.position = old.doc.position;
    }
    let edit = |d: &mut Document| {
        d.policies.retain(|p| p.name != old.doc.name);
        d.policies.push(checked);
    };
    change_model(state, caller, edit, async || state.store.update_policy(change(caller), id, &doc).await).await
}

/// Switch a policy on or off.
pub(crate) async fn set_enabled(state: &AppState, caller: &Caller, id: i64, enabled: bool) -> Result<(), AppError> {
    caller.require_change()?;
    let row = state.store.policy(caller.user.org_id, id).await?;
    update(state, caller, id, PolicyDoc { enabled: Some(enabled), ..row.doc }).await
}

/// Remove a policy (built-in ones cannot be: the store refuses). Removing a policy leaves a
/// model that loads.
pub(crate) async fn delete(state: &AppState, caller: &Caller, id: i64) -> Result<(), AppError> {
    change_unchecked(state, caller, async || state.store.delete_policies(change(caller), &[id]).await).await?;
    Ok(())
}

/// Where to move: `up`, `down`, `top` or `bottom`.
pub(crate) fn parse_move(to: &str) -> Result<Move, AppError> {
    Ok(match to {
        "up" => Move::Up,
        "down" => Move::Down,
        "top" => Move::Top,
        "bottom" => Move::Bottom,
        other => return Err(AppError::BadRequest(format!("cannot move {other:?}; use up, down, top or bottom"))),
    })
}

/// Move a policy in the order (any order loads).
pub(crate) async fn move_to(state: &AppState, caller: &Caller, id: i64, to: Move) -> Result<(), AppError> {
    change_unchecked(state, caller, async || state.store.move_policy(change(caller), id, to).await).await
}

/// Policies not matched since a moment.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Unused {
    /// Not matched since this moment, Unix milliseconds.
    pub(crate) since_ms: i64,
    /// Policies younger than this were left out.
    pub(crate) min_age_days: i64,
    /// The policies (built-in ones are never listed).
    pub(crate) policies: Vec<PolicyRow>,
}

/// Policies not matched since `since` (default 30 days ago) and older than `min_age_days`
/// (default 7).
pub(crate) async fn unused(
    state: &AppState,
    caller: &Caller,
    since: Option<&str>,
    min_age_days: Option<i64>,
) -> Result<Unused, AppError> {
    let now = now_ms();
    let since = match since {
        Some(s) => parse_moment(s)?,
        None => now - 30 * 86_400_000,
    };
    let min_age = min_age_days.unwrap_or(7).clamp(0, 3650);
    let policies = state.store.unused_policies(caller.user.org_id, since, now - min_age * 86_400_000).await?;
    Ok(Unused { since_ms: since, min_age_days: min_age, policies })
}

/// What a bulk removal removed.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Removed {
    /// The names of the policies removed.
    pub(crate) removed: Vec<String>,
}

/// Remove 1 to 1000 policies at once.
pub(crate) async fn remove(state: &AppState, caller: &Caller, ids: &[i64]) -> Result<Removed, AppError> {
    caller.require_change()?;
    if ids.is_empty() || ids.len() > 1000 {
        return Err(AppError::BadRequest("give 1 to 1000 policy ids".into()));
    }
    let all = state.store.policies(caller.user.org_id).await?;
    let names: Vec<String> = all.iter().filter(|p| ids.contains(&p.id)).map(|p| p.doc.name.clone()).collect();
    let edit = |d: &mut Document| d.policies.retain(|p| !names.contains(&p.name));
    let removed =
        change_model(state, caller, edit, async || state.store.delete_policies(change(caller), ids).await).await?;
    Ok(Removed { removed })
}

/// The organization's policy as a document, at a version.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Versioned {
    /// The organization's version when it was read.
    pub(crate) version: i64,
    /// The policy, as a policy file would hold it (without computers).
    pub(crate) document: Document,
}

/// The organization's whole policy.
pub(crate) async fn document(state: &AppState, caller: &Caller) -> Result<Versioned, AppError> {
    let (version, document) = state.store.document(caller.user.org_id).await?;
    Ok(Versioned { version, document })
}
