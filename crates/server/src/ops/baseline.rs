//! Learning → baseline: the candidates that Learning mode recorded on a computer or group,
//! proposed as applications the way an administrator thinks of them — by package, by
//! signer, by install directory, by hash for loose files — and, once the administrator picked
//! and named them, accepted as those applications and one permit policy at that scope, in one
//! audited change.
//!
//! [`propose`] is pure (candidates in, proposal out); the rest reads events and writes the
//! model through the one change path.

use super::{AppError, AppState, Caller, change, change_model, check_name};
use portcullis_events::Record;
use portcullis_policy_file::document::{ApplicationDoc, Document, PolicyDoc, RuleDoc, SignerDoc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Places any user can write to: a program found there is flagged, never proposed silently.
pub(crate) const USER_WRITABLE: [&str; 6] = ["/tmp/", "/var/tmp/", "/dev/shm/", "/home/", "/run/user/", "/run/shm/"];

/// Candidate events read for one proposal, at most.
pub(crate) const MAX_CANDIDATE_EVENTS: usize = 20_000;
/// Files in one hash-based application, at most (a larger group is split).
pub(crate) const MAX_FILES_PER_APP: usize = 5_000;

/// One file that ran in Learning mode, from its candidate events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Candidate {
    pub(crate) path: String,
    pub(crate) sha256: String,
    pub(crate) packages: Vec<String>,
    /// A verified signer: its subject and certificate SHA-256.
    pub(crate) signer: Option<(String, String)>,
    pub(crate) computer: String,
}

/// How a proposed application recognizes its files.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Basis {
    /// An installed package, verified file by file by its recorded digests.
    Package,
    /// A verified code signer.
    Signer,
    /// The files seen in one install directory (`/opt/vendor`), by hash.
    Directory,
    /// Loose files, by hash.
    Hash,
}

/// One proposed application.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Proposed {
    /// Stable within a proposal: what the acceptance names.
    pub(crate) key: String,
    /// The name proposed for it.
    pub(crate) name: String,
    pub(crate) basis: Basis,
    /// What the package, signer or directory is.
    pub(crate) subject: String,
    /// Files seen, by path.
    pub(crate) files: Vec<String>,
    /// On which computers.
    pub(crate) computers: BTreeSet<String>,
    /// Why it should not be accepted without a look (`None`: nothing odd).
    pub(crate) flag: Option<String>,
    /// The rule it becomes.
    #[schema(value_type = Object)]
    pub(crate) rule: RuleDoc,
}

fn user_writable(path: &str) -> Option<&'static str> {
    USER_WRITABLE.iter().find(|p| path.starts_with(**p)).copied()
}

/// `/opt/vendor` for `/opt/vendor/bin/x`, `/usr/local/name` for `/usr/local/name/…`, `/srv/x`.
fn install_dir(path: &str) -> Option<String> {
    for base in ["/opt/", "/usr/local/", "/srv/"] {
        if let Some(rest) = path.strip_prefix(base) {
            let first = rest.split('/').next().filter(|f| !f.is_empty() && rest.len() > f.len())?;
            // /usr/local/bin and /usr/local/lib hold loose files, not one vendor's tree.
            if base == "/usr/local/" && matches!(first, "bin" | "sbin" | "lib" | "lib64" | "libexec" | "share") {
                return None;
            }
            return Some(format!("{base}{first}"));
        }
    }
    None
}

/// The proposal for `candidates`: one application per package, signer and install directory,
/// loose files by hash; a file in a user-writable place alone, flagged. `label` names the
/// scope in the applications' names. Deterministic: the same candidates give the same keys.
pub(crate) fn propose(candidates: &[Candidate], label: &str) -> Vec<Proposed> {
    #[derive(Default)]
    struct Group {
        files: BTreeMap<String, String>,
        computers: BTreeSet<String>,
        signer: Option<(String, String)>,
    }
    let mut groups: BTreeMap<(u8, String), Group> = BTreeMap::new();
    for c in candidates {
        if c.sha256.len() != 64 {
            continue; // not hashed (unreadable): nothing to permit it by
        }
        let key = if let Some(place) = user_writable(&c.path) {
            (4, format!("{place}\u{0}{}", c.sha256))
        } else if let Some(p) = c.packages.first() {
            (0, p.clone())
        } else if let Some((_, cert)) = &c.signer {
            (1, cert.clone())
        } else if let Some(dir) = install_dir(&c.path) {
            (2, dir)
        } else {
            (3, String::new())
        };
        let g = groups.entry(key).or_default();
        g.files.insert(c.path.clone(), c.sha256.clone());
        g.computers.insert(c.computer.clone());
        if g.signer.is_none() {
            g.signer = c.signer.clone();
        }
    }
    let mut out = Vec::new();
    for ((rank, subject), g) in groups {
        let hashes: BTreeSet<String> = g.files.values().cloned().collect();
        let hashes: Vec<String> = hashes.into_iter().collect();
        let files: Vec<String> = g.files.keys().cloned().collect();
        match rank {
            0 => out.push(Proposed {
                key: format!("package:{subject}"),
                name: format!("{subject} (baseline {label})"),
                basis: Basis::Package,
                rule: RuleDoc { package: Some(subject.clone()), ..Default::default() },
                subject,
                files,
                computers: g.computers,
                flag: None,
            }),
            1 => {
                let (name, cert) = g.signer.unwrap_or_default();
                out.push(Proposed {
                    key: format!("signer:{cert}"),
                    name: format!("Signed by {} (baseline {label})", short(&name, 80)),
                    basis: Basis::Signer,
                    rule: RuleDoc {
                        signer: Some(SignerDoc {
                            subject: Some(name.clone()),
                            cert_sha256: Some(cert),
                            verified: true,
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                    subject: name,
                    files,
                    computers: g.computers,
                    flag: None,
                });
            }
            2 | 3 => {
                for (i, chunk) in hashes.chunks(MAX_FILES_PER_APP).enumerate() {
                    let part = if i == 0 { String::new() } else { format!(" part {}", i + 1) };
                    let (key, name) = if rank == 2 {
                        (format!("dir:{subject}{part}"), format!("{subject}{part} (baseline {label})"))
                    } else {
                        (format!("loose{part}"), format!("Loose files{part} (baseline {label})"))
                    };
                    let in_chunk: Vec<String> =
                        g.files.iter().filter(|(_, h)| chunk.contains(h)).map(|(p, _)| p.clone()).collect();
                    out.push(Proposed {
                        key,
                        name,
                        basis: if rank == 2 { Basis::Directory } else { Basis::Hash },
                        rule: RuleDoc { sha256: Some(chunk.to_vec()), ..Default::default() },
                        subject: subject.clone(),
                        files: in_chunk,
                        computers: g.computers.clone(),
                        flag: None,
                    });
                }
            }
            _ => {
                let (place, sha) = subject.split_once('\u{0}').unwrap_or_default();
                let path = files.first().cloned().unwrap_or_default();
                out.push(Proposed {
                    key: format!("writable:{sha}"),
                    name: format!(
                        "{} {} (baseline {label})",
                        path.rsplit('/').next().unwrap_or_default(),
                        &sha[..12.min(sha.len())]
                    ),
                    basis: Basis::Hash,
                    rule: RuleDoc { sha256: Some(vec![sha.to_owned()]), ..Default::default() },
                    subject: sha.to_owned(),
                    flag: Some(format!(
                        "ran from {place}, which any user can write to: permit it only if you know what it is"
                    )),
                    files,
                    computers: g.computers,
                });
            }
        }
    }
    out
}

fn short(text: &str, max: usize) -> String {
    portcullis_protocol::bounded_text(text, max)
}

/// Which computers a scope covers: `organization`, `group:PATH` (with its subgroups) or
/// `computer:NAME`; the label used in names.
async fn scope_computers(state: &AppState, caller: &Caller, scope: &str) -> Result<(Vec<String>, String), AppError> {
    let computers = state.store.computers(caller.user.org_id).await?;
    let names = |keep: &dyn Fn(&portcullis_store::ComputerRow) -> bool| {
        computers.iter().filter(|c| keep(c)).map(|c| c.doc.name.clone()).collect::<Vec<_>>()
    };
    match scope.split_once(':') {
        None if scope == "organization" => Ok((names(&|_| true), "organization".into())),
        Some(("group", path)) => {
            let groups = state.store.groups(caller.user.org_id).await?;
            let group = groups
                .iter()
                .find(|g| g.doc.path.eq_ignore_ascii_case(path))
                .ok_or_else(|| AppError::BadRequest(format!("group {path:?} does not exist")))?;
            let p = group.doc.path.to_ascii_lowercase();
            let inside = |c: &portcullis_store::ComputerRow| {
                c.doc.group.as_deref().is_some_and(|g| {
                    let g = g.to_ascii_lowercase();
                    g == p || g.starts_with(&format!("{p}/"))
                })
            };
            Ok((names(&inside), group.doc.path.clone()))
        }
        Some(("computer", name)) => {
            let c = computers
                .iter()
                .find(|c| c.doc.name.eq_ignore_ascii_case(name))
                .ok_or_else(|| AppError::BadRequest(format!("computer {name:?} does not exist")))?;
            Ok((vec![c.doc.name.clone()], c.doc.name.clone()))
        }
        _ => Err(AppError::BadRequest(format!(
            "scope {:?} is not organization, group:PATH or computer:NAME",
            short(scope, 80)
        ))),
    }
}

/// A scope's proposal.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Proposal {
    /// The scope: `organization`, `group:PATH` or `computer:NAME`.
    pub(crate) scope: String,
    /// Candidate events read.
    pub(crate) events: usize,
    /// The proposed applications (flagged ones are not accepted unless named).
    pub(crate) applications: Vec<Proposed>,
}

/// The proposal for `scope` from the candidate events of the last `days` days.
pub(crate) async fn proposal(state: &AppState, caller: &Caller, scope: &str, days: i64) -> Result<Proposal, AppError> {
    if !(1..=366).contains(&days) {
        return Err(AppError::BadRequest("days must be 1 to 366".into()));
    }
    let (computers, label) = scope_computers(state, caller, scope).await?;
    let wanted: BTreeSet<String> = computers.iter().map(|c| c.to_ascii_lowercase()).collect();
    let mut candidates = Vec::new();
    let mut events = 0;
    let mut before_id = None;
    let from_ms = portcullis_store::now_ms() - days * 86_400_000;
    while events < MAX_CANDIDATE_EVENTS {
        let filter = portcullis_store::EventFilter {
            verdict: Some("candidate".into()),
            computer: (computers.len() == 1).then(|| computers[0].clone()),
            from_ms: Some(from_ms),
            before_id,
            limit: 1000,
            ..Default::default()
        };
        let rows = state.store.events(caller.user.org_id, &filter).await?;
        let Some(last) = rows.last() else { break };
        before_id = Some(last.id);
        for row in rows {
            events += 1;
            if !wanted.contains(&row.computer.to_ascii_lowercase()) {
                continue;
            }
            // The stored record holds what the agent knew: packages and signer.
            let record = serde_json::from_str::<Record>(&row.fields.record_json).ok();
            let (packages, signer) = record
                .map(|r| {
                    let signer = r.file.signer.filter(|s| s.verified).map(|s| (s.subject, s.cert_sha256));
                    (r.file.packages, signer)
                })
                .unwrap_or_default();
            candidates.push(Candidate {
                path: row.fields.file_path.clone(),
                sha256: row.fields.file_sha256.to_ascii_lowercase(),
                packages: packages.into_iter().filter(|p| portcullis_protocol::valid_package_name(p)).collect(),
                signer,
                computer: row.computer,
            });
        }
    }
    Ok(Proposal { scope: scope.to_owned(), events, applications: propose(&candidates, &label) })
}

/// An accepted baseline: which proposed applications, under which names.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Acceptance {
    /// The scope of the proposal, and of the policy made.
    pub(crate) scope: String,
    /// The proposal's days (the same as when it was shown).
    #[serde(default = "default_days")]
    pub(crate) days: i64,
    /// The applications taken: each proposed application's key, and optionally a new name.
    pub(crate) take: Vec<Taken>,
    /// The policy's name (default `Baseline LABEL`).
    #[serde(default)]
    pub(crate) policy: Option<String>,
}

/// One application taken from a proposal.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Taken {
    /// Its key in the proposal.
    pub(crate) key: String,
    /// Its name (default: the proposed one).
    #[serde(default)]
    pub(crate) name: Option<String>,
}

pub(crate) fn default_days() -> i64 {
    30
}

/// What accepting made.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Accepted {
    /// The policy's id.
    pub(crate) id: i64,
    /// Its name.
    pub(crate) policy: String,
    /// The applications made.
    pub(crate) applications: Vec<String>,
}

/// Accept a baseline: the proposal is made again here from the stored events (what the form
/// sends is only keys and names), and the applications taken become one permit policy at the
/// scope, in one audited change.
pub(crate) async fn accept(state: &AppState, caller: &Caller, a: &Acceptance) -> Result<Accepted, AppError> {
    caller.require_change()?;
    if a.take.is_empty() {
        return Err(AppError::BadRequest("take at least one proposed application".into()));
    }
    let proposal = proposal(state, caller, &a.scope, a.days).await?;
    let (_, label) = scope_computers(state, caller, &a.scope).await?;
    let mut apps = Vec::new();
    for t in &a.take {
        let p = proposal.applications.iter().find(|p| p.key == t.key).ok_or_else(|| {
            AppError::BadRequest(format!(
                "{:?} is not in the proposal for {} any more: reload it",
                short(&t.key, 80),
                a.scope
            ))
        })?;
        let name = match &t.name {
            Some(n) if !n.trim().is_empty() => check_name(n, "application")?,
            _ => p.name.clone(),
        };
        apps.push(ApplicationDoc {
            name,
            description: Some(format!(
                "Learning baseline of {label}: {} file(s) seen on {} computer(s){}",
                p.files.len(),
                p.computers.len(),
                if p.basis == Basis::Directory { ", by hash (an update needs a new baseline)" } else { "" }
            )),
            rules: vec![p.rule.clone()],
            except: vec![],
        });
    }
    let name = match &a.policy {
        Some(n) if !n.trim().is_empty() => check_name(n, "policy")?,
        _ => format!("Baseline {label}"),
    };
    let policy = PolicyDoc {
        name: name.clone(),
        description: Some(format!("Accepted learning baseline of {label}")),
        applications: apps.iter().map(|a| a.name.clone()).collect(),
        action: "permit".into(),
        scope: Some(a.scope.clone()),
        ..Default::default()
    };
    let edit = |d: &mut Document| {
        d.applications.extend(apps.iter().cloned());
        d.policies.push(PolicyDoc { position: i64::from(u32::MAX), ..policy.clone() });
    };
    let id = change_model(state, caller, edit, async || {
        state.store.create_policy_with_applications(change(caller), "accept baseline", &apps, &policy).await
    })
    .await?;
    Ok(Accepted { id, policy: name, applications: apps.into_iter().map(|a| a.name).collect() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(path: &str, sha: char, packages: &[&str], signer: Option<&str>, computer: &str) -> Candidate {
        Candidate {
            path: path.into(),
            sha256: sha.to_string().repeat(64),
            packages: packages.iter().map(|p| p.to_string()).collect(),
            signer: signer.map(|s| (s.to_owned(), "c".repeat(64))),
            computer: computer.into(),
        }
    }

    #[test]
    fn candidates_are_grouped_by_package_signer_directory_and_hash_and_writable_places_are_flagged() {
        let cands = [
            c("/usr/bin/htop", 'a', &["dpkg:htop"], None, "web-01"),
            c("/usr/lib/x86_64-linux-gnu/libncursesw.so.6", 'b', &["dpkg:libncursesw6"], None, "web-01"),
            c("/usr/bin/htop", 'a', &["dpkg:htop"], None, "web-02"),
            c("/opt/vendor/bin/agent", 'd', &[], None, "web-01"),
            c("/opt/vendor/lib/libv.so", 'e', &[], None, "web-02"),
            c("/opt/signed/app", 'f', &[], Some("CN=Vendor"), "web-01"),
            c("/usr/local/bin/tool", '1', &[], None, "web-01"),
            c("/tmp/x/dropper", '2', &["dpkg:htop"], None, "web-01"),
            c("/home/ann/bin/script", '3', &[], None, "web-01"),
            c("/usr/bin/unhashed", 'z', &[], None, "web-01"),
        ];
        let mut cands = cands.to_vec();
        cands.last_mut().unwrap().sha256.clear();
        let p = propose(&cands, "Linux");
        let keys: Vec<&str> = p.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "package:dpkg:htop",
                "package:dpkg:libncursesw6",
                &format!("signer:{}", "c".repeat(64)),
                "dir:/opt/vendor",
                "loose",
                &format!("writable:{}", "3".repeat(64)),
                &format!("writable:{}", "2".repeat(64)),
            ]
        );
        assert_eq!(p[0].computers.len(), 2);
        assert_eq!(p[0].rule.package.as_deref(), Some("dpkg:htop"));
        assert_eq!(p[0].name, "dpkg:htop (baseline Linux)");
        assert_eq!(p[3].rule.sha256.as_ref().unwrap().len(), 2, "a directory is permitted by its files' hashes");
        assert_eq!(p[4].files, ["/usr/local/bin/tool"]);
        assert!(p[5].flag.as_ref().unwrap().contains("/home/"));
        assert!(p[6].flag.as_ref().unwrap().contains("/tmp/"), "even a packaged name in /tmp is flagged");
        assert!(p[..5].iter().all(|p| p.flag.is_none()));
        assert_eq!(propose(&cands, "Linux").iter().map(|p| &p.key).collect::<Vec<_>>(), keys, "deterministic");
    }

    #[test]
    fn install_directories_are_a_vendors_tree_not_a_shared_bin() {
        assert_eq!(install_dir("/opt/vendor/bin/x").as_deref(), Some("/opt/vendor"));
        assert_eq!(install_dir("/usr/local/acme/x").as_deref(), Some("/usr/local/acme"));
        assert_eq!(install_dir("/usr/local/bin/x"), None);
        assert_eq!(install_dir("/opt/x"), None, "a file directly in /opt is loose");
        assert_eq!(install_dir("/usr/bin/x"), None);
    }
}
