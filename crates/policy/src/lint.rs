//! Warnings about policy sets that load but do not do what their author meant: dead policies
//! below ones that match everything they match, permits above denies they overlap, unused or
//! expired pieces.

use crate::facts::Timestamp;
use crate::model::{Action, ItemRef, PolicySet, Status};
use crate::rule::Rule;
use std::fmt;

/// How serious a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Worth knowing.
    Info,
    /// Probably a mistake.
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
        })
    }
}

/// One finding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// How serious.
    pub severity: Severity,
    /// Short stable code, for filtering: `shadowed`, `permit-above-deny`, …
    pub code: &'static str,
    /// The item it is about.
    pub item: ItemRef,
    /// What is wrong and what to do.
    pub message: String,
}

/// Whether the applications named `outer` match every file that those named `inner` match:
/// each rule of each inner application is covered by some rule of some outer one.
fn apps_cover(set: &PolicySet, outer: &[String], inner: &[String]) -> bool {
    // An application with exclusions matches less than its rules say: it is not taken to
    // cover anything (no false "unreachable" for a deny of the files it excludes).
    let outer_rules: Vec<&Rule> = outer
        .iter()
        .filter_map(|n| set.application(n))
        .filter(|a| a.except.is_empty())
        .flat_map(|a| a.rules.iter())
        .collect();
    inner.iter().all(|name| {
        set.application(name).is_some_and(|b| b.rules.iter().all(|rb| outer_rules.iter().any(|ra| ra.covers(rb))))
    })
}

/// Hashes both rules list, except those `a`'s application excludes by hash.
fn rules_overlap_on_hashes(a: &Rule, b: &Rule, a_except: &[Rule]) -> usize {
    let excluded = |h, authenticode: bool| {
        a_except
            .iter()
            .any(|e| if authenticode { e.hashes.authenticode.contains(h) } else { e.hashes.flat.contains(h) })
    };
    a.hashes.flat.intersection(&b.hashes.flat).filter(|h| !excluded(*h, false)).count()
        + a.hashes.authenticode.intersection(&b.hashes.authenticode).filter(|h| !excluded(*h, true)).count()
}

/// Lint `set` as of `now` (for expiry). Findings come in policy order.
pub fn lint(set: &PolicySet, now: Timestamp) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut order: Vec<usize> = (0..set.policies.len()).collect();
    order.sort_by_key(|&i| set.policies[i].position);

    for (k, &i) in order.iter().enumerate() {
        let p = &set.policies[i];
        let item = ItemRef::Policy(i);
        if !p.enabled {
            out.push(Finding {
                severity: Severity::Info,
                code: "disabled",
                item,
                message: format!("policy {:?} is disabled and takes no part in decisions", p.name),
            });
            continue;
        }
        if p.expires.is_some_and(|e| e <= now) {
            out.push(Finding {
                severity: Severity::Warning,
                code: "expired",
                item,
                message: format!("policy {:?} has expired; remove it or move its expiry", p.name),
            });
            continue;
        }
        // A blocklist approved (enforced) over this policy's scope that covers all it matches.
        if p.action.permits() {
            for b in &set.blocklists {
                let approved =
                    b.approvals.iter().any(|a| a.status == Status::Enforce && set.scope_covers(&a.scope, &p.scope));
                let covered = approved
                    && p.applications.iter().all(|name| {
                        set.application(name)
                            .is_some_and(|app| app.rules.iter().all(|r| b.rules.iter().any(|br| br.covers(r))))
                    });
                if covered {
                    out.push(Finding {
                        severity: Severity::Warning,
                        code: "blocklisted",
                        item,
                        message: format!("permit policy {:?} can never allow anything: blocklist package {:?} denies every file it matches", p.name, b.name),
                    });
                }
            }
        }
        for &j in &order[..k] {
            let above = &set.policies[j];
            let always_on = above.enabled && above.expires.is_none() && above.status == Status::Enforce;
            if !always_on || !set.scope_covers(&above.scope, &p.scope) {
                continue;
            }
            if apps_cover(set, &above.applications, &p.applications) {
                let code = if above.action.permits() && !p.action.permits() { "permit-above-deny" } else { "shadowed" };
                let hint = if code == "permit-above-deny" {
                    "; a deny must be placed above the permit it overrides: give it a lower position"
                } else {
                    "; remove it or move it above"
                };
                out.push(Finding {
                    severity: Severity::Warning,
                    code,
                    item,
                    message: format!(
                        "policy {:?} (position {}, {}) is unreachable: policy {:?} (position {}, {}) above it matches every file it matches{hint}",
                        p.name, p.position, p.action.name(), above.name, above.position, above.action.name()
                    ),
                });
                break;
            }
            if above.action.permits() && !p.action.permits() {
                let shared: usize = above
                    .applications
                    .iter()
                    .filter_map(|n| set.application(n))
                    .flat_map(|a| a.rules.iter().map(move |r| (a, r)))
                    .flat_map(|(a, ra)| {
                        p.applications
                            .iter()
                            .filter_map(|n| set.application(n))
                            .flat_map(|b| b.rules.iter())
                            .map(move |rb| rules_overlap_on_hashes(ra, rb, &a.except))
                    })
                    .sum();
                if shared > 0 {
                    out.push(Finding {
                        severity: Severity::Warning,
                        code: "permit-above-deny",
                        item,
                        message: format!(
                            "deny policy {:?} (position {}) lists {shared} hash(es) that permit policy {:?} (position {}) above it also lists: those files are allowed; place the deny above the permit",
                            p.name, p.position, above.name, above.position
                        ),
                    });
                }
            }
        }
    }

    for (i, a) in set.applications.iter().enumerate() {
        let used = set.policies.iter().any(|p| p.applications.iter().any(|n| n.eq_ignore_ascii_case(&a.name)));
        if !used && !a.builtin {
            out.push(Finding {
                severity: Severity::Info,
                code: "unused-application",
                item: ItemRef::Application(i),
                message: format!("application {:?} is not used by any policy", a.name),
            });
        }
        for (r, rule) in a.rules.iter().enumerate() {
            if rule.is_unconditional() {
                out.push(Finding {
                    severity: Severity::Warning,
                    code: "matches-everything",
                    item: ItemRef::Application(i),
                    message: format!(
                        "rule {} of application {:?} has no criteria and matches every file",
                        r + 1,
                        a.name
                    ),
                });
            }
        }
    }
    for (i, b) in set.blocklists.iter().enumerate() {
        if b.approvals.is_empty() {
            out.push(Finding { severity: Severity::Warning, code: "unapproved-blocklist", item: ItemRef::Blocklist(i), message: format!("blocklist package {:?} is not approved anywhere, so it blocks nothing; add approved = [\"organization\"]", b.name) });
        }
        for (r, rule) in b.rules.iter().enumerate() {
            if rule.is_unconditional() {
                out.push(Finding {
                    severity: Severity::Warning,
                    code: "matches-everything",
                    item: ItemRef::Blocklist(i),
                    message: format!(
                        "rule {} of blocklist package {:?} has no criteria and would deny every file",
                        r + 1,
                        b.name
                    ),
                });
            }
        }
    }
    for (i, r) in set.ringfences.iter().enumerate() {
        let used = set
            .policies
            .iter()
            .any(|p| matches!(&p.action, Action::PermitWithRingfence(n) if n.eq_ignore_ascii_case(&r.name)));
        if !used {
            out.push(Finding {
                severity: Severity::Info,
                code: "unused-ringfence",
                item: ItemRef::Ringfence(i),
                message: format!("ringfence profile {:?} is not used by any policy", r.name),
            });
        }
    }
    out
}
