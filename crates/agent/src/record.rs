//! What the agent writes to its spool and log for every deny, would-deny and candidate.

use crate::process::ProcessInfo;
use serde::{Deserialize, Serialize};

/// One event, as one JSON line.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Record {
    /// When it happened, RFC 3339 UTC.
    pub time: String,
    /// `deny`, `would-deny` (Monitor mode or a Monitor-status policy), `candidate`
    /// (Learning mode), `overload` (answered with the overload verdict, not by the policy),
    /// `ringfence-deny` or `ringfence-would-deny` (a ringfence refused a file, a program start
    /// or a network destination; report-only ringfences would have).
    pub event: String,
    /// `exec`, `load`, `script`, `read` (ringfence file rules), `connect` or `send` (ringfence
    /// network rules).
    pub access: String,
    /// The verdict the kernel got: `allow` or `deny`.
    pub verdict: String,
    /// The computer's mode.
    pub mode: String,
    /// The policy that decided, if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// The decision's one-line reason.
    pub reason: String,
    /// The file.
    pub file: FileRecord,
    /// The process that executed or loaded it.
    pub process: ProcessRecord,
    /// For `ringfence-deny` and `ringfence-would-deny`: the profile and the rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ringfence: Option<RingfenceRecord>,
}

/// Which ringfence refused something, and by which rule.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RingfenceRecord {
    /// The profile.
    pub profile: String,
    /// The rule (`files.protected "/home/**" → none`, `children.others = deny`,
    /// `network.allow`).
    pub rule: String,
    /// Denied (true) or only reported.
    pub enforced: bool,
    /// For network events: `tcp://198.51.100.7:443`, `udp://[2001:db8::1]:53`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
}

/// The file of an event.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct FileRecord {
    /// Path as the kernel resolved it.
    pub path: String,
    /// Flat SHA-256, hex.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// `executable`, `library`, `script`, `other`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// Device and inode, to tell hard links apart from copies.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
}

/// The process of an event and its ancestors.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ProcessRecord {
    /// Process id.
    pub pid: i32,
    /// Its executable when it made the call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exe: Option<String>,
    /// Real uid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    /// User name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Parent, grandparent, … up to init.
    #[serde(default)]
    pub ancestors: Vec<ProcessInfo>,
}

impl Record {
    /// A line for the log and the console: what, which file, who, why.
    pub fn summary(&self) -> String {
        let who = match (&self.process.exe, &self.process.user) {
            (Some(exe), Some(user)) => format!("{exe} (pid {}, user {user})", self.process.pid),
            (Some(exe), None) => format!("{exe} (pid {})", self.process.pid),
            _ => format!("pid {}", self.process.pid),
        };
        format!("{} {} {} by {who}: {}", self.event, self.access, self.file.path, self.reason)
    }
}
