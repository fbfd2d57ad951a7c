//! Tell what a file is: the facts Portcullis decides on (the "file facts" of ARCHITECTURE.md's vocabulary).
//!
//! [`inspect_path`] reads a file and [`inspect_bytes`] takes bytes already in memory; both
//! return [`Facts`]: the flat hashes, the format, and what the format carries — PE
//! VERSIONINFO, Authenticode digests and signatures (verified against an optional
//! [`TrustStore`], judged at the countersigned time), MSI properties and every file inside
//! its cabinets, CAB contents, ELF type, interpreter and build-id, Mach-O architectures and
//! signatures, a script's interpreter.
//!
//! **Invariant:** a file that does not parse still has facts: its hashes, its size and
//! `parse_error`. Parsers never panic into their caller (third-party parsers run behind
//! `catch_unwind` as a last line of defence, and every parser has a fuzz target), never
//! loop without bound and never allocate more than the input justifies.
//!
//! ```
//! let opts = portcullis_inspect::Options::default();
//! let facts = portcullis_inspect::inspect_bytes("hello.sh", b"#!/bin/sh\necho hello\n", &opts);
//! assert_eq!(facts.format, portcullis_inspect::Format::Script);
//! assert_eq!(facts.script.unwrap().interpreter, "/bin/sh");
//! assert!(facts.parse_error.is_none());
//! ```

mod cab;
mod cert;
mod elf;
mod hashing;
mod identity;
mod macho;
mod msi;
mod pe;
mod policy_facts;
mod problem;
mod script;
mod signature;
mod trust;

pub use cab::CabInfo;
pub use elf::{ElfInfo, ElfType};
pub use hashing::{ExtraHashes, FlatHasher, FlatHashes, READ_CHUNK, hash_bytes, hash_reader, hex};
pub use identity::Identity;
pub use macho::{MachOArch, MachOInfo};
pub use msi::MsiInfo;
pub use pe::{AuthenticodeDigests, PeInfo, VersionStrings, machine_name};
pub use policy_facts::policy_facts;
pub use script::ScriptInfo;
pub use signature::{CertInfo, DigestAlgorithm, Signature, Timestamp, TimestampKind, Trust};
pub use trust::{TrustStore, TrustStoreError};

use std::io::{self, Read};
use std::path::Path;
use std::sync::Arc;

use problem::Problem;

/// The format of a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// ELF executable (`ET_EXEC`).
    ElfExecutable,
    /// ELF position-independent executable.
    ElfPie,
    /// ELF shared object.
    ElfSharedObject,
    /// Other ELF (object file, core dump).
    ElfOther,
    /// PE executable.
    PeExe,
    /// PE dynamic-link library.
    PeDll,
    /// Windows Installer package.
    Msi,
    /// Cabinet archive.
    Cab,
    /// Mach-O, thin or universal.
    MachO,
    /// Script with a `#!` line.
    Script,
    /// Anything else.
    Other,
}

impl Format {
    /// The stable name used in JSON output.
    pub fn name(self) -> &'static str {
        match self {
            Format::ElfExecutable => "elf-executable",
            Format::ElfPie => "elf-pie",
            Format::ElfSharedObject => "elf-shared-object",
            Format::ElfOther => "elf-other",
            Format::PeExe => "pe-exe",
            Format::PeDll => "pe-dll",
            Format::Msi => "msi",
            Format::Cab => "cab",
            Format::MachO => "macho",
            Format::Script => "script",
            Format::Other => "other",
        }
    }
}

/// Something odd about a file that a person should know: data hidden past a signature,
/// truncated tables, limits reached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Anomaly {
    /// Stable short code (`data-appended-in-certificate-table`, …).
    pub code: &'static str,
    /// What was found, for people.
    pub message: String,
}

impl Anomaly {
    pub(crate) fn new(code: &'static str, message: impl Into<String>) -> Anomaly {
        Anomaly { code, message: message.into() }
    }
}

/// Everything known about one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Facts {
    /// The path as given (inner files: `outer.msi!/inner.dll`).
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// Flat hashes.
    pub hashes: FlatHashes,
    /// Detected format.
    pub format: Format,
    /// Why the format's structures could not be read, if they could not.
    pub parse_error: Option<String>,
    /// PE headers and VERSIONINFO.
    pub pe: Option<PeInfo>,
    /// Authenticode digests (PE and MSI).
    pub authenticode: Option<AuthenticodeDigests>,
    /// Authenticode signatures, primary first, then nested ones.
    pub signatures: Vec<Signature>,
    /// MSI properties.
    pub msi: Option<MsiInfo>,
    /// CAB listing.
    pub cab: Option<CabInfo>,
    /// ELF headers.
    pub elf: Option<ElfInfo>,
    /// Mach-O slices.
    pub macho: Option<MachOInfo>,
    /// Shebang line.
    pub script: Option<ScriptInfo>,
    /// Odd findings.
    pub anomalies: Vec<Anomaly>,
    /// For a file inside an installer or cabinet: the path of that container.
    pub container: Option<String>,
    /// For a file inside an MSI: the cabinet stream it came from.
    pub cabinet: Option<String>,
    /// For a file inside an MSI: where it installs (`[ProgramFiles64Folder]/3CX/ffmpeg.dll`).
    pub install_path: Option<String>,
    /// Files inside this one (MSI cabinets, CAB contents).
    pub contents: Vec<Facts>,
}

impl Facts {
    fn new(path: &str, size: u64, hashes: FlatHashes, format: Format) -> Facts {
        Facts {
            path: path.to_string(),
            size,
            hashes,
            format,
            parse_error: None,
            pe: None,
            authenticode: None,
            signatures: Vec::new(),
            msi: None,
            cab: None,
            elf: None,
            macho: None,
            script: None,
            anomalies: Vec::new(),
            container: None,
            cabinet: None,
            install_path: None,
            contents: Vec::new(),
        }
    }

    /// The primary signature, if the file is signed.
    pub fn primary_signature(&self) -> Option<&Signature> {
        self.signatures.first()
    }

    /// This file and everything inside it, depth first.
    pub fn flatten(&self) -> Vec<&Facts> {
        let mut out = vec![self];
        for c in &self.contents {
            out.extend(c.flatten());
        }
        out
    }
}

/// How to inspect.
#[derive(Clone, Debug)]
pub struct Options {
    /// Flat hashes besides SHA-256.
    pub extra_hashes: ExtraHashes,
    /// Roots to verify signature chains against.
    pub trust: Option<Arc<TrustStore>>,
    /// The current time (Unix seconds), for signatures without a valid timestamp.
    pub now: i64,
    /// Files larger than this are hashed but not parsed (their structures would have to be
    /// held in memory).
    pub max_parse_size: u64,
    /// At most this many bytes are unpacked from one installer or cabinet.
    pub max_unpacked_bytes: u64,
    /// How deep containers are opened (MSI → CAB → file is 2).
    pub max_depth: u8,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            extra_hashes: ExtraHashes::default(),
            trust: None,
            now: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64),
            max_parse_size: 1 << 30,
            max_unpacked_bytes: 4 << 30,
            max_depth: 3,
        }
    }
}

/// Run a third-party parser, turning a panic into a problem.
pub(crate) fn guard<T>(f: impl FnOnce() -> T) -> Result<T, Problem> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|payload| {
        let what = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown".into());
        Problem::new(format!("parser failed on malformed input ({what})"))
    })
}

/// Unix seconds as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn format_time(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

fn sniff(data: &[u8]) -> Format {
    if data.starts_with(b"\x7fELF") {
        Format::ElfOther
    } else if pe::looks_like_pe(data) {
        Format::PeExe
    } else if data.starts_with(&[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1]) {
        Format::Msi
    } else if data.starts_with(b"MSCF") {
        Format::Cab
    } else if macho::looks_like_macho(data) {
        Format::MachO
    } else if data.starts_with(b"#!") {
        Format::Script
    } else {
        Format::Other
    }
}

/// Inspect bytes held in memory; `path` is only recorded.
pub fn inspect_bytes(path: &str, data: &[u8], opts: &Options) -> Facts {
    inspect_bytes_at_depth(path, data, opts, 0)
}

pub(crate) fn inspect_bytes_at_depth(path: &str, data: &[u8], opts: &Options, depth: u8) -> Facts {
    let hashes = hash_bytes(data, opts.extra_hashes);
    let mut facts = Facts::new(path, data.len() as u64, hashes, sniff(data));
    parse_into(&mut facts, data, opts, depth);
    facts
}

fn parse_into(facts: &mut Facts, data: &[u8], opts: &Options, depth: u8) {
    match facts.format {
        Format::ElfOther => match elf::parse(data) {
            Ok(info) => {
                facts.format = match info.elf_type {
                    ElfType::Executable => Format::ElfExecutable,
                    ElfType::Pie => Format::ElfPie,
                    ElfType::SharedObject => Format::ElfSharedObject,
                    _ => Format::ElfOther,
                };
                facts.elf = Some(info);
            }
            Err(e) => facts.parse_error = Some(e.report()),
        },
        Format::PeExe => parse_pe(facts, data, opts),
        Format::Msi => {
            match msi::authenticode(data) {
                Ok((digests, blob)) => {
                    facts.authenticode = Some(digests);
                    if let Some(blob) = blob {
                        attach_signatures(facts, &blob, digests, opts);
                    }
                }
                Err(e) => facts.parse_error = Some(e.report()),
            }
            if facts.parse_error.is_none() {
                msi::inspect(&facts.path.clone(), data, opts, depth, facts);
            }
        }
        Format::Cab => cab::inspect(&facts.path.clone(), data, opts, depth, facts),
        Format::MachO => match macho::parse(data) {
            Ok(info) => facts.macho = Some(info),
            Err(e) => facts.parse_error = Some(e.report()),
        },
        Format::Script => facts.script = script::parse(data),
        Format::ElfExecutable | Format::ElfPie | Format::ElfSharedObject | Format::PeDll | Format::Other => {}
    }
}

fn attach_signatures(facts: &mut Facts, blob: &[u8], digests: AuthenticodeDigests, opts: &Options) {
    let verify = signature::VerifyOptions { trust: opts.trust.as_deref(), now: opts.now };
    let file_digest = |alg: DigestAlgorithm| match alg {
        DigestAlgorithm::Sha256 => Some(digests.sha256.to_vec()),
        DigestAlgorithm::Sha1 => Some(digests.sha1.to_vec()),
        _ => None,
    };
    match guard(|| signature::signatures(blob, &file_digest, &verify)) {
        Ok(Ok(mut sigs)) => {
            let base = facts.signatures.len();
            for s in &mut sigs {
                s.index += base;
            }
            facts.signatures.extend(sigs);
        }
        Ok(Err(e)) | Err(e) => facts
            .anomalies
            .push(Anomaly::new("unreadable-signature", e.within("the signature could not be read").report())),
    }
}

fn parse_pe(facts: &mut Facts, data: &[u8], opts: &Options) {
    let layout = match pe::layout(data) {
        Ok(l) => l,
        Err(e) => {
            facts.parse_error = Some(e.within("unreadable PE headers").report());
            return;
        }
    };
    let info = pe::info(data, &layout, &mut facts.anomalies);
    if info.is_dll {
        facts.format = Format::PeDll;
    }
    facts.pe = Some(info);
    match pe::authenticode_digests(data, &layout) {
        Ok(d) => facts.authenticode = Some(d),
        Err(e) => {
            facts.parse_error = Some(e.within("Authenticode digest not computable").report());
            return;
        }
    }
    let blobs: Vec<Vec<u8>> =
        pe::certificate_table(data, &layout, &mut facts.anomalies).into_iter().map(|b| b.der.to_vec()).collect();
    if let Some(digests) = facts.authenticode {
        for blob in blobs {
            attach_signatures(facts, &blob, digests, opts);
        }
    }
}

/// The formats whose structures are parsed (the rest is only hashed).
fn parsed(format: Format) -> bool {
    !matches!(format, Format::Other)
}

/// Inspect a file on disk. Regular files only; the caller decides what to do with others.
///
/// Reads the file once: formats that are parsed are read into memory (up to
/// `max_parse_size`), everything else is hashed as it streams by.
pub fn inspect_path(path: &Path, opts: &Options) -> io::Result<Facts> {
    let mut file = std::fs::File::open(path)?;
    let size = file.metadata()?.len();
    inspect_reader(&path.to_string_lossy(), &mut file, size, opts)
}

/// Inspect what a reader yields, for callers that hold an open file but must not open it by
/// path (an agent answering fanotify events reads through the event's descriptor). `size` is
/// the file's size as the caller knows it; it decides whether the file is parsed or streamed.
pub fn inspect_reader(path: &str, reader: &mut impl Read, size: u64, opts: &Options) -> io::Result<Facts> {
    let mut head = vec![0u8; 4096];
    let mut filled = 0;
    while filled < head.len() {
        match reader.read(&mut head[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    head.truncate(filled);
    let format = sniff(&head);
    if parsed(format) && size <= opts.max_parse_size {
        let mut data = head;
        data.reserve(size.saturating_sub(filled as u64) as usize);
        reader.read_to_end(&mut data)?;
        return Ok(inspect_bytes(path, &data, opts));
    }
    let (hashes, n) = hash_reader(io::Cursor::new(&head).chain(reader), opts.extra_hashes)?;
    let mut facts = Facts::new(path, n, hashes, format);
    if parsed(format) {
        facts.parse_error =
            Some(format!("not parsed: {} bytes is over the {}-byte parse limit", facts.size, opts.max_parse_size));
    }
    Ok(facts)
}

/// Entry points for the fuzz targets (`fuzz/`): one per parser, past format detection, so
/// each target explores its own parser.
#[doc(hidden)]
pub mod fuzzing {
    use super::*;

    fn opts() -> Options {
        // Small unpacking limits keep a fuzz run inside its memory limit.
        Options { now: 1_700_000_000, max_unpacked_bytes: 64 << 20, max_parse_size: 64 << 20, ..Options::default() }
    }

    fn forced(format: Format, data: &[u8]) -> Facts {
        let mut facts = Facts::new("fuzz", data.len() as u64, hash_bytes(&[], ExtraHashes::default()), format);
        parse_into(&mut facts, data, &opts(), 0);
        facts
    }

    /// PE headers, VERSIONINFO, Authenticode digest, certificate table and signatures.
    pub fn pe(data: &[u8]) -> Facts {
        forced(Format::PeExe, data)
    }
    /// MSI digest, properties and embedded cabinets.
    pub fn msi(data: &[u8]) -> Facts {
        forced(Format::Msi, data)
    }
    /// Cabinet listing and unpacking.
    pub fn cab(data: &[u8]) -> Facts {
        forced(Format::Cab, data)
    }
    /// ELF headers and notes.
    pub fn elf(data: &[u8]) -> Facts {
        forced(Format::ElfOther, data)
    }
    /// Mach-O and universal binaries.
    pub fn macho(data: &[u8]) -> Facts {
        forced(Format::MachO, data)
    }
    /// Shebang lines.
    pub fn script(data: &[u8]) -> Facts {
        forced(Format::Script, data)
    }
    /// A PKCS#7 Authenticode blob: SignedData, signer, timestamps, nested signatures.
    pub fn signature(der: &[u8]) -> usize {
        let verify = signature::VerifyOptions { trust: None, now: 1_700_000_000 };
        guard(|| signature::signatures(der, &|_| Some(vec![0; 32]), &verify))
            .ok()
            .and_then(Result::ok)
            .map_or(0, |s| s.len())
    }
    /// Whatever the bytes are, as a scan would see them.
    pub fn any(data: &[u8]) -> Facts {
        inspect_bytes("fuzz", data, &opts())
    }
}
