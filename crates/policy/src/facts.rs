//! What the engine knows about a file, a process and the moment of the decision.
//!
//! These are plain values filled in by the edges (the inspection crate through the CLI or the
//! agent); nothing here reads a file.

use crate::version::Version;

/// Seconds since the Unix epoch, UTC. The engine never reads a clock: callers pass "now".
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The moment for people, in UTC: `2027-01-15 08:00 UTC`.
    pub fn date(&self) -> String {
        jiff::Timestamp::from_second(self.0)
            .map_or_else(|_| format!("@{}", self.0), |t| t.strftime("%Y-%m-%d %H:%M UTC").to_string())
    }
}

/// An operating system family, as used by metadata rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Os {
    /// Microsoft Windows.
    Windows,
    /// Linux.
    Linux,
    /// Apple macOS.
    MacOs,
}

impl Os {
    /// The lower-case name used in policy files: `windows`, `linux`, `macos`.
    pub fn name(self) -> &'static str {
        match self {
            Os::Windows => "windows",
            Os::Linux => "linux",
            Os::MacOs => "macos",
        }
    }

    /// Parse a name as written in policy files (case-insensitive; `mac` and `darwin` accepted).
    pub fn from_name(name: &str) -> Option<Os> {
        match name.to_ascii_lowercase().as_str() {
            "windows" | "win" => Some(Os::Windows),
            "linux" => Some(Os::Linux),
            "macos" | "mac" | "darwin" | "osx" => Some(Os::MacOs),
            _ => None,
        }
    }
}

/// The broad kind of a file, as far as execution control cares.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FileKind {
    /// A program that can be started (ELF executable, PE exe, Mach-O executable).
    Executable,
    /// Code loaded into a running program (ELF shared object, PE dll, dylib).
    Library,
    /// A text script run by an interpreter (shebang line).
    Script,
    /// A package that installs software (MSI, CAB).
    Installer,
    /// Anything else.
    #[default]
    Other,
}

impl FileKind {
    /// The lower-case name used in policy files.
    pub fn name(self) -> &'static str {
        match self {
            FileKind::Executable => "executable",
            FileKind::Library => "library",
            FileKind::Script => "script",
            FileKind::Installer => "installer",
            FileKind::Other => "other",
        }
    }

    /// Parse a name as written in policy files.
    pub fn from_name(name: &str) -> Option<FileKind> {
        match name.to_ascii_lowercase().as_str() {
            "executable" | "exe" => Some(FileKind::Executable),
            "library" | "dll" | "shared-object" => Some(FileKind::Library),
            "script" => Some(FileKind::Script),
            "installer" => Some(FileKind::Installer),
            "other" => Some(FileKind::Other),
            _ => None,
        }
    }
}

/// The signer of a file, when it carries a signature.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SignerFacts {
    /// Leaf certificate subject, RFC 4514 style (`CN=3CX Ltd,O=3CX Ltd,C=GB`).
    pub subject: String,
    /// Leaf certificate issuer.
    pub issuer: String,
    /// SHA-256 of the leaf certificate's DER encoding (its thumbprint).
    pub cert_sha256: [u8; 32],
    /// Whether the signature verified: digest matches the file, signature is valid and the
    /// chain reaches a trusted root.
    pub verified: bool,
}

/// What the engine may know about a file. Only `path`, `size` and `sha256` are always known;
/// everything else is filled in when the file's format carries it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FileFacts {
    /// Full path of the file as the host sees it.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// Flat SHA-256 of the whole file.
    pub sha256: [u8; 32],
    /// Flat SHA-1, when the caller computed it (policies listing SHA-1 hashes ask for it).
    pub sha1: Option<[u8; 20]>,
    /// Flat MD5, when the caller computed it.
    pub md5: Option<[u8; 16]>,
    /// Broad kind of the file.
    pub kind: FileKind,
    /// The platform the file is built for, known from its format (PE → Windows, ELF → Linux,
    /// Mach-O → macOS); `None` for scripts and unknown formats.
    pub platform: Option<Os>,
    /// PE VERSIONINFO `OriginalFilename`.
    pub original_filename: Option<String>,
    /// PE VERSIONINFO `InternalName`.
    pub internal_name: Option<String>,
    /// PE VERSIONINFO `ProductName`, or an MSI's ProductName.
    pub product_name: Option<String>,
    /// PE VERSIONINFO `CompanyName`, or an MSI's Manufacturer.
    pub company_name: Option<String>,
    /// PE VERSIONINFO `FileDescription`.
    pub file_description: Option<String>,
    /// The numeric file version (PE VS_FIXEDFILEINFO, or an MSI's ProductVersion).
    pub file_version: Option<Version>,
    /// The numeric product version.
    pub product_version: Option<Version>,
    /// Authenticode SHA-256 digest (what AppLocker and WDAC call the file hash).
    pub authenticode_sha256: Option<[u8; 32]>,
    /// Authenticode SHA-1 digest.
    pub authenticode_sha1: Option<[u8; 20]>,
    /// The primary signer, if signed.
    pub signer: Option<SignerFacts>,
    /// The signing ID of a macOS program (`TEAMID:com.vendor.app`, `platform:…`), only where
    /// macOS verified the signature it comes from: Santa's reports. Portcullis's own
    /// inspection does not verify Apple signatures, so it never sets this.
    pub signing_id: Option<String>,
    /// The installed packages the file belongs to (`dpkg:openssh-server`, `rpm:bash`): those
    /// that list it **and** recorded the digest its content has. A file changed after
    /// installation, or listed without a digest, has none; a file two packages ship alike
    /// (rpm's shared multilib files) has both.
    pub packages: Vec<String>,
    /// Why the file is not trusted as part of a package that lists it (changed since it was
    /// installed, no digest recorded), for the reason people read.
    pub package_note: Option<String>,
    /// The application an Installation window on this computer captured the file into (a
    /// named installer's process tree wrote it), while the server's copy of that application
    /// does not list it yet. Only the agent sets it, per decision; in Secured and
    /// Installation mode it allows a file no policy matched.
    pub captured: Option<String>,
}

impl FileFacts {
    /// The last component of the path.
    pub fn file_name(&self) -> &str {
        self.path.rsplit(['/', '\\']).next().unwrap_or(&self.path)
    }
}

/// What the engine may know about the process asking to run or load the file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcessFacts {
    /// Path of the executable of the process that starts or loads the file.
    pub parent_path: Option<String>,
    /// Name of the user the process runs as.
    pub user: Option<String>,
}
