//! `portcullis check`: would these files run here, and why?

use crate::args::CheckArgs;
use crate::exit::{DENIED, OK, OrExit, UNREADABLE, fail};
use crate::load;
use portcullis_inspect::{ExtraHashes, Facts, Options, inspect_path};
use portcullis_policy::{Engine, FileFacts, Os, ProcessFacts, Timestamp, Verdict};
use serde_json::json;
use std::io::Write;
use std::path::{Path, PathBuf};
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
    let inspector = Inspector::new(
        &engine,
        args.trust_store.as_deref(),
        now,
        (!args.no_package_trust).then_some(args.package_root.as_path()),
    )?;
    let process = ProcessFacts { parent_path: args.parent.clone(), user: args.user.clone() };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut denied = 0usize;
    let mut unreadable = 0usize;
    for path in &args.files {
        let (facts, top) = match inspector.inspect(path) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("error: cannot read {}: {e}", path.display());
                unreadable += 1;
                continue;
            }
        };
        let subjects = if args.contents { facts.flatten() } else { vec![&facts] };
        for f in subjects {
            let file = if std::ptr::eq(f, &facts) { top.clone() } else { portcullis_inspect::policy_facts(f) };
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

/// Files inspected as the agent inspects them: with the hashes the policy needs and the
/// package database's word on the file (`check`, and `export fapolicyd --trust-from`).
pub(crate) struct Inspector {
    opts: Options,
    /// The package database and the root it was read from; `None`: no package trust.
    packages: Option<(portcullis_packages::PackageDb, PathBuf)>,
}

impl Inspector {
    pub(crate) fn new(
        engine: &Engine,
        trust_store: Option<&Path>,
        now: i64,
        package_root: Option<&Path>,
    ) -> anyhow::Result<Inspector> {
        let opts = Options {
            trust: load::trust_store(trust_store)?,
            extra_hashes: ExtraHashes { sha1: engine.needs_flat_sha1(), md5: engine.needs_md5() },
            now,
            ..Options::default()
        };
        // Package trust as the agent applies it; a database that cannot be read trusts nothing.
        let packages = package_root.map(|root| {
            let root = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
            let db = portcullis_packages::PackageDb::load(&root).unwrap_or_else(|e| {
                eprintln!("warning: no package is trusted: {}", portcullis_policy::with_causes(&e));
                portcullis_packages::PackageDb::default()
            });
            for w in db.warnings() {
                eprintln!("warning: package trust: {w}");
            }
            (db, root)
        });
        Ok(Inspector { opts, packages })
    }

    /// The file's facts (with what it contains) and the policy's facts about the file itself,
    /// its packages verified.
    pub(crate) fn inspect(&self, path: &Path) -> std::io::Result<(Facts, FileFacts)> {
        let absolute = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        let absolute = absolute.to_string_lossy();
        let listed = self
            .packages
            .as_ref()
            .and_then(|(db, root)| portcullis_packages::inside(root, &absolute).map(|p| db.lookup(&p)))
            .unwrap_or_default();
        let needs = portcullis_packages::needs(&listed);
        let opts = Options {
            extra_hashes: ExtraHashes {
                sha1: self.opts.extra_hashes.sha1 || needs.sha1,
                md5: self.opts.extra_hashes.md5 || needs.md5,
            },
            ..self.opts.clone()
        };
        let facts = inspect_path(path, &opts)?;
        let mut file = portcullis_inspect::policy_facts(&facts);
        // The file itself, not what it contains, is what a package lists.
        if !listed.is_empty() {
            let hashes = portcullis_packages::Hashes {
                md5: file.md5.as_ref(),
                sha1: file.sha1.as_ref(),
                sha256: Some(&file.sha256),
            };
            let verified = portcullis_packages::verify(&listed, hashes);
            file.packages = verified.packages;
            file.package_note = verified.note;
        }
        Ok((facts, file))
    }
}
