//! Trust stores and certificate chains.

use crate::Problem;
use crate::cert::{CertInfo, verify_with_key};
use der::{Decode, Encode};
use x509_cert::Certificate;

/// A set of trusted root certificates, loaded from PEM.
#[derive(Clone, Debug, Default)]
pub struct TrustStore {
    anchors: Vec<Certificate>,
}

/// Why a trust store could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TrustStoreError {
    /// The PEM or DER text could not be decoded.
    #[error("no certificate could be read from the trust store")]
    Unreadable(#[source] der::Error),
    /// The file decodes but holds no certificate.
    #[error("no certificate could be read from the trust store: the file holds no PEM CERTIFICATE block")]
    Empty,
}

/// Whether a certificate chains to the trust store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Trust {
    /// It does: the subjects from the certificate to the root.
    Chained(Vec<String>),
    /// It does not, and why.
    Untrusted(String),
}

impl Trust {
    /// It chains to the trust store.
    pub fn is_trusted(&self) -> bool {
        matches!(self, Trust::Chained(_))
    }

    /// The subjects from the certificate to the root, when it chains.
    pub fn chain(&self) -> Option<&[String]> {
        match self {
            Trust::Chained(chain) => Some(chain),
            Trust::Untrusted(_) => None,
        }
    }

    /// Why it does not chain.
    pub fn refusal(&self) -> Option<&str> {
        match self {
            Trust::Chained(_) => None,
            Trust::Untrusted(why) => Some(why),
        }
    }

    pub(crate) fn judged(chain: Result<Vec<String>, Problem>) -> Trust {
        match chain {
            Ok(subjects) => Trust::Chained(subjects),
            Err(why) => Trust::Untrusted(why.report()),
        }
    }
}

impl TrustStore {
    /// Read every `CERTIFICATE` block of a PEM bundle.
    pub fn from_pem(pem: &[u8]) -> Result<TrustStore, TrustStoreError> {
        let anchors = Certificate::load_pem_chain(pem).map_err(TrustStoreError::Unreadable)?;
        if anchors.is_empty() {
            return Err(TrustStoreError::Empty);
        }
        Ok(TrustStore { anchors })
    }

    /// Add DER certificates.
    pub fn add_der(&mut self, der: &[u8]) -> Result<(), TrustStoreError> {
        self.anchors.push(Certificate::from_der(der).map_err(TrustStoreError::Unreadable)?);
        Ok(())
    }

    /// Number of trusted certificates.
    pub fn len(&self) -> usize {
        self.anchors.len()
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.anchors.is_empty()
    }
}

/// OID of the code-signing extended key usage.
pub(crate) const EKU_CODE_SIGNING: const_oid::ObjectIdentifier =
    const_oid::ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.3");
/// OID of the time-stamping extended key usage.
pub(crate) const EKU_TIME_STAMPING: const_oid::ObjectIdentifier =
    const_oid::ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.8");
const EKU_ANY: const_oid::ObjectIdentifier = const_oid::ObjectIdentifier::new_unwrap("2.5.29.37.0");

fn valid_at(cert: &Certificate, at: i64) -> Result<(), Problem> {
    let v = &cert.tbs_certificate.validity;
    let nb = v.not_before.to_unix_duration().as_secs() as i64;
    let na = v.not_after.to_unix_duration().as_secs() as i64;
    if at < nb || at > na {
        return Err(Problem::new(format!(
            "certificate {:?} is not valid at {} (valid {} to {})",
            cert.tbs_certificate.subject.to_string(),
            crate::format_time(at),
            crate::format_time(nb),
            crate::format_time(na)
        )));
    }
    Ok(())
}

fn extension(cert: &Certificate, oid: const_oid::ObjectIdentifier) -> Option<&x509_cert::ext::Extension> {
    cert.tbs_certificate.extensions.as_ref()?.iter().find(|e| e.extn_id == oid)
}

fn check_eku(cert: &Certificate, wanted: const_oid::ObjectIdentifier) -> Result<(), Problem> {
    let Some(ext) = extension(cert, const_oid::db::rfc5280::ID_CE_EXT_KEY_USAGE) else { return Ok(()) };
    let ekus = x509_cert::ext::pkix::ExtendedKeyUsage::from_der(ext.extn_value.as_bytes())
        .map_err(|e| Problem::caused("unreadable extended key usage", e))?;
    if ekus.0.iter().any(|o| *o == wanted || *o == EKU_ANY) {
        Ok(())
    } else {
        Err(Problem::new(format!(
            "certificate {:?} is not allowed for {}",
            cert.tbs_certificate.subject.to_string(),
            if wanted == EKU_TIME_STAMPING { "time stamping" } else { "code signing" }
        )))
    }
}

fn is_ca(cert: &Certificate) -> bool {
    match extension(cert, const_oid::db::rfc5280::ID_CE_BASIC_CONSTRAINTS) {
        Some(ext) => x509_cert::ext::pkix::BasicConstraints::from_der(ext.extn_value.as_bytes()).is_ok_and(|b| b.ca),
        // Old roots predate the extension; a certificate in the trust store is taken as a CA.
        None => true,
    }
}

fn issued_by(child: &Certificate, issuer: &Certificate) -> bool {
    child.tbs_certificate.issuer.to_der().ok() == issuer.tbs_certificate.subject.to_der().ok()
        && child.tbs_certificate.to_der().is_ok_and(|tbs| {
            verify_with_key(issuer, &child.signature_algorithm.oid, None, &tbs, child.signature.raw_bytes()).is_ok()
        })
}

/// Build and check a chain from `leaf` through `intermediates` to an anchor of `store`, with
/// every certificate valid at `at` and the leaf allowed for `usage`. Returns the subjects from
/// leaf to root.
pub(crate) fn verify_chain(
    leaf: &Certificate,
    intermediates: &[Certificate],
    store: &TrustStore,
    at: i64,
    usage: const_oid::ObjectIdentifier,
) -> Result<Vec<String>, Problem> {
    check_eku(leaf, usage)?;
    let mut path = vec![CertInfo::of(leaf).subject];
    let mut current = leaf;
    for _ in 0..8 {
        valid_at(current, at)?;
        if store.anchors.iter().any(|a| a == current) {
            return Ok(path);
        }
        if let Some(anchor) = store.anchors.iter().find(|a| issued_by(current, a)) {
            valid_at(anchor, at)?;
            path.push(CertInfo::of(anchor).subject);
            return Ok(path);
        }
        let Some(next) = intermediates.iter().find(|c| *c != current && issued_by(current, c) && is_ca(c)) else {
            return Err(Problem::new(format!(
                "no trusted root issued {:?} (issuer {:?}); add the root to the trust store",
                current.tbs_certificate.subject.to_string(),
                current.tbs_certificate.issuer.to_string()
            )));
        };
        path.push(CertInfo::of(next).subject);
        current = next;
    }
    Err("certificate chain is longer than 8".into())
}
