//! An rpm header as the database stores it: `il` and `dl` (big-endian u32), `il` index
//! entries of 16 bytes (tag, type, offset, count) and `dl` bytes of data. Pure and bounded:
//! a header from a container's database is untrusted input, so every offset and count is
//! checked against the data it points into, and nothing is allocated beyond the blob's size.

/// rpm's own limits on a header (`hdrchkTags`, `hdrchkData`).
const MAX_ENTRIES: usize = 0xffff;
const MAX_DATA: usize = 256 << 20;

const TYPE_CHAR: u32 = 1;
const TYPE_INT8: u32 = 2;
const TYPE_INT16: u32 = 3;
const TYPE_INT32: u32 = 4;
const TYPE_STRING: u32 = 6;
const TYPE_STRING_ARRAY: u32 = 8;
const TYPE_I18NSTRING: u32 = 9;

/// The tags this crate reads (rpmtag.h).
pub(crate) mod tag {
    pub(crate) const NAME: u32 = 1000;
    pub(crate) const VERSION: u32 = 1001;
    pub(crate) const RELEASE: u32 = 1002;
    pub(crate) const EPOCH: u32 = 1003;
    pub(crate) const ARCH: u32 = 1022;
    pub(crate) const FILESTATES: u32 = 1029;
    pub(crate) const FILEMODES: u32 = 1030;
    pub(crate) const FILEDIGESTS: u32 = 1035;
    pub(crate) const DIRINDEXES: u32 = 1116;
    pub(crate) const BASENAMES: u32 = 1117;
    pub(crate) const DIRNAMES: u32 = 1118;
    pub(crate) const FILEDIGESTALGO: u32 = 5011;
}

/// A header that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed rpm header: {0}")]
pub struct HeaderError(pub &'static str);

#[derive(Clone, Copy)]
struct Entry {
    tag: u32,
    ty: u32,
    offset: usize,
    count: usize,
}

/// A parsed header: the index, and the data it points into.
pub(crate) struct Header<'a> {
    entries: Vec<Entry>,
    data: &'a [u8],
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at.checked_add(4)?)?.try_into().ok()?))
}

impl<'a> Header<'a> {
    /// Parse a header blob (as in `Packages.blob` of `rpmdb.sqlite`).
    pub(crate) fn parse(blob: &'a [u8]) -> Result<Header<'a>, HeaderError> {
        let il = be32(blob, 0).ok_or(HeaderError("shorter than its counts"))? as usize;
        let dl = be32(blob, 4).ok_or(HeaderError("shorter than its counts"))? as usize;
        if il == 0 || il > MAX_ENTRIES {
            return Err(HeaderError("entry count out of range"));
        }
        if dl > MAX_DATA {
            return Err(HeaderError("data length out of range"));
        }
        let start = 8 + il * 16;
        let data = blob.get(start..start + dl).ok_or(HeaderError("shorter than its index says"))?;
        let mut entries = Vec::with_capacity(il);
        for i in 0..il {
            let at = 8 + i * 16;
            let field = |k: usize| be32(blob, at + 4 * k).ok_or(HeaderError("truncated index"));
            let (tag, ty, offset, count) = (field(0)?, field(1)?, field(2)? as usize, field(3)? as usize);
            if offset > dl || count > dl.max(1) {
                return Err(HeaderError("index entry points outside the data"));
            }
            entries.push(Entry { tag, ty, offset, count });
        }
        Ok(Header { entries, data })
    }

    fn entry(&self, tag: u32) -> Option<Entry> {
        self.entries.iter().copied().find(|e| e.tag == tag)
    }

    /// The `count` NUL-terminated strings at an entry's offset.
    fn strings_of(&self, e: Entry) -> Option<Vec<&'a str>> {
        let mut rest = self.data.get(e.offset..)?;
        let mut out = Vec::with_capacity(e.count.min(rest.len()));
        for _ in 0..e.count {
            let end = rest.iter().position(|&b| b == 0)?;
            out.push(std::str::from_utf8(&rest[..end]).ok()?);
            rest = &rest[end + 1..];
        }
        Some(out)
    }

    /// A string tag (the first string of an i18n one).
    pub(crate) fn string(&self, tag: u32) -> Option<&'a str> {
        let e = self.entry(tag)?;
        match e.ty {
            TYPE_STRING | TYPE_I18NSTRING => self.strings_of(Entry { count: 1, ..e })?.pop(),
            _ => None,
        }
    }

    /// A string array tag.
    pub(crate) fn strings(&self, tag: u32) -> Option<Vec<&'a str>> {
        let e = self.entry(tag)?;
        (e.ty == TYPE_STRING_ARRAY).then(|| self.strings_of(e))?
    }

    fn numbers(&self, tag: u32, ty: u32, width: usize) -> Option<Vec<u32>> {
        let e = self.entry(tag)?;
        if e.ty != ty {
            return None;
        }
        let bytes = self.data.get(e.offset..e.offset.checked_add(e.count.checked_mul(width)?)?)?;
        Some(bytes.chunks_exact(width).map(|c| c.iter().fold(0u32, |n, &b| (n << 8) | u32::from(b))).collect())
    }

    /// An INT32 array tag.
    pub(crate) fn int32s(&self, tag: u32) -> Option<Vec<u32>> {
        self.numbers(tag, TYPE_INT32, 4)
    }

    /// An INT16 array tag.
    pub(crate) fn int16s(&self, tag: u32) -> Option<Vec<u32>> {
        self.numbers(tag, TYPE_INT16, 2)
    }

    /// A CHAR or INT8 array tag.
    pub(crate) fn bytes(&self, tag: u32) -> Option<Vec<u32>> {
        self.numbers(tag, TYPE_CHAR, 1).or_else(|| self.numbers(tag, TYPE_INT8, 1))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Build a header blob from (tag, type, count, data) entries, for tests.
    pub(crate) fn build(entries: &[(u32, u32, u32, Vec<u8>)]) -> Vec<u8> {
        let mut index = Vec::new();
        let mut data = Vec::new();
        for (tag, ty, count, bytes) in entries {
            // Align numbers as rpm does.
            let align = match *ty {
                TYPE_INT16 => 2,
                TYPE_INT32 => 4,
                _ => 1,
            };
            while data.len() % align != 0 {
                data.push(0);
            }
            for v in [*tag, *ty, data.len() as u32, *count] {
                index.extend_from_slice(&v.to_be_bytes());
            }
            data.extend_from_slice(bytes);
        }
        let mut blob = Vec::new();
        blob.extend_from_slice(&(entries.len() as u32).to_be_bytes());
        blob.extend_from_slice(&(data.len() as u32).to_be_bytes());
        blob.extend(index);
        blob.extend(data);
        blob
    }

    pub(crate) fn strs(v: &[&str]) -> (u32, Vec<u8>) {
        let mut out = Vec::new();
        for s in v {
            out.extend_from_slice(s.as_bytes());
            out.push(0);
        }
        (v.len() as u32, out)
    }

    #[test]
    fn strings_and_numbers_are_read_back() {
        let (n, names) = strs(&["a", "bc"]);
        let blob = build(&[
            (tag::NAME, TYPE_STRING, 1, b"tool\0".to_vec()),
            (tag::BASENAMES, TYPE_STRING_ARRAY, n, names),
            (tag::DIRINDEXES, TYPE_INT32, 2, [0u32, 7].iter().flat_map(|v| v.to_be_bytes()).collect()),
            (tag::FILEMODES, TYPE_INT16, 1, 0o100755u16.to_be_bytes().to_vec()),
            (tag::FILESTATES, TYPE_CHAR, 2, vec![0, 2]),
        ]);
        let h = Header::parse(&blob).unwrap();
        assert_eq!(h.string(tag::NAME), Some("tool"));
        assert_eq!(h.strings(tag::BASENAMES).unwrap(), ["a", "bc"]);
        assert_eq!(h.int32s(tag::DIRINDEXES).unwrap(), [0, 7]);
        assert_eq!(h.int16s(tag::FILEMODES).unwrap(), [0o100755]);
        assert_eq!(h.bytes(tag::FILESTATES).unwrap(), [0, 2]);
        // A tag read with the wrong type is absent, not misread.
        assert_eq!(h.int32s(tag::NAME), None);
        assert_eq!(h.string(tag::VERSION), None);
    }

    #[test]
    fn hostile_headers_are_refused_or_read_as_absent_never_out_of_bounds() {
        assert!(Header::parse(&[]).is_err());
        assert!(Header::parse(&[0, 0, 0, 0, 0, 0, 0, 0]).is_err());
        assert!(Header::parse(&[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]).is_err());
        // An index that claims more data than the blob has.
        let mut blob = build(&[(tag::NAME, TYPE_STRING, 1, b"x\0".to_vec())]);
        blob[7] = 200;
        assert!(Header::parse(&blob).is_err());
        // A string without its NUL, a count past the data, an offset past the end.
        let h = build(&[(tag::NAME, TYPE_STRING, 1, b"xyz".to_vec())]);
        assert_eq!(Header::parse(&h).unwrap().string(tag::NAME), None);
        let (_, names) = strs(&["a"]);
        let h = build(&[(tag::BASENAMES, TYPE_STRING_ARRAY, 2, names)]);
        assert_eq!(Header::parse(&h).unwrap().strings(tag::BASENAMES), None);
        let h = build(&[(tag::DIRINDEXES, TYPE_INT32, 3, vec![0; 4])]);
        assert_eq!(Header::parse(&h).unwrap().int32s(tag::DIRINDEXES), None);
        let mut h = build(&[(tag::NAME, TYPE_STRING, 1, b"x\0".to_vec())]);
        h[16..20].copy_from_slice(&100u32.to_be_bytes());
        assert!(Header::parse(&h).is_err());
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_parse_or_are_refused_without_panicking(blob in proptest::collection::vec(0u8..=255, 0..512)) {
            if let Ok(h) = Header::parse(&blob) {
                for t in [tag::NAME, tag::BASENAMES, tag::DIRINDEXES, tag::FILEMODES, tag::FILESTATES] {
                    let _ = (h.string(t), h.strings(t), h.int32s(t), h.int16s(t), h.bytes(t));
                }
                let _ = crate::rpm::package(&h);
            }
        }

        #[test]
        fn small_headers_with_any_index_are_read_safely(
            entries in proptest::collection::vec((1000u32..1120, 0u32..10, 0u32..64, 0u32..64), 1..8),
            data in proptest::collection::vec(0u8..=255, 0..64),
        ) {
            let mut blob = Vec::new();
            blob.extend_from_slice(&(entries.len() as u32).to_be_bytes());
            blob.extend_from_slice(&(data.len() as u32).to_be_bytes());
            for (t, ty, off, count) in &entries {
                for v in [t, ty, off, count] {
                    blob.extend_from_slice(&v.to_be_bytes());
                }
            }
            blob.extend_from_slice(&data);
            if let Ok(h) = Header::parse(&blob) {
                let _ = crate::rpm::package(&h);
            }
        }
    }
}
