//! Events from agents, the "what would happen" preview, and policies made from events.

use super::{AppError, AppState, Caller, change, change_model, check_name, load_model, parse_moment};
use portcullis_policy::{FileFacts, FileKind, Os, ProcessFacts, SignerFacts, Timestamp};
use portcullis_policy_file::document::{ApplicationDoc, Document, PolicyDoc, RuleDoc, SignerDoc};
use portcullis_store::{EventFilter, EventRow, now_ms};
use serde::{Deserialize, Serialize};

/// Which events to list (every field given must hold).
#[derive(Deserialize, Default)]
pub(crate) struct EventQuery {
    /// A computer's name.
    pub(crate) computer: Option<String>,
    /// A verdict (`allow`, `deny`) or an event kind (`would-deny`, `ringfence-deny`…).
    pub(crate) verdict: Option<String>,
    /// Part of the file's path, or the start of its SHA-256.
    pub(crate) file: Option<String>,
    /// The deciding policy.
    pub(crate) policy: Option<String>,
    /// From this time (a date, an RFC 3339 time or Unix ms).
    pub(crate) from: Option<String>,
    /// Before this time.
    pub(crate) to: Option<String>,
    /// Only ids below this (the next page).
    pub(crate) before_id: Option<i64>,
    /// At most this many (default 100, at most 1000).
    pub(crate) limit: Option<i64>,
}

fn event_filter(q: &EventQuery) -> Result<EventFilter, AppError> {
    let some = |s: &Option<String>| s.as_ref().map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
    Ok(EventFilter {
        computer: some(&q.computer),
        verdict: some(&q.verdict),
        file: some(&q.file),
        policy: some(&q.policy),
        from_ms: some(&q.from).map(|t| parse_moment(&t)).transpose()?,
        to_ms: some(&q.to).map(|t| parse_moment(&t)).transpose()?,
        before_id: q.before_id,
        limit: q.limit.unwrap_or(100),
    })
}

/// Events, newest first.
pub(crate) async fn list(state: &AppState, caller: &Caller, q: &EventQuery) -> Result<Vec<EventRow>, AppError> {
    Ok(state.store.events(caller.user.org_id, &event_filter(q)?).await?)
}

/// One event with its whole record.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct EventDetail {
    /// The event as stored.
    #[serde(flatten)]
    pub(crate) row: EventRow,
    /// The agent's record as it was received, every field kept (`null` if it is not JSON).
    #[schema(value_type = Option<portcullis_events::Record>)]
    pub(crate) record: Option<serde_json::Value>,
}

/// One event.
pub(crate) async fn get(state: &AppState, caller: &Caller, id: i64) -> Result<EventDetail, AppError> {
    let row = state.store.event(caller.user.org_id, id).await?;
    let record = serde_json::from_str(&row.fields.record_json).ok();
    Ok(EventDetail { row, record })
}

/// A file's facts as a person can type them, or as an event holds them.
#[derive(Clone, Debug, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FileInput {
    /// Full path.
    pub path: String,
    /// Flat SHA-256, hex.
    #[serde(default)]
    pub sha256: Option<String>,
    /// `elf-executable`, `pe-exe`, `script`…
    #[serde(default)]
    pub kind: Option<String>,
    /// PE OriginalFilename.
    #[serde(default)]
    pub original_filename: Option<String>,
    /// Product name.
    #[serde(default)]
    pub product_name: Option<String>,
    /// Company name.
    #[serde(default)]
    pub company_name: Option<String>,
    /// The platform the file is for (`windows`, `linux`, `macos`).
    #[serde(default)]
    pub os: Option<String>,
    /// A macOS program's signing ID, as Santa reports it (`TEAMID:com.vendor.app`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_id: Option<String>,
    /// Parent process path.
    #[serde(default)]
    pub parent_process: Option<String>,
    /// User.
    #[serde(default)]
    pub user: Option<String>,
    /// The installed packages the file belongs to, verified by their recorded digests
    /// (`dpkg:bash`), as the agent found them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub packages: Vec<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PreviewRequest {
    /// Decide for this computer (its group and mode); none: the organization's defaults.
    pub(crate) computer: Option<String>,
    /// Take the file from this event.
    pub(crate) event: Option<i64>,
    /// Or describe the file.
    pub(crate) file: Option<FileInput>,
}

/// A kind as policies name it, or a file format as `portcullis scan` names it.
fn file_kind(name: &str) -> Option<FileKind> {
    FileKind::from_name(name).or(match name {
        "elf-executable" | "elf-pie" | "pe-exe" | "macho" => Some(FileKind::Executable),
        "elf-shared-object" | "pe-dll" => Some(FileKind::Library),
        "msi" | "cab" => Some(FileKind::Installer),
        "elf-other" => Some(FileKind::Other),
        _ => None,
    })
}

fn hex32(text: &str) -> Option<[u8; 32]> {
    match portcullis_hashlist::Hash::from_hex(text.trim())? {
        portcullis_hashlist::Hash::Sha256(b) => Some(b),
        _ => None,
    }
}

/// What an event's stored record says about its file, read leniently: a record stored by an
/// older server, or one odd field, loses only that field, not the file's identity.
#[derive(Default)]
struct StoredFile {
    original_filename: Option<String>,
    product_name: Option<String>,
    company_name: Option<String>,
    /// Subject and leaf certificate SHA-256, when the agent verified the signature.
    verified_signer: Option<(String, String)>,
    /// Packages the agent verified the file against.
    packages: Vec<String>,
    /// The signing ID Santa reported (macOS verified it), in its form.
    signing_id: Option<String>,
}

fn stored_file(event: &EventRow) -> StoredFile {
    let Ok(record) = serde_json::from_str::<serde_json::Value>(&event.fields.record_json) else {
        return StoredFile::default();
    };
    let file = &record["file"];
    let text = |v: &serde_json::Value| v.as_str().map(str::to_owned).filter(|t| !t.trim().is_empty());
    let signer = &file["signer"];
    // Company and product names are claims in the file (and the record), not a signer,
    // and never make a publisher rule.
    let verified_signer = (signer["verified"] == serde_json::Value::Bool(true))
        .then(|| Some((text(&signer["subject"])?, hex32(signer["cert_sha256"].as_str()?)?)))
        .flatten()
        .map(|(subject, cert)| (subject, cert.iter().map(|b| format!("{b:02x}")).collect()));
    let packages = file["packages"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| p.as_str())
                .filter(|p| portcullis_protocol::valid_package_name(p))
                .take(64)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    StoredFile {
        signing_id: text(&file["signing_id"]).filter(|id| portcullis_policy_file::signing_id_form(id)),
        packages,
        original_filename: text(&file["original_filename"]),
        product_name: text(&file["product_name"]),
        company_name: text(&file["company_name"]),
        verified_signer,
    }
}

pub(crate) fn file_input_of(event: &EventRow) -> FileInput {
    let file = stored_file(event);
    FileInput {
        path: event.fields.file_path.clone(),
        sha256: Some(event.fields.file_sha256.clone()),
        kind: Some(event.fields.file_kind.clone()),
        // Santa's reports are the ones with a signing ID; they are of Macs.
        os: Some(
            if file.signing_id.is_some() || event.fields.reason.starts_with("Santa ") { "macos" } else { "linux" }
                .into(),
        ),
        signing_id: file.signing_id,
        parent_process: event.fields.process_exe.clone(),
        user: event.fields.user_name.clone(),
        original_filename: file.original_filename,
        product_name: file.product_name,
        company_name: file.company_name,
        packages: file.packages,
    }
}

/// What would happen, and why.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Preview {
    /// The organization's version decided at.
    pub(crate) version: i64,
    /// The computer decided for, if one.
    pub(crate) computer: Option<String>,
    /// The file's facts as given.
    pub(crate) file: FileInput,
    /// `allow` or `deny`.
    pub(crate) verdict: &'static str,
    /// Allowed now, but it would be denied (Monitor).
    pub(crate) would_deny: bool,
    /// The deciding policy.
    pub(crate) policy: Option<String>,
    /// The mode that applied.
    pub(crate) mode: &'static str,
    /// The decision in one line.
    pub(crate) reason: String,
}

/// "What would happen": the decision and its reason for a file described by its facts, or
/// taken from an event, on a computer (its group and mode) or the organization's defaults.
pub(crate) async fn preview(state: &AppState, caller: &Caller, req: PreviewRequest) -> Result<Preview, AppError> {
    let org = caller.user.org_id;
    // A signer counts only as the agent verified it, so only from an event's record.
    let (input, computer, signer) = match (req.event, req.file) {
        (Some(id), None) => {
            let e = state.store.event(org, id).await?;
            let computer = req.computer.or(Some(e.computer.clone()));
            let signer = stored_file(&e).verified_signer.and_then(|(subject, cert)| {
                Some(SignerFacts { subject, cert_sha256: hex32(&cert)?, verified: true, ..Default::default() })
            });
            (file_input_of(&e), computer, signer)
        }
        (None, Some(f)) => (f, req.computer, None),
        _ => return Err(AppError::BadRequest("give either an event id or a file's facts".into())),
    };
    let os = match input.os.as_deref() {
        None => None,
        Some(o) => Some(Os::from_name(o).ok_or_else(|| AppError::BadRequest(format!("unknown os {o:?}")))?),
    };
    let kind = match input.kind.as_deref().map(str::trim) {
        None | Some("") => FileKind::default(),
        Some(k) => file_kind(k).ok_or_else(|| {
            AppError::BadRequest(format!(
                "unknown file kind {k:?}; use executable, library, script, installer or other (or a format: elf-executable, pe-dll, msi…)"
            ))
        })?,
    };
    let sha256 = match input.sha256.as_deref() {
        None | Some("") => [0; 32],
        Some(h) => hex32(h).ok_or_else(|| AppError::BadRequest(format!("{h:?} is not a SHA-256")))?,
    };
    let file = FileFacts {
        path: input.path.clone(),
        sha256,
        kind,
        platform: os,
        original_filename: input.original_filename.clone(),
        product_name: input.product_name.clone(),
        company_name: input.company_name.clone(),
        packages: input.packages.clone(),
        signer,
        signing_id: input.signing_id.clone().filter(|id| portcullis_policy_file::signing_id_form(id)),
        ..FileFacts::default()
    };
    if let Some(bad) = file.packages.iter().find(|p| !portcullis_protocol::valid_package_name(p)) {
        return Err(AppError::BadRequest(format!(
            "{:?} is not a package name: use dpkg:NAME or rpm:NAME",
            portcullis_protocol::bounded_text(bad, 80)
        )));
    }
    let process = ProcessFacts { parent_path: input.parent_process.clone(), user: input.user.clone() };
    let (version, loaded) = load_model(state, org, |_| ()).await?;
    let engine =
        loaded.compile().map_err(|e| AppError::Invalid(e.diagnostics.into_iter().map(|d| d.message).collect()))?;
    let target =
        engine.target(computer.as_deref(), os.unwrap_or(Os::Linux)).map_err(|e| AppError::BadRequest(e.to_string()))?;
    let decision = engine.decide(&file, &process, &target, Timestamp(now_ms() / 1000));
    Ok(Preview {
        version,
        computer,
        file: input,
        verdict: decision.verdict.name(),
        would_deny: decision.would_deny(),
        policy: decision.policy().map(str::to_owned),
        mode: decision.mode.name(),
        reason: decision.explain(),
    })
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct FromEvent {
    /// `permit-hash`, `permit-path`, `permit-publisher`, `permit-signing-id`, `deny-hash` or
    /// `deny-signing-id`.
    pub(crate) kind: String,
    /// The new policy's name (default: made from the file's name).
    pub(crate) name: Option<String>,
    /// Only say what the policy would match; save nothing.
    #[serde(default)]
    pub(crate) preview: bool,
}

/// What "create a policy from this event" would make, and what it matches in words.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct RulePreview {
    /// `permit` or `deny`.
    pub(crate) action: &'static str,
    /// The rule.
    pub(crate) rule: RuleDoc,
    /// What it matches.
    pub(crate) matches: String,
}

/// The policy made from an event.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct MadePolicy {
    /// The policy's id.
    pub(crate) id: i64,
    /// Its name.
    pub(crate) name: String,
    /// The application made for it.
    pub(crate) application: String,
    /// What it matches.
    pub(crate) matches: String,
}

/// A rule made from an event, and what it matches in words.
pub(crate) struct EventRule {
    pub(crate) rule: RuleDoc,
    pub(crate) action: &'static str,
    pub(crate) what: &'static str,
    pub(crate) matches: String,
}

/// The rule "create a policy from this event" makes. Everything taken from the event is
/// literal: a path becomes that one path (glob characters escaped), a hash that hash, a
/// publisher the verified signer's subject *and* its certificate.
pub(crate) fn rule_from_event(e: &EventRow, kind: &str) -> Result<EventRule, AppError> {
    let stored = stored_file(e);
    let hash = || {
        hex32(&e.fields.file_sha256)
            .map(|_| e.fields.file_sha256.trim().to_ascii_lowercase())
            .ok_or_else(|| AppError::BadRequest("this event carries no SHA-256 of its file; permit it by path".into()))
    };
    Ok(match kind {
        "permit-hash" | "deny-hash" => {
            let h = hash()?;
            EventRule {
                matches: format!("the file whose SHA-256 is {h}, wherever it is"),
                rule: RuleDoc { sha256: Some(vec![h]), ..Default::default() },
                action: if kind == "deny-hash" { "deny" } else { "permit" },
                what: "hash",
            }
        }
        "permit-path" => {
            if !e.fields.file_path.starts_with('/') {
                return Err(AppError::BadRequest("this event's path is not absolute; permit it by hash".into()));
            }
            EventRule {
                matches: format!(
                    "exactly the path {:?}, taken literally (no wildcard), whatever its content",
                    e.fields.file_path
                ),
                rule: RuleDoc {
                    path: Some(portcullis_policy::PathPattern::escape(&e.fields.file_path)),
                    ..Default::default()
                },
                action: "permit",
                what: "path",
            }
        }
        "permit-publisher" => {
            let Some((subject, cert)) = stored.verified_signer.clone() else {
                return Err(AppError::BadRequest(
                    "this event carries no verified signer (subject and certificate); permit it by hash or path".into(),
                ));
            };
            EventRule {
                matches: format!(
                    "files whose signature verifies and whose signer is {subject:?} with certificate SHA-256 {cert}"
                ),
                rule: RuleDoc {
                    signer: Some(SignerDoc {
                        subject: Some(portcullis_policy::TextPattern::escape(&subject)),
                        issuer: None,
                        cert_sha256: Some(cert),
                        verified: true,
                    }),
                    ..Default::default()
                },
                action: "permit",
                what: "publisher",
            }
        }
        "permit-signing-id" | "deny-signing-id" => {
            let Some(id) = stored.signing_id.clone() else {
                return Err(AppError::BadRequest(
                    "this event carries no signing ID (Santa reports one for a validly signed Mac program); use its \
                     hash or publisher"
                        .into(),
                ));
            };
            EventRule {
                matches: format!("Mac programs whose verified signing ID is {id:?}, every version of them"),
                rule: RuleDoc {
                    signing_id: Some(portcullis_policy::TextPattern::escape(&id)),
                    os: Some("macos".into()),
                    ..Default::default()
                },
                action: if kind == "deny-signing-id" { "deny" } else { "permit" },
                what: "signing ID",
            }
        }
        other => {
            return Err(AppError::BadRequest(format!(
                "unknown kind {other:?}; use permit-hash, permit-path, permit-publisher, permit-signing-id, \
                 deny-hash or deny-signing-id"
            )));
        }
    })
}

/// What "create a policy from this event" would make, saving nothing.
pub(crate) async fn preview_policy_from_event(
    state: &AppState,
    caller: &Caller,
    id: i64,
    kind: &str,
) -> Result<RulePreview, AppError> {
    let e = state.store.event(caller.user.org_id, id).await?;
    let made = rule_from_event(&e, kind)?;
    Ok(RulePreview { action: made.action, rule: made.rule, matches: made.matches })
}

/// "Create a policy from this event": an application with one rule taken from the event's
/// file, and a policy for it placed last (move it where it belongs).
pub(crate) async fn policy_from_event(
    state: &AppState,
    caller: &Caller,
    id: i64,
    req: &FromEvent,
) -> Result<MadePolicy, AppError> {
    caller.require_change()?;
    let e = state.store.event(caller.user.org_id, id).await?;
    let made = rule_from_event(&e, &req.kind)?;
    let file_name = e.fields.file_path.rsplit('/').next().unwrap_or(&e.fields.file_path).to_owned();
    let file_name = portcullis_protocol::bounded_text(&file_name, 80);
    let (action, what) = (made.action, made.what);
    let verb = if action == "permit" { "Permit" } else { "Deny" };
    let name = match &req.name {
        Some(n) => check_name(n, "policy")?,
        None => format!("{verb} {file_name} by {what} (event {id})"),
    };
    let app = ApplicationDoc {
        name: format!("{file_name} ({what}, event {id})"),
        description: Some(format!("Made from event {id} on {}: {}", e.computer, made.matches)),
        rules: vec![made.rule],
        except: vec![],
    };
    let policy = PolicyDoc {
        name: name.clone(),
        applications: vec![app.name.clone()],
        action: action.into(),
        position: 0,
        ..Default::default()
    };
    let edit = |d: &mut Document| {
        d.applications.push(app.clone());
        d.policies.push(PolicyDoc { position: i64::from(u32::MAX), ..policy.clone() });
    };
    let id = change_model(state, caller, edit, async || {
        state.store.create_application(change(caller), &app).await?;
        state.store.create_policy(change(caller), &policy).await
    })
    .await?;
    Ok(MadePolicy { id, name, application: app.name, matches: app.description.unwrap_or_default() })
}
