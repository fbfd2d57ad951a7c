//! Exports of a group's policy to the engines other systems trust (`portcullis-export`),
//! from the organization's current model, exactly as the agents' bundles are made from it.

use super::{AppError, AppState, check_document, whole_model};
use crate::auth::Caller;
use portcullis_export::{Export, Format};
use portcullis_policy::Timestamp;
use portcullis_store::now_ms;

/// The formats, by their names in paths (`applocker`, `appcontrol`, `santa`, `fapolicyd`).
pub(crate) fn format(name: &str) -> Result<Format, AppError> {
    Format::from_name(name).ok_or_else(|| {
        AppError::BadRequest(format!("unknown format {name:?}; use applocker, appcontrol, santa or fapolicyd"))
    })
}

/// The export for the computers of `group` (a group path; `None` or empty: computers in no
/// group) or for one `computer` (its own mode and the policies scoped to it too: what a Mac
/// gets from the Santa sync server), with the model version it was made from.
pub(crate) async fn export(
    state: &AppState,
    caller: &Caller,
    format: Format,
    group: Option<&str>,
    computer: Option<&str>,
) -> Result<(i64, Export), AppError> {
    let (version, doc) = whole_model(state, caller.user.org_id).await?;
    let group = group.map(|g| g.trim().trim_matches('/')).filter(|g| !g.is_empty());
    if let Some(c) = computer.map(str::trim).filter(|c| !c.is_empty()) {
        if group.is_some() {
            return Err(AppError::BadRequest("give a group or a computer, not both".into()));
        }
        let Some(known) = doc.computers.iter().find(|x| x.name.eq_ignore_ascii_case(c)) else {
            return Err(AppError::BadRequest(format!("no computer {c:?}; pick one on the Computers page")));
        };
        let loaded = check_document(&doc).map_err(AppError::Invalid)?;
        let now = Timestamp(now_ms() / 1000);
        return Ok((version, portcullis_export::export_for_computer(&loaded.set, &known.name, format, now)));
    }
    if let Some(g) = group
        && !doc.groups.iter().any(|x| x.path.eq_ignore_ascii_case(g))
    {
        return Err(AppError::BadRequest(format!(
            "no group {g:?}; export for one of the groups on the Computers page, or for computers in no group"
        )));
    }
    // The model as agents get it; one that does not load is the console's to repair first.
    let loaded = check_document(&doc).map_err(AppError::Invalid)?;
    let canonical =
        group.and_then(|g| doc.groups.iter().find(|x| x.path.eq_ignore_ascii_case(g)).map(|x| x.path.as_str()));
    Ok((version, portcullis_export::export(&loaded.set, canonical, format, Timestamp(now_ms() / 1000))))
}
