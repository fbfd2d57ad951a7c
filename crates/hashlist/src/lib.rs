//! Pull MD5, SHA-1 and SHA-256 hashes out of any text a person pastes.
//!
//! Threat reports arrive as vendor tables with mixed columns, CSV, JSON, markdown, defanged
//! prose, upper case, `0x` prefixes or `sha256:` labels. [`extract`] finds every run of
//! hexadecimal digits that stands on its own, types it by length, lower-cases it and dedupes
//! it, keeping the line where each hash was first seen. It never cuts a longer run into
//! shorter hashes: a 128-digit SHA-512 is reported as skipped, not as two SHA-256s.
//!
//! ```
//! let text = "SHA256: AA124A4B4DF12B34E74EE7F6C683B2EBEC4CE9A8EDCF9BE345823B4FDCF5D868\n\
//!             md5=0x74bc2d0b6680faa1a5a76b27e5479cbc, again aa124a4b4df12b34e74ee7f6c683b2ebec4ce9a8edcf9be345823b4fdcf5d868";
//! let found = portcullis_hashlist::extract(text.as_bytes());
//! assert_eq!(found.hashes.len(), 2);
//! assert_eq!(found.duplicates, 1);
//! assert_eq!(found.hashes[1].to_string(), "74bc2d0b6680faa1a5a76b27e5479cbc");
//! ```

use std::collections::HashSet;
use std::fmt;

/// The kind of a hash, known from the length of its hexadecimal form.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HashKind {
    /// 128-bit MD5, 32 hex digits.
    Md5,
    /// 160-bit SHA-1, 40 hex digits.
    Sha1,
    /// 256-bit SHA-256, 64 hex digits.
    Sha256,
}

impl HashKind {
    /// The kind whose hexadecimal form has `len` digits.
    pub fn from_hex_len(len: usize) -> Option<HashKind> {
        match len {
            32 => Some(HashKind::Md5),
            40 => Some(HashKind::Sha1),
            64 => Some(HashKind::Sha256),
            _ => None,
        }
    }

    /// Number of bytes in a digest of this kind.
    pub fn byte_len(self) -> usize {
        match self {
            HashKind::Md5 => 16,
            HashKind::Sha1 => 20,
            HashKind::Sha256 => 32,
        }
    }

    /// The lower-case name used in files and output: `md5`, `sha1`, `sha256`.
    pub fn name(self) -> &'static str {
        match self {
            HashKind::Md5 => "md5",
            HashKind::Sha1 => "sha1",
            HashKind::Sha256 => "sha256",
        }
    }
}

impl fmt::Display for HashKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A digest value of a known kind.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Hash {
    /// An MD5 digest.
    Md5([u8; 16]),
    /// A SHA-1 digest.
    Sha1([u8; 20]),
    /// A SHA-256 digest.
    Sha256([u8; 32]),
}

impl Hash {
    /// Parse a hash from hexadecimal text (either case, no prefix); its kind comes from its length.
    pub fn from_hex(hex: &str) -> Option<Hash> {
        let hex = hex.as_bytes();
        match HashKind::from_hex_len(hex.len())? {
            HashKind::Md5 => decode_hex(hex).map(Hash::Md5),
            HashKind::Sha1 => decode_hex(hex).map(Hash::Sha1),
            HashKind::Sha256 => decode_hex(hex).map(Hash::Sha256),
        }
    }

    /// The kind of this hash.
    pub fn kind(&self) -> HashKind {
        match self {
            Hash::Md5(_) => HashKind::Md5,
            Hash::Sha1(_) => HashKind::Sha1,
            Hash::Sha256(_) => HashKind::Sha256,
        }
    }

    /// The raw digest bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Hash::Md5(b) => b,
            Hash::Sha1(b) => b,
            Hash::Sha256(b) => b,
        }
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.as_bytes() {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{self}", self.kind())
    }
}

fn decode_hex<const N: usize>(hex: &[u8]) -> Option<[u8; N]> {
    if hex.len() != N * 2 {
        return None;
    }
    let mut out = [0u8; N];
    for (byte, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        *byte = (hex_value(pair[0])? << 4) | hex_value(pair[1])?;
    }
    Some(out)
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// One distinct hash found in the text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FoundHash {
    /// The hash itself.
    pub hash: Hash,
    /// 1-based line of its first occurrence.
    pub line: usize,
}

impl fmt::Display for FoundHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.hash.fmt(f)
    }
}

/// Why a run of hexadecimal digits was not taken as a hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SkipReason {
    /// The run has a length that is not 32, 40 or 64 digits (for example a SHA-512 or an imphash
    /// fragment); it is never cut into shorter hashes.
    UnusualLength(usize),
    /// The run touches letters that are not hexadecimal, so it is part of a longer word.
    PartOfWord,
    /// The run has only decimal digits: far more likely a number than a hash.
    OnlyDecimalDigits,
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::UnusualLength(n) => {
                write!(f, "{n} hex digits is not the length of an MD5 (32), SHA-1 (40) or SHA-256 (64)")
            }
            SkipReason::PartOfWord => f.write_str("joined to other letters, so part of a longer word"),
            SkipReason::OnlyDecimalDigits => f.write_str("only decimal digits, so likely a number"),
        }
    }
}

/// A run of hexadecimal digits that looked like it could be a hash but was not taken.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    /// Why it was skipped.
    pub reason: SkipReason,
    /// 1-based line where it stands.
    pub line: usize,
    /// The run itself, shortened to at most [`SKIPPED_TEXT_MAX`] characters.
    pub text: String,
}

/// Runs shorter than this are not reported as skipped: short hex words ("face", "2023") are
/// everywhere in prose and would drown the report.
pub const SKIPPED_REPORT_MIN_LEN: usize = 20;
/// At most this many skipped runs are kept with their text; the rest are only counted.
pub const SKIPPED_EXAMPLES_MAX: usize = 100;
/// Skipped runs are shortened to this many characters in the report.
pub const SKIPPED_TEXT_MAX: usize = 80;

/// Everything [`extract`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Extraction {
    /// Distinct hashes in order of first appearance.
    pub hashes: Vec<FoundHash>,
    /// How many hashes were seen again after their first occurrence.
    pub duplicates: usize,
    /// The first [`SKIPPED_EXAMPLES_MAX`] skipped runs, in order.
    pub skipped: Vec<Skipped>,
    /// Total number of skipped runs (can exceed `skipped.len()`).
    pub skipped_total: usize,
}

impl Extraction {
    /// Number of distinct hashes of `kind`.
    pub fn count(&self, kind: HashKind) -> usize {
        self.hashes.iter().filter(|h| h.hash.kind() == kind).count()
    }

    /// Distinct hashes of `kind`, in order of first appearance.
    pub fn of_kind(&self, kind: HashKind) -> impl Iterator<Item = &FoundHash> {
        self.hashes.iter().filter(move |h| h.hash.kind() == kind)
    }
}

const OTHER: u8 = 0;
const HEX: u8 = 1;
const WORD: u8 = 2;

/// Byte classes: hexadecimal digits, other ASCII letters (which glue a run into a word) and
/// everything else (separators). `_` and `-` separate, because `sha256_<hash>` and
/// `<hash>-<hash>` are common in file names and tables.
static CLASS: [u8; 256] = {
    let mut table = [OTHER; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        table[c] = if b.is_ascii_hexdigit() {
            HEX
        } else if b.is_ascii_alphabetic() {
            WORD
        } else {
            OTHER
        };
        c += 1;
    }
    table
};

/// Extract every MD5, SHA-1 and SHA-256 from `text`.
///
/// Input need not be UTF-8. Work is linear in the input and memory is bounded by the number
/// of distinct hashes found.
pub fn extract(text: &[u8]) -> Extraction {
    let mut out = Extraction::default();
    let mut seen: HashSet<Hash> = HashSet::new();
    let mut lines = LineCounter::default();
    let len = text.len();
    let mut i = 0;
    while i < len {
        // Skip separators and word letters quickly: a run can only start at a hex digit.
        if CLASS[text[i] as usize] != HEX {
            i += 1;
            continue;
        }
        let start = i;
        while i < len && CLASS[text[i] as usize] == HEX {
            i += 1;
        }
        let end = i;
        let run_len = end - start;
        let glued_before = start > 0 && CLASS[text[start - 1] as usize] == WORD && !after_0x_prefix(text, start);
        let glued_after = end < len && CLASS[text[end] as usize] == WORD;
        if glued_after && run_len == 1 && text[start] == b'0' && matches!(text[end], b'x' | b'X') {
            // `0x` prefix: the hash starts right after the `x`.
            i = end + 1;
            continue;
        }
        if glued_after {
            // Consume the rest of the word so its later hex letters don't start a new run.
            while i < len && CLASS[text[i] as usize] != OTHER {
                i += 1;
            }
        }
        let run = &text[start..end];
        let reason = if glued_before || glued_after {
            Some(SkipReason::PartOfWord)
        } else if HashKind::from_hex_len(run_len).is_none() {
            Some(SkipReason::UnusualLength(run_len))
        } else if run.iter().all(u8::is_ascii_digit) {
            Some(SkipReason::OnlyDecimalDigits)
        } else {
            None
        };
        match reason {
            None => {
                let hash =
                    Hash::from_hex(std::str::from_utf8(run).unwrap_or_default()).unwrap_or_else(unreachable_hex_run);
                if seen.insert(hash) {
                    let line = lines.line_at(text, start);
                    out.hashes.push(FoundHash { hash, line });
                } else {
                    out.duplicates += 1;
                }
            }
            Some(reason) => {
                let reported_len = if glued_after { i - start } else { run_len };
                if reported_len >= SKIPPED_REPORT_MIN_LEN {
                    out.skipped_total += 1;
                    if out.skipped.len() < SKIPPED_EXAMPLES_MAX {
                        let line = lines.line_at(text, start);
                        let shown = &text[start..start + reported_len.min(SKIPPED_TEXT_MAX)];
                        out.skipped.push(Skipped { reason, line, text: String::from_utf8_lossy(shown).into_owned() });
                    }
                }
            }
        }
    }
    out
}

#[cold]
fn unreachable_hex_run() -> Hash {
    // A run is made only of bytes whose class is HEX and its length was checked, so decoding
    // cannot fail; reaching this would be a bug in the class table.
    panic!("hex run failed to decode")
}

/// `0x` before a run is a prefix, not part of a word: `0xDEADBEEF…` is a hash.
fn after_0x_prefix(text: &[u8], start: usize) -> bool {
    start >= 2
        && matches!(text[start - 1], b'x' | b'X')
        && text[start - 2] == b'0'
        && (start == 2 || CLASS[text[start - 3] as usize] == OTHER)
}

/// Counts newlines lazily, only up to positions where something was found, so that the
/// common case (long stretches without hashes) costs one SIMD pass at most.
#[derive(Default)]
struct LineCounter {
    pos: usize,
    line: usize,
}

impl LineCounter {
    fn line_at(&mut self, text: &[u8], pos: usize) -> usize {
        debug_assert!(pos >= self.pos);
        self.line += memchr::memchr_iter(b'\n', &text[self.pos..pos]).count();
        self.pos = pos;
        self.line + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA256: &str = "aa124a4b4df12b34e74ee7f6c683b2ebec4ce9a8edcf9be345823b4fdcf5d868";
    const SHA1: &str = "bea77d1e59cf18dce22ad9a2fad52948fd7a9efa";
    const MD5: &str = "f3d4144860ca10ba60f7ef4d176cc736";

    #[track_caller]
    fn check(text: &str, expected: &[&str]) {
        let got: Vec<String> = extract(text.as_bytes()).hashes.iter().map(|h| h.to_string()).collect();
        assert_eq!(got, expected, "input: {text:?}");
    }

    #[test]
    fn plain_lines() {
        check(&format!("{SHA256}\n{SHA1}\n{MD5}\n"), &[SHA256, SHA1, MD5]);
    }

    #[test]
    fn upper_case_is_lowered() {
        check(&SHA256.to_uppercase(), &[SHA256]);
    }

    #[test]
    fn labels_and_prefixes() {
        check(&format!("sha256:{SHA256} SHA1={SHA1} md5 0x{MD5}"), &[SHA256, SHA1, MD5]);
        check(&format!("sha256_{SHA256}"), &[SHA256]);
    }

    #[test]
    fn csv_json_markdown() {
        check(&format!("name,sha256\nffmpeg.dll,{SHA256}\n"), &[SHA256]);
        check(&format!(r#"{{"sha256":"{SHA256}","sha1":"{SHA1}"}}"#), &[SHA256, SHA1]);
        check(&format!("| ffmpeg.dll | `{SHA256}` | Windows |"), &[SHA256]);
    }

    #[test]
    fn vendor_table_glued_columns_are_not_split() {
        // The seed article's table lost its separators: "SHA256Operating SystemInstaller".
        // A hash glued to a word is skipped, never guessed at.
        let e = extract(format!("{SHA256}Windows").as_bytes());
        assert!(e.hashes.is_empty());
        assert_eq!(e.skipped[0].reason, SkipReason::PartOfWord);
    }

    #[test]
    fn longer_runs_are_never_cut() {
        let sha512 = format!("{SHA256}{SHA256}");
        let e = extract(sha512.as_bytes());
        assert!(e.hashes.is_empty());
        assert_eq!(e.skipped[0].reason, SkipReason::UnusualLength(128));
        // 96 digits (SHA-384) is not 64 + 32.
        let e = extract(format!("{SHA256}{MD5}").as_bytes());
        assert!(e.hashes.is_empty());
    }

    #[test]
    fn dedupe_counts_and_lines() {
        let e = extract(format!("x\n{SHA256}\n{}\n{MD5}", SHA256.to_uppercase()).as_bytes());
        assert_eq!(e.hashes.len(), 2);
        assert_eq!(e.duplicates, 1);
        assert_eq!(e.hashes[0].line, 2);
        assert_eq!(e.hashes[1].line, 4);
        assert_eq!(e.count(HashKind::Md5), 1);
    }

    #[test]
    fn numbers_and_short_words_are_ignored() {
        let e = extract(b"deadbeef 2023 12345678901234567890123456789012 cafe");
        assert!(e.hashes.is_empty());
        assert_eq!(e.skipped_total, 1);
        assert_eq!(e.skipped[0].reason, SkipReason::OnlyDecimalDigits);
    }

    #[test]
    fn defanged_report() {
        let text = format!("C2: hxxps://akamaicontainer[.]com (SHA-256 [{SHA256}])");
        check(&text, &[SHA256]);
    }

    #[test]
    fn non_utf8_input() {
        let mut bytes = vec![0xff, 0xfe];
        bytes.extend_from_slice(SHA1.as_bytes());
        bytes.push(0x80);
        assert_eq!(extract(&bytes).hashes.len(), 1);
    }

    #[test]
    fn the_3cx_indicator_file() {
        let csv = include_str!("../../catalog/data/3cx-iocs.csv");
        let e = extract(csv.as_bytes());
        assert_eq!(e.count(HashKind::Sha256), 25);
        assert_eq!(e.count(HashKind::Sha1), 17);
        assert_eq!(e.count(HashKind::Md5), 14);
    }
}
