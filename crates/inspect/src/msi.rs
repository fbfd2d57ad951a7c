//! MSI installers: summary properties, the Authenticode digest over the compound file, and the
//! files inside embedded cabinets.

use crate::{Anomaly, Facts, Options, Problem, guard};
use sha2::Digest;
use std::collections::HashMap;
use std::io::{Cursor, Read};
use std::path::Path;

/// What an MSI's Property table says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MsiInfo {
    /// `ProductName`.
    pub product_name: Option<String>,
    /// `Manufacturer`.
    pub manufacturer: Option<String>,
    /// `ProductVersion`.
    pub product_version: Option<String>,
    /// `ProductCode`.
    pub product_code: Option<String>,
    /// Cabinets named by the Media table (`#name` for embedded ones).
    pub cabinets: Vec<String>,
}

const DIGITAL_SIGNATURE: &str = "\u{5}DigitalSignature";
const DIGITAL_SIGNATURE_EX: &str = "\u{5}MsiDigitalSignatureEx";

type Compound<'a> = cfb::CompoundFile<Cursor<&'a [u8]>>;

/// Limits on walking a compound file's storage tree: a crafted file can nest storages deeply
/// or make the tree loop back on itself (found by fuzzing as a stack overflow).
struct Walk {
    /// Entries still allowed to be visited: a directory entry takes 128 bytes of the file.
    visits: u64,
}

const MAX_STORAGE_DEPTH: usize = 16;

impl Walk {
    fn new(file_len: usize) -> Walk {
        Walk { visits: file_len as u64 / 128 + 1 }
    }

    fn enter(&mut self, depth: usize) -> std::io::Result<()> {
        if depth > MAX_STORAGE_DEPTH {
            return Err(std::io::Error::other(format!("storages nested deeper than {MAX_STORAGE_DEPTH} levels")));
        }
        self.visits = self.visits.checked_sub(1).ok_or_else(|| {
            std::io::Error::other("the storage tree has more entries than the file can hold (a loop?)")
        })?;
        Ok(())
    }
}

fn sorted_children(comp: &Compound<'_>, path: &Path) -> std::io::Result<Vec<cfb::Entry>> {
    let mut children: Vec<cfb::Entry> = comp.read_storage(path)?.collect();
    // osslsigncode and Windows sort by the raw UTF-16LE bytes of the names.
    children.sort_by_cached_key(|e| e.name().encode_utf16().flat_map(u16::to_le_bytes).collect::<Vec<u8>>());
    Ok(children)
}

struct Dual(sha2::Sha256, sha1::Sha1);

impl Dual {
    fn update(&mut self, data: &[u8]) {
        self.0.update(data);
        self.1.update(data);
    }
}

fn hash_storage(
    comp: &mut Compound<'_>,
    path: &Path,
    clsid: [u8; 16],
    depth: usize,
    h: &mut Dual,
    budget: &mut u64,
    walk: &mut Walk,
) -> std::io::Result<()> {
    let is_root = depth == 0;
    for child in sorted_children(comp, path)? {
        walk.enter(depth + 1)?;
        if is_root && (child.name() == DIGITAL_SIGNATURE || child.name() == DIGITAL_SIGNATURE_EX) {
            continue;
        }
        if child.is_stream() {
            let len = child.len() as u32 as u64;
            if len == 0 || len >= 0xFFFF_FFFA {
                continue;
            }
            *budget =
                budget.checked_sub(len).ok_or_else(|| std::io::Error::other("streams are larger than the file"))?;
            let mut data = Vec::with_capacity(len as usize);
            comp.open_stream(child.path())?.take(len).read_to_end(&mut data)?;
            h.update(&data);
        } else if child.is_storage() {
            hash_storage(comp, child.path(), child.clsid().to_bytes_le(), depth + 1, h, budget, walk)?;
        }
    }
    h.update(&clsid);
    Ok(())
}

fn filetime(t: std::time::SystemTime) -> u64 {
    const EPOCH_DIFF: i128 = 116_444_736_000_000_000;
    let ticks = match t.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => EPOCH_DIFF + (d.as_nanos() / 100) as i128,
        Err(e) => EPOCH_DIFF - (e.duration().as_nanos() / 100) as i128,
    };
    ticks.clamp(0, u64::MAX as i128) as u64
}

fn prehash_entry(e: &cfb::Entry, h: &mut Dual) {
    if !e.is_root() {
        let name: Vec<u8> = e.name().encode_utf16().flat_map(u16::to_le_bytes).collect();
        h.update(&name);
    }
    if e.is_stream() {
        h.update(&(e.len() as u32).to_le_bytes());
    } else {
        h.update(&e.clsid().to_bytes_le());
    }
    h.update(&e.state_bits().to_le_bytes());
    if !e.is_root() {
        h.update(&filetime(e.created()).to_le_bytes());
        h.update(&filetime(e.modified()).to_le_bytes());
    }
}

fn prehash_storage(
    comp: &Compound<'_>,
    storage: &cfb::Entry,
    depth: usize,
    h: &mut Dual,
    walk: &mut Walk,
) -> std::io::Result<()> {
    let is_root = depth == 0;
    prehash_entry(storage, h);
    for child in sorted_children(comp, storage.path())? {
        walk.enter(depth + 1)?;
        if is_root && (child.name() == DIGITAL_SIGNATURE || child.name() == DIGITAL_SIGNATURE_EX) {
            continue;
        }
        if child.is_stream() {
            prehash_entry(&child, h);
        } else if child.is_storage() {
            prehash_storage(comp, &child, depth + 1, h, walk)?;
        }
    }
    Ok(())
}

/// The MSI Authenticode digests (SHA-256, SHA-1) and the signature blob, if any.
pub(crate) fn authenticode(data: &[u8]) -> Result<(crate::AuthenticodeDigests, Option<Vec<u8>>), Problem> {
    let mut comp =
        cfb::CompoundFile::open(Cursor::new(data)).map_err(|e| Problem::caused("not a readable compound file", e))?;
    let root = comp.root_entry();
    let mut budget = data.len() as u64;
    let has_ex = comp.is_stream(format!("/{DIGITAL_SIGNATURE_EX}"));
    let mut content = Dual(sha2::Sha256::new(), sha1::Sha1::new());
    if has_ex {
        // With MsiDigitalSignatureEx the signed digest also covers the entries' metadata:
        // H(H(metadata) || content).
        let mut pre = Dual(sha2::Sha256::new(), sha1::Sha1::new());
        prehash_storage(&comp, &root, 0, &mut pre, &mut Walk::new(data.len()))
            .map_err(|e| Problem::caused("compound file", e))?;
        content.0.update(pre.0.finalize());
        content.1.update(pre.1.finalize());
    }
    let mut walk = Walk::new(data.len());
    hash_storage(&mut comp, Path::new("/"), root.clsid().to_bytes_le(), 0, &mut content, &mut budget, &mut walk)
        .map_err(|e| Problem::caused("compound file streams could not be read", e))?;
    let digests = crate::AuthenticodeDigests { sha256: content.0.finalize().into(), sha1: content.1.finalize().into() };
    let signature = if comp.is_stream(format!("/{DIGITAL_SIGNATURE}")) {
        let mut blob = Vec::new();
        comp.open_stream(format!("/{DIGITAL_SIGNATURE}"))
            .and_then(|s| s.take(data.len() as u64).read_to_end(&mut blob))
            .map_err(|e| Problem::caused("unreadable DigitalSignature stream", e))?;
        Some(blob)
    } else {
        None
    };
    Ok((digests, signature))
}

/// Properties, embedded cabinets (name, bytes), File rows and the Directory table.
type MsiParts = (MsiInfo, Vec<(String, Vec<u8>)>, Vec<FileRow>, HashMap<String, (Option<String>, String)>);

struct FileRow {
    key: String,
    long_name: String,
    directory: String,
}

fn long_name(field: &str) -> String {
    // "SHORT~1.DLL|Long Name.dll", and for directories "target:source".
    let target = field.split(':').next().unwrap_or(field);
    target.rsplit('|').next().unwrap_or(target).to_string()
}

fn install_path(directories: &HashMap<String, (Option<String>, String)>, dir: &str, file: &str) -> String {
    let mut parts = vec![file.to_string()];
    let mut current = Some(dir.to_string());
    for _ in 0..32 {
        let Some(key) = current else { break };
        let Some((parent, default_dir)) = directories.get(&key) else { break };
        let name = long_name(default_dir);
        match parent {
            None => {
                if key != "TARGETDIR" {
                    parts.push(format!("[{key}]"));
                }
                break;
            }
            Some(p) if p == "TARGETDIR" && name == "SourceDir" || name == "." => {}
            Some(p) if p == "TARGETDIR" => {
                parts.push(format!("[{key}]"));
                break;
            }
            Some(_) => parts.push(name),
        }
        current = parent.clone();
    }
    parts.reverse();
    parts.join("/")
}

/// The compound-file name of an MSI table stream: pairs of characters from
/// `[0-9A-Za-z._]` packed into one UTF-16 unit, behind the table marker U+4840.
fn table_stream_name(table: &str) -> String {
    fn code(c: u8) -> Option<u32> {
        Some(match c {
            b'0'..=b'9' => u32::from(c - b'0'),
            b'A'..=b'Z' => u32::from(c - b'A') + 10,
            b'a'..=b'z' => u32::from(c - b'a') + 36,
            b'.' => 62,
            b'_' => 63,
            _ => return None,
        })
    }
    let mut out = String::from('\u{4840}');
    for pair in table.as_bytes().chunks(2) {
        let unit = match (pair.first().and_then(|&c| code(c)), pair.get(1).and_then(|&c| code(c))) {
            (Some(a), Some(b)) => 0x3800 + a + (b << 6),
            (Some(a), None) => 0x4800 + a,
            _ => continue,
        };
        out.extend(char::from_u32(unit));
    }
    out
}

/// The `msi` crate allocates each string of the string pool (and of the summary information)
/// at the length the file declares; refuse files that declare more bytes than the streams
/// hold, so a crafted file cannot make it allocate gigabytes. Both cases were found by fuzzing.
fn check_string_pool(data: &[u8]) -> Result<(), Problem> {
    let mut comp =
        cfb::CompoundFile::open(Cursor::new(data)).map_err(|e| Problem::caused("not a readable compound file", e))?;
    let pool_path = format!("/{}", table_stream_name("_StringPool"));
    let data_path = format!("/{}", table_stream_name("_StringData"));
    let strings_len = comp.entry(&data_path).map(|e| e.len()).unwrap_or(0);
    let mut pool = Vec::new();
    if let Ok(stream) = comp.open_stream(&pool_path) {
        stream
            .take(data.len() as u64)
            .read_to_end(&mut pool)
            .map_err(|e| Problem::caused("unreadable _StringPool stream", e))?;
    }
    let mut declared = 0u64;
    let mut at = 4;
    while at + 4 <= pool.len() {
        let mut length = u64::from(u16::from_le_bytes([pool[at], pool[at + 1]]));
        let refcount = u16::from_le_bytes([pool[at + 2], pool[at + 3]]);
        at += 4;
        if length == 0 && refcount > 0 {
            let Some(long) = pool.get(at..at + 4) else { break };
            length = u64::from(u32::from_le_bytes([long[0], long[1], long[2], long[3]]));
            at += 4;
        }
        declared += length;
    }
    if declared > strings_len {
        return Err(Problem::new(format!(
            "the MSI string pool declares {declared} bytes of strings but _StringData holds {strings_len}"
        )));
    }
    check_summary_strings(&mut comp, data.len() as u64)
}

/// The `msi` crate reserves each summary-information string (VT_LPSTR) at its declared length
/// before reading it; refuse lengths longer than the stream that holds them.
fn check_summary_strings(comp: &mut Compound<'_>, limit: u64) -> Result<(), Problem> {
    let mut set = Vec::new();
    match comp.open_stream("/\u{5}SummaryInformation") {
        Ok(stream) => stream
            .take(limit)
            .read_to_end(&mut set)
            .map_err(|e| Problem::caused("unreadable SummaryInformation stream", e))?,
        Err(_) => return Ok(()),
    };
    let u32_at =
        |at: usize| set.get(at..at.checked_add(4)?).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize);
    let Some(section) = u32_at(44) else { return Ok(()) };
    let count = u32_at(section + 4).unwrap_or(0).min(set.len() / 8);
    for i in 0..count {
        let Some(offset) = u32_at(section + 8 + 8 * i + 4) else { break };
        let value = section.saturating_add(offset);
        if u32_at(value) == Some(30) {
            let declared = u32_at(value + 4).unwrap_or(0);
            if declared > set.len() {
                return Err(Problem::new(format!(
                    "a summary-information string declares {declared} bytes in a {}-byte stream",
                    set.len()
                )));
            }
        }
    }
    Ok(())
}

/// Read the MSI's properties and list the files of its embedded cabinets.
pub(crate) fn inspect(path: &str, data: &[u8], opts: &Options, depth: u8, facts: &mut Facts) {
    let result = guard(|| -> Result<MsiParts, Problem> {
        check_string_pool(data)?;
        let mut pkg =
            msi::Package::open(Cursor::new(data)).map_err(|e| Problem::caused("not a readable MSI database", e))?;
        let mut info = MsiInfo::default();
        if pkg.has_table("Property") {
            for row in pkg
                .select_rows(msi::Select::table("Property"))
                .map_err(|e| Problem::caused("unreadable Property table", e))?
            {
                if !row.has_column("Property") || !row.has_column("Value") {
                    break;
                }
                let (Some(k), Some(v)) = (row["Property"].as_str(), row["Value"].as_str()) else { continue };
                let slot = match k {
                    "ProductName" => &mut info.product_name,
                    "Manufacturer" => &mut info.manufacturer,
                    "ProductVersion" => &mut info.product_version,
                    "ProductCode" => &mut info.product_code,
                    _ => continue,
                };
                *slot = Some(v.to_string());
            }
        }
        let mut directories = HashMap::new();
        if pkg.has_table("Directory") {
            for row in pkg
                .select_rows(msi::Select::table("Directory"))
                .map_err(|e| Problem::caused("unreadable Directory table", e))?
            {
                if !(row.has_column("Directory") && row.has_column("Directory_Parent") && row.has_column("DefaultDir"))
                {
                    break;
                }
                if let (Some(d), Some(def)) = (row["Directory"].as_str(), row["DefaultDir"].as_str()) {
                    let parent =
                        row["Directory_Parent"].as_str().filter(|p| !p.is_empty() && *p != d).map(str::to_string);
                    directories.insert(d.to_string(), (parent, def.to_string()));
                }
            }
        }
        let mut component_dirs = HashMap::new();
        if pkg.has_table("Component") {
            for row in pkg
                .select_rows(msi::Select::table("Component"))
                .map_err(|e| Problem::caused("unreadable Component table", e))?
            {
                if !(row.has_column("Component") && row.has_column("Directory_")) {
                    break;
                }
                if let (Some(c), Some(d)) = (row["Component"].as_str(), row["Directory_"].as_str()) {
                    component_dirs.insert(c.to_string(), d.to_string());
                }
            }
        }
        let mut files = Vec::new();
        if pkg.has_table("File") {
            for row in
                pkg.select_rows(msi::Select::table("File")).map_err(|e| Problem::caused("unreadable File table", e))?
            {
                if !(row.has_column("File") && row.has_column("FileName") && row.has_column("Component_")) {
                    break;
                }
                if let (Some(key), Some(name)) = (row["File"].as_str(), row["FileName"].as_str()) {
                    let directory =
                        row["Component_"].as_str().and_then(|c| component_dirs.get(c)).cloned().unwrap_or_default();
                    files.push(FileRow { key: key.to_string(), long_name: long_name(name), directory });
                }
            }
        }
        let mut cabinets = Vec::new();
        if pkg.has_table("Media") {
            for row in pkg
                .select_rows(msi::Select::table("Media"))
                .map_err(|e| Problem::caused("unreadable Media table", e))?
            {
                if !row.has_column("Cabinet") {
                    break;
                }
                if let Some(cab) = row["Cabinet"].as_str().filter(|c| !c.is_empty()) {
                    info.cabinets.push(cab.to_string());
                }
            }
        }
        for cab in &info.cabinets {
            if let Some(stream) = cab.strip_prefix('#') {
                let mut bytes = Vec::new();
                if let Ok(s) = pkg.read_stream(stream) {
                    s.take(data.len() as u64)
                        .read_to_end(&mut bytes)
                        .map_err(|e| Problem::caused(format!("unreadable cabinet stream {stream:?}"), e))?;
                    cabinets.push((stream.to_string(), bytes));
                }
            }
        }
        Ok((info, cabinets, files, directories))
    });
    let (info, cabinets, files, directories) = match result {
        Ok(Ok(parts)) => parts,
        Ok(Err(e)) | Err(e) => {
            facts.parse_error.get_or_insert(e.report());
            return;
        }
    };
    facts.msi = Some(info);
    if depth >= opts.max_depth {
        facts.anomalies.push(Anomaly::new(
            "nesting-too-deep",
            "cabinets inside this installer were not opened: nesting limit reached",
        ));
        return;
    }
    let names: HashMap<&str, &FileRow> = files.iter().map(|f| (f.key.as_str(), f)).collect();
    let mut budget = opts.max_unpacked_bytes;
    for (cab_name, bytes) in cabinets {
        let container = format!("{path}!/{cab_name}");
        let mut inner_files = Vec::new();
        let listed = crate::cab::each_file(&bytes, &mut budget, opts, |name, content| {
            let (display, install) = match names.get(name) {
                Some(row) => (row.long_name.clone(), Some(install_path(&directories, &row.directory, &row.long_name))),
                None => (name.to_string(), None),
            };
            let inner_path = format!("{path}!/{display}");
            let mut inner = crate::inspect_bytes_at_depth(&inner_path, content, opts, depth + 1);
            inner.container = Some(path.to_string());
            inner.install_path = install;
            inner.cabinet = Some(cab_name.clone());
            inner_files.push(inner);
        });
        facts.contents.extend(inner_files);
        if let Err(e) = listed {
            facts
                .anomalies
                .push(Anomaly::new("cabinet-unreadable", e.within(format!("embedded cabinet {container}")).report()));
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn table_stream_names_match_the_msi_encoding() {
        // "_StringPool": the table marker, five packed pairs and one single character.
        let name: Vec<u32> = super::table_stream_name("_StringPool").chars().map(u32::from).collect();
        assert_eq!(name.len(), 7);
        assert_eq!(name[0], 0x4840);
        assert_eq!(name[1], 0x3800 + 63 + ((10 + 18) << 6)); // "_S"
        assert_eq!(name[6], 0x4800 + 36 + 11); // "l"
    }
}
