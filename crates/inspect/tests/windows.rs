//! PE, MSI and CAB facts on real files: fixtures built by mingw-w64, signed by osslsigncode
//! under a test CA with a local RFC 3161 authority, packed by wixl and gcab
//! (tests/fixtures/make-fixtures.sh), and Microsoft-signed DLLs from pinned PyPI wheels
//! (tests/fixtures/fetch-thirdparty.sh). Every digest is compared with osslsigncode's own.

mod common;

use common::{fixtures, manifest};
use portcullis_inspect::*;
use std::sync::Arc;

fn trust() -> Arc<TrustStore> {
    Arc::new(TrustStore::from_pem(&std::fs::read(fixtures().join("ca.pem")).unwrap()).unwrap())
}

fn inspect(name: &str, opts: &Options) -> Facts {
    inspect_path(&fixtures().join(name), opts).unwrap()
}

fn with_trust() -> Options {
    Options { trust: Some(trust()), ..Options::default() }
}

#[test]
fn digests_are_byte_identical_to_osslsigncode() {
    let mut checked = 0;
    for (name, kv) in manifest(fixtures().join("manifest.txt")) {
        if !kv.contains_key("authenticode-sha256") {
            continue;
        }
        let facts = inspect(&name, &Options::default());
        assert_eq!(hex(&facts.hashes.sha256), kv["sha256"], "{name}: flat sha256");
        let digests =
            facts.authenticode.unwrap_or_else(|| panic!("{name}: no Authenticode digest ({:?})", facts.parse_error));
        assert_eq!(hex(&digests.sha256), kv["authenticode-sha256"], "{name}: authenticode sha256");
        if let Some(sha1) = kv.get("authenticode-sha1") {
            assert_eq!(&hex(&digests.sha1), sha1, "{name}: authenticode sha1");
        }
        checked += 1;
    }
    assert!(checked >= 12, "only {checked} files checked");
}

#[test]
fn versioninfo_of_every_architecture() {
    for (name, machine, is_64) in [
        ("3CXDesktopApp.exe", "x86_64", true),
        ("3CXDesktopApp-x86.exe", "x86", false),
        ("3CXDesktopApp-arm64.exe", "arm64", true),
    ] {
        let f = inspect(name, &Options::default());
        assert_eq!(f.format, Format::PeExe, "{name}");
        let pe = f.pe.unwrap();
        assert_eq!((machine_name(pe.machine), pe.is_64), (machine, is_64), "{name}");
        let v = &pe.version_strings;
        assert_eq!(v.original_filename.as_deref(), Some("3CXDesktopApp.exe"), "{name}");
        assert_eq!(v.internal_name.as_deref(), Some("3CXDesktopApp"));
        assert_eq!(v.product_name.as_deref(), Some("3CX Desktop App"));
        assert_eq!(v.company_name.as_deref(), Some("3CX Ltd"));
        assert_eq!(v.file_description.as_deref(), Some("3CX Desktop App"));
        assert_eq!(pe.file_version, Some([18, 12, 416, 0]));
        assert_eq!(pe.product_version, Some([18, 12, 416, 0]));
    }
    let dll = inspect("ffmpeg.dll", &Options::default());
    assert_eq!(dll.format, Format::PeDll);
    assert_eq!(dll.pe.unwrap().version_strings.original_filename.as_deref(), Some("ffmpeg.dll"));
}

#[test]
fn signed_file_verifies_to_the_test_root_with_its_timestamp() {
    let f = inspect("3CXDesktopApp-signed.exe", &with_trust());
    assert!(f.anomalies.is_empty(), "{:?}", f.anomalies);
    assert_eq!(f.signatures.len(), 1);
    let s = &f.signatures[0];
    assert!(s.intact() && s.verified(), "{s:#?}");
    let signer = s.signer.as_ref().unwrap();
    assert!(signer.subject.contains("CN=Portcullis Test Signer"), "{}", signer.subject);
    let signer_pem = std::fs::read(fixtures().join("signer.pem")).unwrap();
    let mut one = TrustStore::default();
    assert_eq!(one.len(), 0);
    let der = pem_to_der(&signer_pem);
    one.add_der(&der).unwrap();
    use sha2_check::digest;
    assert_eq!(signer.sha256, digest(&der));
    let ts = s.timestamp.as_ref().expect("timestamped");
    assert_eq!(ts.kind, TimestampKind::Rfc3161);
    assert!(ts.valid, "{ts:#?}");
    assert!(matches!(ts.trusted, Some(Trust::Chained(_))), "{ts:#?}");
    assert_eq!(format_time(ts.time), "2024-03-01T12:00:00Z");
    assert_eq!(s.judged_at, Some(ts.time));
    let chain = s.trusted.as_ref().and_then(Trust::chain).unwrap().to_vec();
    assert_eq!(chain.len(), 3, "leaf, intermediate, root: {chain:?}");
}

#[test]
fn without_trust_store_chains_are_not_judged() {
    let s = inspect("3CXDesktopApp-signed.exe", &Options::default()).signatures.remove(0);
    assert!(s.intact());
    assert_eq!(s.trusted, None);
    assert!(!s.verified());
}

#[test]
fn an_unrelated_root_is_not_trusted() {
    // The TSA certificate is a real certificate but not the signer's root.
    let tsa_only = TrustStore::from_pem(&std::fs::read(fixtures().join("tsa.pem")).unwrap()).unwrap();
    let opts = Options { trust: Some(Arc::new(tsa_only)), ..Options::default() };
    let s = inspect("3CXDesktopApp-signed.exe", &opts).signatures.remove(0);
    assert!(s.intact());
    assert!(matches!(&s.trusted, Some(Trust::Untrusted(e)) if e.contains("no trusted root")), "{:?}", s.trusted);
}

#[test]
fn chains_are_judged_at_the_countersigned_time() {
    // 2050: the test certificates expired in 2043. The timestamped signature is still good,
    // the untimestamped one is not.
    let later = Options { now: 2_524_608_000, ..with_trust() };
    let stamped = inspect("3CXDesktopApp-signed.exe", &later).signatures.remove(0);
    assert!(stamped.verified(), "{:?}", stamped.trusted);
    let bare = inspect("3CXDesktopApp-untimestamped.exe", &later).signatures.remove(0);
    assert!(bare.timestamp.is_none());
    assert!(bare.intact());
    assert!(
        matches!(&bare.trusted, Some(Trust::Untrusted(e)) if e.contains("is not valid at 2050")),
        "{:?}",
        bare.trusted
    );
    // Today it is fine.
    assert!(inspect("3CXDesktopApp-untimestamped.exe", &with_trust()).signatures[0].verified());
}

#[test]
fn nested_signatures_are_listed() {
    let f = inspect("3CXDesktopApp-nested.exe", &with_trust());
    assert_eq!(f.signatures.len(), 2);
    assert_eq!(f.signatures[0].digest_algorithm, Some(DigestAlgorithm::Sha256));
    assert_eq!(f.signatures[1].digest_algorithm, Some(DigestAlgorithm::Sha1));
    assert_eq!(f.signatures[1].index, 1);
    assert!(f.signatures.iter().all(|s| s.verified()), "{:#?}", f.signatures);
    assert!(f.signatures.iter().all(|s| s.timestamp.as_ref().is_some_and(|t| t.valid)));
}

#[test]
fn tampered_file_fails_its_digest() {
    let f = inspect("3CXDesktopApp-tampered.exe", &with_trust());
    let s = &f.signatures[0];
    assert_eq!(s.digest_matches, Some(false));
    assert!(s.signature_valid, "the signature itself is intact; the file is not");
    assert!(!s.verified());
    assert!(s.error.as_deref().unwrap().contains("changed after signing"));
}

#[test]
fn data_appended_inside_the_certificate_table_is_reported() {
    let f = inspect("3CXDesktopApp-appended.exe", &with_trust());
    // The signature still verifies, as Windows and osslsigncode say: that is the trick.
    assert!(f.signatures[0].verified());
    let a = f.anomalies.iter().find(|a| a.code == "data-appended-in-certificate-table").expect("reported");
    // 96 bytes were appended after the blob's own zero padding (0 to 7 bytes, which varies with
    // the timestamp's length).
    let n: usize = a.message.split(' ').next().unwrap().parse().unwrap();
    assert!((96..=103).contains(&n), "{}", a.message);
    assert!(inspect("3CXDesktopApp-signed.exe", &with_trust()).anomalies.is_empty());
}

#[test]
fn msi_properties_and_the_files_it_drops() {
    let f = inspect("3CXDesktopApp-signed.msi", &with_trust());
    assert_eq!(f.format, Format::Msi);
    assert!(f.parse_error.is_none(), "{:?}", f.parse_error);
    let m = f.msi.as_ref().unwrap();
    assert_eq!(m.product_name.as_deref(), Some("3CX Desktop App"));
    assert_eq!(m.manufacturer.as_deref(), Some("3CX Ltd"));
    assert_eq!(m.product_version.as_deref(), Some("18.12.416"));
    assert!(m.product_code.as_deref().is_some_and(|c| c.starts_with('{')), "{:?}", m.product_code);
    assert!(f.signatures[0].verified(), "{:#?}", f.signatures);
    let names: Vec<&str> = f.contents.iter().map(|c| c.path.rsplit('/').next().unwrap()).collect();
    assert!(names.contains(&"3CXDesktopApp.exe") && names.contains(&"ffmpeg.dll"), "{names:?}");
    let exe = f.contents.iter().find(|c| c.path.ends_with("3CXDesktopApp.exe")).unwrap();
    assert_eq!(exe.container.as_deref(), Some(f.path.as_str()));
    assert_eq!(exe.pe.as_ref().unwrap().version_strings.original_filename.as_deref(), Some("3CXDesktopApp.exe"));
    let loose = inspect("3CXDesktopApp.exe", &Options::default());
    assert_eq!(exe.hashes.sha256, loose.hashes.sha256, "the exe inside is the exe that was packed");
    assert!(exe.install_path.as_deref().is_some_and(|p| p.ends_with("/3CXDesktopApp.exe")), "{:?}", exe.install_path);
}

#[test]
fn cab_contents_have_their_own_facts() {
    for name in ["app.cab", "app-mszip.cab"] {
        let f = inspect(name, &Options::default());
        assert_eq!(f.format, Format::Cab);
        assert!(f.parse_error.is_none(), "{name}: {:?}", f.parse_error);
        assert_eq!(f.contents.len(), 2, "{name}");
        let dll = f.contents.iter().find(|c| c.format == Format::PeDll).unwrap();
        assert_eq!(dll.pe.as_ref().unwrap().version_strings.product_name.as_deref(), Some("FFmpeg"));
        assert_eq!(dll.container.as_deref(), Some(f.path.as_str()));
    }
}

#[test]
fn microsoft_signed_runtime_dlls() {
    let dir = fixtures().join("thirdparty");
    let mut checked = 0;
    for (name, kv) in manifest(dir.join("manifest.txt")) {
        let f = inspect_path(&dir.join(&name), &Options::default()).unwrap();
        assert_eq!(hex(&f.hashes.sha256), kv["sha256"], "{name}");
        assert_eq!(hex(&f.authenticode.unwrap().sha256), kv["authenticode-sha256"], "{name}");
        let expected_machine = match kv["machine"].as_str() {
            "AMD64" => "x86_64",
            "I386" => "x86",
            "ARM64" => "arm64",
            other => panic!("{other}"),
        };
        let pe = f.pe.as_ref().unwrap();
        assert_eq!(machine_name(pe.machine), expected_machine, "{name}");
        assert_eq!(pe.version_strings.company_name.as_deref(), Some("Microsoft Corporation"), "{name}");
        let s = &f.signatures[0];
        assert!(s.intact(), "{name}: {s:#?}");
        assert!(s.signer.as_ref().unwrap().subject.contains("O=Microsoft Corporation"), "{name}");
        assert!(s.timestamp.as_ref().is_some_and(|t| t.valid), "{name}: {:?}", s.timestamp);
        checked += 1;
    }
    assert!(checked >= 8, "{checked}");
}

#[test]
fn truncated_and_garbled_files_still_have_facts() {
    let data = std::fs::read(fixtures().join("3CXDesktopApp-signed.msi")).unwrap();
    for cut in [0, 7, 512, 4096, data.len() / 2] {
        let f = inspect_bytes("cut.msi", &data[..cut], &Options::default());
        assert_eq!(f.size, cut as u64);
        if cut >= 8 {
            assert!(f.parse_error.is_some(), "{cut}");
        }
    }
    let exe = std::fs::read(fixtures().join("3CXDesktopApp-signed.exe")).unwrap();
    for cut in [2, 64, 300, 1024, exe.len() - 100] {
        let f = inspect_bytes("cut.exe", &exe[..cut], &Options::default());
        assert_eq!(f.size, cut as u64);
    }
}

fn pem_to_der(pem: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(pem);
    let b64: String = text
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    base64_decode(&b64)
}

fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    let bytes: Vec<u8> = s.bytes().filter(|c| *c != b'=').collect();
    let mut out = Vec::new();
    for chunk in bytes.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= u32::from(val(c)) << (18 - 6 * i);
        }
        let take = chunk.len() * 6 / 8;
        out.extend_from_slice(&n.to_be_bytes()[1..1 + take]);
    }
    out
}

mod sha2_check {
    pub fn digest(data: &[u8]) -> [u8; 32] {
        portcullis_inspect::hash_bytes(data, Default::default()).sha256
    }
}
