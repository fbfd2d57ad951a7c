//! Computers and what governs them: the organization's settings, the group tree, the
//! computers, enrollment (group tokens, pending enrollments) and the bundle signing key.

use super::{AppError, AppState, Caller, change, change_model, change_unchecked};
use portcullis_policy_file::document::{ComputerDoc, GroupDoc, OrganizationDoc};
use portcullis_store::{ComputerRow, GroupRow, PendingRow, TokenLimits, now_ms};
use serde::Serialize;

/// How long an agent may stay silent and still count as online (a long-poll lasts at most
/// 30 s; two missed polls make it offline).
pub const ONLINE_WITHIN_MS: i64 = 75_000;

/// The organization's defaults.
pub(crate) async fn settings(state: &AppState, caller: &Caller) -> Result<OrganizationDoc, AppError> {
    Ok(state.store.settings(caller.user.org_id).await?)
}

/// Change the organization's defaults (its name stays).
pub(crate) async fn set_settings(state: &AppState, caller: &Caller, doc: OrganizationDoc) -> Result<(), AppError> {
    caller.require_change()?;
    let edit = |d: &mut portcullis_policy_file::document::Document| {
        let name = d.organization.as_ref().and_then(|o| o.name.clone());
        d.organization = Some(OrganizationDoc { name, ..doc.clone() });
    };
    change_model(state, caller, edit, async || state.store.set_settings(change(caller), &doc).await).await
}

/// The group tree.
pub(crate) async fn groups(state: &AppState, caller: &Caller) -> Result<Vec<GroupRow>, AppError> {
    Ok(state.store.groups(caller.user.org_id).await?)
}

fn group_by_id(groups: Vec<GroupRow>, id: i64) -> Result<GroupRow, AppError> {
    groups.into_iter().find(|g| g.id == id).ok_or(AppError::NotFound)
}

fn check_group_path(path: &str) -> Result<String, AppError> {
    let path = path.trim().trim_matches('/').to_owned();
    if path.is_empty() || path.len() > 200 || path.split('/').any(|p| p.trim().is_empty()) {
        return Err(AppError::BadRequest("a group path is 1 to 200 characters, parts separated by /".into()));
    }
    Ok(path)
}

/// Add a group (its parents are implied).
pub(crate) async fn create_group(state: &AppState, caller: &Caller, mut doc: GroupDoc) -> Result<i64, AppError> {
    caller.require_change()?;
    doc.path = check_group_path(&doc.path)?;
    let edit = |d: &mut portcullis_policy_file::document::Document| d.groups.push(doc.clone());
    change_model(state, caller, edit, async || state.store.create_group(change(caller), &doc).await).await
}

/// Change a group's mode (its path stays: computers and scopes name it).
pub(crate) async fn update_group(state: &AppState, caller: &Caller, id: i64, doc: GroupDoc) -> Result<(), AppError> {
    caller.require_change()?;
    let old = group_by_id(state.store.groups(caller.user.org_id).await?, id)?;
    let new = GroupDoc { path: old.doc.path.clone(), ..doc };
    let edit = |d: &mut portcullis_policy_file::document::Document| {
        d.groups.retain(|g| g.path != old.doc.path);
        d.groups.push(new.clone());
    };
    change_model(state, caller, edit, async || state.store.update_group(change(caller), id, &new).await).await
}

/// Remove an empty group.
pub(crate) async fn delete_group(state: &AppState, caller: &Caller, id: i64) -> Result<(), AppError> {
    caller.require_change()?;
    let old = group_by_id(state.store.groups(caller.user.org_id).await?, id)?;
    let edit = |d: &mut portcullis_policy_file::document::Document| d.groups.retain(|g| g.path != old.doc.path);
    change_model(state, caller, edit, async || state.store.delete_group(change(caller), id).await).await
}

/// A computer as the API and the console show it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ComputerView {
    /// Id.
    pub(crate) id: i64,
    /// Name, group, OS and mode override.
    #[serde(flatten)]
    pub(crate) doc: ComputerDoc,
    /// What the agent reported about its host.
    pub(crate) host: Option<portcullis_protocol::HostFacts>,
    /// The agent's version.
    pub(crate) agent_version: Option<String>,
    /// Enrolled at, Unix milliseconds.
    pub(crate) enrolled_ms: i64,
    /// Last contact, Unix milliseconds.
    pub(crate) last_seen_ms: Option<i64>,
    /// Polled within the last 75 s.
    pub(crate) online: bool,
    /// The bundle version the agent enforces, as it last said.
    pub(crate) bundle_version: i64,
    /// Why the agent refused the last bundle it was sent, as it reported.
    pub(crate) bundle_error: Option<String>,
    /// When the agent last reported its installed packages, Unix milliseconds.
    pub(crate) packages_ms: Option<i64>,
    /// How many packages it reported.
    pub(crate) package_count: i64,
    /// Events its agent could not keep (its spool's filesystem full), as it reported them.
    pub(crate) events_lost: i64,
}

impl ComputerView {
    fn of(c: ComputerRow, now: i64) -> ComputerView {
        ComputerView {
            online: c.last_seen_ms.is_some_and(|t| now - t <= ONLINE_WITHIN_MS),
            host: c.host_json.as_deref().and_then(|h| serde_json::from_str(h).ok()),
            id: c.id,
            doc: c.doc,
            agent_version: c.agent_version,
            enrolled_ms: c.enrolled_ms,
            last_seen_ms: c.last_seen_ms,
            bundle_version: c.bundle_version,
            bundle_error: c.bundle_error,
            packages_ms: c.packages_ms,
            package_count: c.package_count,
            events_lost: c.events_lost,
        }
    }
}

/// Packages listed at most, per request.
pub(crate) const MAX_PACKAGES_LISTED: i64 = 50_000;

/// A computer's installed packages, as its agent last reported them.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ComputerPackages {
    /// The computer.
    pub(crate) computer: String,
    /// When its agent last reported them (none yet: `null`).
    pub(crate) reported_ms: Option<i64>,
    /// How many it reported in all.
    pub(crate) total: i64,
    /// Those matching the filter, by name (at most the limit asked).
    pub(crate) packages: Vec<portcullis_store::PackageRow>,
}

/// A computer's packages whose name contains `filter`, at most `limit` (1 to
/// [`MAX_PACKAGES_LISTED`]; default 1000).
pub(crate) async fn computer_packages(
    state: &AppState,
    caller: &Caller,
    id: i64,
    filter: &str,
    limit: Option<i64>,
) -> Result<ComputerPackages, AppError> {
    let limit = limit.unwrap_or(1000);
    if !(1..=MAX_PACKAGES_LISTED).contains(&limit) {
        return Err(AppError::BadRequest(format!("limit must be 1 to {MAX_PACKAGES_LISTED}")));
    }
    let computer = state.store.computer(caller.user.org_id, id).await?;
    let packages = state.store.computer_packages(caller.user.org_id, id, filter, limit).await?;
    Ok(ComputerPackages {
        computer: computer.doc.name,
        reported_ms: computer.packages_ms,
        total: computer.package_count,
        packages,
    })
}

/// The organization's computers.
pub(crate) async fn computers(state: &AppState, caller: &Caller) -> Result<Vec<ComputerView>, AppError> {
    let now = now_ms();
    Ok(state.store.computers(caller.user.org_id).await?.into_iter().map(|c| ComputerView::of(c, now)).collect())
}

/// Move a computer to another group or set its mode (its name and OS are the agent's).
pub(crate) async fn update_computer(
    state: &AppState,
    caller: &Caller,
    id: i64,
    doc: ComputerDoc,
) -> Result<(), AppError> {
    caller.require_change()?;
    let old = state.store.computer(caller.user.org_id, id).await?;
    let new = ComputerDoc { name: old.doc.name.clone(), os: old.doc.os.clone(), ..doc };
    let edit = |d: &mut portcullis_policy_file::document::Document| {
        d.computers.retain(|c| c.name != old.doc.name);
        d.computers.push(new.clone());
    };
    change_model(state, caller, edit, async || state.store.update_computer(change(caller), id, &new).await).await
}

/// Remove a computer: its credential stops working.
pub(crate) async fn delete_computer(state: &AppState, caller: &Caller, id: i64) -> Result<(), AppError> {
    caller.require_change()?;
    let old = state.store.computer(caller.user.org_id, id).await?;
    let edit = |d: &mut portcullis_policy_file::document::Document| d.computers.retain(|c| c.name != old.doc.name);
    change_model(state, caller, edit, async || state.store.delete_computer(change(caller), id).await).await
}

// Enrollment.

/// A new enrollment token, shown once.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct EnrollmentToken {
    /// Give to `portcullis agent --enroll-token-file`; shown once.
    pub(crate) token: String,
    /// It stops working at this time, Unix milliseconds.
    pub(crate) expires_ms: Option<i64>,
    /// Enrollments it allows.
    pub(crate) uses: Option<i64>,
}

/// The longest an enrollment token may be made to last without "never" (a year).
pub const MAX_TOKEN_HOURS: i64 = 24 * 366;
/// Default enrollment token lifetime.
pub const DEFAULT_TOKEN_HOURS: i64 = 24 * 7;

/// A group's new enrollment token (the previous one stops working): `hours` until it
/// expires (default a week, 0 for never), `uses` enrollments (default any).
pub(crate) async fn enrollment_token(
    state: &AppState,
    caller: &Caller,
    group: i64,
    hours: Option<i64>,
    uses: Option<i64>,
) -> Result<EnrollmentToken, AppError> {
    caller.require_admin()?;
    let hours = hours.unwrap_or(DEFAULT_TOKEN_HOURS);
    if !(0..=MAX_TOKEN_HOURS).contains(&hours) {
        return Err(AppError::BadRequest(format!("expires_in_hours is 0 (never) to {MAX_TOKEN_HOURS}")));
    }
    if uses.is_some_and(|u| !(1..=1_000_000).contains(&u)) {
        return Err(AppError::BadRequest("uses is 1 to 1000000".into()));
    }
    let limits = TokenLimits { expires_ms: (hours > 0).then(|| now_ms() + hours * 3_600_000), uses };
    let token = state.store.rotate_enrollment_token(change(caller), group, limits).await?;
    Ok(EnrollmentToken { token, expires_ms: limits.expires_ms, uses: limits.uses })
}

/// No agent enrolls with the group's token any more.
pub(crate) async fn revoke_enrollment_token(state: &AppState, caller: &Caller, group: i64) -> Result<(), AppError> {
    caller.require_admin()?;
    Ok(state.store.revoke_enrollment_token(change(caller), group).await?)
}

/// Enrollments under a taken name, waiting for an administrator.
pub(crate) async fn pending(state: &AppState, caller: &Caller) -> Result<Vec<PendingRow>, AppError> {
    Ok(state.store.pending_enrollments(caller.user.org_id).await?)
}

/// Accept a pending enrollment: the computer of that name takes the new agent's
/// credential. Returns the computer's id.
pub(crate) async fn accept_pending(state: &AppState, caller: &Caller, id: i64) -> Result<i64, AppError> {
    caller.require_admin()?;
    let computer = state.store.accept_enrollment(change(caller), id).await?;
    state.hub.enrolled(caller.user.org_id, computer).await;
    Ok(computer)
}

/// Refuse a pending enrollment.
pub(crate) async fn reject_pending(state: &AppState, caller: &Caller, id: i64) -> Result<(), AppError> {
    caller.require_admin()?;
    Ok(state.store.reject_enrollment(change(caller), id).await?)
}

// The bundle signing key.

/// The organization's bundle signing key.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct BundleKeyView {
    /// The organization's bundle key now (ed25519 public key, hex): what new agents receive.
    pub(crate) public_key: String,
    /// Its rotations, oldest first: each key endorsed by the one before it. Enrolled agents
    /// follow them to the current key with their next bundle.
    pub(crate) rotations: Vec<portcullis_protocol::KeyEndorsement>,
    /// The id of the server's secret key the signing seed is sealed with (the key itself is
    /// outside the database).
    pub(crate) sealed_with: String,
}

/// The bundle signing key and its rotations.
pub(crate) async fn bundle_key(state: &AppState, caller: &Caller) -> Result<BundleKeyView, AppError> {
    let org_id = caller.user.org_id;
    Ok(BundleKeyView {
        public_key: state.store.bundle_key(org_id).await?.public().to_hex(),
        rotations: state.store.bundle_key_chain(org_id).await?,
        sealed_with: state.store.bundle_seed_sealed_with(org_id).await?.unwrap_or_default(),
    })
}

/// A new signing key, endorsed by the old one; the version rises, so every agent receives a
/// bundle signed by it.
pub(crate) async fn rotate_bundle_key(state: &AppState, caller: &Caller) -> Result<BundleKeyView, AppError> {
    caller.require_admin()?;
    change_unchecked(state, caller, async || state.store.rotate_bundle_key(change(caller)).await).await?;
    bundle_key(state, caller).await
}

/// What Secured mode would have denied where it is about to be switched on: the would-deny
/// events of the last `days` days, by file, newest files first.
#[derive(Debug, Default)]
pub(crate) struct WouldDeny {
    /// Would-deny events counted (at most [`WOULD_DENY_EVENTS`] are read).
    pub(crate) events: usize,
    /// One entry per file (path and SHA-256), with its event count and computers.
    pub(crate) files: Vec<WouldDenyFile>,
}

/// One file Secured mode would deny.
#[derive(Debug)]
pub(crate) struct WouldDenyFile {
    pub(crate) path: String,
    pub(crate) sha256: String,
    pub(crate) count: usize,
    pub(crate) computers: std::collections::BTreeSet<String>,
}

/// How many of the latest would-deny events the summary reads.
pub(crate) const WOULD_DENY_EVENTS: i64 = 1000;

/// The would-deny events of the last `days` days on `computers` (every computer: `None`).
pub(crate) async fn would_deny(
    state: &AppState,
    caller: &Caller,
    computers: Option<&[String]>,
    days: i64,
) -> Result<WouldDeny, AppError> {
    // What Monitor records as would-deny and Learning as candidates: both run now and would
    // be denied in Secured mode.
    let mut rows = Vec::new();
    for kind in ["would-deny", "candidate"] {
        let filter = portcullis_store::EventFilter {
            verdict: Some(kind.into()),
            computer: computers.and_then(|cs| (cs.len() == 1).then(|| cs[0].clone())),
            from_ms: Some(now_ms() - days * 86_400_000),
            limit: WOULD_DENY_EVENTS,
            ..Default::default()
        };
        rows.extend(state.store.events(caller.user.org_id, &filter).await?);
    }
    let mut out = WouldDeny::default();
    for row in rows {
        if computers.is_some_and(|cs| !cs.iter().any(|c| c.eq_ignore_ascii_case(&row.computer))) {
            continue;
        }
        out.events += 1;
        let f = &row.fields;
        match out.files.iter_mut().find(|x| x.sha256 == f.file_sha256 && x.path == f.file_path) {
            Some(x) => {
                x.count += 1;
                x.computers.insert(row.computer);
            }
            None => out.files.push(WouldDenyFile {
                path: f.file_path.clone(),
                sha256: f.file_sha256.clone(),
                count: 1,
                computers: [row.computer].into(),
            }),
        }
    }
    Ok(out)
}

/// A bypass code, shown once.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct BypassCodeView {
    /// The computer it is for.
    pub(crate) computer: String,
    /// The code: `portcullis bypass CODE` on that computer.
    pub(crate) code: String,
    /// Its issue counter.
    pub(crate) counter: u64,
    /// Minutes of Monitor mode it gives.
    pub(crate) minutes: u32,
    /// When it can no longer be used (UTC).
    pub(crate) usable_until: String,
}

/// Issue a one-time bypass code for a computer: `minutes` of Monitor mode, usable within
/// `valid_hours`.
pub(crate) async fn bypass_code(
    state: &AppState,
    caller: &Caller,
    id: i64,
    minutes: u32,
    valid_hours: i64,
) -> Result<BypassCodeView, AppError> {
    use portcullis_protocol::bypass;
    caller.require_change()?;
    if !(1..=bypass::MAX_MINUTES).contains(&minutes) {
        return Err(AppError::BadRequest(format!("a bypass lasts 1 to {} minutes", bypass::MAX_MINUTES)));
    }
    if !(1..=bypass::MAX_VALID_HOURS).contains(&valid_hours) {
        return Err(AppError::BadRequest(format!("a code is usable for 1 to {} hours", bypass::MAX_VALID_HOURS)));
    }
    let computer = state.store.computer(caller.user.org_id, id).await?.doc.name;
    let expires_hour = now_ms() / 3_600_000 + valid_hours - 1;
    let grants = format!("{minutes} minutes of Monitor mode, usable for {valid_hours} hour(s)");
    let (key, counter) = state.store.issue_bypass(change(caller), id, &grants).await?.ok_or_else(|| {
        AppError::Conflict(format!(
            "the agent of {computer:?} has not registered a bypass key yet: it does at each start (agents older than bypass codes need an update)"
        ))
    })?;
    let code = bypass::BypassCode { counter, minutes, expires_hour };
    let until =
        jiff::Timestamp::from_second((expires_hour + 1) * 3600).map(|t| t.strftime("%Y-%m-%d %H:%M UTC").to_string());
    Ok(BypassCodeView {
        code: bypass::issue(&key, &computer, &code),
        computer,
        counter,
        minutes,
        usable_until: until.unwrap_or_default(),
    })
}
