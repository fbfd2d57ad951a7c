//! Script interpreters: known by name, and by content hash when the policy needs them (to
//! judge scripts, or to keep ringfenced trees from starting shells under another name).

use crate::locks::UnpoisonedRw;
use crate::state::Shared;
use portcullis_inspect::ExtraHashes;
use std::collections::HashSet;
use std::path::PathBuf;

/// Know the interpreters by hash when the policy judges scripts (only then are they asked
/// about), and forget them otherwise: hashing them all is start-up work.
pub(crate) fn refresh_interpreters(shared: &Shared) {
    // Ringfences that keep shells out know renamed copies of them by hash, too.
    let judged = {
        let p = shared.policy();
        p.script_control || p.fencing()
    };
    let set = if judged { hash_interpreters(&shared.config.interpreters) } else { HashSet::new() };
    *shared.interpreters.write_ok() = set;
}

fn hash_interpreters(paths: &[PathBuf]) -> HashSet<[u8; 32]> {
    let mut out = HashSet::new();
    for p in paths {
        let Ok(real) = std::fs::canonicalize(p) else { continue };
        match std::fs::File::open(&real).and_then(|f| portcullis_inspect::hash_reader(f, ExtraHashes::default())) {
            Ok((h, _)) => {
                out.insert(h.sha256);
            }
            Err(e) => tracing::debug!("interpreter {}: {e}", real.display()),
        }
    }
    out
}

const INTERPRETER_NAMES: &[&str] = &[
    "sh", "bash", "dash", "zsh", "ksh", "mksh", "csh", "tcsh", "fish", "busybox", "python", "pypy", "perl", "ruby",
    "node", "nodejs", "php", "lua", "luajit", "tclsh", "wish", "awk", "gawk", "mawk", "Rscript", "pwsh",
];

/// Whether a file name is an interpreter's, versions included (`python3.11`, `perl5.36.0`).
pub fn is_interpreter_name(name: &str) -> bool {
    let base = name.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.');
    INTERPRETER_NAMES.contains(&name) || INTERPRETER_NAMES.contains(&base)
}

/// Interpreters found on this host: shells, Python, Perl, Ruby, Node, PHP, Lua, Tcl, awk.
pub fn default_interpreters() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for dir in ["/usr/bin", "/bin", "/usr/local/bin"] {
        let Ok(entries) = std::fs::read_dir(dir) else { continue };
        for e in entries.flatten() {
            if is_interpreter_name(&e.file_name().to_string_lossy()) {
                out.push(e.path());
            }
        }
    }
    out
}
