//! The Portcullis agent sync protocol, shared by the server and the agent.
//!
//! An agent enrolls once with its group's token ([`EnrollRequest`]) and receives a
//! credential of its own and the organization's bundle key ([`Enrolled`]). From then on it
//! long-polls for the policy: the server answers with a [`Bundle`], a JSON payload signed
//! with ed25519, whose version only grows. The agent checks the signature and the version
//! before it enforces anything, keeps the last good bundle on disk and enforces it while
//! the server cannot be reached.
//!
//! Events go up in batches of the agent's spool lines, sent verbatim ([`EventBatch`]); the
//! server keys each by the SHA-256 of its bytes ([`event_key`]), so a batch sent twice
//! stores every event once.
//!
//! ```
//! use portcullis_protocol::{BundleKey, BundlePayload};
//! let key = BundleKey::from_seed([7; 32]);
//! let payload = BundlePayload::new("acme", 3, 0, Default::default(), "{}").unwrap();
//! let bundle = key.sign(&payload);
//! let checked = bundle.verify(&key.public(), 2).unwrap();
//! assert_eq!(checked.version, 3);
//! assert!(bundle.verify(&key.public(), 3).is_err()); // not newer than what the agent has
//! ```

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
pub mod bypass;

use portcullis_policy_file::document::{ComputerDoc, Document};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// Where the agent API lives on the server.
pub mod paths {
    /// `POST` [`super::EnrollRequest`] → [`super::Enrolled`].
    pub const ENROLL: &str = "/api/agent/enroll";
    /// `POST` [`super::PollRequest`] → 200 with a bundle, or 204 when nothing changed before
    /// the wait ended.
    pub const POLL: &str = "/api/agent/poll";
    /// `POST` [`super::EventBatch`] → [`super::EventBatchReply`].
    pub const EVENTS: &str = "/api/agent/events";
    /// `POST` [`super::PackageReport`] → [`super::PackageReportReply`]: the host's installed
    /// packages, whole, at start and after each change.
    pub const PACKAGES: &str = "/api/agent/packages";
    /// `POST` [`super::BypassKey`] → 204: the agent's key for offline bypass codes
    /// ([`super::bypass`]), sent at each start (the same key until its state is lost).
    pub const BYPASS_KEY: &str = "/api/agent/bypass-key";
    /// `POST` [`super::RequestBatch`] → [`super::RequestStatuses`]: approval requests made on
    /// the host, and how the ones asked about were decided.
    pub const REQUESTS: &str = "/api/agent/requests";
    /// `POST` [`super::CaptureBatch`] → [`super::CaptureReply`]: files an Installation window
    /// captured on the host, for the window's application.
    pub const CAPTURES: &str = "/api/agent/captures";
}

/// The error message of a 403 answered to an agent whose enrollment waits for an
/// administrator: the server sends it, the agent recognizes it and waits.
pub const ENROLLMENT_PENDING: &str =
    "this agent's enrollment waits for an administrator to accept it in the console (Computers → Pending enrollments)";

/// The header that carries a bundle's signature (hex).
pub const SIGNATURE_HEADER: &str = "x-portcullis-signature";

/// The largest bundle an agent reads (a larger answer is refused unread): bundles carry
/// blocklists of up to millions of hashes, never more than this.
pub const MAX_BUNDLE_BYTES: u64 = 256 << 20;
/// The largest reply to anything else an agent asks (enrollment, event receipts).
pub const MAX_REPLY_BYTES: u64 = 1 << 20;

/// Host-fact limits: what the server keeps of each field.
pub mod limits {
    /// A host name (DNS allows 253).
    pub const HOSTNAME: usize = 253;
    /// Distribution and release.
    pub const OS_RELEASE: usize = 200;
    /// Kernel release.
    pub const KERNEL: usize = 100;
    /// CPU architecture.
    pub const ARCH: usize = 32;
    /// Agent version.
    pub const AGENT_VERSION: usize = 64;
    /// A bundle failure report.
    pub const BUNDLE_ERROR: usize = 2000;
    /// Packages in one report (a large desktop has about 6,000; a report with more is
    /// refused whole).
    pub const PACKAGES: usize = 50_000;
    /// A package's name, with its `dpkg:`/`rpm:` prefix.
    pub const PACKAGE_NAME: usize = 200;
    /// A package's version.
    pub const PACKAGE_VERSION: usize = 128;
    /// A package's architecture.
    pub const PACKAGE_ARCH: usize = 32;
    /// The largest package report body the server reads.
    pub const PACKAGE_REPORT_BYTES: usize = 16 << 20;
    /// New approval requests in one batch.
    pub const REQUESTS: usize = 20;
    /// Request ids asked about in one batch.
    pub const REQUEST_IDS: usize = 200;
    /// A request's reason.
    pub const REQUEST_REASON: usize = 1000;
    /// Captured files in one batch (an agent sends more in several).
    pub const CAPTURES: usize = 500;
    /// Captured files one Installation window may add to its application, in total: an
    /// agent that sends more is refused, so a hostile one cannot grow a model without bound.
    pub const CAPTURES_PER_APPLICATION: usize = 20_000;
    /// A captured file's path, or the installer's.
    pub const CAPTURE_PATH: usize = 1024;
}

/// Why host facts were refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HostError {
    /// Not a host name.
    #[error("host name {0:?} is refused: a host name is 1 to 253 characters of letters, digits, '.', '-' and '_'")]
    Hostname(String),
    /// Not an operating system Portcullis knows.
    #[error("operating system {0:?} is refused: use linux, windows or macos")]
    Os(String),
}

/// `text` without control characters, cut at `max` bytes (on a character boundary).
pub fn bounded_text(text: &str, max: usize) -> String {
    let mut out: String = text.chars().filter(|c| !c.is_control()).collect();
    if out.len() > max {
        let mut cut = max;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
    }
    out.trim().to_owned()
}

/// Whether `name` is a host name the server takes (compared with others ignoring ASCII case).
pub fn valid_hostname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= limits::HOSTNAME
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
        && !name.starts_with(['.', '-'])
}

/// What an agent tells the server about its host.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HostFacts {
    /// Host name.
    pub hostname: String,
    /// `linux`, `windows` or `macos`.
    pub os: String,
    /// Distribution and release (`PRETTY_NAME` of os-release).
    #[serde(default)]
    pub os_release: String,
    /// Kernel release.
    #[serde(default)]
    pub kernel: String,
    /// CPU architecture.
    #[serde(default)]
    pub arch: String,
    /// The agent's version.
    pub agent_version: String,
}

impl HostFacts {
    /// The facts as the server keeps them: a valid host name, a known operating system in
    /// its canonical name, and every other field without control characters and bounded
    /// ([`limits`]). What an agent claims is checked here, where it enters, so that no
    /// claim can make the organization's model fail to load.
    pub fn normalized(&self) -> Result<HostFacts, HostError> {
        let hostname = self.hostname.trim();
        if !valid_hostname(hostname) {
            return Err(HostError::Hostname(bounded_text(&self.hostname, 80)));
        }
        let os = portcullis_policy::Os::from_name(self.os.trim())
            .ok_or_else(|| HostError::Os(bounded_text(&self.os, 40)))?;
        Ok(HostFacts {
            hostname: hostname.to_owned(),
            os: os.name().to_owned(),
            os_release: bounded_text(&self.os_release, limits::OS_RELEASE),
            kernel: bounded_text(&self.kernel, limits::KERNEL),
            arch: bounded_text(&self.arch, limits::ARCH),
            agent_version: bounded_text(&self.agent_version, limits::AGENT_VERSION),
        })
    }
}

/// First contact: the group's enrollment token and the host.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    /// The enrollment token of the group the computer joins.
    pub token: String,
    /// The host.
    pub host: HostFacts,
    /// The agent's current credential, when it enrolls again as the computer it already
    /// is (a re-key). Without it, enrolling under a name that is taken is held for an
    /// administrator to accept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_credential: Option<String>,
}

/// What enrollment gives the agent.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Enrolled {
    /// The organization.
    pub organization: String,
    /// The computer's name in the console.
    pub computer: String,
    /// The agent's own credential, sent as `Authorization: Bearer` from now on. Shown once.
    pub credential: String,
    /// The organization's bundle key (ed25519 public key, hex).
    pub bundle_key: String,
    /// The computer name is taken: this enrollment waits for an administrator to accept
    /// it in the console (until then the credential is answered 403 "pending").
    #[serde(default)]
    pub pending: bool,
}

pub use portcullis_events::PolicyHit;

/// A long-poll: "I have version `after`; answer when there is a newer one".
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PollRequest {
    /// The version the agent enforces (0: none yet).
    pub after: i64,
    /// The host, when it changed (sent on the first poll after start).
    #[serde(default)]
    pub host: Option<HostFacts>,
    /// How long the server may hold the request, in seconds (the server caps it).
    #[serde(default)]
    pub wait_s: Option<u64>,
    /// The version actually in force, when it differs from `after` (a newer bundle was
    /// received and refused: `after` is that one, so the same bundle is not sent again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enforcing: Option<i64>,
    /// Why the last bundle received was not enforced (it did not load, or named another
    /// organization or computer); the agent keeps enforcing `after`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle_error: Option<String>,
    /// Events the agent could not keep (its spool's filesystem full or failing) since it last
    /// reported them.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub events_lost: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The signed part of a bundle.
#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BundlePayload {
    /// The organization.
    pub organization: String,
    /// Grows with every change to the organization's model.
    pub version: i64,
    /// When the server made it, Unix milliseconds.
    pub issued_ms: i64,
    /// The computer the bundle is for, with its group and mode.
    pub computer: ComputerDoc,
    /// The organization's policy document (without computers): a [`Document`] as JSON.
    #[cfg_attr(feature = "openapi", schema(value_type = Document))]
    pub document: Box<RawValue>,
    /// How the organization's bundle key came to be the one that signed this bundle: each
    /// key it ever had endorsed by the key before it, oldest first (the last
    /// [`MAX_KEY_CHAIN`]). An agent that holds an older key follows the chain to the
    /// signer ([`Bundle::signer`]), so a rotation needs no re-enrollment.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub key_chain: Vec<KeyEndorsement>,
}

impl BundlePayload {
    /// A payload around an already-serialized document.
    pub fn new(
        organization: &str,
        version: i64,
        issued_ms: i64,
        computer: ComputerDoc,
        document_json: &str,
    ) -> Result<BundlePayload, BundleError> {
        Ok(BundlePayload {
            organization: organization.to_owned(),
            version,
            issued_ms,
            computer,
            document: RawValue::from_string(document_json.to_owned())
                .map_err(|e| BundleError::Malformed(e.to_string()))?,
            key_chain: Vec::new(),
        })
    }

    /// Refuse a payload made for another organization or computer (a server, or anyone
    /// holding the organization's key, cannot hand one computer's bundle to another).
    pub fn check_target(&self, organization: &str, computer: &str) -> Result<(), BundleError> {
        if self.organization != organization || !self.computer.name.eq_ignore_ascii_case(computer) {
            return Err(BundleError::WrongTarget {
                organization: self.organization.clone(),
                computer: self.computer.name.clone(),
            });
        }
        Ok(())
    }

    /// The policy document the agent enforces: the organization's document with this
    /// computer added, as JSON for `portcullis_policy_file::parse(.., Format::Json, ..)`.
    pub fn policy_json(&self) -> Result<String, BundleError> {
        let mut doc: Document =
            serde_json::from_str(self.document.get()).map_err(|e| BundleError::Malformed(e.to_string()))?;
        // Items scoped to other computers never apply here, and would name computers this
        // document does not hold.
        let other = |scope: &str| {
            scope
                .parse::<portcullis_policy::Scope>()
                .is_ok_and(|s| s.computer().is_some_and(|c| !c.eq_ignore_ascii_case(&self.computer.name)))
        };
        doc.policies.retain(|p| !p.scope.as_deref().is_some_and(other));
        for b in &mut doc.blocklists {
            b.approved.retain(|s| !other(s));
            b.approved_monitor.retain(|s| !other(s));
        }
        doc.computers = vec![self.computer.clone()];
        Ok(doc.to_json())
    }
}

/// Why a bundle was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BundleError {
    /// The signature does not verify with the organization's key.
    #[error("the bundle's signature does not verify with the organization's bundle key")]
    BadSignature,
    /// Not newer than what the agent already enforces (a replay or a rollback).
    #[error("bundle version {got} is not newer than version {have}, which this agent already enforces")]
    NotNewer {
        /// The bundle's version.
        got: i64,
        /// The agent's.
        have: i64,
    },
    /// Not the JSON a bundle is.
    #[error("malformed bundle: {0}")]
    Malformed(String),
    /// Made for another organization or computer.
    #[error("the bundle is for computer {computer:?} of organization {organization:?}, not for this agent")]
    WrongTarget {
        /// The organization it names.
        organization: String,
        /// The computer it names.
        computer: String,
    },
    /// Larger than [`MAX_BUNDLE_BYTES`].
    #[error("the bundle is larger than {} MiB", MAX_BUNDLE_BYTES >> 20)]
    TooLarge,
}

/// A payload and its signature, as sent: the payload bytes are the response body and the
/// signature travels in [`SIGNATURE_HEADER`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bundle {
    /// The payload, JSON.
    pub payload: Vec<u8>,
    /// ed25519 over `payload`.
    pub signature: [u8; 64],
}

impl Bundle {
    /// The signature as hex, for the header.
    pub fn signature_hex(&self) -> String {
        hex(&self.signature)
    }

    /// A bundle from a body and the signature header.
    pub fn from_parts(payload: Vec<u8>, signature_hex: &str) -> Result<Bundle, BundleError> {
        let bytes = unhex(signature_hex.trim()).ok_or(BundleError::BadSignature)?;
        let signature = <[u8; 64]>::try_from(bytes.as_slice()).map_err(|_| BundleError::BadSignature)?;
        Ok(Bundle { payload, signature })
    }

    /// The key that signed this bundle, reached from `trusted` (the key the agent holds)
    /// through the endorsements the bundle carries: `trusted` itself when it signed, else
    /// the end of a chain of endorsements that starts at `trusted`, each signed by the key
    /// before it and naming the bundle's organization. Anything else is a bad signature.
    pub fn signer(&self, trusted: &BundlePublicKey) -> Result<BundlePublicKey, BundleError> {
        if self.signed_by(trusted) {
            return Ok(trusted.clone());
        }
        /// Only what following the chain needs; the payload is not trusted until a key
        /// from the chain verifies it.
        #[derive(Deserialize)]
        struct ChainOnly {
            organization: String,
            #[serde(default)]
            key_chain: Vec<KeyEndorsement>,
        }
        let unverified: ChainOnly = serde_json::from_slice(&self.payload).map_err(|_| BundleError::BadSignature)?;
        let mut key = trusted.clone();
        // Each step moves to a key endorsed by the current one; a chain cannot be longer
        // than its endorsements, so this ends even if the endorsements loop.
        for _ in 0..unverified.key_chain.len().min(MAX_KEY_CHAIN) {
            let Some(next) = unverified
                .key_chain
                .iter()
                .filter(|e| e.organization == unverified.organization)
                .find_map(|e| e.next_after(&key))
            else {
                break;
            };
            if self.signed_by(&next) {
                return Ok(next);
            }
            key = next;
        }
        Err(BundleError::BadSignature)
    }

    fn signed_by(&self, key: &BundlePublicKey) -> bool {
        key.0.verify_strict(&self.payload, &Signature::from_bytes(&self.signature)).is_ok()
    }

    /// Check the signature with `key` (exactly that key: [`Bundle::signer`] finds it) and
    /// that the version is newer than `have`, and read the payload.
    pub fn verify(&self, key: &BundlePublicKey, have: i64) -> Result<BundlePayload, BundleError> {
        if !self.signed_by(key) {
            return Err(BundleError::BadSignature);
        }
        let payload: BundlePayload =
            serde_json::from_slice(&self.payload).map_err(|e| BundleError::Malformed(e.to_string()))?;
        if payload.version <= have {
            return Err(BundleError::NotNewer { got: payload.version, have });
        }
        Ok(payload)
    }
}

/// An organization's signing key (server side).
pub struct BundleKey(SigningKey);

impl BundleKey {
    /// The key from its 32-byte seed (as stored).
    pub fn from_seed(seed: [u8; 32]) -> BundleKey {
        BundleKey(SigningKey::from_bytes(&seed))
    }

    /// The seed, to store.
    pub fn seed(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// The public half, which agents receive at enrollment.
    pub fn public(&self) -> BundlePublicKey {
        BundlePublicKey(self.0.verifying_key())
    }

    /// Serialize and sign a payload.
    pub fn sign(&self, payload: &BundlePayload) -> Bundle {
        let bytes = serde_json::to_vec(payload).expect("a payload is plain data and always serializes");
        let signature = self.0.sign(&bytes).to_bytes();
        Bundle { payload: bytes, signature }
    }

    /// Endorse `next` as the organization's key after this one (a rotation): agents that
    /// hold this key will take bundles signed by `next`.
    pub fn endorse(&self, organization: &str, next: &BundlePublicKey, issued_ms: i64) -> KeyEndorsement {
        let mut e = KeyEndorsement {
            organization: organization.to_owned(),
            previous: self.public().to_hex(),
            next: next.to_hex(),
            issued_ms,
            signature: String::new(),
        };
        e.signature = hex(&self.0.sign(&e.message()).to_bytes());
        e
    }
}

/// The most endorsements a bundle carries (and an agent follows): an agent more rotations
/// behind than this enrolls again.
pub const MAX_KEY_CHAIN: usize = 100;

/// "`next` is the organization's bundle key after `previous`", signed by `previous`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KeyEndorsement {
    /// The organization.
    pub organization: String,
    /// The key that signs this endorsement (ed25519 public key, hex).
    pub previous: String,
    /// The key it hands over to (hex).
    pub next: String,
    /// When the rotation happened, Unix milliseconds.
    pub issued_ms: i64,
    /// ed25519 by `previous` over the fields above (hex).
    pub signature: String,
}

impl KeyEndorsement {
    /// The signed bytes: every field but the signature, separated so that no field can
    /// run into the next (keys are fixed-length hex; the organization comes last).
    fn message(&self) -> Vec<u8> {
        format!(
            "portcullis bundle key endorsement v1\n{}\n{}\n{}\n{}",
            self.previous, self.next, self.issued_ms, self.organization
        )
        .into_bytes()
    }

    /// The key this endorsement hands over to, if `key` signed it.
    pub fn next_after(&self, key: &BundlePublicKey) -> Option<BundlePublicKey> {
        if !self.previous.eq_ignore_ascii_case(&key.to_hex()) {
            return None;
        }
        let signature = <[u8; 64]>::try_from(unhex(&self.signature)?.as_slice()).ok()?;
        key.0.verify_strict(&self.message(), &Signature::from_bytes(&signature)).ok()?;
        BundlePublicKey::from_hex(&self.next)
    }
}

/// An organization's bundle key as agents hold it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BundlePublicKey(VerifyingKey);

impl BundlePublicKey {
    /// As hex, for [`Enrolled::bundle_key`].
    pub fn to_hex(&self) -> String {
        hex(self.0.as_bytes())
    }

    /// From hex.
    pub fn from_hex(text: &str) -> Option<BundlePublicKey> {
        let bytes = <[u8; 32]>::try_from(unhex(text.trim())?.as_slice()).ok()?;
        VerifyingKey::from_bytes(&bytes).ok().map(BundlePublicKey)
    }
}

/// A batch of spool lines, each one [`portcullis_events::Record`] exactly as the agent
/// wrote it: carried as raw JSON so that the server keys each by its bytes ([`event_key`]),
/// and decoded by the server as a `Record`.
#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EventBatch {
    /// The records.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<portcullis_events::Record>))]
    pub events: Vec<Box<RawValue>>,
    /// Policy matches since the last batch (sent every few seconds, with or without events).
    #[serde(default)]
    pub hits: Vec<PolicyHit>,
}

/// What the server did with a batch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventBatchReply {
    /// Stored now.
    pub stored: u64,
    /// Already stored by an earlier delivery.
    pub duplicates: u64,
    /// Not event records (not stored, and not worth sending again): one bad line never
    /// holds back the rest of an agent's events.
    #[serde(default)]
    pub refused: u64,
}

/// The host's installed packages, as its package trust reads them: the whole list, which
/// replaces what the server knew.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PackageReport {
    /// The packages (at most [`limits::PACKAGES`]).
    pub packages: Vec<InstalledPackage>,
}

/// One installed package.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InstalledPackage {
    /// The name policies use: `dpkg:openssh-server`, `rpm:bash`.
    pub name: String,
    /// The installed version.
    #[serde(default)]
    pub version: String,
    /// Its architecture (`amd64`, `all`, `x86_64`, `noarch`).
    #[serde(default)]
    pub arch: String,
}

/// Why one package of a report was not kept.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PackageNameError {
    /// Not `dpkg:` or `rpm:` followed by a package name.
    #[error(
        "package name {0:?} is refused: a name is dpkg: or rpm: followed by 1 to 190 letters, digits and . _ + - ~ ^ @"
    )]
    Name(String),
}

/// Whether `name` is a package name as the agent reports it and policies match it: its
/// manager's prefix, then the characters dpkg and rpm allow in names.
pub fn valid_package_name(name: &str) -> bool {
    let Some((manager, rest)) = name.split_once(':') else { return false };
    matches!(manager, "dpkg" | "rpm")
        && !rest.is_empty()
        && name.len() <= limits::PACKAGE_NAME
        && rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'+' | b'-' | b'~' | b'^' | b'@'))
}

impl InstalledPackage {
    /// The package as the server keeps it: a valid name, and the version and architecture
    /// without control characters and bounded ([`limits`]).
    pub fn normalized(&self) -> Result<InstalledPackage, PackageNameError> {
        if !valid_package_name(&self.name) {
            return Err(PackageNameError::Name(bounded_text(&self.name, 80)));
        }
        Ok(InstalledPackage {
            name: self.name.clone(),
            version: bounded_text(&self.version, limits::PACKAGE_VERSION),
            arch: bounded_text(&self.arch, limits::PACKAGE_ARCH),
        })
    }
}

/// The agent's key for offline bypass codes, hex (32 bytes).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BypassKey {
    /// 64 hex digits.
    pub key: String,
}

impl BypassKey {
    /// The key's bytes, when it is 64 hex digits.
    pub fn bytes(&self) -> Option<[u8; 32]> {
        unhex(self.key.trim()).and_then(|b| <[u8; 32]>::try_from(b).ok())
    }
}

/// Approval requests from the host's users (`portcullis request`), and the ones whose
/// outcome the agent asks about.
#[derive(Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RequestBatch {
    /// New requests (at most [`limits::REQUESTS`]).
    #[serde(default)]
    pub requests: Vec<NewRequest>,
    /// Request ids whose outcome the agent wants (at most [`limits::REQUEST_IDS`]).
    #[serde(default)]
    pub ids: Vec<String>,
}

/// One approval request: the denied event as the agent recorded it, and why it is needed.
#[derive(Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewRequest {
    /// The agent's id for it: 16 to 64 lowercase hex digits.
    pub id: String,
    /// Why the user needs the program.
    pub reason: String,
    /// Who asks (the user who ran `portcullis request`).
    #[serde(default)]
    pub user: Option<String>,
    /// The event, exactly as the spool holds it.
    #[cfg_attr(feature = "openapi", schema(value_type = portcullis_events::Record))]
    pub record: Box<RawValue>,
}

impl NewRequest {
    /// A request as it waits in the agent's outbox and goes to the server: the event line
    /// spliced in verbatim (its bytes, and so its key, stay the spool's); the reason bounded.
    pub fn body(id: &str, reason: &str, user: Option<&str>, record_line: &str) -> String {
        // Strings and optional strings always serialize.
        let json = |v: Option<&str>| serde_json::to_string(&v).expect("plain text");
        format!(
            "{{\"id\":{},\"reason\":{},\"user\":{},\"record\":{record_line}}}",
            json(Some(id)),
            json(Some(&bounded_text(reason, limits::REQUEST_REASON))),
            json(user),
        )
    }
}

/// Whether `id` is a request id as agents make them.
pub fn valid_request_id(id: &str) -> bool {
    (16..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// How requests stand.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RequestStatuses {
    /// One per request asked about or just received.
    pub statuses: Vec<RequestStatus>,
}

/// How one request stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RequestStatus {
    /// The agent's id for it.
    pub id: String,
    /// `pending`, `approved` or `rejected`.
    pub status: String,
    /// The approver's note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The policy made by the approval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// When it was decided, Unix milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_ms: Option<i64>,
}

/// What the server kept of a package report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PackageReportReply {
    /// Packages kept.
    pub stored: u64,
    /// Entries not kept: a name that is not a package name, or the same name and
    /// architecture twice (the first one counts).
    #[serde(default)]
    pub refused: u64,
}

/// The idempotency key of an event: SHA-256 of its record's bytes, hex (first 32 digits).
pub fn event_key(record: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(record.as_bytes());
    hex(&digest[..16])
}

/// Lower-case hex, as hashes and keys travel.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Bytes from hex (either case); `None` for anything else.
pub fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(version: i64) -> BundlePayload {
        let computer = ComputerDoc { name: "web-01".into(), group: Some("Servers".into()), ..Default::default() };
        BundlePayload::new("acme", version, 1, computer, r#"{"groups":[{"path":"Servers"}]}"#).unwrap()
    }

    #[test]
    fn a_changed_byte_or_another_key_fails_verification() {
        let key = BundleKey::from_seed([1; 32]);
        let mut bundle = key.sign(&payload(5));
        assert_eq!(bundle.verify(&key.public(), 4).unwrap().version, 5);
        let other = BundleKey::from_seed([2; 32]);
        assert_eq!(bundle.verify(&other.public(), 0).unwrap_err(), BundleError::BadSignature);
        let i = bundle.payload.iter().position(|b| *b == b'5').unwrap();
        bundle.payload[i] = b'9';
        assert_eq!(bundle.verify(&key.public(), 0).unwrap_err(), BundleError::BadSignature);
    }

    #[test]
    fn signature_and_key_survive_hex() {
        let key = BundleKey::from_seed([3; 32]);
        let bundle = key.sign(&payload(2));
        let again = Bundle::from_parts(bundle.payload.clone(), &bundle.signature_hex()).unwrap();
        let public = BundlePublicKey::from_hex(&key.public().to_hex()).unwrap();
        assert_eq!(again.verify(&public, 1).unwrap().version, 2);
        assert!(Bundle::from_parts(vec![], "zz").is_err());
        assert!(BundlePublicKey::from_hex("abc").is_none());
    }

    #[test]
    fn the_policy_holds_the_organization_document_and_this_computer_only() {
        let document = r#"{"policies":[
            {"name":"mine","position":1,"applications":["A"],"action":"deny","scope":"computer:WEB-01"},
            {"name":"theirs","position":2,"applications":["A"],"action":"deny","scope":"computer:db-01"},
            {"name":"all","position":3,"applications":["A"],"action":"deny"}],
            "blocklists":[{"name":"B","approved":["computer:db-01","organization"]}]}"#;
        let computer = ComputerDoc { name: "web-01".into(), ..Default::default() };
        let json = BundlePayload::new("acme", 1, 0, computer, document).unwrap().policy_json().unwrap();
        let doc: Document = serde_json::from_str(&json).unwrap();
        let names: Vec<&str> = doc.policies.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["mine", "all"]);
        assert_eq!(doc.blocklists[0].approved, ["organization"]);
        let json = payload(1).policy_json().unwrap();
        let doc: Document = serde_json::from_str(&json).unwrap();
        assert_eq!(doc.groups.len(), 1);
        assert_eq!(doc.computers.len(), 1);
        assert_eq!(doc.computers[0].name, "web-01");
    }

    #[test]
    fn an_agent_follows_rotated_keys_through_their_endorsements_and_nothing_else() {
        let keys: Vec<BundleKey> = (10..14).map(|i| BundleKey::from_seed([i; 32])).collect();
        let chain: Vec<KeyEndorsement> = keys.windows(2).map(|w| w[0].endorse("acme", &w[1].public(), 5)).collect();
        let signed = |by: &BundleKey, chain: Vec<KeyEndorsement>| {
            let mut p = payload(7);
            p.key_chain = chain;
            by.sign(&p)
        };
        // Three rotations while the agent was away: from any earlier key to the newest.
        let bundle = signed(&keys[3], chain.clone());
        for k in &keys {
            assert_eq!(bundle.signer(&k.public()).unwrap(), keys[3].public());
        }
        assert_eq!(bundle.verify(&bundle.signer(&keys[0].public()).unwrap(), 6).unwrap().version, 7);
        // Without the chain only the signer itself is trusted.
        let bare = signed(&keys[3], vec![]);
        assert_eq!(bare.signer(&keys[0].public()), Err(BundleError::BadSignature));
        assert!(bare.signer(&keys[3].public()).is_ok());
        // A gap in the chain stops it.
        let gap = signed(&keys[3], vec![chain[0].clone(), chain[2].clone()]);
        assert_eq!(gap.signer(&keys[0].public()), Err(BundleError::BadSignature));
        // An endorsement signed by anyone but the previous key is refused.
        let attacker = BundleKey::from_seed([66; 32]);
        let mut forged = attacker.endorse("acme", &attacker.public(), 5);
        forged.previous = keys[0].public().to_hex();
        assert_eq!(signed(&attacker, vec![forged]).signer(&keys[0].public()), Err(BundleError::BadSignature));
        // A real endorsement of another organization does not carry over.
        let other = keys[0].endorse("other", &attacker.public(), 5);
        assert_eq!(signed(&attacker, vec![other]).signer(&keys[0].public()), Err(BundleError::BadSignature));
        // Once an agent moved on, the old key is not taken back (no endorsement points back).
        let old = signed(&keys[0], chain.clone());
        assert_eq!(old.signer(&keys[1].public()), Err(BundleError::BadSignature));
        // Endorsements that loop end the walk.
        let looping =
            vec![keys[0].endorse("acme", &keys[1].public(), 1), keys[1].endorse("acme", &keys[0].public(), 2)];
        assert_eq!(signed(&attacker, looping).signer(&keys[0].public()), Err(BundleError::BadSignature));
        // A changed field breaks the endorsement's signature.
        let mut late = chain[0].clone();
        late.issued_ms += 1;
        assert!(late.next_after(&keys[0].public()).is_none());
        assert!(chain[0].next_after(&keys[0].public()).is_some());
    }

    #[test]
    fn package_names_are_a_manager_and_a_name_and_nothing_else() {
        for ok in ["dpkg:openssh-server", "rpm:bash", "dpkg:libstdc++6", "rpm:perl-Text-Tabs+Wrap", "dpkg:g++-12"] {
            assert!(valid_package_name(ok), "{ok}");
        }
        let long = format!("dpkg:{}", "a".repeat(limits::PACKAGE_NAME));
        for bad in [
            "",
            "bash",
            "dpkg:",
            "apk:busybox",
            "dpkg:a b",
            "dpkg:a/b",
            "dpkg:a\u{0}",
            "rpm:é",
            "dpkg:*",
            long.as_str(),
        ] {
            assert!(!valid_package_name(bad), "{bad:?}");
        }
        let p = InstalledPackage { name: "dpkg:bash".into(), version: "5.2\n\u{7}-1".into(), arch: "x".repeat(100) };
        let n = p.normalized().unwrap();
        assert_eq!(n.version, "5.2-1");
        assert_eq!(n.arch.len(), limits::PACKAGE_ARCH);
        let bad = InstalledPackage { name: "dpkg:<script>".into(), ..p };
        assert!(bad.normalized().unwrap_err().to_string().contains("dpkg:<script>"));
    }

    #[test]
    fn a_bundle_names_its_organization_and_computer() {
        let p = payload(1);
        assert!(p.check_target("acme", "WEB-01").is_ok());
        assert!(matches!(p.check_target("acme", "db-01"), Err(BundleError::WrongTarget { .. })));
        assert!(matches!(p.check_target("other", "web-01"), Err(BundleError::WrongTarget { .. })));
    }

    #[test]
    fn host_facts_are_checked_and_bounded_where_they_enter() {
        let good = HostFacts {
            hostname: " web-01.example ".into(),
            os: "Linux".into(),
            os_release: format!("Debian\u{7}{}", "x".repeat(1000)),
            kernel: "6.1".into(),
            arch: "x86_64".into(),
            agent_version: "é".repeat(100),
        };
        let n = good.normalized().unwrap();
        assert_eq!((n.hostname.as_str(), n.os.as_str()), ("web-01.example", "linux"));
        assert_eq!(n.os_release.len(), limits::OS_RELEASE);
        assert!(!n.os_release.contains('\u{7}'));
        assert!(n.agent_version.len() <= limits::AGENT_VERSION && n.agent_version.chars().all(|c| c == 'é'));
        for bad in ["", "a b", "web/01", "-x", "x\u{0}", &"a".repeat(254), "wéb"] {
            let h = HostFacts { hostname: bad.into(), ..good.clone() };
            assert!(matches!(h.normalized(), Err(HostError::Hostname(_))), "{bad:?}");
        }
        let h = HostFacts { os: "plan9".into(), ..good.clone() };
        assert_eq!(h.normalized(), Err(HostError::Os("plan9".into())));
    }

    #[test]
    fn event_keys_follow_the_bytes() {
        assert_eq!(event_key("{\"a\":1}"), event_key("{\"a\":1}"));
        assert_ne!(event_key("{\"a\":1}"), event_key("{\"a\":2}"));
        assert_eq!(event_key("x").len(), 32);
    }
}

/// Files an Installation window captured on the host (at most [`limits::CAPTURES`]).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CaptureBatch {
    /// The files.
    pub files: Vec<CapturedFile>,
}

/// One file a named installer's process tree wrote during an Installation window.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CapturedFile {
    /// Flat SHA-256 of its content when captured, 64 lowercase hex digits.
    pub sha256: String,
    /// Where it was written.
    pub path: String,
    /// Its size.
    pub size: u64,
    /// The application the window captures into (the window's `capture_into`).
    pub application: String,
    /// The installer whose tree wrote it (its program or script).
    pub installer: String,
    /// When, Unix milliseconds.
    pub at_ms: i64,
}

/// Why a captured file was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CaptureError {
    /// Not a SHA-256.
    #[error("captured file {path:?}: sha256 {sha256:?} is not 64 hex digits")]
    Hash {
        /// The path, bounded.
        path: String,
        /// The value, bounded.
        sha256: String,
    },
    /// Not an absolute path, or too long.
    #[error("captured file {0:?}: the path must be absolute and at most 1024 characters")]
    Path(String),
    /// No application or installer.
    #[error("captured file {0:?}: application and installer must be named (1 to 200 characters)")]
    Names(String),
}

impl CapturedFile {
    /// The file as the server keeps it: hash in lower case, text bounded and without
    /// control characters; refused when a field is not what an agent sends.
    pub fn normalized(&self) -> Result<CapturedFile, CaptureError> {
        let path = bounded_text(&self.path, limits::CAPTURE_PATH + 1);
        let sha256 = self.sha256.to_ascii_lowercase();
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(CaptureError::Hash { path, sha256: bounded_text(&self.sha256, 80) });
        }
        if !path.starts_with('/') || path.len() > limits::CAPTURE_PATH || path != self.path {
            return Err(CaptureError::Path(bounded_text(&self.path, 200)));
        }
        let application = bounded_text(self.application.trim(), 201);
        let installer = bounded_text(self.installer.trim(), limits::CAPTURE_PATH + 1);
        if application.is_empty()
            || application.len() > 200
            || installer.is_empty()
            || installer.len() > limits::CAPTURE_PATH
        {
            return Err(CaptureError::Names(path));
        }
        Ok(CapturedFile { sha256, path, size: self.size, application, installer, at_ms: self.at_ms })
    }
}

/// What became of a batch of captured files.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CaptureReply {
    /// Hashes added to the application.
    pub added: u64,
    /// Hashes the application had already.
    pub known: u64,
    /// The organization's model version that has them all: a bundle of this version or
    /// newer permits them, and the agent may forget its own record.
    pub version: i64,
}
