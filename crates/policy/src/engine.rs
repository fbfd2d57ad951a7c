//! The compiled, ready-to-decide form of a policy set.

use crate::decision::{Basis, Decision, MonitorHit, RuleMatch, Verdict};
use crate::facts::{FileFacts, Os, ProcessFacts, Timestamp};
use crate::hash_index::HashIndex;
use crate::model::{Action, ItemRef, Mode, ModelError, PolicySet, Scope, Status};
use crate::rule::{HashHit, Rule};
use portcullis_hashlist::Hash;

/// A policy set compiled for fast decisions: hashes live in sorted indexes, policies are in
/// evaluation order. Build it once per policy version and share it between threads.
#[derive(Debug)]
pub struct Engine {
    set: PolicySet,
    /// Every rule of every application and blocklist package, with its hash lists moved out
    /// into the indexes below.
    rules: Vec<CompiledRule>,
    app_rules: Vec<std::ops::Range<u32>>,
    /// Each application's exclusions ([`Application::except`]), in the same rule table.
    app_except: Vec<std::ops::Range<u32>>,
    package_rules: Vec<std::ops::Range<u32>>,
    /// `policies` indexes into `set.policies`, sorted by position, each with its application ids.
    order: Vec<(usize, Vec<usize>)>,
    sha256: HashIndex<32>,
    sha1: HashIndex<20>,
    md5: HashIndex<16>,
    authenticode_sha256: HashIndex<32>,
    authenticode_sha1: HashIndex<20>,
    needs_flat_sha1: bool,
    needs_md5: bool,
}

/// What one decision is about: the file, who asks, the platform, and which rules list one
/// of the file's hashes.
struct Subject<'a> {
    file: &'a FileFacts,
    process: &'a ProcessFacts,
    os: Os,
    hits: Vec<(u32, HashHit)>,
}

#[derive(Debug)]
struct CompiledRule {
    rule: Rule,
    has_hashes: bool,
}

/// Where a decision is made: a computer of the set, or the organization at large.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    computer: Option<String>,
    group: Option<String>,
    mode: Mode,
    os: Os,
}

impl Target {
    /// The mode configured for the target (before deadlines are applied).
    pub fn mode(&self) -> &Mode {
        &self.mode
    }

    /// The same target in another mode (what Secured would do here, asked ahead of time).
    pub fn with_mode(&self, mode: Mode) -> Target {
        Target { mode, ..self.clone() }
    }
}

/// A computer name that the policy set does not know.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "computer {0:?} is not in the policy set; add it under [[computers]] or leave the computer out to use the organization's defaults"
)]
pub struct UnknownComputer(pub String);

impl Engine {
    /// Compile a policy set. Fails with every inconsistency found by [`PolicySet::validate`].
    pub fn new(mut set: PolicySet) -> Result<Engine, Vec<ModelError>> {
        let errors = set.validate();
        if !errors.is_empty() {
            return Err(errors);
        }
        let mut rules = Vec::new();
        let mut sha256 = Vec::new();
        let mut sha1 = Vec::new();
        let mut md5 = Vec::new();
        let mut auth256 = Vec::new();
        let mut auth1 = Vec::new();
        // SHA-1 and MD5 cost a file's hashing three times SHA-256 alone: callers compute them
        // only when a rule that can decide something lists them. The built-in catalog's
        // applications (the 3CX indicators come with SHA-1 and MD5) are in every set, but
        // count only once a policy, a blocklist or a ringfence names them.
        let used: Vec<bool> = set
            .applications
            .iter()
            .map(|a| {
                set.policies.iter().any(|p| p.applications.iter().any(|n| n.eq_ignore_ascii_case(&a.name)))
                    || set
                        .ringfences
                        .iter()
                        .any(|r| r.children.applications.iter().any(|n| n.eq_ignore_ascii_case(&a.name)))
            })
            .collect();
        let (mut needs_flat_sha1, mut needs_md5) = (false, false);
        let mut take = |list: &mut Vec<Rule>, rules: &mut Vec<CompiledRule>, used: bool| {
            let start = rules.len() as u32;
            for rule in list.iter_mut() {
                let id = rules.len() as u32;
                let hashes = std::mem::take(&mut rule.hashes);
                let has_hashes = !hashes.is_empty();
                for h in hashes.flat {
                    match h {
                        Hash::Sha256(b) => sha256.push((b, id)),
                        Hash::Sha1(b) => {
                            needs_flat_sha1 |= used;
                            sha1.push((b, id))
                        }
                        Hash::Md5(b) => {
                            needs_md5 |= used;
                            md5.push((b, id))
                        }
                    }
                }
                for h in hashes.authenticode {
                    match h {
                        Hash::Sha256(b) => auth256.push((b, id)),
                        Hash::Sha1(b) => auth1.push((b, id)),
                        // Authenticode has no MD5 form; validation in the loader rejects it.
                        Hash::Md5(_) => {}
                    }
                }
                rules.push(CompiledRule { rule: rule.clone(), has_hashes });
            }
            start..rules.len() as u32
        };
        let app_rules =
            set.applications.iter_mut().zip(&used).map(|(a, used)| take(&mut a.rules, &mut rules, *used)).collect();
        let app_except =
            set.applications.iter_mut().zip(&used).map(|(a, used)| take(&mut a.except, &mut rules, *used)).collect();
        let package_rules = set.blocklists.iter_mut().map(|b| take(&mut b.rules, &mut rules, true)).collect();
        let order: Vec<(usize, Vec<usize>)> = set
            .policy_order()
            .into_iter()
            .map(|i| {
                let apps = set.policies[i]
                    .applications
                    .iter()
                    .filter_map(|name| set.applications.iter().position(|a| a.name.eq_ignore_ascii_case(name)))
                    .collect();
                (i, apps)
            })
            .collect();
        Ok(Engine {
            set,
            rules,
            app_rules,
            app_except,
            package_rules,
            order,
            sha256: HashIndex::build(sha256),
            sha1: HashIndex::build(sha1),
            md5: HashIndex::build(md5),
            authenticode_sha256: HashIndex::build(auth256),
            authenticode_sha1: HashIndex::build(auth1),
            needs_flat_sha1,
            needs_md5,
        })
    }

    /// The policy set, with rule hash lists moved into the indexes (their rules are otherwise intact).
    pub fn policy_set(&self) -> &PolicySet {
        &self.set
    }

    /// Whether some rule lists flat SHA-1 hashes, so callers should compute files' SHA-1.
    pub fn needs_flat_sha1(&self) -> bool {
        self.needs_flat_sha1
    }

    /// Whether some rule lists MD5 hashes, so callers should compute files' MD5.
    pub fn needs_md5(&self) -> bool {
        self.needs_md5
    }

    /// Number of hashes held in the indexes.
    pub fn hash_count(&self) -> usize {
        self.sha256.len()
            + self.sha1.len()
            + self.md5.len()
            + self.authenticode_sha256.len()
            + self.authenticode_sha1.len()
    }

    /// The target for `computer`, or the organization's defaults when `None`.
    pub fn target(&self, computer: Option<&str>, host_os: Os) -> Result<Target, UnknownComputer> {
        let Some(name) = computer else {
            return Ok(Target { computer: None, group: None, mode: self.set.organization.mode.clone(), os: host_os });
        };
        let c = self
            .set
            .computers
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case(name))
            .ok_or_else(|| UnknownComputer(name.to_string()))?;
        let mode = self.set.mode_of(c).clone();
        Ok(Target { computer: Some(c.name.clone()), group: c.group.clone(), mode, os: c.os.unwrap_or(host_os) })
    }

    /// The target for a computer of `group` (`None`: in no group) that has no mode or policy
    /// of its own: what an export for the group is judged against.
    pub fn group_target(&self, group: Option<&str>, os: Os) -> Target {
        let group = group.map(|g| g.trim().trim_matches('/').to_owned()).filter(|g| !g.is_empty());
        let mode = self.set.group_mode(group.as_deref()).clone();
        Target { computer: None, group, mode, os }
    }

    fn applies(&self, scope: &Scope, target: &Target) -> bool {
        scope.covers(target.group.as_deref(), target.computer.as_deref())
    }

    fn hash_hits(&self, file: &FileFacts) -> Vec<(u32, HashHit)> {
        fn add<const N: usize>(
            hits: &mut Vec<(u32, HashHit)>,
            index: &HashIndex<N>,
            key: &[u8; N],
            field: &'static str,
            hash: Hash,
        ) {
            hits.extend(index.get(key).iter().map(|o| (o, HashHit { field, hash })));
        }
        let mut hits = Vec::new();
        add(&mut hits, &self.sha256, &file.sha256, "sha256", Hash::Sha256(file.sha256));
        if let Some(h) = &file.sha1 {
            add(&mut hits, &self.sha1, h, "sha1", Hash::Sha1(*h));
        }
        if let Some(h) = &file.md5 {
            add(&mut hits, &self.md5, h, "md5", Hash::Md5(*h));
        }
        if let Some(h) = &file.authenticode_sha256 {
            add(&mut hits, &self.authenticode_sha256, h, "authenticode_sha256", Hash::Sha256(*h));
        }
        if let Some(h) = &file.authenticode_sha1 {
            add(&mut hits, &self.authenticode_sha1, h, "authenticode_sha1", Hash::Sha1(*h));
        }
        hits
    }

    /// Find the first rule in `range` that matches `subject`; records in `depends` whether a
    /// checked rule looked at the process.
    fn first_match(
        &self,
        range: std::ops::Range<u32>,
        owner: &str,
        subject: &Subject<'_>,
        depends: &mut bool,
    ) -> Option<RuleMatch> {
        let start = range.start;
        for id in range {
            let compiled = &self.rules[id as usize];
            let hash_hit = subject.hits.iter().find(|(o, _)| *o == id).map(|(_, h)| *h);
            if compiled.has_hashes && hash_hit.is_none() {
                continue;
            }
            *depends |= compiled.rule.depends_on_process();
            if let Some(fields) = compiled.rule.matches(subject.file, subject.process, subject.os, hash_hit) {
                return Some(RuleMatch {
                    application: owner.to_string(),
                    rule: (id - start + 1) as usize,
                    note: compiled.rule.note.clone(),
                    fields,
                });
            }
        }
        None
    }

    /// The rule of application `a` that matches, unless one of its exclusions matches too.
    fn app_match(&self, a: usize, subject: &Subject<'_>, depends: &mut bool) -> Option<RuleMatch> {
        let name = &self.set.applications[a].name;
        let matched = self.first_match(self.app_rules[a].clone(), name, subject, depends)?;
        let except = self.app_except[a].clone();
        (except.is_empty() || self.first_match(except, name, subject, depends).is_none()).then_some(matched)
    }

    /// Decide whether `file` may run or load on `target` at `now`.
    pub fn decide(&self, file: &FileFacts, process: &ProcessFacts, target: &Target, now: Timestamp) -> Decision {
        let subject = Subject { file, process, os: target.os, hits: self.hash_hits(file) };
        let mut monitor_hits = Vec::new();
        let mut depends = false;
        let mode = target.mode.at(now);
        let decision = |verdict, basis, monitor_hits, depends_on_process| Decision {
            verdict,
            basis,
            computer: target.computer.clone(),
            mode: mode.clone(),
            monitor_hits,
            depends_on_process,
        };

        for (i, package) in self.set.blocklists.iter().enumerate() {
            let Some(status) = package
                .approvals
                .iter()
                .filter(|a| self.applies(&a.scope, target))
                .map(|a| a.status)
                .min_by_key(|s| *s != Status::Enforce)
            else {
                continue;
            };
            let range = self.package_rules[i].clone();
            if let Some(matched) = self.first_match(range, &package.name, &subject, &mut depends) {
                if status == Status::Enforce {
                    let basis = Basis::Blocklist { package: package.name.clone(), matched };
                    return decision(Verdict::Deny, basis, monitor_hits, depends);
                }
                monitor_hits.push(MonitorHit {
                    source: format!("blocklist {:?}", package.name),
                    would: Verdict::Deny,
                    matched,
                    ringfence: None,
                    policy: None,
                });
            }
        }

        for (policy_index, apps) in &self.order {
            let policy = &self.set.policies[*policy_index];
            if !policy.is_active(now) || !self.applies(&policy.scope, target) {
                continue;
            }
            let matched = apps.iter().find_map(|&a| self.app_match(a, &subject, &mut depends));
            let Some(matched) = matched else { continue };
            let verdict = if policy.action.permits() { Verdict::Allow } else { Verdict::Deny };
            if policy.status == Status::Monitor {
                let ringfence = match &policy.action {
                    Action::PermitWithRingfence(profile) => Some(profile.clone()),
                    _ => None,
                };
                monitor_hits.push(MonitorHit {
                    source: format!("policy {:?}", policy.name),
                    would: verdict,
                    matched,
                    ringfence,
                    policy: Some(policy.name.clone()),
                });
                continue;
            }
            let basis = Basis::Policy {
                policy: policy.name.clone(),
                position: policy.position,
                action: policy.action.clone(),
                matched,
            };
            return decision(verdict, basis, monitor_hits, depends);
        }

        // Secured and Installation deny what no policy permits, except what an Installation
        // window captured on this computer (the agent's record of it).
        let enforcing = matches!(mode, Mode::Secured | Mode::Installation { .. });
        let captured = file.captured.clone().filter(|_| enforcing);
        let verdict = if enforcing && captured.is_none() { Verdict::Deny } else { Verdict::Allow };
        decision(
            verdict,
            Basis::Mode { mode: mode.clone(), learning_ended: target.mode.learning_ended(now), captured },
            monitor_hits,
            depends,
        )
    }

    /// The ringfence profile named `name`.
    pub fn ringfence(&self, name: &str) -> Option<&crate::RingfenceProfile> {
        self.set.ringfences.iter().find(|r| r.name.eq_ignore_ascii_case(name))
    }

    /// The profiles that some enforced or monitor-status policy ringfences with, each once.
    pub fn ringfences_in_force(&self) -> Vec<&crate::RingfenceProfile> {
        let mut out: Vec<&crate::RingfenceProfile> = Vec::new();
        for p in &self.set.policies {
            if let Action::PermitWithRingfence(name) = &p.action
                && let Some(profile) = self.ringfence(name)
                && !out.iter().any(|f| f.name == profile.name)
            {
                out.push(profile);
            }
        }
        out
    }

    /// Whether some policy ringfences something: only then does an agent need to watch
    /// process trees.
    pub fn uses_ringfences(&self) -> bool {
        !self.ringfences_in_force().is_empty()
    }

    /// The first of `applications` (by name) that matches `file`, for a ringfence's list of
    /// programs its tree may start.
    pub fn matching_application<'a>(
        &self,
        applications: &'a [String],
        file: &FileFacts,
        process: &ProcessFacts,
        target: &Target,
    ) -> Option<&'a str> {
        let subject = Subject { file, process, os: target.os, hits: self.hash_hits(file) };
        let mut depends = false;
        applications.iter().map(String::as_str).find(|name| {
            self.set
                .applications
                .iter()
                .position(|a| a.name.eq_ignore_ascii_case(name))
                .is_some_and(|a| self.app_match(a, &subject, &mut depends).is_some())
        })
    }

    /// Which item a rule id belongs to, for diagnostics.
    pub fn rule_owner(&self, rule_id: u32) -> Option<ItemRef> {
        if let Some(i) = self.app_rules.iter().position(|r| r.contains(&rule_id)) {
            return Some(ItemRef::Application(i));
        }
        if let Some(i) = self.app_except.iter().position(|r| r.contains(&rule_id)) {
            return Some(ItemRef::Application(i));
        }
        self.package_rules.iter().position(|r| r.contains(&rule_id)).map(ItemRef::Blocklist)
    }
}
