//! Programs that run other code than their own: script interpreters, known by name and by
//! content hash when the policy needs them (to judge scripts, or to keep ringfenced trees
//! from starting shells under another name), and self-loading programs (valgrind's tools,
//! qemu-user, box64), which map an ELF program themselves instead of having the kernel exec
//! it, known the same two ways.

use crate::locks::UnpoisonedRw;
use crate::state::Shared;
use portcullis_inspect::ExtraHashes;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

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

/// Know the self-loading programs by hash (always: exec control is always on).
pub(crate) fn refresh_self_loaders(shared: &Shared) {
    *shared.self_loaders.write_ok() = hash_interpreters(&shared.config.self_loaders);
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

/// Whether a program maps other programs itself, by its path: a valgrind tool
/// (`…/valgrind/memcheck-amd64-linux`), a qemu-user emulator (`qemu-x86_64`,
/// `qemu-aarch64-static`), box64 or box86. ld.so and copies of it need no name: they are
/// known by their shape (a shared object with no interpreter of its own).
pub fn is_self_loader_path(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let in_valgrind = path.parent().and_then(|p| p.file_name()).is_some_and(|d| d == "valgrind");
    (in_valgrind && name.ends_with("-linux")) || name.starts_with("qemu-") || matches!(name, "box64" | "box86")
}

/// Self-loading programs found on this host, in the places Debian and upstream install them.
pub fn default_self_loaders() -> Vec<PathBuf> {
    let mut out = Vec::new();
    let dirs = [
        "/usr/libexec/valgrind",
        "/usr/lib/valgrind",
        "/usr/lib/x86_64-linux-gnu/valgrind",
        "/usr/lib/aarch64-linux-gnu/valgrind",
        "/usr/local/libexec/valgrind",
        "/usr/bin",
        "/usr/local/bin",
    ];
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else { continue };
        for e in entries.flatten() {
            if is_self_loader_path(&e.path()) {
                out.push(e.path());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_loaders_are_known_by_name_and_ld_so_is_not_needed_here() {
        for yes in [
            "/usr/libexec/valgrind/memcheck-amd64-linux",
            "/opt/vg/lib/valgrind/none-arm64-linux",
            "/usr/bin/qemu-x86_64",
            "/usr/bin/qemu-aarch64-static",
            "/usr/local/bin/box64",
        ] {
            assert!(is_self_loader_path(Path::new(yes)), "{yes}");
        }
        for no in [
            "/usr/bin/valgrind",
            "/usr/bin/memcheck-amd64-linux",
            "/usr/bin/qemu",
            "/usr/bin/ls",
            "/lib64/ld-linux-x86-64.so.2",
        ] {
            assert!(!is_self_loader_path(Path::new(no)), "{no}");
        }
    }
}
