//! `portcullis events`: the agent's spool, for people (or as JSON lines).

use crate::args::EventsArgs;
use crate::exit::{UNREADABLE, fail};
use portcullis_events::{Record, spool};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

fn human(r: &Record) -> String {
    let time = r.time.replace('T', " ").trim_end_matches('Z').to_owned();
    let label = r.event.label();
    let mut who = r.process.who();
    for a in r.process.ancestors.iter().take(4) {
        who.push_str(&format!(" ← {} ({})", a.exe.as_deref().unwrap_or("?"), a.pid));
    }
    let sha = if r.file.sha256.is_empty() { String::new() } else { format!("  sha256 {}", &r.file.sha256) };
    format!(
        "{time}  {label:<11}  {:<6} {}\n    by {who}\n    {}\n    {} mode, answered {}{sha}\n",
        r.access, r.file.path, r.reason, r.mode, r.verdict
    )
}

struct Printer<'a> {
    args: &'a EventsArgs,
    out: std::io::StdoutLock<'static>,
    bad_lines: usize,
}

impl Printer<'_> {
    fn line(&mut self, line: &str) -> std::io::Result<()> {
        if line.trim().is_empty() {
            return Ok(());
        }
        let Ok(record) = serde_json::from_str::<Record>(line) else {
            self.bad_lines += 1;
            return Ok(());
        };
        if self.args.only.is_some_and(|o| o != record.event) {
            return Ok(());
        }
        if self.args.json { writeln!(self.out, "{line}") } else { writeln!(self.out, "{}", human(&record)) }
    }
}

fn read_from(path: &Path, offset: u64) -> std::io::Result<(String, u64)> {
    let mut f = std::fs::File::open(path)?;
    f.seek(SeekFrom::Start(offset))?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf)?;
    // Only whole lines: a record being written is picked up on the next round.
    let complete = buf.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    buf.truncate(complete);
    Ok((String::from_utf8_lossy(&buf).into_owned(), offset + complete as u64))
}

pub fn run(a: EventsArgs) -> anyhow::Result<ExitCode> {
    let dir = &a.spool;
    let files = spool::files(dir).map_err(|e| {
        fail(
            UNREADABLE,
            format!("cannot read the event spool {}: {e}; give the agent's --spool directory", dir.display()),
        )
    })?;
    let mut printer = Printer { args: &a, out: std::io::stdout().lock(), bad_lines: 0 };
    // Where each file was read up to.
    let mut position: Vec<(u64, u64)> = Vec::new();
    let mut backlog: Vec<String> = Vec::new();
    for (number, path) in &files {
        let (text, end) = read_from(path, 0).unwrap_or_default();
        backlog.extend(text.lines().map(str::to_owned));
        position.push((*number, end));
    }
    let skip = a.last.map_or(0, |n| backlog.len().saturating_sub(n));
    for line in &backlog[skip..] {
        printer.line(line)?;
    }
    if !a.follow {
        if printer.bad_lines > 0 {
            eprintln!("{} line(s) in {} were not events and were skipped", printer.bad_lines, dir.display());
        }
        return Ok(ExitCode::SUCCESS);
    }
    loop {
        printer.out.flush()?;
        std::thread::sleep(Duration::from_millis(250));
        let Ok(now) = spool::files(dir) else { continue };
        for (number, path) in now {
            let from = position.iter().find(|(n, _)| *n == number).map_or(0, |(_, o)| *o);
            let Ok((text, end)) = read_from(&path, from) else { continue };
            for line in text.lines() {
                printer.line(line)?;
            }
            match position.iter_mut().find(|(n, _)| *n == number) {
                Some(p) => p.1 = end,
                None => position.push((number, end)),
            }
        }
    }
}
