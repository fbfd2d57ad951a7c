//! Ringfence profiles: what a permitted application's process tree may read and write, reach
//! on the network and start. Pure: the agent gathers the facts (path, wanted access, the file
//! being started) and enforces the outcome.

use crate::pattern::PathPattern;
use std::fmt;
use std::net::IpAddr;

/// How much of a file a ringfenced process may open.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FileAccess {
    /// Not at all.
    #[default]
    None,
    /// For reading.
    Read,
    /// For reading and writing.
    ReadWrite,
}

impl FileAccess {
    /// `none`, `read` or `read-write`, as policy files write it.
    pub fn name(self) -> &'static str {
        match self {
            FileAccess::None => "none",
            FileAccess::Read => "read",
            FileAccess::ReadWrite => "read-write",
        }
    }

    /// Parse a policy file's word (`none`, `read`, `read-write`/`write`).
    pub fn parse(word: &str) -> Option<FileAccess> {
        match word.to_ascii_lowercase().as_str() {
            "none" | "deny" => Some(FileAccess::None),
            "read" | "read-only" => Some(FileAccess::Read),
            "read-write" | "write" | "readwrite" => Some(FileAccess::ReadWrite),
            _ => None,
        }
    }
}

/// One file rule: paths matching the glob get the access.
#[derive(Clone, Debug, PartialEq)]
pub struct FileRule {
    /// `*` within a component, `**` across them.
    pub path: PathPattern,
    /// What the rule grants.
    pub access: FileAccess,
}

/// The file part of a profile: rules first (first match wins), then protected paths get
/// `protected_access`; every other path is open (read-write).
#[derive(Clone, Debug, PartialEq)]
pub struct FileFence {
    /// Ordered rules.
    pub rules: Vec<FileRule>,
    /// Paths that rules must open explicitly.
    pub protected: Vec<PathPattern>,
    /// Access to a protected path no rule matched.
    pub protected_access: FileAccess,
}

/// Paths protected when a profile names none: secrets and other programs' data that a
/// hijacked application would go after first.
pub const DEFAULT_PROTECTED: &[&str] = &[
    "/root/**",
    "/home/*/.ssh/**",
    "/home/*/.gnupg/**",
    "/home/*/.aws/**",
    "/home/*/.kube/**",
    "/home/*/.docker/**",
    "/home/*/.password-store/**",
    "/home/*/.mozilla/**",
    "/home/*/.config/google-chrome/**",
    "/home/*/.config/chromium/**",
    "/home/*/.config/BraveSoftware/**",
    "/home/*/.local/share/keyrings/**",
    "/etc/shadow",
    "/etc/gshadow",
    "/etc/sudoers",
    "/etc/sudoers.d/**",
    "/etc/ssh/*_key",
    "/etc/portcullis/**",
];

impl Default for FileFence {
    fn default() -> Self {
        FileFence {
            rules: Vec::new(),
            protected: DEFAULT_PROTECTED.iter().map(|p| PathPattern::new(p).expect("built-in globs compile")).collect(),
            protected_access: FileAccess::None,
        }
    }
}

/// Which rule decided a file's access, for events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileBasis {
    /// `files.rules[index]` (0-based).
    Rule {
        /// Its index.
        index: usize,
        /// Its glob.
        path: String,
    },
    /// A protected path that no rule opened.
    Protected {
        /// The protected glob that matched.
        path: String,
    },
    /// Neither: open.
    Open,
}

impl FileFence {
    /// The access a ringfenced process has to `path`, and why.
    pub fn access(&self, path: &str) -> (FileAccess, FileBasis) {
        if let Some((index, rule)) = self.rules.iter().enumerate().find(|(_, r)| r.path.matches(path)) {
            return (rule.access, FileBasis::Rule { index, path: rule.path.as_str().to_string() });
        }
        if let Some(p) = self.protected.iter().find(|p| p.matches(path)) {
            return (self.protected_access, FileBasis::Protected { path: p.as_str().to_string() });
        }
        (FileAccess::ReadWrite, FileBasis::Open)
    }

    /// Whether any ringfenced process could get less than read-write on `path`: such files
    /// must keep asking (the kernel's per-file caches cannot tell processes apart).
    pub fn restricts(&self, path: &str) -> bool {
        self.access(path).0 != FileAccess::ReadWrite
    }
}

/// An inclusive port range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PortRange {
    /// First port.
    pub first: u16,
    /// Last port.
    pub last: u16,
}

impl PortRange {
    /// Parse `443` or `5060-5090`.
    pub fn parse(text: &str) -> Option<PortRange> {
        let (a, b) = text.trim().split_once('-').unwrap_or((text.trim(), text.trim()));
        let (first, last) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
        (first <= last).then_some(PortRange { first, last })
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last { write!(f, "{}", self.first) } else { write!(f, "{}-{}", self.first, self.last) }
    }
}

/// An address prefix: `10.0.0.0/8`, `192.0.2.7` (one host), `2001:db8::/32`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IpNet {
    /// The address.
    pub addr: IpAddr,
    /// The prefix length.
    pub prefix: u8,
}

impl IpNet {
    /// Parse a CIDR or a single address.
    pub fn parse(text: &str) -> Option<IpNet> {
        let (addr, prefix) = match text.trim().split_once('/') {
            Some((a, p)) => (a.parse::<IpAddr>().ok()?, Some(p.parse::<u8>().ok()?)),
            None => (text.trim().parse::<IpAddr>().ok()?, None),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(IpNet { addr, prefix })
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Allowed addresses and ports; empty ports allow every port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetRule {
    /// The prefix.
    pub net: IpNet,
    /// Allowed ports.
    pub ports: Vec<PortRange>,
}

/// A domain whose addresses the agent resolves and keeps current within their TTL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainRule {
    /// The name (`3cx.com`).
    pub name: String,
    /// Allowed ports.
    pub ports: Vec<PortRange>,
}

/// The network part of a profile: TCP connects and UDP datagrams only to these.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetFence {
    /// Address rules.
    pub allow: Vec<NetRule>,
    /// Domain rules.
    pub domains: Vec<DomainRule>,
    /// Also allow the host's DNS servers on port 53, so the application can resolve names.
    pub dns: bool,
}

impl Default for NetFence {
    fn default() -> Self {
        NetFence { allow: Vec::new(), domains: Vec::new(), dns: true }
    }
}

/// What a ringfenced process may start besides the applications listed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ChildDefault {
    /// Nothing else.
    Deny,
    /// Anything that is not a shell or a script interpreter.
    #[default]
    NoShells,
    /// Anything (the policy still judges every program as usual).
    Allow,
}

impl ChildDefault {
    /// `deny`, `no-shells` or `allow`.
    pub fn name(self) -> &'static str {
        match self {
            ChildDefault::Deny => "deny",
            ChildDefault::NoShells => "no-shells",
            ChildDefault::Allow => "allow",
        }
    }

    /// Parse a policy file's word.
    pub fn parse(word: &str) -> Option<ChildDefault> {
        match word.to_ascii_lowercase().as_str() {
            "deny" | "none" => Some(ChildDefault::Deny),
            "no-shells" | "no-interpreters" => Some(ChildDefault::NoShells),
            "allow" | "any" => Some(ChildDefault::Allow),
            _ => None,
        }
    }
}

/// The child-process part of a profile.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChildFence {
    /// Applications (by name) the ringfenced tree may start.
    pub applications: Vec<String>,
    /// Everything else.
    pub others: ChildDefault,
}

const SHELLS_AND_INTERPRETERS: &[&str] = &[
    "sh",
    "bash",
    "dash",
    "zsh",
    "ksh",
    "mksh",
    "csh",
    "tcsh",
    "fish",
    "busybox",
    "python",
    "pypy",
    "perl",
    "ruby",
    "node",
    "nodejs",
    "php",
    "lua",
    "luajit",
    "tclsh",
    "wish",
    "awk",
    "gawk",
    "mawk",
    "Rscript",
    "pwsh",
    "osascript",
    "powershell",
    "cmd",
    "wscript",
    "cscript",
    "mshta",
    "java",
    "env",
    "xargs",
    "nohup",
    "setsid",
    "script",
];

/// Whether a file name is a shell's or an interpreter's (or a launcher that runs a command
/// line, like `env`), versions and `.exe` included (`python3.11`, `pwsh.exe`).
pub fn is_shell_or_interpreter(file_name: &str) -> bool {
    let name = file_name.strip_suffix(".exe").unwrap_or(file_name);
    let base = name.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.' || c == '-');
    SHELLS_AND_INTERPRETERS.iter().any(|s| s.eq_ignore_ascii_case(name) || s.eq_ignore_ascii_case(base))
}

/// Why a ringfence refused something: the profile and the rule, in words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FenceDenial {
    /// The profile.
    pub profile: String,
    /// The rule that decided (`files.rules[2] "/home/**" → read`, `files.protected "/root/**"`,
    /// `children.others = deny`).
    pub rule: String,
    /// A sentence for people.
    pub reason: String,
}

/// A ringfence profile, referred to by Permit-with-Ringfence policies.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RingfenceProfile {
    /// Unique name.
    pub name: String,
    /// What it limits, for people.
    pub description: Option<String>,
    /// Files.
    pub files: FileFence,
    /// Network; `None` leaves the network free.
    pub network: Option<NetFence>,
    /// Child processes.
    pub children: ChildFence,
}

impl RingfenceProfile {
    /// Judge an open of `path`; `write` when the opener asked for writing. `None` allows it.
    pub fn check_open(&self, path: &str, write: bool) -> Option<FenceDenial> {
        let (access, basis) = self.files.access(path);
        let wanted = if write { FileAccess::ReadWrite } else { FileAccess::Read };
        if access >= wanted {
            return None;
        }
        let verb = if write { "writing" } else { "reading" };
        let rule = match &basis {
            FileBasis::Rule { index, path } => format!("files.rules[{}] {path:?} → {}", index + 1, access.name()),
            FileBasis::Protected { path } => format!("files.protected {path:?} → {}", access.name()),
            FileBasis::Open => "files".to_string(),
        };
        Some(FenceDenial {
            profile: self.name.clone(),
            reason: format!("ringfence {:?} does not allow {verb} {path} ({rule})", self.name),
            rule,
        })
    }

    /// Judge a program the ringfenced tree starts: `application` is the listed application
    /// that matched it, if any; `interpreter` whether it is a known shell or interpreter
    /// (by content or by name). `None` allows it.
    pub fn check_child(&self, path: &str, application: Option<&str>, interpreter: bool) -> Option<FenceDenial> {
        if application.is_some() {
            return None;
        }
        let name = path.rsplit('/').next().unwrap_or(path);
        let interpreter = interpreter || is_shell_or_interpreter(name);
        let (denied, why) = match self.children.others {
            ChildDefault::Allow => (false, ""),
            ChildDefault::NoShells => (interpreter, "shells and interpreters may not be started"),
            ChildDefault::Deny => (true, "only the listed applications may be started"),
        };
        denied.then(|| {
            let rule = format!("children.others = {}", self.children.others.name());
            FenceDenial {
                profile: self.name.clone(),
                reason: format!("ringfence {:?} does not allow starting {path}: {why} ({rule})", self.name),
                rule,
            }
        })
    }

    /// Judge a connect or datagram to `addr:port` against the address rules (domains are
    /// resolved by the agent into address rules; the kernel makes the same judgement).
    pub fn check_net(&self, addr: IpAddr, port: u16) -> Option<FenceDenial> {
        let net = self.network.as_ref()?;
        let allowed = net.allow.iter().any(|r| {
            contains(r.net, addr) && (r.ports.is_empty() || r.ports.iter().any(|p| (p.first..=p.last).contains(&port)))
        });
        (!allowed).then(|| FenceDenial {
            profile: self.name.clone(),
            rule: "network.allow".into(),
            reason: format!("ringfence {:?} does not allow the network destination {addr} port {port}", self.name),
        })
    }
}

/// Whether `net` contains `addr` (IPv4 and IPv4-mapped IPv6 are the same address).
pub fn contains(net: IpNet, addr: IpAddr) -> bool {
    fn bits(a: IpAddr) -> (u128, u32) {
        match a {
            IpAddr::V4(v4) => (u128::from(u32::from(v4)) | 0xffff_0000_0000, 96),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => (u128::from(u32::from(v4)) | 0xffff_0000_0000, 96),
                None => (u128::from(v6), 0),
            },
        }
    }
    let (n, offset) = bits(net.addr);
    let (a, _) = bits(addr);
    let len = offset + u32::from(net.prefix);
    let mask = if len == 0 { 0 } else { u128::MAX << (128 - len.min(128)) };
    n & mask == a & mask
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(path: &str, access: FileAccess) -> FileRule {
        FileRule { path: PathPattern::new(path).unwrap(), access }
    }

    fn three_cx() -> RingfenceProfile {
        RingfenceProfile {
            name: "3CX".into(),
            description: None,
            files: FileFence {
                rules: vec![
                    rule("/home/*/.config/3CXDesktopApp/**", FileAccess::ReadWrite),
                    rule("/home/*/Downloads/**", FileAccess::Read),
                ],
                protected: vec![PathPattern::new("/home/**").unwrap(), PathPattern::new("/etc/shadow").unwrap()],
                protected_access: FileAccess::None,
            },
            network: Some(NetFence {
                allow: vec![NetRule {
                    net: IpNet::parse("198.51.100.0/24").unwrap(),
                    ports: vec![PortRange::parse("443").unwrap(), PortRange::parse("5060-5090").unwrap()],
                }],
                domains: vec![],
                dns: false,
            }),
            children: ChildFence { applications: vec![], others: ChildDefault::Deny },
        }
    }

    #[test]
    fn first_matching_file_rule_wins_then_protected_then_open() {
        let p = three_cx();
        assert_eq!(p.check_open("/home/ann/.config/3CXDesktopApp/settings.json", true), None);
        assert_eq!(p.check_open("/home/ann/Downloads/x.pdf", false), None);
        let write = p.check_open("/home/ann/Downloads/x.pdf", true).unwrap();
        assert_eq!(write.rule, "files.rules[2] \"/home/*/Downloads/**\" → read");
        let secret = p.check_open("/home/ann/.ssh/id_ed25519", false).unwrap();
        assert_eq!(secret.rule, "files.protected \"/home/**\" → none");
        assert!(secret.reason.contains("does not allow reading /home/ann/.ssh/id_ed25519"));
        assert_eq!(p.check_open("/usr/lib/x86_64-linux-gnu/libc.so.6", false), None);
        assert_eq!(p.check_open("/tmp/out", true), None);
        assert!(p.files.restricts("/etc/shadow") && !p.files.restricts("/usr/bin/ls"));
    }

    #[test]
    fn default_protected_paths_cover_secrets() {
        let p = RingfenceProfile { name: "x".into(), ..Default::default() };
        assert!(p.check_open("/home/bob/.ssh/id_rsa", false).is_some());
        assert!(p.check_open("/etc/shadow", false).is_some());
        assert!(p.check_open("/home/bob/notes.txt", false).is_none());
    }

    #[test]
    fn children_listed_or_by_default() {
        let mut p = three_cx();
        assert!(p.check_child("/usr/bin/xdg-open", None, false).is_some(), "deny: nothing unlisted");
        assert!(p.check_child("/usr/bin/xdg-open", Some("Desktop helpers"), false).is_none());
        p.children.others = ChildDefault::NoShells;
        assert!(p.check_child("/usr/bin/xdg-open", None, false).is_none());
        for shell in ["/bin/sh", "/usr/bin/bash", "/usr/bin/python3.11", "/usr/bin/env", "C:/Windows/cmd.exe"] {
            let d = p.check_child(shell, None, false).unwrap();
            assert_eq!(d.rule, "children.others = no-shells", "{shell}");
        }
        assert!(p.check_child("/tmp/renamed", None, true).is_some(), "known by content");
        p.children.others = ChildDefault::Allow;
        assert!(p.check_child("/bin/sh", None, true).is_none());
    }

    #[test]
    fn network_prefixes_ports_and_families() {
        let p = three_cx();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(p.check_net(ip("198.51.100.7"), 443).is_none());
        assert!(p.check_net(ip("198.51.100.7"), 5075).is_none());
        assert!(p.check_net(ip("::ffff:198.51.100.7"), 443).is_none(), "IPv4-mapped is the same address");
        assert!(p.check_net(ip("198.51.101.7"), 443).is_some());
        assert!(p.check_net(ip("198.51.100.7"), 22).is_some());
        let free = RingfenceProfile { name: "free".into(), network: None, ..Default::default() };
        assert!(free.check_net(ip("203.0.113.1"), 1).is_none());
        assert!(contains(IpNet::parse("2001:db8::/32").unwrap(), ip("2001:db8:1::5")));
        assert!(!contains(IpNet::parse("2001:db8::/32").unwrap(), ip("2001:db9::5")));
        assert!(contains(IpNet::parse("0.0.0.0/0").unwrap(), ip("8.8.8.8")));
        assert_eq!(IpNet::parse("10.0.0.0/33"), None);
        assert_eq!(PortRange::parse("90-80"), None);
    }
}
