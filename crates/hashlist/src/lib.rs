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
use std::hash::{BuildHasherDefault, Hasher};

/// Digests are already uniformly distributed, so deduplication hashes them by their first
/// eight bytes instead of running SipHash over all of them. Equality still compares whole
/// digests, so crafted collisions cost speed, never correctness.
#[derive(Default)]
struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn write(&mut self, bytes: &[u8]) {
        if let Some(head) = bytes.first_chunk::<8>() {
            self.0 ^= u64::from_le_bytes(*head);
        } else {
            for &b in bytes {
                self.0 = self.0.rotate_left(8) ^ u64::from(b);
            }
        }
    }

    fn write_usize(&mut self, n: usize) {
        self.0 = self.0.rotate_left(5) ^ n as u64;
    }

    fn finish(&self) -> u64 {
        self.0.wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }
}

type BuildDigestHasher = BuildHasherDefault<DigestHasher>;

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
        Hash::from_hex_bytes(hex.as_bytes())
    }

    /// [`Hash::from_hex`] on ASCII bytes.
    pub fn from_hex_bytes(hex: &[u8]) -> Option<Hash> {
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
        // One write per hash: formatting byte by byte costs more than finding the hash.
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let bytes = self.as_bytes();
        let mut buf = [0u8; 64];
        for (i, b) in bytes.iter().enumerate() {
            buf[2 * i] = DIGITS[(b >> 4) as usize];
            buf[2 * i + 1] = DIGITS[(b & 15) as usize];
        }
        f.write_str(std::str::from_utf8(&buf[..bytes.len() * 2]).map_err(|_| fmt::Error)?)
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

/// Value of each hex digit; 0xff for other bytes.
static HEX_VALUE: [u8; 256] = {
    let mut table = [0xffu8; 256];
    let mut c = 0;
    while c < 10 {
        table[b'0' as usize + c] = c as u8;
        c += 1;
    }
    let mut c = 0;
    while c < 6 {
        table[b'a' as usize + c] = 10 + c as u8;
        table[b'A' as usize + c] = 10 + c as u8;
        c += 1;
    }
    table
};

fn hex_value(c: u8) -> Option<u8> {
    let v = HEX_VALUE[c as usize];
    (v != 0xff).then_some(v)
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

/// Words shorter than this are not looked at: no hash is shorter (MD5 has 32 digits), and
/// shorter hex words ("face", "2023", git abbreviations) are everywhere in prose and would drown
/// the skipped report.
pub const SKIPPED_REPORT_MIN_LEN: usize = 32;
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

/// Bytes that make up words: ASCII letters and digits. Everything else separates, including
/// `_` and `-`, because `sha256_<hash>` and `<hash>-<hash>` are common in file names and tables.
static WORD: [bool; 256] = {
    let mut table = [false; 256];
    let mut c = 0;
    while c < 256 {
        table[c] = (c as u8).is_ascii_alphanumeric();
        c += 1;
    }
    table
};

/// Extract every MD5, SHA-1 and SHA-256 from `text`.
///
/// Input need not be UTF-8. Work is linear in the input and memory is bounded by the number
/// of distinct hashes found. For input that arrives in pieces, use [`Extractor`].
pub fn extract(text: &[u8]) -> Extraction {
    let mut extractor = Extractor::new();
    extractor.feed(text);
    extractor.finish()
}

/// Extraction over input that arrives in pieces (a file read in chunks, standard input), with
/// the same result as [`extract`] on the whole text.
///
/// ```
/// let mut e = portcullis_hashlist::Extractor::new();
/// e.feed(b"md5 74bc2d0b6680faa1a5a7");
/// e.feed(b"6b27e5479cbc\n");
/// assert_eq!(e.finish().hashes[0].to_string(), "74bc2d0b6680faa1a5a76b27e5479cbc");
/// ```
#[derive(Default)]
pub struct Extractor {
    seen: HashSet<Hash, BuildDigestHasher>,
    out: Extraction,
    /// The word still being read at the end of the last piece (letters and digits only).
    carry: Vec<u8>,
    /// Newlines before `carry`.
    lines_before: usize,
}

impl Extractor {
    /// An empty extractor.
    pub fn new() -> Extractor {
        Extractor::default()
    }

    /// Feed the next piece of input.
    pub fn feed(&mut self, piece: &[u8]) {
        let Some(last_separator) = piece.iter().rposition(|&b| !WORD[b as usize]) else {
            self.carry.extend_from_slice(piece);
            return;
        };
        let mut complete = &piece[..=last_separator];
        if !self.carry.is_empty() {
            // Finish the carried word with the start of this piece, then scan the rest in place,
            // so a piece is never copied whole.
            let first_separator = complete.iter().position(|&b| !WORD[b as usize]).unwrap_or(0);
            let mut joined = std::mem::take(&mut self.carry);
            joined.extend_from_slice(&complete[..=first_separator]);
            self.scan(&joined);
            joined.clear();
            self.carry = joined;
            complete = &complete[first_separator + 1..];
        }
        self.scan(complete);
        self.carry.extend_from_slice(&piece[last_separator + 1..]);
    }

    /// Everything found.
    pub fn finish(mut self) -> Extraction {
        let last = std::mem::take(&mut self.carry);
        self.scan(&last);
        self.out
    }

    /// Look at every word of `text`, which ends at a word boundary.
    fn scan(&mut self, text: &[u8]) {
        let mut lines = LineCounter { pos: 0, line: self.lines_before };
        let len = text.len();
        let step = SKIPPED_REPORT_MIN_LEN;
        // Only words (runs of letters and digits) of at least `step` characters can be or hide
        // a hash, and every such word covers a position that is a multiple of `step`. So probe
        // one byte in `step`, and only where it lands inside a word look at the whole word:
        // prose costs a fraction of a lookup per byte.
        let mut probe = step - 1; // probes sit at positions step-1, 2*step-1, …
        let mut done = 0; // everything before this offset has been examined
        while probe < len {
            if !WORD[text[probe] as usize] {
                probe += step;
                continue;
            }
            let mut start = probe;
            while start > done && WORD[text[start - 1] as usize] {
                start -= 1;
            }
            let mut end = probe + 1;
            while end < len && WORD[text[end] as usize] {
                end += 1;
            }
            if end - start >= step {
                word(&text[start..end], start, text, &mut lines, &mut self.seen, &mut self.out);
            }
            done = end;
            // The next probe position at or after the end of this word.
            probe = (end + 1).div_ceil(step) * step - 1;
        }
        self.lines_before = lines.line + memchr::memchr_iter(b'\n', &text[lines.pos..]).count();
    }
}

fn word(
    word: &[u8],
    start: usize,
    text: &[u8],
    lines: &mut LineCounter,
    seen: &mut HashSet<Hash, BuildDigestHasher>,
    out: &mut Extraction,
) {
    // `0x` before the digits is a prefix, not part of the word.
    let digits = match word {
        [b'0', b'x' | b'X', rest @ ..] if rest.iter().all(u8::is_ascii_hexdigit) => rest,
        _ => word,
    };
    let reason = if digits.iter().all(u8::is_ascii_hexdigit) {
        match HashKind::from_hex_len(digits.len()) {
            None => SkipReason::UnusualLength(digits.len()),
            Some(_) if digits.iter().all(u8::is_ascii_digit) => SkipReason::OnlyDecimalDigits,
            Some(_) => {
                let hash = Hash::from_hex_bytes(digits).unwrap_or_else(unreachable_hex_run);
                if seen.insert(hash) {
                    let line = lines.line_at(text, start);
                    out.hashes.push(FoundHash { hash, line });
                } else {
                    out.duplicates += 1;
                }
                return;
            }
        }
    } else {
        // Letters beyond f: report the word only if it hides a long hex run.
        let longest = word.split(|b| !b.is_ascii_hexdigit()).map(<[u8]>::len).max().unwrap_or(0);
        if longest < SKIPPED_REPORT_MIN_LEN {
            return;
        }
        SkipReason::PartOfWord
    };
    out.skipped_total += 1;
    if out.skipped.len() < SKIPPED_EXAMPLES_MAX {
        let line = lines.line_at(text, start);
        let shown = &word[..word.len().min(SKIPPED_TEXT_MAX)];
        out.skipped.push(Skipped { reason, line, text: String::from_utf8_lossy(shown).into_owned() });
    }
}

#[cold]
fn unreachable_hex_run() -> Hash {
    // A word is decoded only after checking that it is all hex digits of a hash's length, so
    // decoding cannot fail; reaching this would be a bug in that check.
    panic!("hex run failed to decode")
}

/// Counts newlines lazily, only up to positions where something was found, so that the
/// common case (long stretches without hashes) costs one SIMD pass at most.
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
        let e = extract(b"deadbeef 2023 12345678901234567890123456789012 cafe 0123456789abcdef0123");
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
