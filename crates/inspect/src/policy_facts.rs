//! The facts the policy engine decides on, taken from what inspection found.

use crate::{Facts, Format};
use portcullis_policy::{FileFacts, FileKind, Os, SignerFacts, Version};

/// What the engine knows about a file: kind and platform from the format, identity strings
/// from VERSIONINFO (or an MSI's properties), Authenticode digests and the primary signer.
pub fn policy_facts(f: &Facts) -> FileFacts {
    let (kind, platform) = match f.format {
        Format::PeExe => (FileKind::Executable, Some(Os::Windows)),
        Format::PeDll => (FileKind::Library, Some(Os::Windows)),
        Format::Msi | Format::Cab => (FileKind::Installer, Some(Os::Windows)),
        Format::ElfExecutable | Format::ElfPie => (FileKind::Executable, Some(Os::Linux)),
        Format::ElfSharedObject => (FileKind::Library, Some(Os::Linux)),
        Format::ElfOther => (FileKind::Other, Some(Os::Linux)),
        Format::MachO => {
            let dylib = f.macho.as_ref().is_some_and(|m| m.arches.iter().any(|a| matches!(a.filetype, 6 | 8)));
            (if dylib { FileKind::Library } else { FileKind::Executable }, Some(Os::MacOs))
        }
        Format::Script => (FileKind::Script, None),
        Format::Other => (FileKind::Other, None),
    };
    let pe = f.pe.as_ref();
    let identity = f.identity();
    let strings = pe.map(|p| &p.version_strings);
    let primary = f.primary_signature();
    FileFacts {
        path: f.path.clone(),
        size: f.size,
        sha256: f.hashes.sha256,
        sha1: f.hashes.sha1,
        md5: f.hashes.md5,
        kind,
        platform,
        original_filename: identity.original_filename,
        internal_name: strings.and_then(|v| v.internal_name.clone()),
        product_name: identity.product_name,
        company_name: identity.company_name,
        file_description: strings.and_then(|v| v.file_description.clone()),
        file_version: identity.version.map(Version),
        product_version: pe.and_then(|p| p.product_version).map(Version),
        authenticode_sha256: f.authenticode.map(|a| a.sha256),
        authenticode_sha1: f.authenticode.map(|a| a.sha1),
        signer: primary.and_then(|s| {
            s.signer.as_ref().map(|c| SignerFacts {
                subject: c.subject.clone(),
                issuer: c.issuer.clone(),
                cert_sha256: c.sha256,
                verified: s.verified(),
            })
        }),
        // Apple signatures are not verified here: a signing ID read from the file could be
        // anyone's.
        signing_id: None,
        // Package membership is the host's knowledge, not the file's: the agent adds it.
        packages: Vec::new(),
        package_note: None,
        // So is what an Installation window captured.
        captured: None,
    }
}
