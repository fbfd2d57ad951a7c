//! The policy file as plain data, for programs that write policies: the server keeps its
//! model in a database and hands agents a [`Document`] serialized as JSON, which
//! [`crate::parse`] reads with [`crate::Format::Json`] and checks like any file.
//!
//! Field names and meanings are those of the file format (README, "Policy files"); `None`
//! and empty lists are left out when serialized.

use serde::{Deserialize, Serialize};

fn is_false(b: &bool) -> bool {
    !*b
}

/// A whole policy file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Document {
    /// The organization's defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization: Option<OrganizationDoc>,
    /// Computer groups, by path (`"Servers/Web"`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<GroupDoc>,
    /// Computers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub computers: Vec<ComputerDoc>,
    /// Custom applications.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub applications: Vec<ApplicationDoc>,
    /// Blocklist packages.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blocklists: Vec<BlocklistDoc>,
    /// Policies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<PolicyDoc>,
    /// Ringfence profiles.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ringfences: Vec<RingfenceDoc>,
}

/// `[organization]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct OrganizationDoc {
    /// Its name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The mode: `secured`, `monitor`, `learning` (with `until`) or `installation` (with
    /// `until` and `capture_into`); none inherits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// End of a learning or installation period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    /// The application an installation period captures into.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capture_into: Option<String>,
    /// Judge scripts opened by interpreters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script_control: Option<bool>,
}

/// `[[groups]]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct GroupDoc {
    /// `Parent/Child`.
    pub path: String,
    /// The mode: `secured`, `monitor`, `learning` (with `until`) or `installation` (with
    /// `until` and `capture_into`); none inherits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// End of a learning or installation period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    /// The application an installation period captures into.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capture_into: Option<String>,
}

/// `[[computers]]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ComputerDoc {
    /// Host name.
    pub name: String,
    /// Group path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// `windows`, `linux` or `macos`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    /// The mode: `secured`, `monitor`, `learning` (with `until`) or `installation` (with
    /// `until` and `capture_into`); none inherits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// End of a learning or installation period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    /// The application an installation period captures into.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capture_into: Option<String>,
}

/// A signer criterion.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SignerDoc {
    /// Subject pattern.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Issuer pattern.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// Leaf certificate SHA-256.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_sha256: Option<String>,
    /// The signature must verify.
    #[serde(default, skip_serializing_if = "is_false")]
    pub verified: bool,
}

/// A rule: every criterion given must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RuleDoc {
    /// Hashes of any kind, typed by length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hashes: Option<Vec<String>>,
    /// Flat SHA-256 hashes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<Vec<String>>,
    /// Flat SHA-1 hashes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha1: Option<Vec<String>>,
    /// Flat MD5 hashes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub md5: Option<Vec<String>>,
    /// Authenticode SHA-256 digests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authenticode_sha256: Option<Vec<String>>,
    /// Authenticode SHA-1 digests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authenticode_sha1: Option<Vec<String>>,
    /// Path glob.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// File name pattern.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
    /// PE OriginalFilename.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_filename: Option<String>,
    /// Product name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_name: Option<String>,
    /// Company name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub company_name: Option<String>,
    /// macOS signing ID, as Santa reports it: `TEAMID:com.vendor.app` or
    /// `platform:com.apple.ls`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_id: Option<String>,
    /// Signer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signer: Option<SignerDoc>,
    /// Version range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Operating system.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    /// File kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Installed package the file belongs to, verified against the package's recorded
    /// digests: `dpkg:openssh-server`, `rpm:bash`, `dpkg:*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package: Option<String>,
    /// Parent process path glob.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_process: Option<String>,
    /// User name pattern.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Free text, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// `[[applications]]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ApplicationDoc {
    /// Unique name.
    pub name: String,
    /// For people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Rules; the application matches a file when any rule does.
    #[serde(default)]
    pub rules: Vec<RuleDoc>,
    /// Exclusions: a file matching any of these is not the application's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub except: Vec<RuleDoc>,
}

/// `[[blocklists]]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BlocklistDoc {
    /// Unique name.
    pub name: String,
    /// For people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Hashes of any kind, typed by length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hashes: Option<Vec<String>>,
    /// Metadata rules, typically one per operating system.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<RuleDoc>,
    /// Scopes where the package is approved and enforced.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approved: Vec<String>,
    /// Scopes where it only reports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approved_monitor: Vec<String>,
}

/// `[[policies]]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PolicyDoc {
    /// Unique name.
    pub name: String,
    /// For people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Order: lower first.
    pub position: i64,
    /// Application names.
    pub applications: Vec<String>,
    /// `permit`, `permit-ringfence`, `deny` or `deny-request`.
    pub action: String,
    /// Ringfence profile for `permit-ringfence`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ringfence: Option<String>,
    /// `organization`, `group:PATH` or `computer:NAME`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// `enforce` or `monitor`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Off when `Some(false)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Expiry, `YYYY-MM-DD` or RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
}

/// `[[ringfences]]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RingfenceDoc {
    /// Unique name.
    pub name: String,
    /// For people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// File rules; absent: the built-in protected paths are closed, the rest open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<FileFenceDoc>,
    /// Network rules; absent: the network is not limited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<NetFenceDoc>,
    /// Child-process rules; absent: no shells or interpreters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub children: Option<ChildFenceDoc>,
}

/// `[ringfences.files]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct FileFenceDoc {
    /// Ordered rules; the first matching path glob decides.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<FileRuleDoc>,
    /// Protected path globs (absent: the built-in list).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protected: Option<Vec<String>>,
    /// `none` (default), `read` or `read-write` for protected paths no rule matched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protected_access: Option<String>,
}

/// One file rule.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct FileRuleDoc {
    /// Path glob (`*` within a component, `**` across).
    pub path: String,
    /// `none`, `read` or `read-write`.
    pub access: String,
}

/// `[ringfences.network]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NetFenceDoc {
    /// Allowed prefixes and ports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<NetRuleDoc>,
    /// Allowed domains, resolved by the agent within their TTL.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub domains: Vec<DomainRuleDoc>,
    /// Allow the host's DNS servers on port 53 (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<bool>,
}

/// Allowed addresses.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NetRuleDoc {
    /// CIDR or address.
    pub cidr: String,
    /// Ports or ranges (`"443"`, `"5060-5090"`); empty allows every port.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<String>,
}

/// An allowed domain.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DomainRuleDoc {
    /// The name.
    pub name: String,
    /// Ports or ranges; empty allows every port.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<String>,
}

/// `[ringfences.children]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ChildFenceDoc {
    /// Applications the tree may start.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub applications: Vec<String>,
    /// `deny`, `no-shells` (default) or `allow` for everything else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub others: Option<String>,
}

impl Document {
    /// The document as JSON, which [`crate::parse`] reads with [`crate::Format::Json`].
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a document is plain data and always serializes")
    }
}
