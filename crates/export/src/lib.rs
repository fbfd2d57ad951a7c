//! One Portcullis policy, handed to the enforcement engine each operating system already
//! trusts: AppLocker and App Control for Business on Windows, Santa on macOS, fapolicyd on
//! RHEL-family Linux — each with a report that says, rule by rule, what was exported, what
//! was approximated (and how), and what the engine cannot express (and why). Nothing is
//! dropped silently.
//!
//! Pure: a validated [`PolicySet`] and a group in, files and a [`Report`] out. What governs
//! the group is [`PolicySet::in_force`], the same rule the engine applies; the order there is
//! the engine's, and each exporter says where its engine's own order differs.
//!
//! Approximations lean one way: a condition the engine cannot check makes a permit not
//! expressible rather than broader; where an export does allow or deny more than
//! Portcullis would, its report entry says exactly what more.

mod appcontrol;
mod applocker;
mod cip;
mod fapolicyd;
mod plan;
mod report;
mod rules;
mod santa;
mod windows;

pub use fapolicyd::TrustedFile;
pub use report::{Entry, Outcome, Report, Source, SourceKind};
pub use santa::{SantaRule, Sync as SantaSync};

use portcullis_policy::{PolicySet, Timestamp};

/// An engine Portcullis exports to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// AppLocker policy XML (Windows).
    AppLocker,
    /// App Control for Business (WDAC) SiPolicy XML (Windows).
    AppControl,
    /// Santa rules, as `santactl rule --export` writes them (macOS).
    Santa,
    /// fapolicyd `rules.d` rules (RHEL, Fedora, Debian), and a `trust.d` file for the files
    /// given to [`export_fapolicyd`] that only a trust entry can allow (a trust entry needs
    /// the file's size, which a Portcullis rule does not hold, so it is made from real files).
    Fapolicyd,
}

impl Format {
    /// Every format, in the order the console lists them.
    pub const ALL: [Format; 4] = [Format::AppLocker, Format::AppControl, Format::Santa, Format::Fapolicyd];

    /// The name on the command line and in the API.
    pub fn name(self) -> &'static str {
        match self {
            Format::AppLocker => "applocker",
            Format::AppControl => "appcontrol",
            Format::Santa => "santa",
            Format::Fapolicyd => "fapolicyd",
        }
    }

    /// The engine's own name, for people.
    pub fn engine(self) -> &'static str {
        match self {
            Format::AppLocker => "AppLocker",
            Format::AppControl => "App Control for Business",
            Format::Santa => "Santa",
            Format::Fapolicyd => "fapolicyd",
        }
    }

    /// The format a name (as [`Format::name`] gives it) stands for.
    pub fn from_name(name: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|f| f.name().eq_ignore_ascii_case(name.trim()))
    }
}

/// One file of an export.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputFile {
    /// Its name, with the directory the engine reads it from where it has one
    /// (`rules.d/40-portcullis.rules`).
    pub name: String,
    /// Its content.
    pub bytes: Vec<u8>,
}

/// An export: the engine's files and the report on every rule.
#[derive(Clone, Debug)]
pub struct Export {
    /// The engine.
    pub format: Format,
    /// What to install.
    pub files: Vec<OutputFile>,
    /// What became of each rule.
    pub report: Report,
}

/// Export what governs the computers of `group` (`None`: computers in no group) at `now`.
/// `set` must be valid ([`PolicySet::validate`] finds nothing), as every loaded set is.
pub fn export(set: &PolicySet, group: Option<&str>, format: Format, now: Timestamp) -> Export {
    export_plan(plan::Plan::new(set, group, None, now), set, format)
}

/// fapolicyd's export for `group`, with `trusted` — files the caller judged with the group's
/// policy and found permitted, each with the rule that permitted it — pinned in a `trust.d`
/// file where that rule is one fapolicyd's rules cannot express.
pub fn export_fapolicyd(set: &PolicySet, group: Option<&str>, now: Timestamp, trusted: &[TrustedFile]) -> Export {
    let plan = plan::Plan::new(set, group, None, now);
    let (files, entries) = fapolicyd::export_with_trust(&plan, trusted);
    let report = report_of(&plan, set, Format::Fapolicyd, entries);
    Export { format: Format::Fapolicyd, files, report }
}

/// Export what governs one computer of the set (its own mode and the policies scoped to
/// it too), for an engine that syncs each computer on its own (Santa's sync server).
pub fn export_for_computer(set: &PolicySet, computer: &str, format: Format, now: Timestamp) -> Export {
    let group = set.computers.iter().find(|c| c.name.eq_ignore_ascii_case(computer)).and_then(|c| c.group.as_deref());
    export_plan(plan::Plan::new(set, group, Some(computer), now), set, format)
}

/// Santa's rules and client mode for one computer, as its sync server hands them out, with
/// the report on every rule.
pub fn santa_for_computer(set: &PolicySet, computer: &str, now: Timestamp) -> (santa::Sync, Report) {
    let group = set.computers.iter().find(|c| c.name.eq_ignore_ascii_case(computer)).and_then(|c| c.group.as_deref());
    let plan = plan::Plan::new(set, group, Some(computer), now);
    let (sync, entries) = santa::sync(&plan);
    let report = report_of(&plan, set, Format::Santa, entries);
    (sync, report)
}

fn report_of(plan: &plan::Plan<'_>, set: &PolicySet, format: Format, mut entries: Vec<Entry>) -> Report {
    // No engine here knows an expiry: a temporary permit (or deny) stays until the export is
    // replaced (Santa's sync server replaces it by itself).
    for e in entries.iter_mut() {
        let expires = plan.items.iter().find(|i| i.source == e.source).and_then(|i| i.expires);
        let Some(expires) = expires else { continue };
        let note = format!(
            "its policy ends {} UTC, which {} cannot hold: the rule stays until this export is replaced",
            expires.date(),
            format.engine()
        );
        e.outcome = match std::mem::replace(&mut e.outcome, Outcome::NotExpressible { why: String::new() }) {
            Outcome::Exported { to } => Outcome::Approximated { to, how: note },
            Outcome::Approximated { to, how } => Outcome::Approximated { to, how: format!("{how}; {note}") },
            other => other,
        };
    }
    let mut all = plan.skipped.clone();
    all.extend(entries);
    Report {
        format,
        group: plan.group.map(str::to_owned),
        mode: plan.mode.name().to_owned(),
        organization: set.organization.name.clone(),
        entries: all,
    }
}

fn export_plan(plan: plan::Plan<'_>, set: &PolicySet, format: Format) -> Export {
    let (files, entries) = match format {
        Format::AppLocker => applocker::export(&plan),
        Format::AppControl => appcontrol::export(&plan),
        Format::Santa => santa::export(&plan),
        Format::Fapolicyd => fapolicyd::export(&plan),
    };
    let report = report_of(&plan, set, format, entries);
    Export { format, files, report }
}
