//! What an export is made of: the group's mode and every rule that can decide there, in the
//! engine's order (blocklists first, then policies by position), each with its source.

use crate::report::{Entry, Outcome, Source, SourceKind};
use crate::rules::describe;
use portcullis_policy::{Action, Mode, PolicySet, Rule, Status, Timestamp};

/// One rule that can decide for the group.
#[derive(Clone, Debug)]
pub(crate) struct Item<'a> {
    pub(crate) source: Source,
    /// The rule denies (a blocklist, a deny policy); else it permits.
    pub(crate) deny: bool,
    /// Enforced, or recorded only.
    pub(crate) status: Status,
    pub(crate) rule: &'a Rule,
    /// The application's exclusions: a file they match is not the application's.
    pub(crate) except: &'a [Rule],
    /// The ringfence a permit limits the application with.
    pub(crate) ringfence: Option<&'a str>,
    /// When its policy stops (no engine here knows expiries).
    pub(crate) expires: Option<Timestamp>,
}

impl Item<'_> {
    pub(crate) fn entry(&self, outcome: Outcome) -> Entry {
        Entry { source: self.source.clone(), outcome }
    }
}

/// The group's mode and rules.
#[derive(Debug)]
pub(crate) struct Plan<'a> {
    pub(crate) mode: Mode,
    pub(crate) items: Vec<Item<'a>>,
    /// Entries about what no export can take (computer-scoped policies), said once.
    pub(crate) skipped: Vec<Entry>,
    pub(crate) organization: &'a str,
    pub(crate) group: Option<&'a str>,
    pub(crate) computer: Option<&'a str>,
}

impl<'a> Plan<'a> {
    pub(crate) fn new(
        set: &'a PolicySet,
        group: Option<&'a str>,
        computer: Option<&'a str>,
        now: Timestamp,
    ) -> Plan<'a> {
        let in_force = set.in_force(group, computer, now);
        let mut items = Vec::new();
        for (b, status) in &in_force.blocklists {
            for (i, rule) in b.rules.iter().enumerate() {
                items.push(Item {
                    source: Source {
                        kind: SourceKind::Blocklist,
                        name: b.name.clone(),
                        application: None,
                        rule: Some(i + 1),
                        what: describe(rule),
                        note: rule.note.clone(),
                    },
                    deny: true,
                    status: *status,
                    rule,
                    except: &[],
                    ringfence: None,
                    expires: None,
                });
            }
        }
        for (p, apps) in &in_force.policies {
            let ringfence = match &p.action {
                Action::PermitWithRingfence(profile) => Some(profile.as_str()),
                _ => None,
            };
            for app in apps {
                for (i, rule) in app.rules.iter().enumerate() {
                    items.push(Item {
                        source: Source {
                            kind: SourceKind::Policy,
                            name: p.name.clone(),
                            application: Some(app.name.clone()),
                            rule: Some(i + 1),
                            what: describe(rule),
                            note: rule.note.clone(),
                        },
                        deny: !p.action.permits(),
                        status: p.status,
                        rule,
                        except: &app.except,
                        ringfence,
                        expires: p.expires,
                    });
                }
            }
        }
        let mut skipped: Vec<Entry> = in_force
            .computer_scoped_blocklists
            .iter()
            .map(|b| Entry {
                source: Source {
                    kind: SourceKind::Blocklist,
                    name: b.name.clone(),
                    application: None,
                    rule: None,
                    what: "approved for single computers".into(),
                    note: None,
                },
                outcome: Outcome::NotExpressible {
                    why: "its approvals for single computers do not apply to a group as a whole; approve it for the \
                          group (or export for a group of that computer alone)"
                        .into(),
                },
            })
            .collect();
        skipped.extend(in_force.computer_scoped.iter().map(|p| {
            Entry {
                source: Source {
                    kind: SourceKind::Policy,
                    name: p.name.clone(),
                    application: None,
                    rule: None,
                    what: format!("scope {}", p.scope),
                    note: None,
                },
                outcome: Outcome::NotExpressible {
                    why: "it applies to one computer, and an export is for a group's computers alike; move it to a \
                          group (or export for a group of that computer alone)"
                        .into(),
                },
            }
        }));
        Plan { mode: in_force.mode, items, skipped, organization: &set.organization.name, group, computer }
    }

    /// Whether the group's mode denies what no rule permits.
    pub(crate) fn enforcing(&self) -> bool {
        matches!(self.mode, Mode::Secured | Mode::Installation { .. })
    }

    /// The entry about the mode.
    pub(crate) fn mode_entry(&self, outcome: Outcome) -> Entry {
        Entry {
            source: Source {
                kind: SourceKind::Mode,
                name: self.mode.name().to_owned(),
                application: None,
                rule: None,
                what: "what no rule decides".into(),
                note: None,
            },
            outcome,
        }
    }

    /// A stable name for the export (organization and group), for IDs and file names.
    pub(crate) fn title(&self) -> String {
        match (self.computer, self.group) {
            (Some(c), _) => format!("{} / computer {c}", self.organization),
            (None, Some(g)) => format!("{} / {g}", self.organization),
            (None, None) => format!("{} (computers in no group)", self.organization),
        }
    }
}
