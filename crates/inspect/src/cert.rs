//! Certificates and the signatures they verify: what a certificate says about itself, the
//! digest algorithms signatures use, and checking a signature with a certificate's key.
//! Below both the Authenticode signatures (`signature.rs`) and chain building (`trust.rs`).

use crate::Problem;
use const_oid::ObjectIdentifier as Oid;
use der::Encode;
use sha2::Digest;
use x509_cert::Certificate;

/// A digest algorithm used by a signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DigestAlgorithm {
    /// SHA-1.
    Sha1,
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

impl DigestAlgorithm {
    pub(crate) fn from_oid(oid: &Oid) -> Option<DigestAlgorithm> {
        match oid.to_string().as_str() {
            "1.3.14.3.2.26" | "1.2.840.113549.1.1.5" | "1.2.840.10040.4.3" | "1.2.840.10045.4.1" => {
                Some(DigestAlgorithm::Sha1)
            }
            "2.16.840.1.101.3.4.2.1" | "1.2.840.113549.1.1.11" | "1.2.840.10045.4.3.2" => Some(DigestAlgorithm::Sha256),
            "2.16.840.1.101.3.4.2.2" | "1.2.840.113549.1.1.12" | "1.2.840.10045.4.3.3" => Some(DigestAlgorithm::Sha384),
            "2.16.840.1.101.3.4.2.3" | "1.2.840.113549.1.1.13" | "1.2.840.10045.4.3.4" => Some(DigestAlgorithm::Sha512),
            _ => None,
        }
    }

    /// Hash `data`.
    pub fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            DigestAlgorithm::Sha1 => sha1::Sha1::digest(data).to_vec(),
            DigestAlgorithm::Sha256 => sha2::Sha256::digest(data).to_vec(),
            DigestAlgorithm::Sha384 => sha2::Sha384::digest(data).to_vec(),
            DigestAlgorithm::Sha512 => sha2::Sha512::digest(data).to_vec(),
        }
    }

    /// Lower-case name: `sha1`, `sha256`, …
    pub fn name(self) -> &'static str {
        match self {
            DigestAlgorithm::Sha1 => "sha1",
            DigestAlgorithm::Sha256 => "sha256",
            DigestAlgorithm::Sha384 => "sha384",
            DigestAlgorithm::Sha512 => "sha512",
        }
    }
}

/// What a certificate says about itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertInfo {
    /// Subject, RFC 4514.
    pub subject: String,
    /// Issuer, RFC 4514.
    pub issuer: String,
    /// Serial number, lower-case hex.
    pub serial: String,
    /// SHA-256 of the DER certificate (its thumbprint).
    pub sha256: [u8; 32],
    /// Start of validity, Unix seconds.
    pub not_before: i64,
    /// End of validity, Unix seconds.
    pub not_after: i64,
}

impl CertInfo {
    pub(crate) fn of(cert: &Certificate) -> CertInfo {
        let tbs = &cert.tbs_certificate;
        CertInfo {
            subject: tbs.subject.to_string(),
            issuer: tbs.issuer.to_string(),
            serial: crate::hashing::hex(tbs.serial_number.as_bytes()),
            sha256: cert.to_der().map(|d| sha2::Sha256::digest(&d).into()).unwrap_or([0; 32]),
            not_before: tbs.validity.not_before.to_unix_duration().as_secs() as i64,
            not_after: tbs.validity.not_after.to_unix_duration().as_secs() as i64,
        }
    }
}

/// Verify `signature` over `message` with the public key of `cert`.
pub(crate) fn verify_with_key(
    cert: &Certificate,
    sig_alg: &Oid,
    digest: Option<DigestAlgorithm>,
    message: &[u8],
    signature: &[u8],
) -> Result<(), Problem> {
    use ring::signature as rs;
    let spki = &cert.tbs_certificate.subject_public_key_info;
    let key = spki.subject_public_key.raw_bytes();
    let hash = DigestAlgorithm::from_oid(sig_alg)
        .or(digest)
        .ok_or_else(|| Problem::new(format!("unsupported signature algorithm {sig_alg}")))?;
    let alg: &dyn rs::VerificationAlgorithm = match spki.algorithm.oid.to_string().as_str() {
        "1.2.840.113549.1.1.1" => match hash {
            DigestAlgorithm::Sha1 => &rs::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
            DigestAlgorithm::Sha256 => &rs::RSA_PKCS1_2048_8192_SHA256,
            DigestAlgorithm::Sha384 => &rs::RSA_PKCS1_2048_8192_SHA384,
            DigestAlgorithm::Sha512 => &rs::RSA_PKCS1_2048_8192_SHA512,
        },
        "1.2.840.10045.2.1" => {
            let curve =
                spki.algorithm.parameters.as_ref().and_then(|p| p.decode_as::<Oid>().ok()).map(|o| o.to_string());
            match (curve.as_deref(), hash) {
                (Some("1.2.840.10045.3.1.7"), DigestAlgorithm::Sha256) => &rs::ECDSA_P256_SHA256_ASN1,
                (Some("1.2.840.10045.3.1.7"), DigestAlgorithm::Sha384) => &rs::ECDSA_P256_SHA384_ASN1,
                (Some("1.3.132.0.34"), DigestAlgorithm::Sha256) => &rs::ECDSA_P384_SHA256_ASN1,
                (Some("1.3.132.0.34"), DigestAlgorithm::Sha384) => &rs::ECDSA_P384_SHA384_ASN1,
                (c, h) => return Err(Problem::new(format!("unsupported ECDSA curve/hash {c:?}/{}", h.name()))),
            }
        }
        other => return Err(Problem::new(format!("unsupported public key algorithm {other}"))),
    };
    rs::UnparsedPublicKey::new(alg, key).verify(message, signature).map_err(|_| {
        Problem::new(format!(
            "the signature does not verify with the key of {:?}",
            cert.tbs_certificate.subject.to_string()
        ))
    })
}
