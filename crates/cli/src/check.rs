//! `portcullis check`: would these files run here, and why?

use crate::args::CheckArgs;
use crate::exit::{DENIED, OK, OrExit, UNREADABLE, fail};
use crate::load;
use portcullis_inspect::{ExtraHashes, Options, inspect_path};
use portcullis_policy::{Os, ProcessFacts, Timestamp, Verdict};
use serde_json::json;
use std::io::Write;
use std::process::ExitCode;

pub fn run(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let loaded = load::policy(&args.policy)?;
    let engine = load::engine(loaded.set)?;
    let host_os = if cfg!(target_os = "windows") {
        Os::Windows
    } else if cfg!(target_os = "macos") {
        Os::MacOs
    } else {
        Os::Linux
    };
    let target = engine.target(args.computer.as_deref(), host_os).or_exit(2, "--computer")?;
    let now = load::moment(args.at.as_deref())?;
    let opts = Options {
        trust: load::trust_store(args.trust_store.as_deref())?,
        extra_hashes: ExtraHashes { sha1: engine.needs_flat_sha1(), md5: engine.needs_md5() },
        now,
        ..Options::default()
    };
    let process = ProcessFacts { parent_path: args.parent.clone(), user: args.user.clone() };
    // Package trust as the agent applies it; a database that cannot be read trusts nothing.
    let packages = (!args.no_package_trust).then(|| {
        let root = std::fs::canonicalize(&args.package_root).unwrap_or_else(|_| args.package_root.clone());
        let db = portcullis_packages::PackageDb::load(&root).unwrap_or_else(|e| {
            eprintln!("warning: no package is trusted: {}", portcullis_policy::with_causes(&e));
            portcullis_packages::PackageDb::default()
        });
        for w in db.warnings() {
            eprintln!("warning: package trust: {w}");
        }
        (db, root)
    });
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut denied = 0usize;
    let mut unreadable = 0usize;
    for path in &args.files {
        let absolute = std::fs::canonicalize(path).unwrap_or_else(|_| path.clone());
        let absolute = absolute.to_string_lossy();
        let listed = packages
            .as_ref()
            .and_then(|(db, root)| portcullis_packages::inside(root, &absolute).map(|p| db.lookup(&p)))
            .unwrap_or_default();
        let needs = portcullis_packages::needs(&listed);
        let opts = Options {
            extra_hashes: ExtraHashes {
                sha1: opts.extra_hashes.sha1 || needs.sha1,
                md5: opts.extra_hashes.md5 || needs.md5,
            },
            ..opts.clone()
        };
        let facts = match inspect_path(path, &opts) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("error: cannot read {}: {e}", path.display());
                unreadable += 1;
                continue;
            }
        };
        let subjects = if args.contents { facts.flatten() } else { vec![&facts] };
        for f in subjects {
            let mut file = portcullis_inspect::policy_facts(f);
            // The file itself, not what it contains, is what a package lists.
            if std::ptr::eq(f, &facts) && !listed.is_empty() {
                let hashes = portcullis_packages::Hashes {
                    md5: file.md5.as_ref(),
                    sha1: file.sha1.as_ref(),
                    sha256: Some(&file.sha256),
                };
                let verified = portcullis_packages::verify(&listed, hashes);
                file.packages = verified.packages;
                file.package_note = verified.note;
            }
            let decision = engine.decide(&file, &process, &target, Timestamp(now));
            if decision.verdict == Verdict::Deny {
                denied += 1;
            }
            if args.json {
                let doc = json!({
                    "path": f.path,
                    "sha256": portcullis_inspect::hex(&f.hashes.sha256),
                    "verdict": decision.verdict.name(),
                    "reason": decision.explain(),
                    "policy": decision.policy(),
                    "mode": decision.mode.name(),
                    "would_deny": decision.would_deny(),
                    "learning_candidate": decision.is_learning_candidate(),
                    "request_allowed": decision.request_allowed(),
                    "ringfence": decision.ringfence(),
                    "container": f.container,
                    "packages": file.packages,
                });
                serde_json::to_writer(&mut out, &doc)?;
                writeln!(out)?;
            } else {
                let word = match (decision.verdict, decision.would_deny()) {
                    (Verdict::Deny, _) => "DENY ",
                    (Verdict::Allow, true) => "ALLOW (would deny)",
                    (Verdict::Allow, false) => "ALLOW",
                };
                writeln!(out, "{word} {}\n      {}", f.path, decision.explain())?;
            }
        }
    }
    out.flush()?;
    if unreadable > 0 {
        return Err(fail(UNREADABLE, format!("{unreadable} file(s) could not be read")));
    }
    Ok(ExitCode::from(if denied > 0 { DENIED } else { OK }))
}
