//! The local event spool: JSON lines in numbered files, appended, bounded and rotated. The
//! writer ([`Spool`], the agent's) and the reader ([`files`], [`read_lines`], for the sync
//! client and `portcullis events`) are here together, so the format has one definition.
//!
//! Each record is one `write(2)` to a file opened with `O_APPEND`, so a crash of the agent
//! loses nothing that was written (the page cache holds it); files are synced when they are
//! rotated and every few seconds. A restart continues in a new file with the next number.
//! The bound is `max_files × max_file_bytes`: when it is reached the oldest file goes.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Spool limits.
#[derive(Clone, Debug)]
pub struct SpoolConfig {
    /// Directory of the spool files.
    pub dir: PathBuf,
    /// A file is rotated when it reaches this size.
    pub max_file_bytes: u64,
    /// At most this many files are kept.
    pub max_files: usize,
}

/// The writer.
#[derive(Debug)]
pub struct Spool {
    config: SpoolConfig,
    file: File,
    number: u64,
    written: u64,
    last_sync: Instant,
}

const PREFIX: &str = "events-";
const SUFFIX: &str = ".jsonl";

/// The spool files of `dir`, oldest first, with their numbers.
pub fn files(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name();
        let name = name.to_string_lossy();
        if let Some(n) = name.strip_prefix(PREFIX).and_then(|r| r.strip_suffix(SUFFIX)).and_then(|n| n.parse().ok()) {
            out.push((n, e.path()));
        }
    }
    out.sort();
    Ok(out)
}

fn file_name(number: u64) -> String {
    format!("{PREFIX}{number:08}{SUFFIX}")
}

impl Spool {
    /// Open the spool in `config.dir` (created if missing), starting a new file after the
    /// highest number there.
    pub fn open(config: SpoolConfig) -> io::Result<Spool> {
        std::fs::create_dir_all(&config.dir)?;
        let number = files(&config.dir)?.last().map_or(1, |(n, _)| n + 1);
        let file = Self::create(&config.dir, number)?;
        let mut spool = Spool { config, file, number, written: 0, last_sync: Instant::now() };
        spool.prune()?;
        Ok(spool)
    }

    fn create(dir: &Path, number: u64) -> io::Result<File> {
        OpenOptions::new().create(true).append(true).mode(0o600).open(dir.join(file_name(number)))
    }

    /// Append one record (a JSON value without newlines).
    pub fn append(&mut self, line: &str) -> io::Result<()> {
        if self.written > 0 && self.written + line.len() as u64 + 1 > self.config.max_file_bytes {
            self.rotate()?;
        }
        let mut buf = Vec::with_capacity(line.len() + 1);
        buf.extend_from_slice(line.as_bytes());
        buf.push(b'\n');
        if let Err(e) = self.file.write_all(&buf) {
            // A full filesystem takes part of a line: cut it off again, so the next record
            // starts on a line of its own instead of completing a torn one.
            let _ = self.file.set_len(self.written);
            return Err(e);
        }
        self.written += buf.len() as u64;
        if self.last_sync.elapsed() > Duration::from_secs(5) {
            self.sync()?;
        }
        Ok(())
    }

    /// Flush to disk.
    pub fn sync(&mut self) -> io::Result<()> {
        self.last_sync = Instant::now();
        self.file.sync_data()
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.file.sync_data()?;
        self.number += 1;
        self.file = Self::create(&self.config.dir, self.number)?;
        self.written = 0;
        self.prune()
    }

    fn prune(&mut self) -> io::Result<()> {
        let all = files(&self.config.dir)?;
        let excess = all.len().saturating_sub(self.config.max_files.max(1));
        for (_, path) in all.into_iter().take(excess) {
            std::fs::remove_file(path)?;
        }
        Ok(())
    }
}

/// Up to `max` complete lines of `path` from byte `offset` that are JSON values, and the
/// offset after them. A line still being written (no newline yet) is left for next time; a
/// line that is not JSON (a torn write after a crash) is skipped, and counted in the third
/// value with its offset.
pub fn read_lines(path: &Path, offset: u64, max: usize) -> io::Result<(Vec<String>, u64, Vec<u64>)> {
    let mut f = File::open(path)?;
    f.seek(io::SeekFrom::Start(offset))?;
    let mut reader = io::BufReader::new(f);
    let mut lines = Vec::new();
    let mut skipped = Vec::new();
    let mut end = offset;
    let mut buf = String::new();
    while lines.len() < max {
        buf.clear();
        let n = reader.read_line(&mut buf)?;
        if n == 0 || !buf.ends_with('\n') {
            break;
        }
        end += n as u64;
        let line = buf.trim_end();
        if serde_json::from_str::<&serde_json::value::RawValue>(line).is_ok() {
            lines.push(line.to_owned());
        } else if !line.is_empty() {
            skipped.push(end - n as u64);
        }
    }
    Ok((lines, end, skipped))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(dir: &Path) -> Vec<String> {
        files(dir)
            .unwrap()
            .iter()
            .flat_map(|(_, p)| std::fs::read_to_string(p).unwrap().lines().map(str::to_owned).collect::<Vec<_>>())
            .collect()
    }

    #[test]
    fn only_complete_json_lines_are_read_and_the_offset_follows_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events-00000001.jsonl");
        std::fs::write(&path, "{\"a\":1}\nnot json\n{\"b\":2}\n{\"c\":").unwrap();
        let (lines, end, skipped) = read_lines(&path, 0, 10).unwrap();
        assert_eq!(lines, ["{\"a\":1}", "{\"b\":2}"]);
        assert_eq!((end, skipped), (25, vec![8]));
        let (lines, end2, _) = read_lines(&path, 0, 1).unwrap();
        assert_eq!((lines.len(), end2), (1, 8));
        // The torn tail is finished later.
        std::fs::OpenOptions::new().append(true).open(&path).unwrap().write_all(b"3}\n").unwrap();
        let (lines, _, _) = read_lines(&path, end, 10).unwrap();
        assert_eq!(lines, ["{\"c\":3}"]);
    }

    #[test]
    fn records_survive_a_restart_and_the_spool_stays_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let config = SpoolConfig { dir: dir.path().into(), max_file_bytes: 100, max_files: 3 };
        let mut s = Spool::open(config.clone()).unwrap();
        for i in 0..5 {
            s.append(&format!("{{\"n\":{i}}}")).unwrap();
        }
        // A crash: no sync, no clean close.
        std::mem::forget(s);
        let mut s = Spool::open(config.clone()).unwrap();
        s.append("{\"n\":5}").unwrap();
        let got = lines(dir.path());
        assert_eq!(got.len(), 6, "{got:?}");
        assert_eq!(got[5], "{\"n\":5}");
        for i in 6..60 {
            s.append(&format!("{{\"n\":{i}, \"pad\": \"{}\"}}", "x".repeat(20))).unwrap();
        }
        let kept = files(dir.path()).unwrap();
        assert_eq!(kept.len(), 3, "oldest files are pruned");
        let total: u64 = kept.iter().map(|(_, p)| std::fs::metadata(p).unwrap().len()).sum();
        assert!(total <= 300);
        assert!(lines(dir.path()).last().unwrap().starts_with("{\"n\":59"));
    }
}
