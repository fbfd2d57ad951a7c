//! The policy model: applications, blocklist packages, policies, scopes and modes, and the
//! checks that make a set of them consistent.

use crate::facts::{Os, Timestamp};
use crate::rule::Rule;
use std::collections::HashMap;
use std::fmt;

/// A named set of rules; it matches a file when any of its rules matches.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Application {
    /// Unique name, as policies refer to it.
    pub name: String,
    /// What the application is, for people.
    pub description: Option<String>,
    /// Shipped with the product (read-only, updated with it).
    pub builtin: bool,
    /// The rules; any one matching is enough.
    pub rules: Vec<Rule>,
    /// Exclusions: a file matching any of these is not the application's, whatever its rules
    /// say (a vendor's signed builds except the ones reported as compromised).
    pub except: Vec<Rule>,
}

/// Whether a policy or an approval acts or only reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Status {
    /// Acts: permits or denies.
    #[default]
    Enforce,
    /// Only reports what it would have done; evaluation goes on below it.
    Monitor,
}

impl Status {
    /// The name used in policy files.
    pub fn name(self) -> &'static str {
        match self {
            Status::Enforce => "enforce",
            Status::Monitor => "monitor",
        }
    }
}

/// A named set of hashes and metadata rules that, once approved at a scope, denies everything
/// it matches there, above every ordered policy.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BlocklistPackage {
    /// Unique name.
    pub name: String,
    /// What the package is for.
    pub description: Option<String>,
    /// Rules; the imported hashes form one rule, metadata rules (per OS) are others.
    pub rules: Vec<Rule>,
    /// Where the package is approved; an unapproved package does nothing.
    pub approvals: Vec<Approval>,
}

/// A blocklist package switched on at a scope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Approval {
    /// Where it applies.
    pub scope: Scope,
    /// Enforce to deny, Monitor to report only.
    pub status: Status,
}

/// What a policy does to the files its applications match.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Allow.
    Permit,
    /// Allow, limited by the named ringfence profile.
    PermitWithRingfence(String),
    /// Deny.
    Deny,
    /// Deny, and let the blocked user ask for access.
    DenyWithRequest,
}

impl Action {
    /// Whether the action allows the file.
    pub fn permits(&self) -> bool {
        matches!(self, Action::Permit | Action::PermitWithRingfence(_))
    }

    /// The name used in policy files.
    pub fn name(&self) -> &'static str {
        match self {
            Action::Permit => "permit",
            Action::PermitWithRingfence(_) => "permit-ringfence",
            Action::Deny => "deny",
            Action::DenyWithRequest => "deny-request",
        }
    }
}

/// Where a policy or an approval applies.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Every computer of the organization.
    Organization,
    /// A computer group and all groups below it, by path (`Workstations/Finance`).
    Group(String),
    /// One computer, by name.
    Computer(String),
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Organization => f.write_str("organization"),
            Scope::Group(g) => write!(f, "group:{g}"),
            Scope::Computer(c) => write!(f, "computer:{c}"),
        }
    }
}

/// Why a scope's text was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown scope {0:?}; use \"organization\", \"group:<path>\" or \"computer:<name>\"")]
pub struct ScopeError(pub String);

impl std::str::FromStr for Scope {
    type Err = ScopeError;

    /// The one reading of a scope, for policy files, the server's API and the bundles:
    /// `organization` (also `organisation`, `org`, `*`, `/`), `group:<path>` (slashes at
    /// either end dropped) or `computer:<name>`, spaces around any part ignored.
    fn from_str(text: &str) -> Result<Scope, ScopeError> {
        let v = text.trim();
        if matches!(v.to_ascii_lowercase().as_str(), "organization" | "organisation" | "org" | "*" | "/") {
            return Ok(Scope::Organization);
        }
        let named = |rest: &str| Some(rest.trim()).filter(|r| !r.is_empty()).map(str::to_owned);
        if let Some(path) = v.strip_prefix("group:").and_then(|g| named(g.trim().trim_matches('/'))) {
            return Ok(Scope::Group(path));
        }
        if let Some(name) = v.strip_prefix("computer:").and_then(named) {
            return Ok(Scope::Computer(name));
        }
        Err(ScopeError(v.to_owned()))
    }
}

impl Scope {
    /// Whether the scope covers a computer named `computer` in `group` (each `None` when
    /// unknown or none): the one rule the engine and the exports apply.
    pub fn covers(&self, group: Option<&str>, computer: Option<&str>) -> bool {
        match self {
            Scope::Organization => true,
            Scope::Group(g) => group.is_some_and(|tg| PolicySet::group_chain(tg).any(|p| p.eq_ignore_ascii_case(g))),
            Scope::Computer(c) => computer.is_some_and(|tc| tc.eq_ignore_ascii_case(c)),
        }
    }

    /// The computer a `computer:` scope names, if it is one.
    pub fn computer(&self) -> Option<&str> {
        match self {
            Scope::Computer(c) => Some(c),
            _ => None,
        }
    }
}

/// How a computer treats a file that no policy matched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Deny what no policy permits.
    Secured,
    /// Allow, and record that it would have been denied.
    Monitor,
    /// Allow and record the file as a candidate for an allowlist, until the given time; Monitor
    /// after (never Secured by itself: a host goes to Secured when an administrator accepts
    /// a baseline and says so, not because a date passed).
    Learning {
        /// When learning ends.
        until: Timestamp,
    },
    /// Secured, except for what a named installer's process tree ([`INSTALLERS`], run as
    /// root) writes: the agent captures it into the named application, where it stays
    /// permitted after the window. Secured after the given time.
    Installation {
        /// When installation mode ends.
        until: Timestamp,
        /// The application that captured files are added to.
        capture_into: String,
    },
}

impl Mode {
    /// The name used in policy files.
    pub fn name(&self) -> &'static str {
        match self {
            Mode::Secured => "secured",
            Mode::Monitor => "monitor",
            Mode::Learning { .. } => "learning",
            Mode::Installation { .. } => "installation",
        }
    }

    /// The mode in force at `now`: learning ends in Monitor at its deadline (what was learnt
    /// has not been accepted as a baseline yet, and Secured without one would deny the host's
    /// own programs); installation ends in Secured, the mode it opened a window in.
    pub fn at(&self, now: Timestamp) -> Mode {
        match self {
            Mode::Learning { until } if now >= *until => Mode::Monitor,
            Mode::Installation { until, .. } if now >= *until => Mode::Secured,
            other => other.clone(),
        }
    }

    /// When a Learning period that is over at `now` ended (the reason a computer is in
    /// Monitor mode says so).
    pub fn learning_ended(&self, now: Timestamp) -> Option<Timestamp> {
        match self {
            Mode::Learning { until } if now >= *until => Some(*until),
            _ => None,
        }
    }
}

/// The installers whose process trees an Installation window captures from, by the file
/// name of the program (or of the script an interpreter runs): package managers, pip, and a
/// vendor's installer script. Only a process running as root counts, and it must itself be
/// allowed to run: naming permits nothing.
pub const INSTALLERS: &[&str] = &[
    "apt",
    "apt-get",
    "aptitude",
    "dpkg",
    "rpm",
    "dnf",
    "yum",
    "zypper",
    "microdnf",
    "pip",
    "pip3",
    "pipx",
    "install.sh",
    "installer.sh",
    "setup.sh",
];

/// Whether a program or script file name is one of the [`INSTALLERS`] (versioned pip
/// included: `pip3.11`).
pub fn is_installer_name(name: &str) -> bool {
    let base = name.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.');
    INSTALLERS.contains(&name) || (base == "pip" && name.len() > 3)
}

/// An ordered policy: the first one that matches a file decides.
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    /// Unique name.
    pub name: String,
    /// What it is for.
    pub description: Option<String>,
    /// Place in the order; lower comes first. Unique within a policy set.
    pub position: u32,
    /// Names of the applications it covers.
    pub applications: Vec<String>,
    /// What it does.
    pub action: Action,
    /// Where it applies.
    pub scope: Scope,
    /// Enforce or Monitor.
    pub status: Status,
    /// Switched on.
    pub enabled: bool,
    /// After this moment the policy no longer applies.
    pub expires: Option<Timestamp>,
}

impl Policy {
    /// Whether the policy takes part in decisions at `now`.
    pub fn is_active(&self, now: Timestamp) -> bool {
        self.enabled && self.expires.is_none_or(|e| now < e)
    }
}

/// A computer group, by path: `Workstations/Finance` lies below `Workstations`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    /// Slash-separated path from the top of the tree.
    pub path: String,
    /// Mode of the group's computers; inherited from the parent when absent.
    pub mode: Option<Mode>,
}

impl Group {
    /// The path of the parent group, if any.
    pub fn parent(&self) -> Option<&str> {
        self.path.rsplit_once('/').map(|(parent, _)| parent)
    }
}

/// A computer known to the policy set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Computer {
    /// Host name.
    pub name: String,
    /// Group path, if the computer belongs to one.
    pub group: Option<String>,
    /// Mode override for this computer.
    pub mode: Option<Mode>,
    /// Its operating system, used by `os` criteria for files whose format does not say.
    pub os: Option<Os>,
}

pub use crate::ringfence::RingfenceProfile;

/// The organization at the top of the scope tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Organization {
    /// Its name.
    pub name: String,
    /// Default mode for computers whose groups set none.
    pub mode: Mode,
    /// Scripts handed to an interpreter (`bash x.sh`, `python3 x.py`) are judged as code and
    /// must be permitted like programs. Off by default: every script a host's interpreters
    /// read (their own libraries included) then needs a permit.
    pub script_control: bool,
}

impl Default for Organization {
    fn default() -> Self {
        Organization { name: "default".into(), mode: Mode::Secured, script_control: false }
    }
}

/// Everything one organization's computers are governed by.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PolicySet {
    /// The organization and its default mode.
    pub organization: Organization,
    /// Computer groups.
    pub groups: Vec<Group>,
    /// Computers.
    pub computers: Vec<Computer>,
    /// Applications, built-in and custom.
    pub applications: Vec<Application>,
    /// Blocklist packages.
    pub blocklists: Vec<BlocklistPackage>,
    /// Ordered policies (any order here; position decides).
    pub policies: Vec<Policy>,
    /// Ringfence profiles.
    pub ringfences: Vec<RingfenceProfile>,
}

/// What governs a group's computers ([`PolicySet::in_force`]).
#[derive(Clone, Debug)]
pub struct InForce<'a> {
    /// The mode, its deadlines applied.
    pub mode: Mode,
    /// Blocklists approved there, with the status that counts (Enforce over Monitor).
    pub blocklists: Vec<(&'a BlocklistPackage, Status)>,
    /// Active policies that apply there, in the engine's order, with their applications.
    pub policies: Vec<(&'a Policy, Vec<&'a Application>)>,
    /// Active policies scoped to single computers, when asked for a group: they apply to no
    /// group as a whole.
    pub computer_scoped: Vec<&'a Policy>,
    /// Blocklists approved for single computers, when asked for a group (likewise).
    pub computer_scoped_blocklists: Vec<&'a BlocklistPackage>,
}

/// Which item of a policy set something is about, by kind and index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ItemRef {
    /// The organization.
    Organization,
    /// `groups[i]`.
    Group(usize),
    /// `computers[i]`.
    Computer(usize),
    /// `applications[i]`.
    Application(usize),
    /// `blocklists[i]`.
    Blocklist(usize),
    /// `policies[i]`.
    Policy(usize),
    /// `ringfences[i]`.
    Ringfence(usize),
}

/// An inconsistency in a policy set: it names the item and the field so that the file
/// loader can point at the line and column.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ModelError {
    /// The item at fault.
    pub item: ItemRef,
    /// The field at fault (`name`, `applications`, `scope`, …).
    pub field: &'static str,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl PolicySet {
    /// Check references and uniqueness. Returns every problem found, not just the first.
    pub fn validate(&self) -> Vec<ModelError> {
        let mut errors = Vec::new();
        let mut err = |item, field, message: String| errors.push(ModelError { item, field, message });

        let mut unique = |names: &mut HashMap<String, usize>, kind: &str, name: &str, item: ItemRef, i: usize| {
            if let Some(first) = names.insert(name.to_lowercase(), i) {
                err(
                    item,
                    "name",
                    format!("{kind} {name:?} is defined twice (first at entry {}); names must be unique", first + 1),
                );
                names.insert(name.to_lowercase(), first);
            }
        };
        let mut apps = HashMap::new();
        for (i, a) in self.applications.iter().enumerate() {
            unique(&mut apps, "application", &a.name, ItemRef::Application(i), i);
        }
        let mut packages = HashMap::new();
        for (i, b) in self.blocklists.iter().enumerate() {
            unique(&mut packages, "blocklist package", &b.name, ItemRef::Blocklist(i), i);
        }
        let mut policies = HashMap::new();
        for (i, p) in self.policies.iter().enumerate() {
            unique(&mut policies, "policy", &p.name, ItemRef::Policy(i), i);
        }
        let mut fences = HashMap::new();
        for (i, r) in self.ringfences.iter().enumerate() {
            unique(&mut fences, "ringfence profile", &r.name, ItemRef::Ringfence(i), i);
        }
        let mut groups = HashMap::new();
        for (i, g) in self.groups.iter().enumerate() {
            unique(&mut groups, "group", &g.path, ItemRef::Group(i), i);
        }
        let mut computers = HashMap::new();
        for (i, c) in self.computers.iter().enumerate() {
            unique(&mut computers, "computer", &c.name, ItemRef::Computer(i), i);
        }

        let group_exists = |path: &str| self.groups.iter().any(|g| g.path.eq_ignore_ascii_case(path));
        for (i, g) in self.groups.iter().enumerate() {
            if g.path.is_empty() || g.path.split('/').any(str::is_empty) {
                err(
                    ItemRef::Group(i),
                    "path",
                    format!("group path {:?} has an empty part; write e.g. \"Workstations/Finance\"", g.path),
                );
            }
        }
        for (i, c) in self.computers.iter().enumerate() {
            if let Some(g) = &c.group
                && !group_exists(g)
            {
                err(
                    ItemRef::Computer(i),
                    "group",
                    format!("computer {:?} is in group {g:?}, which is not defined; add it under [[groups]]", c.name),
                );
            }
        }
        // What is wrong with a scope, if anything.
        let scope_problem = |scope: &Scope| -> Option<String> {
            match scope {
                Scope::Organization => None,
                Scope::Group(g) if group_exists(g) => None,
                Scope::Group(g) => {
                    Some(format!("group {g:?} is not defined; add it under [[groups]] or fix the scope"))
                }
                Scope::Computer(c) if self.computers.iter().any(|x| x.name.eq_ignore_ascii_case(c)) => None,
                Scope::Computer(c) => {
                    Some(format!("computer {c:?} is not defined; add it under [[computers]] or fix the scope"))
                }
            }
        };
        for (i, b) in self.blocklists.iter().enumerate() {
            if b.rules.is_empty() {
                err(
                    ItemRef::Blocklist(i),
                    "rules",
                    format!("blocklist package {:?} has no hashes and no rules; it would block nothing", b.name),
                );
            }
            for a in &b.approvals {
                if let Some(m) = scope_problem(&a.scope) {
                    err(ItemRef::Blocklist(i), "approved", m);
                }
            }
        }
        for (i, a) in self.applications.iter().enumerate() {
            if a.rules.is_empty() {
                err(
                    ItemRef::Application(i),
                    "rules",
                    format!("application {:?} has no rules; it would match nothing", a.name),
                );
            }
        }
        let mut positions: HashMap<u32, usize> = HashMap::new();
        for (i, p) in self.policies.iter().enumerate() {
            let item = ItemRef::Policy(i);
            if p.applications.is_empty() {
                err(item, "applications", format!("policy {:?} names no application", p.name));
            }
            for name in &p.applications {
                if !self.applications.iter().any(|a| a.name.eq_ignore_ascii_case(name)) {
                    err(
                        item,
                        "applications",
                        format!(
                            "policy {:?} names application {name:?}, which is not defined (built-in names end in \"(Built-In)\"; run `portcullis policy apps` to list them)",
                            p.name
                        ),
                    );
                }
            }
            if let Action::PermitWithRingfence(profile) = &p.action
                && !self.ringfences.iter().any(|r| r.name.eq_ignore_ascii_case(profile))
            {
                err(
                    item,
                    "ringfence",
                    format!(
                        "policy {:?} uses ringfence profile {profile:?}, which is not defined under [[ringfences]]",
                        p.name
                    ),
                );
            }
            if let Some(m) = scope_problem(&p.scope) {
                err(item, "scope", m);
            }
            if let Some(&other) = positions.get(&p.position) {
                err(
                    item,
                    "position",
                    format!(
                        "policies {:?} and {:?} both have position {}; positions decide the order and must differ",
                        self.policies[other].name, p.name, p.position
                    ),
                );
            } else {
                positions.insert(p.position, i);
            }
        }
        for (i, r) in self.ringfences.iter().enumerate() {
            for name in &r.children.applications {
                if !self.applications.iter().any(|a| a.name.eq_ignore_ascii_case(name)) {
                    err(
                        ItemRef::Ringfence(i),
                        "children",
                        format!(
                            "ringfence profile {:?} lets its tree start application {name:?}, which is not defined",
                            r.name
                        ),
                    );
                }
            }
        }
        errors
    }

    /// Policies in the order the engine tries them (by position; the set's order among
    /// equal positions, which validation refuses anyway).
    pub fn policy_order(&self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.policies.len()).collect();
        order.sort_by_key(|&i| self.policies[i].position);
        order
    }

    /// What governs the computers of `group` (or, with `None`, computers in no group) that
    /// set nothing of their own, at `now` — or, with `computer`, that one computer (its own
    /// mode, and the policies scoped to it): for a policy handed to another engine.
    pub fn in_force(&self, group: Option<&str>, computer: Option<&str>, now: Timestamp) -> InForce<'_> {
        let known = computer.and_then(|c| self.computers.iter().find(|x| x.name.eq_ignore_ascii_case(c)));
        let mode = match known {
            Some(c) => self.mode_of(c),
            None => self.group_mode(group),
        };
        let mut out = InForce {
            mode: mode.at(now),
            blocklists: Vec::new(),
            policies: Vec::new(),
            computer_scoped: Vec::new(),
            computer_scoped_blocklists: Vec::new(),
        };
        for b in &self.blocklists {
            if computer.is_none() && b.approvals.iter().any(|a| a.scope.computer().is_some()) {
                out.computer_scoped_blocklists.push(b);
            }
            let statuses = b.approvals.iter().filter(|a| a.scope.covers(group, computer)).map(|a| a.status);
            if let Some(status) = statuses.min_by_key(|s| *s != Status::Enforce) {
                out.blocklists.push((b, status));
            }
        }
        for i in self.policy_order() {
            let p = &self.policies[i];
            if !p.is_active(now) {
                continue;
            }
            if p.scope.computer().is_some() && computer.is_none() {
                out.computer_scoped.push(p);
                continue;
            }
            if !p.scope.covers(group, computer) {
                continue;
            }
            let apps = p.applications.iter().filter_map(|name| self.application(name)).collect();
            out.policies.push((p, apps));
        }
        out
    }

    /// The application with this name (case-insensitive).
    pub fn application(&self, name: &str) -> Option<&Application> {
        self.applications.iter().find(|a| a.name.eq_ignore_ascii_case(name))
    }

    /// Group paths from `path` up to the top: `A/B/C`, `A/B`, `A`.
    pub fn group_chain(path: &str) -> impl Iterator<Item = &str> {
        std::iter::successors(Some(path), |p| p.rsplit_once('/').map(|(parent, _)| parent))
    }

    /// The mode the computers of `group` follow unless they set their own: that of the
    /// nearest group up the tree (the group itself first) that sets one, else the
    /// organization's. The one rule for the engine and the console.
    pub fn group_mode(&self, group: Option<&str>) -> &Mode {
        Self::inherited(group, |path| {
            self.groups.iter().find(|x| x.path.eq_ignore_ascii_case(path)).and_then(|x| x.mode.as_ref())
        })
        .unwrap_or(&self.organization.mode)
    }

    /// Inheritance down the group tree: the value `own` gives for `group` or, failing that,
    /// for the nearest ancestor that has one. The rule behind [`PolicySet::group_mode`], for
    /// callers that hold groups in another shape (the console's rows, by mode name).
    pub fn inherited<T>(group: Option<&str>, own: impl FnMut(&str) -> Option<T>) -> Option<T> {
        group.and_then(|g| Self::group_chain(g).find_map(own))
    }

    /// The mode `computer` is in: its own, else its group's ([`PolicySet::group_mode`]).
    pub fn mode_of<'a>(&'a self, computer: &'a Computer) -> &'a Mode {
        computer.mode.as_ref().unwrap_or_else(|| self.group_mode(computer.group.as_deref()))
    }

    /// Whether `outer` contains every computer of `inner`, as far as the set's tree tells.
    pub fn scope_covers(&self, outer: &Scope, inner: &Scope) -> bool {
        match (outer, inner) {
            (Scope::Organization, _) => true,
            (Scope::Group(g), Scope::Group(h)) => Self::group_chain(h).any(|p| p.eq_ignore_ascii_case(g)),
            (Scope::Group(g), Scope::Computer(c)) => self
                .computers
                .iter()
                .find(|x| x.name.eq_ignore_ascii_case(c))
                .and_then(|x| x.group.as_deref())
                .is_some_and(|cg| Self::group_chain(cg).any(|p| p.eq_ignore_ascii_case(g))),
            (Scope::Computer(a), Scope::Computer(b)) => a.eq_ignore_ascii_case(b),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_reading_of_scopes_for_files_the_api_and_bundles() {
        for (text, scope) in [
            ("organization", Scope::Organization),
            (" Organisation ", Scope::Organization),
            ("*", Scope::Organization),
            ("group:/Workstations/Finance/", Scope::Group("Workstations/Finance".into())),
            ("group: Linux ", Scope::Group("Linux".into())),
            ("computer: web-01", Scope::Computer("web-01".into())),
        ] {
            assert_eq!(text.parse::<Scope>(), Ok(scope.clone()), "{text:?}");
            // What is stored reads back the same.
            assert_eq!(scope.to_string().parse::<Scope>(), Ok(scope));
        }
        for bad in ["", "groups:x", "group:", "group:/", "computer: ", "everyone"] {
            assert!(bad.parse::<Scope>().is_err(), "{bad:?}");
        }
        assert_eq!("computer:db".parse::<Scope>().unwrap().computer(), Some("db"));
        assert_eq!(Scope::Organization.computer(), None);
    }

    #[test]
    fn a_computer_takes_its_own_mode_else_the_nearest_group_up_the_tree_else_the_organizations() {
        let group = |path: &str, mode: Option<Mode>| Group { path: path.into(), mode };
        let computer = |name: &str, group: Option<&str>, mode: Option<Mode>| Computer {
            name: name.into(),
            group: group.map(str::to_owned),
            mode,
            os: None,
        };
        let set = PolicySet {
            groups: vec![group("Linux", Some(Mode::Monitor)), group("Linux/Web", None), group("Windows", None)],
            computers: vec![
                computer("web-01", Some("linux/web"), None),
                computer("web-02", Some("Linux/Web"), Some(Mode::Secured)),
                computer("win-01", Some("Windows"), None),
                computer("loose", None, None),
            ],
            ..PolicySet::default()
        };
        let modes: Vec<&str> = set.computers.iter().map(|c| set.mode_of(c).name()).collect();
        assert_eq!(modes, ["monitor", "secured", "secured", "secured"]);
        assert_eq!(set.group_mode(Some("Linux/Web")).name(), "monitor");
        assert_eq!(set.group_mode(None), &set.organization.mode);
    }
}
