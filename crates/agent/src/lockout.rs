//! Lockout protection: before a policy puts the whole host under Secured mode, the agent asks
//! the engine about the programs the host cannot live without — the init system, the shells
//! (root's login shell among them), the package manager, sshd, login, sudo, the ELF
//! interpreter each of them needs and the core libraries every dynamic program loads — and
//! refuses the policy if it would deny one of them, unless told to go ahead. The agent's own
//! executable is not among them: it is never started while it enforces.
//!
//! The files are read by path, before any mark at start and from the main thread on a reload
//! (the responders answer the agent's own opens at once). The decision is the engine's, with
//! no process facts: a permit that holds only for some parent does not count.

use portcullis_packages::PackageDb;
use portcullis_policy::{Engine, ProcessFacts, Target, Timestamp, Verdict};
use std::path::{Path, PathBuf};

/// Programs a host needs to boot, to be logged into and repaired, and to update itself.
/// Those missing on this host are skipped.
pub const ESSENTIAL_PROGRAMS: &[&str] = &[
    "/bin/sh",
    "/bin/bash",
    "/usr/bin/dpkg",
    "/usr/bin/apt-get",
    "/usr/bin/rpm",
    "/usr/bin/dnf",
    "/usr/bin/yum",
    "/usr/sbin/sshd",
    "/usr/lib/openssh/sshd-session",
    "/usr/libexec/openssh/sshd-session",
    "/usr/lib/systemd/systemd-executor",
    "/bin/login",
    "/usr/bin/sudo",
];

/// The essential files of the host whose root is `root` (`/` for this one): the init
/// system (what PID 1 runs), [`ESSENTIAL_PROGRAMS`], root's login shell, the ELF interpreter
/// of each, and, for this host, the shared libraries this process has loaded (libc and the
/// few every dynamic program needs) — canonical, each once.
pub fn essentials(root: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = Vec::new();
    let add = |path: PathBuf, found: &mut Vec<PathBuf>| {
        if let Ok(real) = std::fs::canonicalize(&path)
            && real.is_file()
            && !found.contains(&real)
        {
            found.push(real);
        }
    };
    if root == Path::new("/")
        && let Ok(init) = std::fs::read_link("/proc/1/exe")
    {
        add(init, &mut found);
    }
    for p in ESSENTIAL_PROGRAMS {
        add(root.join(p.trim_start_matches('/')), &mut found);
    }
    if let Some(shell) = root_shell(root) {
        add(root.join(shell.trim_start_matches('/')), &mut found);
    }
    let programs = found.clone();
    for p in programs {
        if let Some(interp) = interpreter_of(&p) {
            add(root.join(interp.trim_start_matches('/')), &mut found);
        }
    }
    if root == Path::new("/") {
        for lib in loaded_libraries() {
            add(lib, &mut found);
        }
    }
    found
}

/// Root's login shell, from the root's `etc/passwd`.
fn root_shell(root: &Path) -> Option<String> {
    let passwd = std::fs::read_to_string(root.join("etc/passwd")).ok()?;
    passwd.lines().find_map(|l| {
        let fields: Vec<&str> = l.split(':').collect();
        (fields.len() == 7 && fields[0] == "root" && fields[6].starts_with('/')).then(|| fields[6].to_owned())
    })
}

/// The C runtime's libraries, which nearly every dynamic program loads.
const CORE_LIBRARIES: &[&str] = &["libc.so", "libm.so", "libgcc_s.so", "libpthread.so", "libdl.so", "librt.so"];

/// The core libraries ([`CORE_LIBRARIES`]) this process has mapped (`/proc/self/maps`): for
/// a dynamic agent, the host's own. Others it happens to load (libelf, zlib) are not
/// essential to the host.
fn loaded_libraries() -> Vec<PathBuf> {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    let core = |p: &str| {
        let name = p.rsplit('/').next().unwrap_or_default();
        CORE_LIBRARIES.iter().any(|c| name == *c || name.starts_with(&format!("{c}.")))
    };
    let mut libs: Vec<PathBuf> = maps
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .filter(|p| p.starts_with('/') && core(p))
        .map(PathBuf::from)
        .collect();
    libs.sort();
    libs.dedup();
    libs
}

/// The ELF interpreter (PT_INTERP) a program names, if it names one.
fn interpreter_of(path: &Path) -> Option<String> {
    let opts = portcullis_inspect::Options { max_depth: 0, ..portcullis_inspect::Options::default() };
    portcullis_inspect::inspect_path(path, &opts).ok().and_then(|f| f.elf.and_then(|e| e.interpreter))
}

/// One essential file the policy would deny, with the engine's reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lockout {
    /// The file.
    pub path: PathBuf,
    /// Why it would be denied (the decision's one line), or why it could not be judged.
    pub reason: String,
}

/// The essential `files` that `engine` would deny on `target` in Secured mode at `now`: the
/// mode in force then if it is Secured, else Secured itself when the mode is one that turns
/// into Secured (Installation). Unreadable files count: the agent could not judge them either.
///
/// `packages`: the package database the agent trusts and its root, so that a policy
/// permitting packages is judged as the agent will judge it.
pub fn would_lock_out(
    engine: &Engine,
    target: &Target,
    now: Timestamp,
    files: &[PathBuf],
    packages: Option<(&PackageDb, &Path)>,
) -> Vec<Lockout> {
    let secured = target.with_mode(portcullis_policy::Mode::Secured);
    let judge = |path: &PathBuf| {
        let text = path.to_string_lossy();
        let packaged = packages.map(|(db, root)| crate::packaged::needs(db, root, &text)).unwrap_or_default();
        let opts = portcullis_inspect::Options {
            max_depth: 0,
            extra_hashes: portcullis_inspect::ExtraHashes {
                md5: packaged.md5 || engine.needs_md5(),
                sha1: packaged.sha1 || engine.needs_flat_sha1(),
            },
            ..portcullis_inspect::Options::default()
        };
        let inspected = match portcullis_inspect::inspect_path(path, &opts) {
            Ok(f) => f,
            Err(e) => return Some(Lockout { path: path.clone(), reason: format!("cannot be read to be judged: {e}") }),
        };
        let mut facts = portcullis_inspect::policy_facts(&inspected);
        if let Some((db, root)) = packages {
            crate::packaged::apply(db, root, &mut facts);
        }
        let d = engine.decide(&facts, &ProcessFacts::default(), &secured, now);
        (d.verdict == Verdict::Deny).then(|| Lockout { path: path.clone(), reason: d.to_string() })
    };
    files.iter().filter_map(judge).collect()
}

/// Whether the mode `target` is in at `now`, or will turn into by itself, is Secured.
pub fn secures(target: &Target, now: Timestamp) -> bool {
    matches!(target.mode().at(now), portcullis_policy::Mode::Secured | portcullis_policy::Mode::Installation { .. })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine(extra: &str) -> Engine {
        let text = format!("[organization]\nname = \"o\"\nmode = \"secured\"\n{extra}");
        portcullis_policy_file::compile(&text, portcullis_policy_file::Format::Toml).unwrap()
    }

    #[test]
    fn the_hosts_own_essentials_are_found_with_their_interpreter() {
        let me = std::env::current_exe().unwrap();
        let found = essentials(Path::new("/"));
        let sh = std::fs::canonicalize("/bin/sh").unwrap();
        assert!(found.contains(&sh), "{found:?}");
        assert!(
            !found.contains(&std::fs::canonicalize(&me).unwrap()),
            "the agent itself is not started while it enforces"
        );
        // libc, which every dynamic program loads, and root's shell.
        assert!(found.iter().any(|f| f.to_string_lossy().contains("libc.so")), "{found:?}");
        assert!(!found.iter().any(|f| f.to_string_lossy().contains("libelf")), "not the host's essential: {found:?}");
        let shell = root_shell(Path::new("/")).expect("root has a shell");
        assert!(found.contains(&std::fs::canonicalize(&shell).unwrap()), "{found:?}");
        // The shell's interpreter, ld.so, is essential too: without it no dynamic program runs.
        let interp = interpreter_of(&sh).expect("/bin/sh is dynamic here");
        assert!(found.contains(&std::fs::canonicalize(&interp).unwrap()), "{found:?}");
        let mut unique = found.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), found.len());
    }

    #[test]
    fn a_secured_policy_permitting_nothing_locks_out_and_one_permitting_them_does_not() {
        let files = essentials(Path::new("/"));
        let now = Timestamp(1_800_000_000);
        let bare = engine("");
        let target = bare.target(None, portcullis_policy::Os::Linux).unwrap();
        assert!(secures(&target, now));
        let out = would_lock_out(&bare, &target, now, &files, None);
        assert_eq!(out.len(), files.len(), "{out:?}");
        assert!(out[0].reason.contains("Secured mode"), "{out:?}");

        // Permit them by hash: nothing is locked out.
        let hashes: Vec<String> = files
            .iter()
            .map(|f| {
                let facts = portcullis_inspect::inspect_path(f, &portcullis_inspect::Options::default()).unwrap();
                format!("\"{}\"", portcullis_inspect::hex(&facts.hashes.sha256))
            })
            .collect();
        let permitted = engine(&format!(
            "[[applications]]\nname = \"base\"\nrules = [{{ sha256 = [{}] }}]\n\n[[policies]]\nname = \"p\"\nposition = 1\napplications = [\"base\"]\naction = \"permit\"\n",
            hashes.join(", ")
        ));
        let target = permitted.target(None, portcullis_policy::Os::Linux).unwrap();
        assert_eq!(would_lock_out(&permitted, &target, now, &files, None), vec![]);

        // Monitor mode never locks out; an unreadable file counts as one that would be denied.
        let monitor = portcullis_policy_file::compile(
            "[organization]\nname = \"o\"\nmode = \"monitor\"\n",
            portcullis_policy_file::Format::Toml,
        )
        .unwrap();
        assert!(!secures(&monitor.target(None, portcullis_policy::Os::Linux).unwrap(), now));
        let missing = [PathBuf::from("/nonexistent/portcullis-essential")];
        let out = would_lock_out(&bare, &bare.target(None, portcullis_policy::Os::Linux).unwrap(), now, &missing, None);
        assert!(out[0].reason.contains("cannot be read"), "{out:?}");
    }

    #[test]
    fn permitting_the_distribution_packages_keeps_the_packaged_essentials() {
        let db = PackageDb::load(Path::new("/")).unwrap();
        if db.packages().is_empty() {
            return; // not a dpkg host
        }
        let files = essentials(Path::new("/"));
        let text = format!(
            "[[policies]]\nname = \"p\"\nposition = 1\napplications = [\"{}\"]\naction = \"permit\"\n",
            portcullis_catalog::DISTRIBUTION_PACKAGES
        );
        let e = engine(&text);
        let target = e.target(None, portcullis_policy::Os::Linux).unwrap();
        let now = Timestamp(1_800_000_000);
        let out = would_lock_out(&e, &target, now, &files, Some((&db, Path::new("/"))));
        // What is left is what no package lists (an init outside dpkg, say), never a packaged file.
        for l in &out {
            assert!(db.lookup(&l.path.to_string_lossy()).is_empty(), "{l:?}");
        }
        assert!(out.len() < files.len(), "{out:?}");
        // Without package trust every one of them would lock the host out.
        assert_eq!(would_lock_out(&e, &target, now, &files, None).len(), files.len());
    }
}
