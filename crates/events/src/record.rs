//! One event, as the agent writes it and everyone else reads it.

use serde::{Deserialize, Serialize};

/// Declares a closed set of coded values, each with its wire name: serde reads and writes
/// the name, a name not in the set reads as `Unknown` (written by a newer agent), `ALL`
/// lists the known values and `name()` gives the wire name back.
macro_rules! coded {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant,)+
            /// A value this version does not know (written by a newer agent).
            #[serde(other, rename = "unknown")]
            Unknown,
        }

        impl $name {
            /// Every known value, in the order they are documented.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The name on the wire (JSON, the spool, the database, URLs).
            pub fn name(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                    $name::Unknown => "unknown",
                }
            }

            /// The value a wire name stands for, if it is a known one.
            pub fn from_name(text: &str) -> Option<$name> {
                $name::ALL.iter().copied().find(|v| v.name() == text)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

coded! {
    /// What happened.
    EventKind {
        /// Denied by a policy, a blocklist or the Secured mode.
        Deny = "deny",
        /// Allowed, but it would have been denied (Monitor mode, or a Monitor-status policy).
        WouldDeny = "would-deny",
        /// Allowed and recorded as a candidate for an allowlist (Learning or Installation).
        Candidate = "candidate",
        /// Answered with the overload verdict, not by the policy (no answer in time).
        Overload = "overload",
        /// A ringfence refused a file, a program start or a network destination.
        RingfenceDeny = "ringfence-deny",
        /// A report-only ringfence would have refused it.
        RingfenceWouldDeny = "ringfence-would-deny",
    }
}

impl EventKind {
    /// A label for people, as `portcullis events` prints it.
    pub fn label(self) -> &'static str {
        match self {
            EventKind::Deny => "DENY",
            EventKind::WouldDeny => "WOULD DENY",
            EventKind::Candidate => "CANDIDATE",
            EventKind::Overload => "OVERLOAD",
            EventKind::RingfenceDeny => "FENCE DENY",
            EventKind::RingfenceWouldDeny => "FENCE WOULD",
            EventKind::Unknown => "UNKNOWN",
        }
    }

    /// Whether something was refused (the kernel answered deny).
    pub fn denied(self) -> bool {
        matches!(self, EventKind::Deny | EventKind::RingfenceDeny)
    }
}

coded! {
    /// The answer the kernel got.
    Verdict {
        /// The exec, open, connect or send went ahead.
        Allow = "allow",
        /// It failed with `EPERM`.
        Deny = "deny",
    }
}

coded! {
    /// What the process did.
    Access {
        /// `execve` of the file, its ELF interpreter or its `#!` interpreter.
        Exec = "exec",
        /// A shared object opened by ld.so or `dlopen` (or any open of one), or a program
        /// opened by a loader run directly (`ld.so ./program`).
        Load = "load",
        /// A script opened by an interpreter to run it (`bash x.sh`, `python3 x.py`).
        Script = "script",
        /// Any other open: data (judged only by ringfence file rules).
        Read = "read",
        /// An open answered before it was classified (the overload verdict).
        Open = "open",
        /// A ringfenced process's `connect`.
        Connect = "connect",
        /// A ringfenced process's datagram (`sendto`/`sendmsg`).
        Send = "send",
    }
}

impl Access {
    /// Whether the policy judges this access as running code (exec, load, script).
    pub fn is_code(self) -> bool {
        matches!(self, Access::Exec | Access::Load | Access::Script)
    }
}

/// One event, as one JSON line.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Record {
    /// When it happened, RFC 3339 UTC.
    pub time: String,
    /// What happened.
    pub event: EventKind,
    /// What the process did.
    pub access: Access,
    /// The answer the kernel got.
    pub verdict: Verdict,
    /// The computer's mode (`secured`, `monitor`, `learning`, `installation`).
    pub mode: String,
    /// The policy that decided, if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// The decision's one-line reason.
    pub reason: String,
    /// The file (for network events: the destination as its path).
    pub file: FileRecord,
    /// The process that executed, loaded, opened or sent.
    pub process: ProcessRecord,
    /// For ringfence events: the profile and the rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ringfence: Option<RingfenceRecord>,
    /// Recorded during an offline bypass: the counter of the code that opened it (the mode
    /// is Monitor because of it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bypass: Option<u64>,
}

/// Which ringfence refused something, and by which rule.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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

/// The file of an event, with what it says it is when it says anything.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FileRecord {
    /// Path as the kernel resolved it.
    pub path: String,
    /// Flat SHA-256, hex (empty when it was not hashed).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sha256: String,
    /// Size in bytes.
    #[serde(default)]
    pub size: u64,
    /// `executable`, `library`, `script`, `installer`, `other` (empty when not known).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// Device number, to tell hard links apart from copies.
    #[serde(default)]
    pub dev: u64,
    /// Inode number.
    #[serde(default)]
    pub ino: u64,
    /// VERSIONINFO `OriginalFilename` (PE files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_filename: Option<String>,
    /// Product name (PE VERSIONINFO, MSI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_name: Option<String>,
    /// Company name (PE VERSIONINFO, MSI manufacturer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub company_name: Option<String>,
    /// The primary signer, for signed formats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signer: Option<SignerRecord>,
    /// A macOS program's signing ID (`TEAMID:com.vendor.app`), as Santa reports it from a
    /// signature macOS verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_id: Option<String>,
    /// The installed packages the file verifiably belongs to (`dpkg:bash`): listed by them,
    /// with their recorded digest.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub packages: Vec<String>,
}

/// A file's signer as the agent found it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SignerRecord {
    /// Subject of the signing certificate.
    pub subject: String,
    /// Its issuer.
    pub issuer: String,
    /// SHA-256 of the signing certificate, hex.
    pub cert_sha256: String,
    /// The signature verifies (the file is as signed).
    pub verified: bool,
}

/// The process of an event and its ancestors.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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

/// One process of an event's ancestry.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProcessInfo {
    /// Process id.
    pub pid: i32,
    /// Its executable, if it still has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exe: Option<String>,
    /// Real user id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    /// Parent process id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ppid: Option<i32>,
}

impl Record {
    /// Whether `want` names this event's file: its path, or the start of its SHA-256 (8 hex
    /// digits at least), as `portcullis request FILE` takes it.
    pub fn names(&self, want: &str) -> bool {
        self.file.path == want || (want.len() >= 8 && self.file.sha256.starts_with(&want.to_ascii_lowercase()))
    }

    /// A line for the log and the console: what, which file, who, why.
    pub fn summary(&self) -> String {
        format!("{} {} {} by {}: {}", self.event, self.access, self.file.path, self.process.who(), self.reason)
    }
}

impl ProcessRecord {
    /// `exe (pid N, user U)`, with what is known.
    pub fn who(&self) -> String {
        match (&self.exe, &self.user) {
            (Some(exe), Some(user)) => format!("{exe} (pid {}, user {user})", self.pid),
            (Some(exe), None) => format!("{exe} (pid {})", self.pid),
            _ => format!("pid {}", self.pid),
        }
    }
}

/// How often a policy matched on an agent since its last report (sent with event batches).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PolicyHit {
    /// The policy's name.
    pub policy: String,
    /// Matches since the last report.
    pub count: u64,
    /// The last match, Unix milliseconds.
    pub last_ms: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coded_values_round_trip_and_unknown_ones_read_as_unknown() {
        for k in EventKind::ALL {
            let text = serde_json::to_string(k).unwrap();
            assert_eq!(text, format!("\"{}\"", k.name()));
            assert_eq!(serde_json::from_str::<EventKind>(&text).unwrap(), *k);
            assert_eq!(EventKind::from_name(k.name()), Some(*k));
        }
        assert_eq!(serde_json::from_str::<EventKind>("\"quarantine\"").unwrap(), EventKind::Unknown);
        assert_eq!(serde_json::from_str::<Access>("\"mmap\"").unwrap(), Access::Unknown);
        assert_eq!(EventKind::from_name("unknown"), None);
        assert_eq!(Verdict::ALL, &[Verdict::Allow, Verdict::Deny]);
        assert!(Access::Script.is_code() && !Access::Read.is_code() && !Access::Open.is_code());
    }

    #[test]
    fn a_line_written_before_the_identity_fields_still_reads() {
        let line = r#"{"time":"2026-11-23T10:00:00.123Z","event":"ringfence-deny","access":"connect","verdict":"deny",
            "mode":"secured","policy":"P","reason":"r","file":{"path":"tcp://127.0.0.2:9","size":0,"dev":0,"ino":0},
            "process":{"pid":1,"exe":"/usr/bin/bash","uid":0,"user":"root","ancestors":[{"pid":0}]},
            "ringfence":{"profile":"3CX","rule":"network.allow","enforced":true,"destination":"tcp://127.0.0.2:9"}}"#;
        let r: Record = serde_json::from_str(line).unwrap();
        assert_eq!((r.event, r.access), (EventKind::RingfenceDeny, Access::Connect));
        assert!(r.event.denied());
        assert_eq!(r.file.signer, None);
        let again: Record = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(again, r);
        assert!(
            r.summary().starts_with("ringfence-deny connect tcp://127.0.0.2:9 by /usr/bin/bash (pid 1, user root)")
        );
    }
}
