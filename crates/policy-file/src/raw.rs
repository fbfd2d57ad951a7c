//! The policy file as written: plain serde structs, checked and converted by `convert`.

use crate::spanned::Spanned;
use serde::{Deserialize, Deserializer};

type S<T> = Spanned<T>;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFile {
    pub organization: Option<S<RawOrganization>>,
    #[serde(default)]
    pub groups: Vec<S<RawGroup>>,
    #[serde(default)]
    pub computers: Vec<S<RawComputer>>,
    #[serde(default)]
    pub applications: Vec<S<RawApplication>>,
    #[serde(default)]
    pub blocklists: Vec<S<RawBlocklist>>,
    #[serde(default)]
    pub policies: Vec<S<RawPolicy>>,
    #[serde(default)]
    pub ringfences: Vec<S<RawRingfence>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawOrganization {
    pub name: Option<S<String>>,
    pub mode: Option<S<String>>,
    pub until: Option<S<TimeText>>,
    pub capture_into: Option<S<String>>,
    pub script_control: Option<S<bool>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawGroup {
    pub path: S<String>,
    pub mode: Option<S<String>>,
    pub until: Option<S<TimeText>>,
    pub capture_into: Option<S<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawComputer {
    pub name: S<String>,
    pub group: Option<S<String>>,
    pub os: Option<S<String>>,
    pub mode: Option<S<String>>,
    pub until: Option<S<TimeText>>,
    pub capture_into: Option<S<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSigner {
    pub subject: Option<S<String>>,
    pub issuer: Option<S<String>>,
    pub cert_sha256: Option<S<String>>,
    #[serde(default)]
    pub verified: bool,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRule {
    /// Hashes of any kind, typed by length.
    pub hashes: Option<S<Vec<String>>>,
    pub sha256: Option<S<Vec<String>>>,
    pub sha1: Option<S<Vec<String>>>,
    pub md5: Option<S<Vec<String>>>,
    pub authenticode_sha256: Option<S<Vec<String>>>,
    pub authenticode_sha1: Option<S<Vec<String>>>,
    pub path: Option<S<String>>,
    pub file_name: Option<S<String>>,
    pub original_filename: Option<S<String>>,
    pub product_name: Option<S<String>>,
    pub company_name: Option<S<String>>,
    pub signing_id: Option<S<String>>,
    pub signer: Option<S<RawSigner>>,
    pub version: Option<S<String>>,
    pub os: Option<S<String>>,
    pub kind: Option<S<String>>,
    pub package: Option<S<String>>,
    pub parent_process: Option<S<String>>,
    pub user: Option<S<String>>,
    pub note: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawApplication {
    pub name: S<String>,
    pub description: Option<String>,
    #[serde(default)]
    pub rules: Vec<S<RawRule>>,
    #[serde(default)]
    pub except: Vec<S<RawRule>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBlocklist {
    pub name: S<String>,
    pub description: Option<String>,
    /// Imported hashes of any kind (typed by length), as pasted.
    pub hashes: Option<S<Vec<String>>>,
    pub sha256: Option<S<Vec<String>>>,
    pub sha1: Option<S<Vec<String>>>,
    pub md5: Option<S<Vec<String>>>,
    /// Metadata rules, typically one per operating system.
    #[serde(default)]
    pub rules: Vec<S<RawRule>>,
    /// Scopes where the package is approved and enforced.
    #[serde(default)]
    pub approved: Vec<S<String>>,
    /// Scopes where the package only reports what it would deny.
    #[serde(default)]
    pub approved_monitor: Vec<S<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPolicy {
    pub name: S<String>,
    pub description: Option<String>,
    pub position: S<i64>,
    pub applications: S<Vec<String>>,
    pub action: S<String>,
    pub ringfence: Option<S<String>>,
    pub scope: Option<S<String>>,
    pub status: Option<S<String>>,
    pub enabled: Option<bool>,
    pub expires: Option<S<TimeText>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRingfence {
    pub name: S<String>,
    pub description: Option<String>,
    pub files: Option<S<RawFileFence>>,
    pub network: Option<S<RawNetFence>>,
    pub children: Option<S<RawChildFence>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFileFence {
    #[serde(default)]
    pub rules: Vec<S<RawFileRule>>,
    pub protected: Option<Vec<S<String>>>,
    pub protected_access: Option<S<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFileRule {
    pub path: S<String>,
    pub access: S<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawNetFence {
    #[serde(default)]
    pub allow: Vec<S<RawNetRule>>,
    #[serde(default)]
    pub domains: Vec<S<RawDomainRule>>,
    pub dns: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawNetRule {
    pub cidr: S<String>,
    #[serde(default)]
    pub ports: Vec<S<PortText>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDomainRule {
    pub name: S<String>,
    #[serde(default)]
    pub ports: Vec<S<PortText>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawChildFence {
    #[serde(default)]
    pub applications: Vec<S<String>>,
    pub others: Option<S<String>>,
}

/// A port or a port range, written as a number (`443`) or text (`"5060-5090"`).
#[derive(Clone)]
pub(crate) struct PortText(pub String);

impl<'de> Deserialize<'de> for PortText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = PortText;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a port such as 443 or a range such as \"5060-5090\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<PortText, E> {
                Ok(PortText(v.to_string()))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<PortText, E> {
                Ok(PortText(v.to_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<PortText, E> {
                Ok(PortText(v.to_string()))
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// A moment, written as text (`"2026-12-31"`, `"2026-12-31T08:00:00Z"`) or, in TOML, as a
/// native date-time, which arrives as a one-entry map.
#[derive(Clone)]
pub(crate) struct TimeText(pub String);

impl<'de> Deserialize<'de> for TimeText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = TimeText;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a date or date-time such as \"2026-12-31\" or \"2026-12-31T08:00:00Z\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<TimeText, E> {
                Ok(TimeText(v.to_string()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<TimeText, A::Error> {
                let Some((_, value)) = map.next_entry::<String, String>()? else {
                    return Err(serde::de::Error::custom("empty date-time"));
                };
                Ok(TimeText(value))
            }
        }
        d.deserialize_any(Visitor)
    }
}
