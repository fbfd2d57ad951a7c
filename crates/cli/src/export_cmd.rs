//! `portcullis export applocker|appcontrol|santa|fapolicyd`: a group's policy for another
//! engine, and the report on every rule; `portcullis import …`: the other way.

use crate::args::{ExportArgs, ImportArgs};
use crate::check::Inspector;
use crate::exit::{BAD_POLICY, NOT_EXPRESSIBLE, OK, OrExit, UNREADABLE, fail};
use crate::load;
use indicatif::{ProgressBar, ProgressStyle};
use portcullis_export::{Format, Outcome, TrustedFile};
use portcullis_policy::{Basis, Os, PolicySet, ProcessFacts, Timestamp, Verdict};
use std::io::IsTerminal;
use std::process::ExitCode;

pub fn run(args: ExportArgs) -> anyhow::Result<ExitCode> {
    let format = Format::from_name(&args.format).ok_or_else(|| {
        fail(BAD_POLICY, format!("unknown format {:?}; use applocker, appcontrol, santa or fapolicyd", args.format))
    })?;
    let loaded = load::policy(&args.policy)?;
    let set = loaded.set.clone();
    // The set must compile, as an agent's would.
    load::engine(loaded.set)?;
    let group = args.group.as_deref().map(|g| g.trim().trim_matches('/'));
    if let Some(g) = group {
        let known = set.groups.iter().any(|x| x.path.eq_ignore_ascii_case(g))
            || set.computers.iter().any(|c| c.group.as_deref().is_some_and(|cg| cg.eq_ignore_ascii_case(g)));
        if !known {
            let mut groups: Vec<&str> = set.groups.iter().map(|x| x.path.as_str()).collect();
            groups.sort_unstable();
            return Err(fail(
                BAD_POLICY,
                format!(
                    "{} has no group {g:?}; its groups: {} (or leave --group out for computers in no group)",
                    args.policy.display(),
                    if groups.is_empty() { "none".to_owned() } else { groups.join(", ") }
                ),
            ));
        }
    }
    let now = Timestamp(load::moment(args.at.as_deref())?);
    let export = if format == Format::Fapolicyd {
        let trusted = trusted_files(&args, &set, group, now)?;
        portcullis_export::export_fapolicyd(&set, group, now, &trusted)
    } else if !args.trust_from.is_empty() {
        return Err(fail(
            BAD_POLICY,
            format!("--trust-from is for fapolicyd's trust file; {} has none: leave it out", format.engine()),
        ));
    } else {
        portcullis_export::export(&set, group, format, now)
    };
    if let Some(dir) = &args.out {
        for f in &export.files {
            let path = dir.join(&f.name);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).or_exit(UNREADABLE, format!("cannot create {}", parent.display()))?;
            }
            std::fs::write(&path, &f.bytes).or_exit(UNREADABLE, format!("cannot write {}", path.display()))?;
        }
    }
    let (exported, approximated, not) = export.report.counts();
    if args.json {
        let files: Vec<_> = export
            .files
            .iter()
            .map(|f| serde_json::json!({"name": f.name, "bytes": f.bytes.len(), "written": args.out.as_ref().map(|d| d.join(&f.name))}))
            .collect();
        println!("{}", serde_json::to_string_pretty(&serde_json::json!({"files": files, "report": export.report}))?);
    } else {
        let mut table = comfy_table::Table::new();
        table.load_style(comfy_table::presets::UTF8_FULL_CONDENSED);
        table.set_content_arrangement(comfy_table::ContentArrangement::Dynamic);
        table.set_header(["Rule", "What", "Outcome", "As", "How / why"]);
        for e in &export.report.entries {
            let (to, how) = match &e.outcome {
                Outcome::Exported { to } => (to.clone(), String::new()),
                Outcome::Approximated { to, how } => (to.clone(), how.clone()),
                Outcome::NotExpressible { why } => (String::new(), why.clone()),
            };
            table.add_row([e.source.label(), e.source.what.clone(), e.outcome.name().to_owned(), to, how]);
        }
        println!("{table}");
        println!(
            "{}: {exported} exported, {approximated} approximated, {not} not expressible (group {}, {} mode)",
            format.engine(),
            group.unwrap_or("(none)"),
            export.report.mode
        );
        match &args.out {
            Some(dir) => {
                for f in &export.files {
                    println!("wrote {}", dir.join(&f.name).display());
                }
            }
            None => println!("nothing written: give --out DIR to write the files"),
        }
    }
    Ok(ExitCode::from(if not > 0 { NOT_EXPRESSIBLE } else { OK }))
}

/// The files under `--trust-from` that the group's policy permits, each with the rule that
/// permitted it, judged as `portcullis check` judges them (packages verified).
fn trusted_files(
    args: &ExportArgs,
    set: &PolicySet,
    group: Option<&str>,
    now: Timestamp,
) -> anyhow::Result<Vec<TrustedFile>> {
    if args.trust_from.is_empty() {
        return Ok(Vec::new());
    }
    let engine = load::engine(set.clone())?;
    let target = engine.group_target(group, Os::Linux);
    let inspector =
        Inspector::new(&engine, None, now.0, (!args.no_package_trust).then_some(std::path::Path::new("/")))?;
    let (files, problems) = crate::scan::collect(&args.trust_from);
    for p in &problems {
        eprintln!("warning: --trust-from: {p}");
    }
    let progress = if std::io::stderr().is_terminal() && files.len() > 1 {
        let bar = ProgressBar::new(files.len() as u64);
        bar.set_style(
            ProgressStyle::with_template("{spinner} judging {pos}/{len} files {wide_msg} [{elapsed}<{eta}]")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    let process = ProcessFacts::default();
    let mut trusted = Vec::new();
    let mut unreadable = problems.len();
    for (path, _) in &files {
        progress.inc(1);
        let (_, file) = match inspector.inspect(path) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("warning: --trust-from: cannot read {}: {e}", path.display());
                unreadable += 1;
                continue;
            }
        };
        let decision = engine.decide(&file, &process, &target, now);
        if let Basis::Policy { policy, action, matched, .. } = &decision.basis
            && action.permits()
            && decision.verdict == Verdict::Allow
        {
            // fapolicyd sees the path the kernel resolved.
            let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.clone());
            trusted.push(TrustedFile {
                path: real.to_string_lossy().into_owned(),
                size: file.size,
                sha256: file.sha256,
                policy: policy.clone(),
                application: matched.application.clone(),
                rule: matched.rule,
            });
        }
    }
    progress.finish_and_clear();
    if unreadable > 0 {
        eprintln!("warning: --trust-from: {unreadable} file(s) or folder(s) could not be read, and are not pinned");
    }
    Ok(trusted)
}

pub fn import(args: ImportArgs) -> anyhow::Result<ExitCode> {
    let source = portcullis_import::Source::from_name(&args.format)
        .ok_or_else(|| fail(BAD_POLICY, format!("unknown format {:?}", args.format)))?;
    let bytes = std::fs::read(&args.file).or_exit(UNREADABLE, format!("cannot read {}", args.file.display()))?;
    if bytes.len() > 256 << 20 {
        return Err(fail(UNREADABLE, format!("{} is over 256 MiB: not a policy", args.file.display())));
    }
    let text = String::from_utf8(bytes).or_exit(
        UNREADABLE,
        format!("{} is not UTF-8 text (an XML in UTF-16? save it as UTF-8)", args.file.display()),
    )?;
    let imported = portcullis_import::import(source, &text, &args.prefix)
        .or_exit(BAD_POLICY, format!("{} cannot be imported as {}", args.file.display(), source.name()))?;
    // What is written must load, as the agent would load it.
    let json = imported.document.to_json();
    let loaded = portcullis_policy_file::load(&json, portcullis_policy_file::Format::Json)
        .map_err(|e| fail(BAD_POLICY, format!("the import does not load: {e:?}")))?;
    load::engine(loaded.set)?;
    if let Some(out) = &args.out {
        let toml = toml::to_string(&imported.document)?;
        let header = format!(
            "# Imported by `portcullis import {}` from {}: review it, then merge it into your policy\n\
             # (positions start at 10; move them where they belong among your own).\n\n",
            source.name(),
            args.file.display()
        );
        std::fs::write(out, header + &toml).or_exit(UNREADABLE, format!("cannot write {}", out.display()))?;
    }
    let (exported, approximated, not) = imported.counts();
    if args.json {
        let doc: serde_json::Value = serde_json::from_str(&json)?;
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({"document": doc, "report": imported.entries}))?
        );
    } else {
        let mut table = comfy_table::Table::new();
        table.load_style(comfy_table::presets::UTF8_FULL_CONDENSED);
        table.set_content_arrangement(comfy_table::ContentArrangement::Dynamic);
        table.set_header(["Rule", "Outcome", "As", "How / why"]);
        for e in &imported.entries {
            let (to, how) = match &e.outcome {
                Outcome::Exported { to } => (to.clone(), String::new()),
                Outcome::Approximated { to, how } => (to.clone(), how.clone()),
                Outcome::NotExpressible { why } => (String::new(), why.clone()),
            };
            let outcome = if e.outcome.name() == "exported" { "imported" } else { e.outcome.name() };
            table.add_row([e.rule.clone(), outcome.to_owned(), to, how]);
        }
        println!("{table}");
        println!(
            "{}: {exported} imported, {approximated} approximated, {not} not expressible; {} application(s), {} policy(ies)",
            args.file.display(),
            imported.document.applications.len(),
            imported.document.policies.len()
        );
        match &args.out {
            Some(out) => println!("wrote {}", out.display()),
            None => println!("nothing written: give --out FILE.toml to write the applications and policies"),
        }
    }
    Ok(ExitCode::from(if not > 0 { NOT_EXPRESSIBLE } else { OK }))
}
