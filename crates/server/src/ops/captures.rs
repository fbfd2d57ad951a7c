//! Files an Installation window captured on a computer (what a named installer's process
//! tree wrote there): added by hash to the window's application, which a policy permits at
//! the scope that opened the window, so that they stay permitted when it closes.
//!
//! An agent may be hostile, so what it may add is narrow: only while the server itself sees
//! the computer in an Installation window (its own, its group's or the organization's; a
//! few minutes' grace after the end for captures read at the close), only into that
//! window's application, only SHA-256 rules, at most
//! [`portcullis_protocol::limits::CAPTURES_PER_APPLICATION`] of them per application. The
//! change goes through the model check like an administrator's, and the audit log names
//! the agent.

use super::{AppError, AppState, check_model, whole_model};
use portcullis_policy::Timestamp;
use portcullis_policy_file::document::{ApplicationDoc, Document, PolicyDoc, RuleDoc};
use portcullis_protocol::{CaptureBatch, CaptureReply, CapturedFile, bounded_text, limits};
use portcullis_store::{AgentIdentity, Change, now_ms};

/// How long after a window's end its captures are still taken: the agent reads a close,
/// hashes the file and sends it within seconds, but the network may be slower.
pub(crate) const GRACE_MS: i64 = 10 * 60 * 1000;

/// One capture at a time per server process: the application's rules are read, extended
/// and written back.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The Installation window a computer is in as the server sees it: the application it
/// captures into, when it ends, and the scope that opened it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct OpenWindow {
    pub(crate) application: String,
    pub(crate) until: Timestamp,
    pub(crate) scope: String,
}

/// The window `computer` is in (its own mode, else the nearest group's that sets one, else
/// the organization's), if that mode is Installation.
pub(crate) fn window_of(doc: &Document, computer: &str) -> Option<OpenWindow> {
    let c = doc.computers.iter().find(|c| c.name.eq_ignore_ascii_case(computer))?;
    let own =
        c.mode.as_ref().map(|m| (m.clone(), c.until.clone(), c.capture_into.clone(), format!("computer:{}", c.name)));
    let group = || {
        portcullis_policy::PolicySet::inherited(c.group.as_deref(), |p| {
            doc.groups.iter().find(|g| g.path.eq_ignore_ascii_case(p)).and_then(|g| {
                g.mode
                    .as_ref()
                    .map(|m| (m.clone(), g.until.clone(), g.capture_into.clone(), format!("group:{}", g.path)))
            })
        })
    };
    let org = || {
        doc.organization.as_ref().and_then(|o| {
            o.mode.as_ref().map(|m| (m.clone(), o.until.clone(), o.capture_into.clone(), "organization".to_owned()))
        })
    };
    let (mode, until, app, scope) = own.or_else(group).or_else(org)?;
    if !mode.trim().eq_ignore_ascii_case("installation") {
        return None;
    }
    let until = portcullis_policy_file::parse_time(until.as_deref()?)?;
    Some(OpenWindow { application: app?.trim().to_owned(), until, scope })
}

/// Take a batch of captures from `agent`.
pub(crate) async fn capture(
    state: &AppState,
    agent: &AgentIdentity,
    batch: &CaptureBatch,
) -> Result<CaptureReply, AppError> {
    if batch.files.len() > limits::CAPTURES {
        return Err(AppError::BadRequest(format!("at most {} captured files per batch", limits::CAPTURES)));
    }
    let _one = ONE_AT_A_TIME.lock().await;
    let (version, doc) = whole_model(state, agent.org_id).await?;
    if batch.files.is_empty() {
        return Ok(CaptureReply { added: 0, known: 0, version });
    }
    let now = now_ms();
    let window = window_of(&doc, &agent.name).filter(|w| w.until.0 * 1000 + GRACE_MS > now).ok_or_else(|| {
        AppError::Conflict(format!(
            "computer {:?} is not in an Installation window: captured files are refused (open one in the \
                 console: Computers → mode Installation, with an end and an application)",
            agent.name
        ))
    })?;
    // A built-in application is read-only: the window cannot add to it.
    if portcullis_catalog::builtin_applications().iter().any(|b| b.name.eq_ignore_ascii_case(&window.application)) {
        return Err(AppError::Conflict(format!(
            "the Installation window of {:?} captures into {:?}, a built-in application, which cannot take rules: \
             name an application of your own",
            agent.name, window.application
        )));
    }
    let mut files: Vec<CapturedFile> = Vec::new();
    let mut refused: Vec<String> = Vec::new();
    for f in &batch.files {
        match f.normalized() {
            Ok(f) if f.application.eq_ignore_ascii_case(&window.application) => files.push(f),
            Ok(f) => refused.push(format!(
                "{} is for application {:?}, the window captures into {:?}",
                f.path, f.application, window.application
            )),
            // One bad entry never holds back the rest.
            Err(e) => refused.push(e.to_string()),
        }
    }
    if let Some(first) = refused.first() {
        tracing::warn!(
            "computer {}: {} captured file(s) refused, first: {}",
            agent.name,
            refused.len(),
            bounded_text(first, 300)
        );
    }
    let existing = doc.applications.iter().find(|a| a.name.eq_ignore_ascii_case(&window.application));
    let known: std::collections::HashSet<String> = existing
        .map(|a| a.rules.iter().filter_map(|r| r.sha256.as_ref()).flatten().map(|h| h.to_ascii_lowercase()).collect())
        .unwrap_or_default();
    let mut rules: Vec<RuleDoc> = Vec::new();
    let mut repeated = 0u64;
    let mut seen = std::collections::HashSet::new();
    for f in &files {
        if known.contains(&f.sha256) || !seen.insert(f.sha256.clone()) {
            repeated += 1;
            continue;
        }
        rules.push(RuleDoc {
            sha256: Some(vec![f.sha256.clone()]),
            note: Some(bounded_text(
                &format!(
                    "captured on {} from {}, written by {}, {}",
                    agent.name,
                    f.path,
                    f.installer,
                    Timestamp(f.at_ms.clamp(0, now + super::super::api::agents::MAX_CLOCK_SKEW_MS) / 1000).date()
                ),
                2000,
            )),
            ..RuleDoc::default()
        });
    }
    if rules.is_empty() {
        return Ok(CaptureReply { added: 0, known: repeated, version });
    }
    let size = existing.map_or(0, |a| a.rules.len());
    if size + rules.len() > limits::CAPTURES_PER_APPLICATION {
        return Err(AppError::Conflict(format!(
            "application {:?} would have more than {} rules: an Installation window captures at most that many",
            window.application,
            limits::CAPTURES_PER_APPLICATION
        )));
    }
    // The application is permitted where the window was opened, unless some policy uses it
    // already (the administrator decided how).
    let used = doc.policies.iter().any(|p| p.applications.iter().any(|a| a.eq_ignore_ascii_case(&window.application)));
    let policy = (!used).then(|| {
        let base = format!("Installed: {}", window.application);
        let mut name = base.clone();
        let mut n = 2;
        while doc.policies.iter().any(|p| p.name.eq_ignore_ascii_case(&name)) {
            name = format!("{base} ({n})");
            n += 1;
        }
        PolicyDoc {
            name,
            description: Some(format!(
                "Permits what Installation windows captured into {:?} (made by the first capture, on {})",
                window.application, agent.name
            )),
            applications: vec![window.application.clone()],
            action: "permit".into(),
            scope: Some(window.scope.clone()),
            position: 0,
            ..Default::default()
        }
    });
    let description = format!(
        "What Installation windows captured: files named installers wrote (first on {}). Remove a rule to revoke it.",
        agent.name
    );
    let app_doc = ApplicationDoc {
        name: window.application.clone(),
        description: Some(description.clone()),
        rules: rules.clone(),
        except: Vec::new(),
    };
    check_model(state, agent.org_id, |d: &mut Document| {
        match d.applications.iter_mut().find(|a| a.name.eq_ignore_ascii_case(&app_doc.name)) {
            Some(a) => a.rules.extend(app_doc.rules.iter().cloned()),
            None => d.applications.push(app_doc.clone()),
        }
        if let Some(p) = &policy {
            d.policies.push(PolicyDoc { position: i64::from(u32::MAX), ..p.clone() });
        }
    })
    .await?;
    let actor = format!("agent {} (installation)", agent.name);
    state
        .store
        .add_application_rules(
            Change { org_id: agent.org_id, actor: &actor },
            "capture",
            &window.application,
            Some(&description),
            &rules,
            policy.as_ref(),
        )
        .await?;
    state.hub.changed(&state.store, agent.org_id).await?;
    let version = state.store.org_version(agent.org_id).await?;
    Ok(CaptureReply { added: rules.len() as u64, known: repeated, version })
}
