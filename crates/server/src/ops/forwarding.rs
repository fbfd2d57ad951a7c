//! Forwarding destinations and event retention: admins only (a destination receives every
//! event of the organization), checked here before the store keeps them.

use super::{AppError, AppState, Caller, change, check_name};
use portcullis_forward::Destination;
use portcullis_store::{ForwarderRow, ForwarderSpec, Retention, TokenChange};
use serde::Deserialize;

/// A destination as an administrator gives it.
#[derive(Clone, Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ForwarderInput {
    /// Name, unique in the organization.
    pub(crate) name: String,
    /// `syslog+tcp://HOST:PORT` (RFC 5424, octet-counted), `syslog+tls://HOST:PORT` (RFC
    /// 5425), or `http://…`/`https://…` (JSON lines, POSTed).
    pub(crate) url: String,
    /// CA certificates (PEM) trusted for TLS instead of the Mozilla roots.
    #[serde(default)]
    pub(crate) ca_pem: Option<String>,
    /// Bearer token for an HTTP destination; on a change, absent keeps the one set.
    #[serde(default)]
    pub(crate) token: Option<String>,
    /// On a change: remove the token.
    #[serde(default)]
    pub(crate) clear_token: bool,
    /// Sending (default true).
    #[serde(default = "yes")]
    pub(crate) enabled: bool,
    /// On creation: send every stored event, not only those stored from now on.
    #[serde(default)]
    pub(crate) from_start: bool,
}

fn yes() -> bool {
    true
}

/// Largest CA text accepted.
pub(crate) const MAX_CA_PEM: usize = 64 * 1024;

fn checked(input: &ForwarderInput) -> Result<(ForwarderSpec, Option<String>), AppError> {
    let name = check_name(&input.name, "forwarding destination")?;
    let dest = Destination::parse(input.url.trim()).map_err(|e| AppError::BadRequest(format!("url: {e}")))?;
    let ca_pem = input.ca_pem.as_deref().map(str::trim).filter(|p| !p.is_empty()).map(str::to_owned);
    if let Some(pem) = &ca_pem {
        if pem.len() > MAX_CA_PEM {
            return Err(AppError::BadRequest(format!("the CA text is over {} KiB", MAX_CA_PEM / 1024)));
        }
        if !dest.transport.tls() {
            return Err(AppError::BadRequest("a CA certificate is for syslog+tls:// and https:// destinations".into()));
        }
    }
    let token = input.token.as_deref().map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned);
    if token.is_some() && dest.transport.syslog() {
        return Err(AppError::BadRequest("a token is for http:// and https:// destinations".into()));
    }
    portcullis_forward::check(&dest, ca_pem.as_deref(), token.as_deref())
        .map_err(|e| AppError::BadRequest(e.to_string()))?;
    let spec = ForwarderSpec { name, url: dest.url, ca_pem, enabled: input.enabled };
    Ok((spec, token))
}

/// The organization's destinations.
pub(crate) async fn list(state: &AppState, caller: &Caller) -> Result<Vec<ForwarderRow>, AppError> {
    Ok(state.store.forwarders(caller.user.org_id).await?)
}

/// Add a destination.
pub(crate) async fn create(state: &AppState, caller: &Caller, input: &ForwarderInput) -> Result<i64, AppError> {
    caller.require_admin()?;
    let (spec, token) = checked(input)?;
    Ok(state.store.create_forwarder(change(caller), &spec, token.as_deref(), input.from_start).await?)
}

/// Change a destination.
pub(crate) async fn update(state: &AppState, caller: &Caller, id: i64, input: &ForwarderInput) -> Result<(), AppError> {
    caller.require_admin()?;
    let (spec, token) = checked(input)?;
    let token = match (token, input.clear_token) {
        (Some(_), true) => return Err(AppError::BadRequest("give a token or clear_token, not both".into())),
        (Some(t), false) => TokenChange::Set(t),
        (None, true) => TokenChange::Clear,
        (None, false) => TokenChange::Keep,
    };
    if matches!(token, TokenChange::Keep) {
        let row = state.store.forwarder(caller.user.org_id, id).await?;
        if row.has_token.0 {
            if spec.url.starts_with("syslog") {
                // A destination turned from HTTP to syslog drops its token.
                return Ok(state.store.update_forwarder(change(caller), id, &spec, TokenChange::Clear).await?);
            }
            // The token goes only where it was given for: whoever moves the destination
            // elsewhere gives it again (or clears it), or could read it at their own host.
            let at = |url: &str| Destination::parse(url).ok().map(|d| (d.transport, d.host, d.port));
            if at(&row.url) != at(&spec.url) {
                return Err(AppError::BadRequest(
                    "the destination moves to another address: give its token again, or clear_token".into(),
                ));
            }
        }
    }
    Ok(state.store.update_forwarder(change(caller), id, &spec, token).await?)
}

/// Remove a destination.
pub(crate) async fn delete(state: &AppState, caller: &Caller, id: i64) -> Result<(), AppError> {
    caller.require_admin()?;
    Ok(state.store.delete_forwarder(change(caller), id).await?)
}

/// The organization's retention.
pub(crate) async fn retention(state: &AppState, caller: &Caller) -> Result<Retention, AppError> {
    Ok(state.store.retention(caller.user.org_id).await?)
}

/// Most days an event can be kept for (a hundred years: "for ever" is no limit).
pub(crate) const MAX_RETENTION_DAYS: i64 = 36_500;
/// Most events a count limit can name.
pub(crate) const MAX_RETENTION_EVENTS: i64 = 1_000_000_000;

/// Change the organization's retention.
pub(crate) async fn set_retention(state: &AppState, caller: &Caller, r: Retention) -> Result<(), AppError> {
    caller.require_admin()?;
    if r.days.is_some_and(|d| !(1..=MAX_RETENTION_DAYS).contains(&d)) {
        return Err(AppError::BadRequest(format!("days: from 1 to {MAX_RETENTION_DAYS}, or none")));
    }
    if r.events.is_some_and(|n| !(1..=MAX_RETENTION_EVENTS).contains(&n)) {
        return Err(AppError::BadRequest(format!("events: from 1 to {MAX_RETENTION_EVENTS}, or none")));
    }
    Ok(state.store.set_retention(change(caller), r).await?)
}
