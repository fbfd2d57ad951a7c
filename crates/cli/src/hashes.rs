//! `portcullis hashes extract`: hashes out of any pasted text.

use crate::args::{ExtractArgs, ExtractFormat};
use crate::exit::{OrExit, UNREADABLE};
use portcullis_hashlist::{Extractor, HashKind};
use serde_json::json;
use std::io::{Read, Write};
use std::process::ExitCode;

pub fn extract(args: ExtractArgs) -> anyhow::Result<ExitCode> {
    let (reader, source): (Box<dyn Read>, String) = match args.input.as_deref() {
        None => (Box::new(std::io::stdin().lock()), "standard input".to_string()),
        Some(p) if p.as_os_str() == "-" => (Box::new(std::io::stdin().lock()), "standard input".to_string()),
        Some(p) => (
            Box::new(std::fs::File::open(p).or_exit(UNREADABLE, format!("cannot read {}", p.display()))?),
            p.display().to_string(),
        ),
    };
    let found = extract_stream(reader).or_exit(UNREADABLE, format!("cannot read {source}"))?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    match args.format {
        ExtractFormat::Plain => {
            for h in &found.hashes {
                writeln!(out, "{h}")?;
            }
        }
        ExtractFormat::Json => {
            let doc = json!({
                "source": source,
                "hashes": found.hashes.iter().map(|h| json!({"type": h.hash.kind().name(), "hash": h.to_string(), "line": h.line})).collect::<Vec<_>>(),
                "counts": {"md5": found.count(HashKind::Md5), "sha1": found.count(HashKind::Sha1), "sha256": found.count(HashKind::Sha256)},
                "duplicates": found.duplicates,
                "skipped_total": found.skipped_total,
                "skipped": found.skipped.iter().map(|s| json!({"line": s.line, "reason": s.reason.to_string(), "text": s.text})).collect::<Vec<_>>(),
            });
            serde_json::to_writer_pretty(&mut out, &doc)?;
            writeln!(out)?;
        }
        ExtractFormat::Package => {
            writeln!(out, "# Blocklist package extracted by `portcullis hashes extract` from {source}.")?;
            writeln!(out, "# Review the hashes, add metadata rules per OS, then approve it at a scope.")?;
            writeln!(out, "[[blocklists]]")?;
            writeln!(out, "name = {}", toml_string(&args.name))?;
            writeln!(
                out,
                "description = {}",
                toml_string(&format!("{} hashes extracted from {source}", found.hashes.len()))
            )?;
            for kind in [HashKind::Sha256, HashKind::Sha1, HashKind::Md5] {
                let list: Vec<String> = found.of_kind(kind).map(|h| format!("  \"{h}\", # line {}", h.line)).collect();
                if !list.is_empty() {
                    writeln!(out, "{} = [\n{}\n]", kind.name(), list.join("\n"))?;
                }
            }
            let approvals: Vec<String> = args.approve.iter().map(|s| toml_string(s)).collect();
            writeln!(out, "approved = [{}]", approvals.join(", "))?;
        }
    }
    out.flush()?;
    let mut summary = format!(
        "extracted {} SHA-256, {} SHA-1, {} MD5 from {source}; {} duplicate(s) dropped",
        found.count(HashKind::Sha256),
        found.count(HashKind::Sha1),
        found.count(HashKind::Md5),
        found.duplicates
    );
    if found.skipped_total > 0 {
        summary.push_str(&format!("; {} hex run(s) skipped", found.skipped_total));
    }
    eprintln!("{summary}");
    for s in found.skipped.iter().take(10) {
        eprintln!("  skipped line {}: {:?}: {}", s.line, s.text, s.reason);
    }
    if found.skipped_total > 10 {
        eprintln!("  … {} more (see --format json)", found.skipped_total - 10);
    }
    Ok(ExitCode::SUCCESS)
}

/// Read in small chunks: the text is never held whole, so a large feed costs no page faults.
fn extract_stream(mut reader: impl Read) -> std::io::Result<portcullis_hashlist::Extraction> {
    let mut extractor = Extractor::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => return Ok(extractor.finish()),
            Ok(n) => extractor.feed(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

fn toml_string(s: &str) -> String {
    let escaped: String = s
        .chars()
        .flat_map(|c| match c {
            '"' => vec!['\\', '"'],
            '\\' => vec!['\\', '\\'],
            '\n' => vec!['\\', 'n'],
            c if c.is_control() => format!("\\u{:04X}", c as u32).chars().collect(),
            c => vec![c],
        })
        .collect();
    format!("\"{escaped}\"")
}
