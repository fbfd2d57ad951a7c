//! What a file says it is: its name, product, company and version, from VERSIONINFO for a
//! PE file and from the Property table for an MSI. One reading for the engine's facts
//! ([`crate::policy_facts`]) and for what `scan` shows.

use crate::Facts;

/// The identity strings a file carries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Identity {
    /// VERSIONINFO `OriginalFilename`.
    pub original_filename: Option<String>,
    /// VERSIONINFO `ProductName`, or the MSI's `ProductName`.
    pub product_name: Option<String>,
    /// VERSIONINFO `CompanyName`, or the MSI's `Manufacturer`.
    pub company_name: Option<String>,
    /// The version as people read it: VERSIONINFO's numeric file version (`1.2.3.4`), else
    /// its `FileVersion` string; an MSI's `ProductVersion`.
    pub file_version: Option<String>,
    /// The version as policies compare it: VERSIONINFO's numeric file version, or an MSI's
    /// `ProductVersion` when it reads as up to four numbers.
    pub version: Option<[u16; 4]>,
}

impl Facts {
    /// The identity strings of this file (empty for formats that carry none).
    pub fn identity(&self) -> Identity {
        if let Some(pe) = &self.pe {
            let v = &pe.version_strings;
            return Identity {
                original_filename: v.original_filename.clone(),
                product_name: v.product_name.clone(),
                company_name: v.company_name.clone(),
                file_version: pe
                    .file_version
                    .map(|[a, b, c, d]| format!("{a}.{b}.{c}.{d}"))
                    .or_else(|| v.file_version.clone()),
                version: pe.file_version,
            };
        }
        if let Some(m) = &self.msi {
            return Identity {
                original_filename: None,
                product_name: m.product_name.clone(),
                company_name: m.manufacturer.clone(),
                file_version: m.product_version.clone(),
                version: m
                    .product_version
                    .as_deref()
                    .and_then(|v| v.parse::<portcullis_policy::Version>().ok())
                    .map(|v| v.0),
            };
        }
        Identity::default()
    }
}
