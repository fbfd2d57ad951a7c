//! The report that comes with every export: one entry per rule (and per decision about the
//! policy as a whole), each exported, approximated or not expressible.

use crate::Format;

/// What an entry is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// The group's mode (what no rule decides).
    Mode,
    /// A rule of a blocklist package.
    Blocklist,
    /// A rule of an application a policy names.
    Policy,
}

/// The rule (or setting) an entry is about, as the console names it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Source {
    /// Mode, blocklist or policy.
    pub kind: SourceKind,
    /// The blocklist's or policy's name (the mode's name for [`SourceKind::Mode`]).
    pub name: String,
    /// The application, for a policy's rule.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub application: Option<String>,
    /// The rule's number in its application or blocklist, from 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<usize>,
    /// What the rule asks for, in short.
    pub what: String,
    /// The rule's note, if it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Source {
    /// "policy "Permit vendor" / application "Vendor" / rule 2", for people.
    pub fn label(&self) -> String {
        let mut out = match self.kind {
            SourceKind::Mode => format!("mode {}", self.name),
            SourceKind::Blocklist => format!("blocklist {:?}", self.name),
            SourceKind::Policy => format!("policy {:?}", self.name),
        };
        if let Some(a) = &self.application {
            out.push_str(&format!(" / {a:?}"));
        }
        if let Some(r) = self.rule {
            out.push_str(&format!(" / rule {r}"));
        }
        out
    }
}

/// What became of a rule.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum Outcome {
    /// The engine enforces exactly what Portcullis does.
    Exported {
        /// What it became in the engine's terms.
        to: String,
    },
    /// The engine enforces something close; `how` says where it differs.
    Approximated {
        /// What it became.
        to: String,
        /// Where the engine's result differs from Portcullis's.
        how: String,
    },
    /// Left out: the engine cannot express it. `why` says why, and what to do instead.
    NotExpressible {
        /// Why, and the alternative where there is one.
        why: String,
    },
}

impl Outcome {
    /// Exported as `to` when nothing differs, else approximated with every difference said.
    pub fn of(to: String, how: &[String]) -> Outcome {
        if how.is_empty() { Outcome::Exported { to } } else { Outcome::Approximated { to, how: how.join("; ") } }
    }

    /// `exported`, `approximated` or `not expressible`.
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Exported { .. } => "exported",
            Outcome::Approximated { .. } => "approximated",
            Outcome::NotExpressible { .. } => "not expressible",
        }
    }
}

/// One rule and what became of it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Entry {
    /// The rule.
    pub source: Source,
    /// What became of it.
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// Every entry of an export.
#[derive(Clone, Debug, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Report {
    /// The engine.
    pub format: Format,
    /// The organization.
    pub organization: String,
    /// The group exported (`None`: computers in no group).
    pub group: Option<String>,
    /// The group's mode at the time of the export.
    pub mode: String,
    /// What became of each rule, in the engine's order of Portcullis's policies.
    pub entries: Vec<Entry>,
}

impl Report {
    /// How many entries were exported, approximated and not expressible.
    pub fn counts(&self) -> (usize, usize, usize) {
        let count = |n: &str| self.entries.iter().filter(|e| e.outcome.name() == n).count();
        (count("exported"), count("approximated"), count("not expressible"))
    }
}
