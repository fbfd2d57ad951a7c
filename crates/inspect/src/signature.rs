//! Authenticode signatures: PKCS#7 SignedData parsing and verification, countersigned
//! timestamps (RFC 3161 and legacy), nested signatures, and chains to a trust store.

use crate::Problem;
use crate::cert::verify_with_key;
pub use crate::cert::{CertInfo, DigestAlgorithm};
pub use crate::trust::Trust;
use crate::trust::{EKU_CODE_SIGNING, EKU_TIME_STAMPING, TrustStore, verify_chain};
use cms::content_info::ContentInfo;
use cms::signed_data::{SignerIdentifier, SignerInfo};
use const_oid::ObjectIdentifier as Oid;
use der::asn1::{Int, OctetString};
use der::{Decode, Encode, Reader, Tagged};
use x509_cert::Certificate;

const SPC_INDIRECT_DATA: Oid = Oid::new_unwrap("1.3.6.1.4.1.311.2.1.4");
const SPC_NESTED_SIGNATURE: Oid = Oid::new_unwrap("1.3.6.1.4.1.311.2.4.1");
const MS_RFC3161_TIMESTAMP: Oid = Oid::new_unwrap("1.3.6.1.4.1.311.3.3.1");
const PKCS9_COUNTERSIGNATURE: Oid = Oid::new_unwrap("1.2.840.113549.1.9.6");
const PKCS9_MESSAGE_DIGEST: Oid = Oid::new_unwrap("1.2.840.113549.1.9.4");
const PKCS9_SIGNING_TIME: Oid = Oid::new_unwrap("1.2.840.113549.1.9.5");
const ID_SIGNED_DATA: Oid = Oid::new_unwrap("1.2.840.113549.1.7.2");
const ID_CT_TSTINFO: Oid = Oid::new_unwrap("1.2.840.113549.1.9.16.1.4");

/// How a timestamp is attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimestampKind {
    /// RFC 3161 time-stamp token (Microsoft's unsigned attribute 1.3.6.1.4.1.311.3.3.1).
    Rfc3161,
    /// PKCS#9 countersignature with a signing time.
    Legacy,
}

/// A countersigned timestamp on a signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timestamp {
    /// RFC 3161 or legacy.
    pub kind: TimestampKind,
    /// The time it vouches for, Unix seconds.
    pub time: i64,
    /// The time-stamping authority's certificate.
    pub signer: Option<CertInfo>,
    /// It covers this signature and its own signature verifies.
    pub valid: bool,
    /// Why it is not valid.
    pub error: Option<String>,
    /// Chain of the authority to the trust store (`None` without a trust store).
    pub trusted: Option<Trust>,
}

/// One Authenticode signature (the primary one, or a nested one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signature {
    /// 0 for the primary signature, then nested ones in order.
    pub index: usize,
    /// The digest algorithm of the signed Authenticode hash.
    pub digest_algorithm: Option<DigestAlgorithm>,
    /// The Authenticode digest the signer signed.
    pub signed_digest: Vec<u8>,
    /// Whether that digest equals the file's (`None` if the algorithm is not supported).
    pub digest_matches: Option<bool>,
    /// The signer's certificate.
    pub signer: Option<CertInfo>,
    /// The cryptographic signature verifies with the signer's key.
    pub signature_valid: bool,
    /// What failed, if anything.
    pub error: Option<String>,
    /// The countersigned timestamp.
    pub timestamp: Option<Timestamp>,
    /// Every certificate carried in the signature.
    pub certificates: Vec<CertInfo>,
    /// Chain to the trust store, judged at the timestamp when there is a valid one (`None`
    /// without a trust store).
    pub trusted: Option<Trust>,
    /// The moment the chain was judged at, Unix seconds.
    pub judged_at: Option<i64>,
}

impl Signature {
    /// Digest matches and signature verifies: the file is as its signer signed it.
    pub fn intact(&self) -> bool {
        self.digest_matches == Some(true) && self.signature_valid
    }

    /// Intact and chained to the trust store.
    pub fn verified(&self) -> bool {
        self.intact() && self.trusted.as_ref().is_some_and(Trust::is_trusted)
    }
}

/// Inputs to verification.
#[derive(Clone, Copy, Debug)]
pub struct VerifyOptions<'a> {
    /// Trusted roots; without them chains are not judged.
    pub trust: Option<&'a TrustStore>,
    /// The current time, Unix seconds, for signatures without a valid timestamp.
    pub now: i64,
}

/// Parse the SignedData blob and verify every signature in it against the file's digest,
/// computed on demand by `file_digest` for the algorithm each signature uses.
pub(crate) fn signatures(
    der: &[u8],
    file_digest: &dyn Fn(DigestAlgorithm) -> Option<Vec<u8>>,
    opts: &VerifyOptions<'_>,
) -> Result<Vec<Signature>, Problem> {
    let mut out = Vec::new();
    collect(der, file_digest, opts, &mut out, 0)?;
    Ok(out)
}

fn collect(
    der: &[u8],
    file_digest: &dyn Fn(DigestAlgorithm) -> Option<Vec<u8>>,
    opts: &VerifyOptions<'_>,
    out: &mut Vec<Signature>,
    depth: usize,
) -> Result<(), Problem> {
    if depth > 4 || out.len() > 16 {
        return Err("too many nested signatures".into());
    }
    let signed_data = signed_data(der)?;
    if signed_data.encap_content_info.econtent_type != SPC_INDIRECT_DATA {
        return Err(Problem::new(format!(
            "signature content type is {}, not Authenticode SpcIndirectDataContent",
            signed_data.encap_content_info.econtent_type
        )));
    }
    let content = signed_data.encap_content_info.econtent.as_ref().ok_or("signature has no content")?;
    let indirect: authenticode::SpcIndirectDataContent =
        content.decode_as().map_err(|e| Problem::caused("unreadable SpcIndirectDataContent", e))?;
    let certs = signed_data.certificates.clone();
    let cert_infos: Vec<CertInfo> = certs.iter().map(CertInfo::of).collect();
    for signer_info in signed_data.signer_infos.iter() {
        let digest_algorithm = DigestAlgorithm::from_oid(&indirect.message_digest.digest_algorithm.oid);
        let signed_digest = indirect.message_digest.digest.as_bytes().to_vec();
        let digest_matches = digest_algorithm.and_then(file_digest).map(|d| d == signed_digest);
        let signer_cert = find_signer(&certs, &signer_info.sid);
        // Authenticode hashes the content of SpcIndirectDataContent without its tag and length.
        let checked = verify_signer_info(signer_info, signer_cert, content.value());
        let timestamp = timestamp(signer_info, &certs, opts);
        let judged_at = match &timestamp {
            Some(ts) if ts.valid && !matches!(ts.trusted, Some(Trust::Untrusted(_))) => ts.time,
            _ => opts.now,
        };
        let trusted = match (opts.trust, signer_cert) {
            (Some(store), Some(leaf)) => {
                Some(Trust::judged(verify_chain(leaf, &certs, store, judged_at, EKU_CODE_SIGNING)))
            }
            (Some(_), None) => Some(Trust::Untrusted("the signer's certificate is not in the signature".into())),
            (None, _) => None,
        };
        let signature_valid = checked.is_ok();
        let mut error = checked.err().map(|e| e.report());
        if digest_matches == Some(false) && error.is_none() {
            error = Some(
                "the file's Authenticode digest differs from the signed one: the file was changed after signing".into(),
            );
        }
        if digest_algorithm.is_none() && error.is_none() {
            error = Some(format!("unsupported digest algorithm {}", indirect.message_digest.digest_algorithm.oid));
        }
        out.push(Signature {
            index: out.len(),
            digest_algorithm,
            signed_digest,
            digest_matches,
            signer: signer_cert.map(CertInfo::of),
            signature_valid,
            error,
            timestamp,
            certificates: cert_infos.clone(),
            trusted,
            judged_at: opts.trust.map(|_| judged_at),
        });
        for attr in signer_info.unsigned_attrs.iter().flat_map(|a| a.iter()) {
            if attr.oid == SPC_NESTED_SIGNATURE {
                for value in attr.values.iter() {
                    let nested = value.to_der().map_err(|e| Problem::caused("unreadable nested signature", e))?;
                    collect(&nested, file_digest, opts, out, depth + 1)?;
                }
            }
        }
    }
    Ok(())
}

/// The parts of a SignedData that Authenticode needs.
struct SignedParts {
    encap_content_info: cms::signed_data::EncapsulatedContentInfo,
    certificates: Vec<Certificate>,
    signer_infos: Vec<SignerInfo>,
}

/// Decode a ContentInfo holding SignedData, leniently: Microsoft's time-stamp tokens carry
/// attribute certificates (`[1]` choices) that strict decoders reject, and some signers emit
/// unsorted or duplicate SET OF members. Unknown certificate choices are skipped; the signed
/// bytes are not re-interpreted.
fn signed_data(der: &[u8]) -> Result<SignedParts, Problem> {
    let mut reader = der::SliceReader::new(der).map_err(|e| Problem::caused("unreadable PKCS#7 ContentInfo", e))?;
    let info = ContentInfo::decode(&mut reader).map_err(|e| Problem::caused("unreadable PKCS#7 ContentInfo", e))?;
    if info.content_type != ID_SIGNED_DATA {
        return Err(Problem::new(format!("PKCS#7 content type is {}, not SignedData", info.content_type)));
    }
    let parsed = info
        .content
        .sequence(|r| {
            let _version = Int::decode(r)?;
            let _digest_algorithms = der::Any::decode(r)?;
            let encap_content_info = cms::signed_data::EncapsulatedContentInfo::decode(r)?;
            let mut certificates = Vec::new();
            let mut next = der::Any::decode(r)?;
            if next.tag() == (der::Tag::ContextSpecific { constructed: true, number: der::TagNumber::N0 }) {
                for element in elements(next.value())? {
                    if element.tag() == der::Tag::Sequence {
                        certificates.push(element.decode_as::<Certificate>()?);
                    }
                }
                next = der::Any::decode(r)?;
            }
            if next.tag() == (der::Tag::ContextSpecific { constructed: true, number: der::TagNumber::N1 }) {
                next = der::Any::decode(r)?;
            }
            let mut signer_infos = Vec::new();
            for element in elements(next.value())? {
                signer_infos.push(element.decode_as::<SignerInfo>()?);
            }
            Ok(SignedParts { encap_content_info, certificates, signer_infos })
        })
        .map_err(|e| Problem::caused("unreadable PKCS#7 SignedData", e))?;
    Ok(parsed)
}

/// The TLV elements of a SET or SEQUENCE body.
fn elements(body: &[u8]) -> der::Result<Vec<der::Any>> {
    let mut reader = der::SliceReader::new(body)?;
    let mut out = Vec::new();
    while !reader.is_finished() {
        out.push(der::Any::decode(&mut reader)?);
    }
    Ok(out)
}

fn find_signer<'a>(certs: &'a [Certificate], sid: &SignerIdentifier) -> Option<&'a Certificate> {
    match sid {
        SignerIdentifier::IssuerAndSerialNumber(ias) => certs
            .iter()
            .find(|c| c.tbs_certificate.serial_number == ias.serial_number && c.tbs_certificate.issuer == ias.issuer),
        SignerIdentifier::SubjectKeyIdentifier(ski) => certs.iter().find(|c| {
            c.tbs_certificate.extensions.iter().flatten().any(|e| {
                e.extn_id == const_oid::db::rfc5280::ID_CE_SUBJECT_KEY_IDENTIFIER
                    && x509_cert::ext::pkix::SubjectKeyIdentifier::from_der(e.extn_value.as_bytes())
                        .is_ok_and(|k| k.0 == ski.0)
            })
        }),
    }
}

fn attribute(attrs: &x509_cert::attr::Attributes, oid: Oid) -> Option<&der::Any> {
    attrs.iter().find(|a| a.oid == oid).and_then(|a| a.values.iter().next())
}

/// Check a SignerInfo: its messageDigest attribute covers `content`, and its signature
/// over the attributes verifies with `cert`'s key.
fn verify_signer_info(si: &SignerInfo, cert: Option<&Certificate>, content: &[u8]) -> Result<(), Problem> {
    let cert = cert.ok_or("the signer's certificate is not in the signature")?;
    let alg = DigestAlgorithm::from_oid(&si.digest_alg.oid)
        .ok_or_else(|| Problem::new(format!("unsupported signer digest algorithm {}", si.digest_alg.oid)))?;
    let message = match &si.signed_attrs {
        Some(attrs) => {
            let md = attribute(attrs, PKCS9_MESSAGE_DIGEST).ok_or("signed attributes lack messageDigest")?;
            let md: OctetString = md.decode_as().map_err(|e| Problem::caused("unreadable messageDigest", e))?;
            if md.as_bytes() != alg.hash(content).as_slice() {
                return Err("the signed messageDigest does not match the signed content".into());
            }
            attrs.to_der().map_err(|e| Problem::caused("unreadable signed attributes", e))?
        }
        None => content.to_vec(),
    };
    verify_with_key(cert, &si.signature_algorithm.oid, Some(alg), &message, si.signature.as_bytes())
}

fn timestamp(si: &SignerInfo, outer_certs: &[Certificate], opts: &VerifyOptions<'_>) -> Option<Timestamp> {
    let attrs = si.unsigned_attrs.as_ref()?;
    if let Some(token) = attribute(attrs, MS_RFC3161_TIMESTAMP) {
        return Some(rfc3161(token, si.signature.as_bytes(), outer_certs, opts));
    }
    let counter = attribute(attrs, PKCS9_COUNTERSIGNATURE)?;
    Some(legacy(counter, si.signature.as_bytes(), outer_certs, opts))
}

fn failed(kind: TimestampKind, error: String) -> Timestamp {
    Timestamp { kind, time: 0, signer: None, valid: false, error: Some(error), trusted: None }
}

struct TstInfo {
    imprint_alg: Oid,
    imprint: Vec<u8>,
    gen_time: i64,
}

fn tst_info(der: &[u8]) -> der::Result<TstInfo> {
    der::asn1::AnyRef::from_der(der)?.sequence(|r| {
        let _version = Int::decode(r)?;
        let _policy = Oid::decode(r)?;
        let (imprint_alg, imprint) = r.sequence(|r| {
            let alg = spki::AlgorithmIdentifierOwned::decode(r)?;
            let digest = OctetString::decode(r)?;
            Ok((alg.oid, digest.as_bytes().to_vec()))
        })?;
        let _serial = Int::decode(r)?;
        // RFC 3161 allows fractional seconds ("20250610222920.819Z"), which DER's
        // GeneralizedTime type refuses; read the text.
        let time = der::Any::decode(r)?;
        if time.tag() != der::Tag::GeneralizedTime {
            return Err(der::Tag::GeneralizedTime.value_error());
        }
        let gen_time = parse_generalized_time(time.value()).ok_or_else(|| der::Tag::GeneralizedTime.value_error())?;
        let rest = r.remaining_len();
        r.read_slice(rest)?;
        Ok(TstInfo { imprint_alg, imprint, gen_time })
    })
}

fn rfc3161(token: &der::Any, signature: &[u8], outer_certs: &[Certificate], opts: &VerifyOptions<'_>) -> Timestamp {
    let kind = TimestampKind::Rfc3161;
    let Ok(token_der) = token.to_der() else { return failed(kind, "unreadable timestamp token".into()) };
    let sd = match signed_data(&token_der) {
        Ok(sd) => sd,
        Err(e) => return failed(kind, e.within("timestamp token").report()),
    };
    if sd.encap_content_info.econtent_type != ID_CT_TSTINFO {
        return failed(kind, "timestamp token does not hold a TSTInfo".into());
    }
    let Some(tst_der) = sd.encap_content_info.econtent.as_ref().and_then(|c| c.decode_as::<OctetString>().ok()) else {
        return failed(kind, "timestamp token has no content".into());
    };
    let info = match tst_info(tst_der.as_bytes()) {
        Ok(i) => i,
        Err(e) => return failed(kind, format!("unreadable TSTInfo: {e}")),
    };
    let mut certs = sd.certificates.clone();
    certs.extend(outer_certs.iter().cloned());
    let Some(si) = sd.signer_infos.first() else { return failed(kind, "timestamp token has no signer".into()) };
    let tsa = find_signer(&certs, &si.sid);
    let mut error = None;
    match DigestAlgorithm::from_oid(&info.imprint_alg) {
        Some(alg) if alg.hash(signature) == info.imprint => {}
        Some(_) => error = Some("the timestamp covers another signature (message imprint differs)".to_string()),
        None => error = Some(format!("unsupported imprint algorithm {}", info.imprint_alg)),
    }
    if error.is_none() {
        error = verify_signer_info(si, tsa, tst_der.as_bytes()).err().map(|e| e.report());
    }
    finish(kind, info.gen_time, tsa, error, &certs, opts)
}

fn legacy(counter: &der::Any, signature: &[u8], outer_certs: &[Certificate], opts: &VerifyOptions<'_>) -> Timestamp {
    let kind = TimestampKind::Legacy;
    let si: SignerInfo = match counter.decode_as() {
        Ok(si) => si,
        Err(e) => return failed(kind, format!("unreadable countersignature: {e}")),
    };
    let time = si
        .signed_attrs
        .as_ref()
        .and_then(|a| attribute(a, PKCS9_SIGNING_TIME))
        .and_then(|t| t.to_der().ok())
        .and_then(|der| x509_cert::time::Time::from_der(&der).ok())
        .map(|t| t.to_unix_duration().as_secs() as i64);
    let Some(time) = time else { return failed(kind, "countersignature has no signing time".into()) };
    let tsa = find_signer(outer_certs, &si.sid);
    let error = verify_signer_info(&si, tsa, signature).err().map(|e| e.report());
    finish(kind, time, tsa, error, outer_certs, opts)
}

fn finish(
    kind: TimestampKind,
    time: i64,
    tsa: Option<&Certificate>,
    error: Option<String>,
    certs: &[Certificate],
    opts: &VerifyOptions<'_>,
) -> Timestamp {
    let trusted = match (opts.trust, tsa) {
        (Some(store), Some(cert)) if error.is_none() => {
            Some(Trust::judged(verify_chain(cert, certs, store, time, EKU_TIME_STAMPING)))
        }
        (Some(_), _) => Some(Trust::Untrusted("timestamp not verified".into())),
        (None, _) => None,
    };
    Timestamp { kind, time, signer: tsa.map(CertInfo::of), valid: error.is_none(), error, trusted }
}

/// `YYYYMMDDHHMMSS[.f*]Z` to Unix seconds.
fn parse_generalized_time(text: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(text).ok()?.strip_suffix('Z')?;
    let whole = text.split('.').next()?;
    if whole.len() != 14 || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n = |r: std::ops::Range<usize>| whole[r].parse::<i64>().ok();
    let (y, mo, d, h, mi, s) = (n(0..4)?, n(4..6)?, n(6..8)?, n(8..10)?, n(10..12)?, n(12..14)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    // Days from civil (Howard Hinnant).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if mo > 2 { mo - 3 } else { mo + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + mi * 60 + s)
}

#[cfg(test)]
mod tests {
    #[test]
    fn generalized_time_with_fractions() {
        assert_eq!(super::parse_generalized_time(b"20240301120000Z"), Some(1_709_294_400));
        assert_eq!(super::parse_generalized_time(b"20250610222920.819Z"), Some(1_749_594_560));
        assert_eq!(super::parse_generalized_time(b"2025061022292Z"), None);
        assert_eq!(crate::format_time(1_749_594_560), "2025-06-10T22:29:20Z");
    }
}
