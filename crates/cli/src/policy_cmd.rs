//! `portcullis policy lint|compile|apps`.

use crate::args::{AppsArgs, PolicyArgs};
use crate::exit::{LINT_WARNINGS, OK};
use crate::load;
use portcullis_policy::{Severity, Timestamp, lint as lint_set};
use serde_json::json;
use std::process::ExitCode;

pub fn lint(args: PolicyArgs) -> anyhow::Result<ExitCode> {
    let loaded = load::policy(&args.policy)?;
    let findings = lint_set(&loaded.set, Timestamp(load::moment(None)?));
    let shown = args.policy.display();
    if args.json {
        let doc: Vec<_> = findings
            .iter()
            .map(|f| {
                let (line, column) = loaded.locate(f.item).unzip();
                json!({"severity": f.severity.to_string(), "code": f.code, "message": f.message, "line": line, "column": column})
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        for f in &findings {
            match loaded.locate(f.item) {
                Some((l, c)) => println!("{shown}:{l}:{c}: {}[{}]: {}", f.severity, f.code, f.message),
                None => println!("{shown}: {}[{}]: {}", f.severity, f.code, f.message),
            }
        }
        let warnings = findings.iter().filter(|f| f.severity == Severity::Warning).count();
        eprintln!("{shown}: {} warning(s), {} note(s)", warnings, findings.len() - warnings);
    }
    let warned = findings.iter().any(|f| f.severity == Severity::Warning);
    Ok(ExitCode::from(if warned { LINT_WARNINGS } else { OK }))
}

pub fn compile(args: PolicyArgs) -> anyhow::Result<ExitCode> {
    let loaded = load::policy(&args.policy)?;
    let set = loaded.set.clone();
    let engine = load::engine(loaded.set)?;
    let mut order: Vec<_> = set.policies.iter().collect();
    order.sort_by_key(|p| p.position);
    let hashes_of = |names: &[String]| -> usize {
        names.iter().filter_map(|n| set.application(n)).flat_map(|a| a.rules.iter()).map(|r| r.hashes.len()).sum()
    };
    if args.json {
        let doc = json!({
            "organization": set.organization.name,
            "mode": set.organization.mode.name(),
            "hashes": engine.hash_count(),
            "blocklists": set.blocklists.iter().map(|b| json!({
                "name": b.name,
                "rules": b.rules.len(),
                "hashes": b.rules.iter().map(|r| r.hashes.len()).sum::<usize>(),
                "approved": b.approvals.iter().map(|a| json!({"scope": a.scope.to_string(), "status": a.status.name()})).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "policies": order.iter().map(|p| json!({
                "position": p.position, "name": p.name, "action": p.action.name(), "scope": p.scope.to_string(),
                "status": p.status.name(), "enabled": p.enabled, "applications": p.applications, "hashes": hashes_of(&p.applications),
            })).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(ExitCode::from(OK));
    }
    println!(
        "{}: valid. Organization {:?}, default mode {}; {} application(s), {} blocklist package(s), {} polic(ies), {} hash(es) indexed.",
        args.policy.display(),
        set.organization.name,
        set.organization.mode.name(),
        set.applications.len(),
        set.blocklists.len(),
        set.policies.len(),
        engine.hash_count()
    );
    let mut table = comfy_table::Table::new();
    table.load_style(comfy_table::presets::UTF8_FULL_CONDENSED);
    table.set_header(["Order", "Position", "Policy", "Action", "Scope", "Status", "Applications"]);
    let mut n = 0;
    for b in &set.blocklists {
        for a in &b.approvals {
            n += 1;
            table.add_row([
                n.to_string(),
                "—".into(),
                format!("blocklist {}", b.name),
                "deny".into(),
                a.scope.to_string(),
                a.status.name().into(),
                format!("{} rule(s)", b.rules.len()),
            ]);
        }
    }
    for p in order {
        n += 1;
        let status = if !p.enabled { "disabled".to_string() } else { p.status.name().to_string() };
        table.add_row([
            n.to_string(),
            p.position.to_string(),
            p.name.clone(),
            p.action.name().into(),
            p.scope.to_string(),
            status,
            p.applications.join(", "),
        ]);
    }
    println!("{table}");
    println!("No match: the computer's mode decides (Secured denies, Monitor allows and reports).");
    Ok(ExitCode::from(OK))
}

pub fn apps(args: AppsArgs) -> anyhow::Result<ExitCode> {
    let apps = portcullis_catalog::builtin_applications();
    if args.json {
        let doc: Vec<_> = apps
            .iter()
            .map(|a| json!({"name": a.name, "description": a.description, "rules": a.rules.len(), "hashes": a.rules.iter().map(|r| r.hashes.len()).sum::<usize>()}))
            .collect();
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        let mut table = comfy_table::Table::new();
        table.load_style(comfy_table::presets::UTF8_FULL_CONDENSED);
        table.set_content_arrangement(comfy_table::ContentArrangement::Dynamic);
        table.set_header(["Built-in application", "Rules", "Hashes", "Description"]);
        for a in apps {
            table.add_row([
                a.name.clone(),
                a.rules.len().to_string(),
                a.rules.iter().map(|r| r.hashes.len()).sum::<usize>().to_string(),
                a.description.clone().unwrap_or_default(),
            ]);
        }
        println!("{table}");
    }
    Ok(ExitCode::from(OK))
}
