//! A decision: the verdict and why, explainable in one line.

use crate::facts::Timestamp;
use crate::model::{Action, Mode};
use crate::rule::MatchedField;
use std::fmt;

/// Allow or deny.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// The file may run or load.
    Allow,
    /// The file is blocked.
    Deny,
}

impl Verdict {
    /// `allow` or `deny`.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Allow => "allow",
            Verdict::Deny => "deny",
        }
    }
}

/// Which rule of which application matched, and on what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleMatch {
    /// The application (or blocklist package) whose rule matched.
    pub application: String,
    /// 1-based number of the rule within it.
    pub rule: usize,
    /// The rule's note (for built-ins: where its hashes were published).
    pub note: Option<String>,
    /// The criteria that held.
    pub fields: Vec<MatchedField>,
}

impl fmt::Display for RuleMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rule {} of {:?} matched ", self.rule, self.application)?;
        for (i, m) in self.fields.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            if m.expected == "listed" {
                write!(f, "{} {}", m.field, m.actual)?;
            } else if m.expected.eq_ignore_ascii_case(&m.actual) {
                write!(f, "{}={:?}", m.field, m.actual)?;
            } else {
                write!(f, "{}={:?} (file: {:?})", m.field, m.expected, m.actual)?;
            }
        }
        if self.fields.is_empty() {
            f.write_str("unconditionally")?;
        }
        Ok(())
    }
}

/// What decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Basis {
    /// An approved blocklist package matched.
    Blocklist {
        /// The package.
        package: String,
        /// The rule that matched.
        matched: RuleMatch,
    },
    /// An enforced policy matched.
    Policy {
        /// The policy.
        policy: String,
        /// Its position.
        position: u32,
        /// Its action.
        action: Action,
        /// The rule that matched.
        matched: RuleMatch,
    },
    /// No policy matched; the computer's mode decided.
    Mode {
        /// The mode in force.
        mode: Mode,
        /// The computer is in Monitor mode because its Learning period ended then, with no
        /// baseline accepted.
        learning_ended: Option<Timestamp>,
        /// Allowed because an Installation window on this computer captured the file into
        /// this application (the agent's own record, until the server's copy of the
        /// application has it).
        captured: Option<String>,
    },
}

/// A monitor-status policy or approval that matched on the way down: it reports what it would
/// have done without doing it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MonitorHit {
    /// `policy "name"` or `blocklist "name"`.
    pub source: String,
    /// What it would have done.
    pub would: Verdict,
    /// The rule that matched.
    pub matched: RuleMatch,
    /// The ringfence profile of a monitor-status Permit-with-Ringfence policy: its ringfence
    /// reports what it would deny.
    pub ringfence: Option<String>,
    /// The policy's name, when a policy (not a blocklist) matched.
    pub policy: Option<String>,
}

/// A ringfence that a decision puts on the process tree of the file it allows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fenced<'a> {
    /// The profile.
    pub profile: &'a str,
    /// The policy that attaches it.
    pub policy: &'a str,
    /// Deny; otherwise only report (the policy is in Monitor status).
    pub enforce: bool,
}

/// The outcome of one evaluation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Allow or deny.
    pub verdict: Verdict,
    /// What decided.
    pub basis: Basis,
    /// The computer the decision was made for, if named.
    pub computer: Option<String>,
    /// The mode in force on that computer.
    pub mode: Mode,
    /// Monitor-status matches met before the deciding one.
    pub monitor_hits: Vec<MonitorHit>,
    /// Whether a rule looked at the process (parent, user): such a decision must not be cached
    /// per file.
    pub depends_on_process: bool,
}

impl Decision {
    /// Allowed only because the computer is in Monitor mode: it would have been denied.
    pub fn would_deny(&self) -> bool {
        self.verdict == Verdict::Allow && matches!(&self.basis, Basis::Mode { mode: Mode::Monitor, .. })
            || self.monitor_hits.iter().any(|h| h.would == Verdict::Deny)
    }

    /// Allowed in Learning mode with no policy: a candidate for the allowlist.
    pub fn is_learning_candidate(&self) -> bool {
        matches!(&self.basis, Basis::Mode { mode: Mode::Learning { .. }, .. })
    }

    /// The application an Installation window captured this file into, when that is why it
    /// was allowed.
    pub fn capture_into(&self) -> Option<&str> {
        match &self.basis {
            Basis::Mode { captured: Some(application), .. } => Some(application),
            _ => None,
        }
    }

    /// The ringfence profile that limits the allowed file, if any.
    pub fn ringfence(&self) -> Option<&str> {
        match &self.basis {
            Basis::Policy { action: Action::PermitWithRingfence(p), .. } => Some(p),
            _ => None,
        }
    }

    /// The ringfence to put on the process tree: an enforced Permit-with-Ringfence policy's,
    /// or, when the file is allowed anyway, a monitor-status one's, which only reports.
    pub fn fence(&self) -> Option<Fenced<'_>> {
        if let Basis::Policy { action: Action::PermitWithRingfence(profile), policy, .. } = &self.basis {
            return Some(Fenced { profile, policy, enforce: true });
        }
        if self.verdict != Verdict::Allow {
            return None;
        }
        self.monitor_hits.iter().find_map(|h| {
            Some(Fenced { profile: h.ringfence.as_deref()?, policy: h.policy.as_deref()?, enforce: false })
        })
    }

    /// Whether the blocked user may ask for access.
    pub fn request_allowed(&self) -> bool {
        matches!(&self.basis, Basis::Policy { action: Action::DenyWithRequest, .. })
    }

    /// The policy that decided, if one did.
    pub fn policy(&self) -> Option<&str> {
        match &self.basis {
            Basis::Policy { policy, .. } => Some(policy),
            _ => None,
        }
    }

    /// The reason, in one line, for consoles, logs and `portcullis check`.
    pub fn explain(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let on = self.computer.as_deref().map(|c| format!(" on {c:?}")).unwrap_or_default();
        match &self.basis {
            Basis::Blocklist { package, matched } => {
                write!(f, "denied by blocklist package {package:?}: {matched}")?;
            }
            Basis::Policy { policy, position, action, matched } => {
                let verb = if action.permits() { "allowed" } else { "denied" };
                write!(f, "{verb} by policy {policy:?} (position {position}, {}): {matched}", action.name())?;
                if let Action::PermitWithRingfence(profile) = action {
                    write!(f, "; ringfenced by {profile:?}")?;
                }
                if let Action::DenyWithRequest = action {
                    f.write_str("; the user may request access")?;
                }
            }
            Basis::Mode { mode, captured: Some(application), .. } => write!(
                f,
                "allowed: no policy matched; {} captured it into {application:?} (the server's copy of the \
                 application does not have it yet)",
                if matches!(mode, Mode::Installation { .. }) {
                    "a named installer wrote it in this Installation window, which"
                } else {
                    "an Installation window"
                }
            )?,
            Basis::Mode { mode, learning_ended, captured: None } => match mode {
                Mode::Secured => write!(f, "denied: no policy matched and the computer{on} is in Secured mode")?,
                Mode::Monitor => {
                    write!(f, "allowed (would deny): no policy matched and the computer{on} is in Monitor mode")?;
                    if let Some(ended) = learning_ended {
                        write!(
                            f,
                            " (its Learning period ended {} without an accepted baseline; accept one, then switch to \
                             Secured)",
                            ended.date()
                        )?;
                    }
                }
                Mode::Learning { .. } => write!(
                    f,
                    "allowed: no policy matched and the computer{on} is in Learning mode; recorded as a candidate"
                )?,
                Mode::Installation { until, .. } => write!(
                    f,
                    "denied: no policy matched and the computer{on} is in Installation mode until {}, which \
                     allows only what a named installer ({}) writes",
                    until.date(),
                    crate::model::INSTALLERS.join(", ")
                )?,
            },
        }
        if let Some(note) = match &self.basis {
            Basis::Blocklist { matched, .. } | Basis::Policy { matched, .. } => matched.note.as_deref(),
            Basis::Mode { .. } => None,
        } {
            write!(f, " [{note}]")?;
        }
        for hit in &self.monitor_hits {
            write!(f, "; monitor only: {} would {} ({})", hit.source, hit.would.name(), hit.matched)?;
        }
        Ok(())
    }
}
