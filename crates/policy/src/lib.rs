//! The Portcullis policy engine: facts in, decision and reason out.
//!
//! A [`PolicySet`] holds applications (named sets of [`Rule`]s), blocklist packages, ordered
//! policies, the computer-group tree and the modes. [`Engine::new`] validates and compiles it;
//! [`Engine::decide`] takes a file's [`FileFacts`], the [`ProcessFacts`] of whoever asks, the
//! [`Target`] computer and the current time, and returns a [`Decision`] whose
//! [`explain`](Decision::explain) is one line a person can read.
//!
//! Decision order (the vocabulary is in ARCHITECTURE.md): approved blocklist packages first (an enforced match
//! denies in every mode); then policies by ascending position, the first enforced match
//! decides; with no match, the computer's mode decides (Secured denies, Monitor allows and
//! reports "would deny", Learning and Installation allow and record). Monitor-status policies
//! report what they would have done and evaluation continues below them.
//!
//! **Invariant:** nothing in this crate does I/O or reads a clock; the same inputs always give
//! the same decision.
//!
//! ```
//! use portcullis_policy::*;
//! use portcullis_hashlist::Hash;
//!
//! let bad = [7u8; 32];
//! let mut rule = Rule::default();
//! rule.hashes.flat.insert(Hash::Sha256(bad));
//! let set = PolicySet {
//!     applications: vec![Application { name: "Bad".into(), rules: vec![rule], ..Default::default() }],
//!     policies: vec![Policy {
//!         name: "Block bad".into(), description: None, position: 100,
//!         applications: vec!["Bad".into()], action: Action::Deny, scope: Scope::Organization,
//!         status: Status::Enforce, enabled: true, expires: None,
//!     }],
//!     organization: Organization { name: "Acme".into(), mode: Mode::Monitor, script_control: false },
//!     ..Default::default()
//! };
//! let engine = Engine::new(set).unwrap();
//! let target = engine.target(None, Os::Linux).unwrap();
//! let file = FileFacts { path: "/tmp/x".into(), sha256: bad, ..Default::default() };
//! let d = engine.decide(&file, &ProcessFacts::default(), &target, Timestamp(0));
//! assert_eq!(d.verdict, Verdict::Deny); // an enforced deny denies even in Monitor mode
//! assert!(d.explain().contains("Block bad"));
//! ```

mod decision;
mod engine;
mod facts;
mod hash_index;
mod lint;
mod model;
mod pattern;
mod ringfence;
mod rule;
mod version;

pub use decision::{Basis, Decision, Fenced, MonitorHit, RuleMatch, Verdict};
pub use engine::{Engine, Target, UnknownComputer};
pub use facts::{FileFacts, FileKind, Os, ProcessFacts, SignerFacts, Timestamp};
pub use hash_index::{HashIndex, Owners};
pub use lint::{Finding, Severity, lint};
pub use model::{
    Action, Application, Approval, BlocklistPackage, Computer, Group, INSTALLERS, InForce, ItemRef, Mode, ModelError,
    Organization, Policy, PolicySet, RingfenceProfile, Scope, ScopeError, Status, is_installer_name,
};
pub use pattern::{PathPattern, PatternError, TextPattern};
pub use ringfence::{
    ChildDefault, ChildFence, DEFAULT_PROTECTED, DomainRule, FenceDenial, FileAccess, FileBasis, FileFence, FileRule,
    IpNet, NetFence, NetRule, PortRange, is_shell_or_interpreter,
};
pub use rule::{HashSet, MatchedField, Rule, SignerCriterion};
pub use version::{Bound, Version, VersionError, VersionRange};

/// An error with its causes on one line (`what: cause: cause`): the form a reason takes in
/// an event, a report to the server or a log line. Here, at the bottom of the crate graph,
/// so that every edge — the agent, sync, the server, the CLI — writes errors out the same way.
pub fn with_causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}
