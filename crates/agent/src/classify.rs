//! What an open means: a plain read, or code being started or loaded. Pure: the caller
//! gathers the facts (the event's mask, the file's shape, who opens it).

use crate::shape::Shape;
/// Why a file is being opened, as events name it: classification gives `Exec`, `Load`,
/// `Script` or `Read`.
pub use portcullis_events::Access;

/// Who opens the file, gathered only when the shape makes it matter.
pub trait Opener {
    /// Whether the process's executable maps programs itself: ld.so run directly (or a copy
    /// of it), or a self-loading program (valgrind's tools, qemu-user, box64).
    fn is_loader(&mut self) -> bool;
    /// Whether the process's executable is a known script interpreter (by content hash).
    fn is_interpreter(&mut self) -> bool;
    /// Whether the file was named on the process's command line (by full path or file name).
    fn names_on_command_line(&mut self, path: &str) -> bool;
}

/// File extensions that interpreters run as scripts.
pub const SCRIPT_EXTENSIONS: &[&str] = &[
    "sh", "bash", "zsh", "ksh", "csh", "py", "pyc", "pyw", "pl", "pm", "rb", "php", "js", "mjs", "cjs", "lua", "tcl",
    "awk", "r", "ps1",
];

fn has_script_extension(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    name.rsplit_once('.').is_some_and(|(_, ext)| SCRIPT_EXTENSIONS.iter().any(|e| e.eq_ignore_ascii_case(ext)))
}

/// Decide what kind of access an event is.
///
/// `exec` is whether the event is `FAN_OPEN_EXEC_PERM`. With `script_control` off, files
/// handed to interpreters are plain reads. `path` is asked for only when it matters (a
/// script candidate), since finding it costs a system call.
pub fn classify(
    exec: bool,
    shape: Shape,
    path: &dyn Fn() -> String,
    script_control: bool,
    opener: &mut impl Opener,
) -> Access {
    if exec {
        return Access::Exec;
    }
    match shape {
        Shape::Elf(elf) if elf.is_shared_object() => Access::Load,
        Shape::Elf(_) if opener.is_loader() => Access::Load,
        Shape::Elf(_) => Access::Read,
        _ if !script_control => Access::Read,
        _ if !opener.is_interpreter() => Access::Read,
        Shape::Shebang => Access::Script,
        _ if has_script_extension(&path()) || opener.names_on_command_line(&path()) => Access::Script,
        _ => Access::Read,
    }
}

/// Whether an allowed plain read may be remembered by the kernel for every process: only
/// when no other opener could make the same file code.
pub fn read_is_process_independent(shape: Shape, script_control: bool) -> bool {
    match shape {
        // A loader could load it.
        Shape::Elf(_) => false,
        // An interpreter could run it.
        _ => !script_control,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shape::ElfShape;

    #[derive(Default)]
    struct Fake {
        loader: bool,
        interpreter: bool,
        named: bool,
        asked: Vec<&'static str>,
    }

    impl Opener for Fake {
        fn is_loader(&mut self) -> bool {
            self.asked.push("loader");
            self.loader
        }
        fn is_interpreter(&mut self) -> bool {
            self.asked.push("interpreter");
            self.interpreter
        }
        fn names_on_command_line(&mut self, _: &str) -> bool {
            self.asked.push("cmdline");
            self.named
        }
    }

    const LIB: Shape = Shape::Elf(ElfShape { dynamic: true, has_interpreter: true, pie: false });
    const PROGRAM: Shape = Shape::Elf(ElfShape { dynamic: true, has_interpreter: true, pie: true });

    #[test]
    fn exec_is_exec_whatever_the_file() {
        let mut o = Fake::default();
        assert_eq!(classify(true, Shape::Other, &|| "/x".into(), false, &mut o), Access::Exec);
        assert!(o.asked.is_empty(), "an exec needs nothing about the opener");
    }

    #[test]
    fn shared_objects_are_loads_for_everyone_and_programs_only_for_loaders() {
        let mut o = Fake::default();
        assert_eq!(classify(false, LIB, &|| "/lib/libevil.so".into(), false, &mut o), Access::Load);
        assert!(o.asked.is_empty());
        assert_eq!(classify(false, PROGRAM, &|| "/t/blocked".into(), false, &mut o), Access::Read);
        let mut ld = Fake { loader: true, ..Fake::default() };
        assert_eq!(classify(false, PROGRAM, &|| "/t/blocked".into(), false, &mut ld), Access::Load);
    }

    #[test]
    fn scripts_count_only_under_script_control_and_only_for_interpreters() {
        let mut bash = Fake { interpreter: true, ..Fake::default() };
        assert_eq!(classify(false, Shape::Other, &|| "/t/x.sh".into(), false, &mut bash), Access::Read);
        assert!(bash.asked.is_empty(), "script control off asks nothing");
        assert_eq!(classify(false, Shape::Other, &|| "/t/x.sh".into(), true, &mut bash), Access::Script);
        assert_eq!(classify(false, Shape::Other, &|| "/t/x.PY".into(), true, &mut bash), Access::Script);
        assert_eq!(classify(false, Shape::Shebang, &|| "/t/tool".into(), true, &mut bash), Access::Script);
        assert_eq!(classify(false, Shape::Other, &|| "/t/notes.txt".into(), true, &mut bash), Access::Read);
        let mut named = Fake { interpreter: true, named: true, ..Fake::default() };
        assert_eq!(classify(false, Shape::Other, &|| "/t/payload".into(), true, &mut named), Access::Script);
        let mut cat = Fake { named: true, ..Fake::default() };
        assert_eq!(classify(false, Shape::Other, &|| "/t/x.sh".into(), true, &mut cat), Access::Read);
    }

    #[test]
    fn only_non_code_reads_become_kernel_ignore_marks() {
        assert!(read_is_process_independent(Shape::Other, false));
        assert!(!read_is_process_independent(Shape::Other, true));
        assert!(!read_is_process_independent(PROGRAM, false));
        assert!(!read_is_process_independent(Shape::Shebang, true));
    }
}
