//! PE files (exe, dll; 32-bit, 64-bit, ARM64): headers, VERSIONINFO, the Authenticode digest
//! and the attribute certificate table.
//!
//! The digest is computed the way `osslsigncode` and signtool do: the file linearly, minus
//! the checksum field, the certificate-table directory entry and the certificate table, with
//! an unsigned file padded to 8 bytes (as signing will pad it). The `authenticode` crate hashes
//! section by section instead, which differs on files with gaps or unaligned sizes; users
//! compare our hash with the tools they already run, so byte-identity with those wins.

use crate::{Anomaly, Problem};
use sha2::Digest;

/// Machine names for COFF machine types.
pub fn machine_name(machine: u16) -> &'static str {
    match machine {
        0x014c => "x86",
        0x8664 => "x86_64",
        0xaa64 => "arm64",
        0xa641 => "arm64ec",
        0xa64e => "arm64x",
        0x01c0 | 0x01c4 => "arm",
        0x0200 => "ia64",
        _ => "unknown",
    }
}

/// What a PE's headers and VERSIONINFO say.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeInfo {
    /// COFF machine type.
    pub machine: u16,
    /// PE32+ (64-bit optional header).
    pub is_64: bool,
    /// IMAGE_FILE_DLL is set.
    pub is_dll: bool,
    /// VERSIONINFO strings.
    pub version_strings: VersionStrings,
    /// VS_FIXEDFILEINFO file version, four 16-bit parts.
    pub file_version: Option<[u16; 4]>,
    /// VS_FIXEDFILEINFO product version.
    pub product_version: Option<[u16; 4]>,
}

/// The VERSIONINFO strings execution control cares about.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VersionStrings {
    /// `OriginalFilename`.
    pub original_filename: Option<String>,
    /// `InternalName`.
    pub internal_name: Option<String>,
    /// `ProductName`.
    pub product_name: Option<String>,
    /// `CompanyName`.
    pub company_name: Option<String>,
    /// `FileDescription`.
    pub file_description: Option<String>,
    /// `FileVersion` as text.
    pub file_version: Option<String>,
    /// `ProductVersion` as text.
    pub product_version: Option<String>,
}

/// Authenticode digests of a PE or MSI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuthenticodeDigests {
    /// SHA-256 digest.
    pub sha256: [u8; 32],
    /// SHA-1 digest.
    pub sha1: [u8; 20],
}

/// Offsets found in the headers that the digest skips.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Layout {
    pub machine: u16,
    pub characteristics: u16,
    pub is_64: bool,
    checksum_offset: usize,
    /// Offset of the certificate-table data directory entry, if the header has one.
    security_entry: Option<usize>,
    /// File offset and size of the certificate table (0, 0 when unsigned).
    pub cert_table: (usize, usize),
}

fn u16_at(data: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_le_bytes(data.get(off..off.checked_add(2)?)?.try_into().ok()?))
}

fn u32_at(data: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(data.get(off..off.checked_add(4)?)?.try_into().ok()?))
}

/// Whether `data` starts like a PE file (MZ header pointing at a PE signature).
pub fn looks_like_pe(data: &[u8]) -> bool {
    data.starts_with(b"MZ")
        && u32_at(data, 0x3c)
            .and_then(|off| data.get(off as usize..(off as usize).checked_add(4)?))
            .is_some_and(|sig| sig == b"PE\0\0")
}

pub(crate) fn layout(data: &[u8]) -> Result<Layout, Problem> {
    if !data.starts_with(b"MZ") {
        return Err("no MZ header".into());
    }
    let pe = u32_at(data, 0x3c).ok_or("truncated DOS header")? as usize;
    if data.get(pe..pe.saturating_add(4)) != Some(b"PE\0\0") {
        return Err(Problem::new(format!("no PE signature at offset {pe:#x}")));
    }
    let coff = pe + 4;
    let machine = u16_at(data, coff).ok_or("truncated COFF header")?;
    let optional_size = u16_at(data, coff + 16).ok_or("truncated COFF header")? as usize;
    let characteristics = u16_at(data, coff + 18).ok_or("truncated COFF header")?;
    let opt = coff + 20;
    let magic = u16_at(data, opt).ok_or("truncated optional header")?;
    let is_64 = match magic {
        0x10b => false,
        0x20b => true,
        other => return Err(Problem::new(format!("unknown optional header magic {other:#x}"))),
    };
    let checksum_offset = opt + 64;
    let (count_offset, dirs) = if is_64 { (opt + 108, opt + 112) } else { (opt + 92, opt + 96) };
    if checksum_offset + 4 > data.len() {
        return Err("truncated optional header".into());
    }
    let dir_count = u32_at(data, count_offset).unwrap_or(0) as usize;
    let entry = dirs + 4 * 8;
    let security_entry =
        (dir_count > 4 && entry + 8 <= opt + optional_size && entry + 8 <= data.len()).then_some(entry);
    let cert_table = match security_entry {
        Some(e) => (u32_at(data, e).unwrap_or(0) as usize, u32_at(data, e + 4).unwrap_or(0) as usize),
        None => (0, 0),
    };
    Ok(Layout { machine, characteristics, is_64, checksum_offset, security_entry, cert_table })
}

/// Compute the Authenticode SHA-256 and SHA-1 digests exactly as osslsigncode does.
pub(crate) fn authenticode_digests(data: &[u8], layout: &Layout) -> Result<AuthenticodeDigests, Problem> {
    let (table_offset, table_size) = layout.cert_table;
    let signed = table_offset != 0 && table_size != 0;
    let end = if signed {
        if table_offset > data.len() {
            return Err(Problem::new(format!(
                "certificate table offset {table_offset:#x} is past the end of the file"
            )));
        }
        table_offset
    } else {
        data.len()
    };
    let ranges = match layout.security_entry {
        Some(entry) => vec![0..layout.checksum_offset, layout.checksum_offset + 4..entry, entry + 8..end],
        None => vec![0..layout.checksum_offset, layout.checksum_offset + 4..end],
    };
    let mut sha256 = sha2::Sha256::new();
    let mut sha1 = sha1::Sha1::new();
    for r in ranges {
        let part = data
            .get(r.clone())
            .ok_or_else(|| Problem::new(format!("header field at {:#x} lies past the hashed range", r.start)))?;
        sha256.update(part);
        sha1.update(part);
    }
    if !signed && !data.len().is_multiple_of(8) {
        let pad = [0u8; 8];
        let n = 8 - data.len() % 8;
        sha256.update(&pad[..n]);
        sha1.update(&pad[..n]);
    }
    Ok(AuthenticodeDigests { sha256: sha256.finalize().into(), sha1: sha1.finalize().into() })
}

/// One WIN_CERTIFICATE entry holding a PKCS#7 SignedData.
pub(crate) struct SignatureBlob<'a> {
    pub der: &'a [u8],
}

/// Walk the certificate table: return the signature blobs and report anything hidden in or
/// after it.
pub(crate) fn certificate_table<'a>(
    data: &'a [u8],
    layout: &Layout,
    anomalies: &mut Vec<Anomaly>,
) -> Vec<SignatureBlob<'a>> {
    let (offset, size) = layout.cert_table;
    if offset == 0 || size == 0 {
        return Vec::new();
    }
    let Some(table) = offset.checked_add(size).and_then(|end| data.get(offset..end)) else {
        anomalies.push(Anomaly::new(
            "certificate-table-out-of-bounds",
            format!(
                "the certificate table ({size} bytes at {offset:#x}) runs past the end of the file ({} bytes)",
                data.len()
            ),
        ));
        return Vec::new();
    };
    let after = data.len() - (offset + size);
    if after > 0 {
        anomalies.push(Anomaly::new(
            "data-after-certificate-table",
            format!("{after} bytes follow the certificate table at the end of the file; they are not covered by the signature"),
        ));
    }
    let mut blobs = Vec::new();
    let mut pos = 0usize;
    while pos + 8 <= table.len() {
        let len = u32_at(table, pos).unwrap_or(0) as usize;
        let revision = u16_at(table, pos + 4).unwrap_or(0);
        let kind = u16_at(table, pos + 6).unwrap_or(0);
        if len < 8 || pos + len > table.len() {
            anomalies.push(Anomaly::new(
                "bad-certificate-entry",
                format!("certificate table entry at +{pos:#x} has length {len}, which does not fit the table"),
            ));
            return blobs;
        }
        let body = &table[pos + 8..pos + len];
        if kind == 2 {
            let der_len = der_length(body);
            match der_len {
                Some(n) if n <= body.len() => {
                    let trailing = &body[n..];
                    // signtool and osslsigncode pad the blob with up to 7 zero bytes; anything
                    // else inside the entry is data smuggled past the signature (CVE-2013-3900,
                    // as in the 3CX d3dcompiler_47.dll).
                    if trailing.len() >= 8 || trailing.iter().any(|&b| b != 0) {
                        anomalies.push(Anomaly::new(
                            "data-appended-in-certificate-table",
                            format!(
                                "{} bytes are appended after the signature inside the certificate table (at file offset {:#x}); \
                                 they are not covered by the signature, which still verifies (CVE-2013-3900, the trick used on the 3CX d3dcompiler_47.dll)",
                                trailing.len(),
                                offset + pos + 8 + n
                            ),
                        ));
                    }
                    blobs.push(SignatureBlob { der: &body[..n] });
                }
                _ => anomalies.push(Anomaly::new(
                    "bad-signature-blob",
                    "the certificate table holds a PKCS#7 entry that is not valid DER",
                )),
            }
        } else {
            anomalies.push(Anomaly::new(
                "unknown-certificate-entry",
                format!("certificate table entry of type {kind:#x} (revision {revision:#x}) is not a PKCS#7 signature"),
            ));
        }
        pos += (len + 7) & !7;
    }
    if pos < table.len() && table[pos..].iter().any(|&b| b != 0) {
        anomalies.push(Anomaly::new(
            "data-in-certificate-table",
            format!("{} bytes in the certificate table do not belong to any entry", table.len() - pos),
        ));
    }
    blobs
}

/// Total length of the DER element at the start of `data` (tag, length and content).
pub(crate) fn der_length(data: &[u8]) -> Option<usize> {
    use der::{Decode, Encode};
    let mut reader = der::SliceReader::new(data).ok()?;
    let header = der::Header::decode(&mut reader).ok()?;
    let total = (header.encoded_len().ok()? + header.length).ok()?;
    usize::try_from(total).ok()
}

/// Headers and VERSIONINFO through goblin, permissively: a damaged resource section loses the
/// strings, not the file's other facts.
pub(crate) fn info(data: &[u8], layout: &Layout, anomalies: &mut Vec<Anomaly>) -> PeInfo {
    let mut info = PeInfo {
        machine: layout.machine,
        is_64: layout.is_64,
        is_dll: layout.characteristics & 0x2000 != 0,
        ..PeInfo::default()
    };
    let mut opts = goblin::pe::options::ParseOptions::default()
        .with_parse_mode(goblin::options::ParseMode::Permissive)
        .with_parse_tls_data(false)
        .with_parse_imports(false);
    opts.parse_attribute_certificates = false;
    let parsed = crate::guard(|| goblin::pe::PE::parse_with_opts(data, &opts))
        .and_then(|pe| pe.map_err(|e| Problem::caused("goblin refused the file", e)));
    let pe = match parsed {
        Ok(pe) => pe,
        Err(e) => {
            anomalies.push(Anomaly::new(
                "versioninfo-unreadable",
                e.within("PE structures could not be read for VERSIONINFO").report(),
            ));
            return info;
        }
    };
    let Some(vi) = pe.resource_data.as_ref().and_then(|r| r.version_info.as_ref()) else {
        return info;
    };
    let s = &vi.string_info;
    let clean = |v: Option<String>| v.map(|t| t.trim().to_string()).filter(|t| !t.is_empty());
    info.version_strings = VersionStrings {
        original_filename: clean(s.original_filename()),
        internal_name: clean(s.internal_name()),
        product_name: clean(s.product_name()),
        company_name: clean(s.company_name()),
        file_description: clean(s.file_description()),
        file_version: clean(s.file_version()),
        product_version: clean(s.product_version()),
    };
    if let Some(fixed) = vi.fixed_info.as_ref().filter(|f| f.is_valid()) {
        // goblin's own file_version() reads the file *date* fields; use the raw version words.
        let split = |ms: u32, ls: u32| [(ms >> 16) as u16, ms as u16, (ls >> 16) as u16, ls as u16];
        info.file_version = Some(split(fixed.file_version_ms, fixed.file_version_ls));
        info.product_version = Some(split(fixed.product_version_ms, fixed.product_version_ls));
    }
    info
}
