//! App Control's binary policy form (the unsigned `.cip` that Intune, CiTool and the
//! ApplicationControl CSP take; `ConvertFrom-CIPolicy` writes it on Windows), written from the
//! same [`CiPolicy`] as the XML.
//!
//! The format is not published by Microsoft; it is documented by the readers and writers of
//! others (Matt Graeber's `CIPolicyParser`, HotCakeX's AppControl Manager, both reading
//! policies Windows compiled). What this writes, in order (every integer little-endian):
//!
//! - a 0x40-byte header: format version (8), the base policy's GUID, the platform GUID, the
//!   option flags (bit 31 always set), the counts of EKUs, file rules, signers and signing
//!   scenarios, VersionEx as one u64 (`a<<48 | b<<32 | c<<16 | d`); then the u32 0x40;
//! - the file rules, sorted (deny before allow, then by name, product, path and hash, ASCII
//!   case folded): type (0 deny, 1 allow), FileName, MinimumFileVersion, hash;
//! - the (empty) update-policy and CI signer lists; the signing scenarios (131 kernel, 12
//!   user mode), each with its file rules by index in the sorted list; HVCI options; settings;
//! - the version blocks 3 to 8, each opened by its number: MaximumFileVersion per rule (3),
//!   InternalName, FileDescription and ProductName per rule (4), package name and version per
//!   rule (5), the policy and base policy GUIDs (6), FilePath per rule (7), app settings (8);
//!   and the end tag 9.
//!
//! A string is its UTF-16LE byte length, the bytes, zero padding to four bytes and a u32 0;
//! a blob (a hash) the same without the trailing 0; a GUID is in Microsoft's mixed-endian
//! order. The README says how this was checked without Windows.

use crate::appcontrol::{CiPolicy, CiRule, PLATFORM_ID};
use portcullis_policy::Version;

/// The format version written: the one current Windows writes (PolicyID needs 6, FilePath 7).
pub(crate) const FORMAT: u32 = 8;

/// The option bits of the option strings this exporter writes.
fn option_bit(option: &str) -> u32 {
    match option {
        "Enabled:UMCI" => 0x0000_0004,
        "Enabled:Audit Mode" => 0x0001_0000,
        "Enabled:Inherit Default Policy" => 0x0004_0000,
        "Enabled:Unsigned System Integrity Policy" => 0x0008_0000,
        "Enabled:Advanced Boot Options Menu" => 0x0080_0000,
        "Required:Enforce Store Applications" => 0x0200_0000,
        other => unreachable!("no bit known for option {other:?}"),
    }
}

struct Out(Vec<u8>);

impl Out {
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }

    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }

    fn guid(&mut self, g: &uuid::Uuid) {
        self.0.extend_from_slice(&g.to_bytes_le());
    }

    fn pad(&mut self, len: usize) {
        self.0.extend(std::iter::repeat_n(0u8, (4 - len % 4) % 4));
    }

    fn blob(&mut self, bytes: &[u8]) {
        self.u32(bytes.len() as u32);
        self.0.extend_from_slice(bytes);
        self.pad(bytes.len());
    }

    fn string(&mut self, text: Option<&str>) {
        let units: Vec<u8> = text.unwrap_or_default().encode_utf16().flat_map(u16::to_le_bytes).collect();
        self.blob(&units);
        self.u32(0);
    }

    fn indices(&mut self, list: &[u32]) {
        self.u32(list.len() as u32);
        for i in list {
            self.u32(*i);
        }
    }
}

fn version(v: Option<Version>) -> u64 {
    let [a, b, c, d] = v.map(|v| v.0).unwrap_or_default();
    (u64::from(a) << 48) | (u64::from(b) << 32) | (u64::from(c) << 16) | u64::from(d)
}

/// The order Windows keeps file rules in: deny before allow, then by the text attributes
/// (absent first, ASCII case folded), then by hash.
fn sort_key(r: &CiRule) -> impl Ord + '_ {
    let fold = |v: &Option<String>| v.as_ref().map(|s| s.to_ascii_uppercase());
    (!r.deny as u8, fold(&r.file_name), fold(&r.product_name), fold(&r.file_path), r.hash.clone())
}

/// The binary form of `policy`.
pub(crate) fn write(policy: &CiPolicy) -> Vec<u8> {
    let mut order: Vec<usize> = (0..policy.rules.len()).collect();
    order.sort_by_key(|&i| sort_key(&policy.rules[i]));
    // Where each rule of the policy lands.
    let mut position = vec![0u32; order.len()];
    for (to, &from) in order.iter().enumerate() {
        position[from] = to as u32;
    }
    let rules: Vec<&CiRule> = order.iter().map(|&i| &policy.rules[i]).collect();
    let mut o = Out(Vec::new());
    o.u32(FORMAT);
    o.guid(&policy.policy_id);
    o.guid(&PLATFORM_ID);
    o.u32(policy.options.iter().fold(0x8000_0000, |f, opt| f | option_bit(opt)));
    o.u32(0); // EKUs
    o.u32(rules.len() as u32);
    o.u32(0); // signers
    o.u32(2); // signing scenarios
    o.u64(version(Some(Version([10, 0, 0, 0]))));
    o.u32(0x40);
    for r in &rules {
        o.u32(if r.deny { 0 } else { 1 });
        o.string(r.file_name.as_deref());
        let min = match (r.deny, r.min, r.max) {
            // A deny without versions is for every version: Windows writes the highest.
            (true, None, None) => u64::MAX,
            (_, min, _) => version(min),
        };
        o.u64(min);
        o.blob(r.hash.as_deref().unwrap_or_default());
    }
    o.indices(&[]); // UpdatePolicySigners
    o.indices(&[]); // CiSigners
    for (value, refs) in [(131u32, &policy.kernel), (12, &policy.user)] {
        o.u32(value);
        o.indices(&[]); // inherited scenarios
        o.u32(0x800C); // no minimum hash algorithm
        // ProductSigners: allowed and denied signers (none), then the file rules.
        o.u32(0);
        o.u32(0);
        let mut indices: Vec<u32> = refs.iter().map(|&i| position[i]).collect();
        indices.sort_unstable();
        o.indices(&indices);
        // TestSigners and TestSigningSigners: empty.
        for _ in 0..6 {
            o.u32(0);
        }
    }
    o.u32(0); // HvciOptions
    o.u32(0); // settings
    o.u32(3);
    for r in &rules {
        o.u64(version(r.max));
        o.u32(0); // AppIDs
    }
    o.u32(4);
    for r in &rules {
        o.string(None); // InternalName
        o.string(None); // FileDescription
        o.string(r.product_name.as_deref());
    }
    o.u32(5);
    for _ in &rules {
        o.string(None); // PackageFamilyName
        o.u64(0); // PackageVersion
    }
    o.u32(6);
    o.guid(&policy.policy_id);
    o.guid(&policy.policy_id);
    o.indices(&[]); // SupplementalPolicySigners
    o.u32(7);
    for r in &rules {
        o.string(r.file_path.as_deref());
    }
    o.u32(8);
    o.u32(0); // AppSettings
    o.u32(FORMAT + 1);
    o.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(text: &str) -> Vec<u8> {
        let t: String = text.split_whitespace().collect();
        (0..t.len()).step_by(2).map(|i| u8::from_str_radix(&t[i..i + 2], 16).unwrap()).collect()
    }

    /// The worked example of the format notes (derived from the published readers): a deny
    /// by name and version and an allow by hash, in 492 bytes.
    #[test]
    fn a_deny_by_version_and_an_allow_by_hash_give_the_documented_bytes() {
        let policy = CiPolicy {
            name: "example".into(),
            policy_id: uuid::uuid!("32002E5A-B0DA-4401-9AC3-C24F25849804"),
            options: vec!["Enabled:UMCI", "Enabled:Unsigned System Integrity Policy"],
            rules: vec![
                CiRule { deny: false, id: "ID_ALLOW_A".into(), hash: Some(vec![0xAA; 32]), ..CiRule::default() },
                CiRule {
                    deny: true,
                    id: "ID_DENY_A".into(),
                    file_name: Some("3CXDesktopApp.exe".into()),
                    min: Some(Version([18, 12, 407, 0])),
                    max: Some(Version([18, 12, 407, 0])),
                    ..CiRule::default()
                },
            ],
            kernel: vec![],
            user: vec![0, 1],
        };
        let bytes = write(&policy);
        assert_eq!(bytes.len(), 492);
        let head = hex("08 00 00 00 5A 2E 00 32 DA B0 01 44 9A C3 C2 4F \
             25 84 98 04 E4 F7 07 2E 4C 19 20 4D B7 C9 6F 44 \
             A6 C5 A2 34 04 00 08 80 00 00 00 00 02 00 00 00 \
             00 00 00 00 02 00 00 00 00 00 00 00 00 00 0A 00 \
             40 00 00 00 00 00 00 00 22 00 00 00 33 00 43 00 \
             58 00 44 00 65 00 73 00 6B 00 74 00 6F 00 70 00 \
             41 00 70 00 70 00 2E 00 65 00 78 00 65 00 00 00 \
             00 00 00 00 00 00 97 01 0C 00 12 00 00 00 00 00");
        assert_eq!(&bytes[..0x80], &head[..]);
        // Scenario 12 refers to both rules by their sorted places (deny 0, allow 1).
        assert_eq!(&bytes[0xF0..0xF4], &12u32.to_le_bytes());
        assert_eq!(&bytes[0x104..0x110], &hex("02000000 00000000 01000000")[..]);
        assert_eq!(&bytes[0x1A4..0x1A8], &6u32.to_le_bytes());
        assert_eq!(&bytes[0x1E8..], &9u32.to_le_bytes());
    }

    #[test]
    fn microsofts_empty_policy_has_the_documented_size_and_flags() {
        let policy = CiPolicy {
            name: "empty".into(),
            policy_id: uuid::uuid!("32002E5A-B0DA-4401-9AC3-C24F25849804"),
            options: vec![
                "Enabled:Unsigned System Integrity Policy",
                "Enabled:Audit Mode",
                "Enabled:Advanced Boot Options Menu",
                "Required:Enforce Store Applications",
                "Enabled:Inherit Default Policy",
            ],
            rules: vec![],
            kernel: vec![],
            user: vec![],
        };
        let bytes = write(&policy);
        assert_eq!(bytes.len(), 248);
        assert_eq!(&bytes[0x24..0x28], &0x828D_0000u32.to_le_bytes());
    }
}
