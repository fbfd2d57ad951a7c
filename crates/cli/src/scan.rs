//! `portcullis scan`: walk files and folders, inspect every file on all cores, stream records.

use crate::args::ScanArgs;
use crate::exit::{OK, UNREADABLE};
use crate::{load, record};
use indicatif::{ProgressBar, ProgressStyle};
use portcullis_inspect::{ExtraHashes, Facts, Options, inspect_path};
use rayon::prelude::*;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::mpsc;

/// Regular files under `paths`, their total size, and what could not be read.
pub(crate) fn collect(paths: &[PathBuf]) -> (Vec<(PathBuf, u64)>, Vec<String>) {
    let mut files = Vec::new();
    let mut problems = Vec::new();
    for root in paths {
        match std::fs::symlink_metadata(root) {
            Ok(m) if m.is_file() => files.push((root.clone(), m.len())),
            Ok(m) if m.is_dir() => {
                for entry in walkdir::WalkDir::new(root).follow_links(false) {
                    match entry {
                        Ok(e) if e.file_type().is_file() => {
                            files.push((e.path().to_path_buf(), e.metadata().map_or(0, |m| m.len())))
                        }
                        Ok(_) => {}
                        Err(e) => problems.push(format!(
                            "{}: {}",
                            e.path().map_or_else(|| root.display().to_string(), |p| p.display().to_string()),
                            e
                        )),
                    }
                }
            }
            Ok(_) => problems.push(format!("{}: not a regular file or folder; skipped", root.display())),
            Err(e) => problems.push(format!("{}: {e}", root.display())),
        }
    }
    (files, problems)
}

pub fn run(args: ScanArgs) -> anyhow::Result<ExitCode> {
    let trust = load::trust_store(args.trust_store.as_deref())?;
    let opts = Options {
        trust,
        extra_hashes: ExtraHashes { sha1: args.all_hashes, md5: args.all_hashes },
        ..Options::default()
    };
    let (files, mut problems) = collect(&args.paths);
    let total: u64 = files.iter().map(|(_, n)| n).sum();
    let progress = if std::io::stderr().is_terminal() && files.len() > 1 {
        let bar = ProgressBar::new(total);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} {bytes}/{total_bytes} {bytes_per_sec} {wide_msg} [{elapsed}<{eta}]",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    let pool = rayon::ThreadPoolBuilder::new().num_threads(args.threads.unwrap_or(0)).build()?;
    let (tx, rx) = mpsc::sync_channel::<Result<Facts, String>>(256);
    let worker_progress = progress.clone();
    let worker = std::thread::spawn(move || {
        pool.install(|| {
            files.par_iter().for_each_with(tx, |tx, (path, size)| {
                let result = inspect_path(path, &opts).map_err(|e| format!("{}: {e}", path.display()));
                worker_progress.inc(*size);
                let _ = tx.send(result);
            })
        })
    });

    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut table_rows = Vec::new();
    let mut count = 0usize;
    for result in rx {
        match result {
            Ok(facts) => {
                count += 1;
                progress.set_message(facts.path.clone());
                for f in facts.flatten() {
                    if args.json {
                        serde_json::to_writer(&mut out, &record::scan_json(f))?;
                        out.write_all(b"\n")?;
                    } else {
                        table_rows.push(vec![
                            f.path.clone(),
                            f.format.name().to_string(),
                            f.size.to_string(),
                            portcullis_inspect::hex(&f.hashes.sha256),
                            record::details(f),
                        ]);
                    }
                }
            }
            Err(problem) => problems.push(problem),
        }
    }
    worker.join().map_err(|_| anyhow::anyhow!("scan worker panicked"))?;
    progress.finish_and_clear();
    if !args.json {
        table_rows.sort();
        let mut table = comfy_table::Table::new();
        table.load_style(comfy_table::presets::UTF8_FULL_CONDENSED);
        table.set_content_arrangement(comfy_table::ContentArrangement::Dynamic);
        table.set_header(["Path", "Format", "Size", "SHA-256", "Details"]);
        for row in table_rows {
            table.add_row(row);
        }
        writeln!(out, "{table}")?;
    }
    out.flush()?;
    eprintln!("scanned {count} file(s), {} bytes", total);
    for p in &problems {
        eprintln!("warning: {p}");
    }
    Ok(ExitCode::from(if problems.is_empty() { OK } else { UNREADABLE }))
}
