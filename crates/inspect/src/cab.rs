//! Cabinet (CAB) archives: every file inside, each with its own facts.

use crate::{Anomaly, Facts, Options, Problem, guard};
use std::io::{Cursor, Read};

/// What a cabinet holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CabInfo {
    /// Number of files.
    pub file_count: usize,
    /// Compression of each folder (`none`, `mszip`, `lzx`, `quantum`).
    pub compression: Vec<String>,
}

/// Call `each` with the name and bytes of every file in the cabinet, within `budget` bytes
/// unpacked in total.
pub(crate) fn each_file(
    data: &[u8],
    budget: &mut u64,
    opts: &Options,
    mut each: impl FnMut(&str, &[u8]),
) -> Result<CabInfo, Problem> {
    let listing = guard(|| -> Result<(CabInfo, Vec<(String, u64)>), Problem> {
        let cab = cab::Cabinet::new(Cursor::new(data)).map_err(|e| Problem::caused("not a readable cabinet", e))?;
        let mut info = CabInfo::default();
        let mut files = Vec::new();
        for folder in cab.folder_entries() {
            info.compression.push(
                match folder.compression_type() {
                    cab::CompressionType::None => "none",
                    cab::CompressionType::MsZip => "mszip",
                    cab::CompressionType::Quantum(..) => "quantum",
                    cab::CompressionType::Lzx(_) => "lzx",
                }
                .to_string(),
            );
            for file in folder.file_entries() {
                files.push((file.name().to_string(), u64::from(file.uncompressed_size())));
            }
        }
        info.file_count = files.len();
        Ok((info, files))
    })??;
    let (info, files) = listing;
    let mut cab =
        guard(|| cab::Cabinet::new(Cursor::new(data)))?.map_err(|e| Problem::caused("not a readable cabinet", e))?;
    for (name, size) in files {
        let limit = size.min(opts.max_parse_size);
        if limit > *budget {
            return Err(Problem::new(format!(
                "unpacking stopped at {name:?}: more than {} bytes unpacked from one container",
                opts.max_unpacked_bytes
            )));
        }
        let content = guard(|| -> Result<Vec<u8>, std::io::Error> {
            let reader = cab.read_file(&name)?;
            let mut bytes = Vec::with_capacity(limit.min(64 << 20) as usize);
            reader.take(limit).read_to_end(&mut bytes)?;
            Ok(bytes)
        })
        .and_then(|read| read.map_err(|e| Problem::caused("reading failed", e)))
        .map_err(|e| e.within(format!("{name:?} could not be unpacked")))?;
        *budget -= content.len() as u64;
        each(&name, &content);
    }
    Ok(info)
}

pub(crate) fn inspect(path: &str, data: &[u8], opts: &Options, depth: u8, facts: &mut Facts) {
    if depth >= opts.max_depth {
        facts
            .anomalies
            .push(Anomaly::new("nesting-too-deep", "files inside this cabinet were not opened: nesting limit reached"));
        return;
    }
    let mut budget = opts.max_unpacked_bytes;
    let mut contents = Vec::new();
    match each_file(data, &mut budget, opts, |name, content| {
        let mut inner = crate::inspect_bytes_at_depth(&format!("{path}!/{name}"), content, opts, depth + 1);
        inner.container = Some(path.to_string());
        contents.push(inner);
    }) {
        Ok(info) => facts.cab = Some(info),
        Err(e) => {
            facts.parse_error.get_or_insert(e.report());
        }
    }
    facts.contents.extend(contents);
}
