//! ELF files: type, interpreter, build-id, static or dynamic.

use crate::{Problem, guard};

/// What kind of ELF object a file is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElfType {
    /// `ET_EXEC`: a position-dependent executable.
    Executable,
    /// `ET_DYN` with the `DF_1_PIE` flag: a position-independent executable.
    Pie,
    /// `ET_DYN` without it: a shared object, whatever else it has.
    SharedObject,
    /// `ET_REL`: an object file.
    Relocatable,
    /// `ET_CORE` or anything else.
    Other,
}

impl ElfType {
    /// The one rule for what an ELF object is, used by inspection (and so by `check`, the
    /// console and the engine's `kind`) and by the agent (which opens it judges as loads).
    ///
    /// `ET_DYN` is a program only with `DF_1_PIE` in `DT_FLAGS_1`: glibc's loader refuses to
    /// load such a file as a library, and anything else it will load. A `PT_INTERP` does not
    /// make a program: glibc's own `libc.so.6` has one (it prints its version when run) and
    /// is a library; ld.so has neither and is a library too.
    pub fn classify(e_type: u16, df_1_pie: bool) -> ElfType {
        match e_type {
            goblin::elf::header::ET_EXEC => ElfType::Executable,
            goblin::elf::header::ET_DYN if df_1_pie => ElfType::Pie,
            goblin::elf::header::ET_DYN => ElfType::SharedObject,
            goblin::elf::header::ET_REL => ElfType::Relocatable,
            _ => ElfType::Other,
        }
    }
}

/// What an ELF file's headers say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ElfInfo {
    /// Object type.
    pub elf_type: ElfType,
    /// 64-bit class.
    pub is_64: bool,
    /// Machine name (`X86_64`, `AARCH64`, …).
    pub machine: String,
    /// `PT_INTERP`, the dynamic loader it asks for.
    pub interpreter: Option<String>,
    /// GNU build-id, hex.
    pub build_id: Option<String>,
    /// No interpreter and no dynamic section: statically linked.
    pub is_static: bool,
}

pub(crate) fn parse(data: &[u8]) -> Result<ElfInfo, Problem> {
    guard(|| {
        let elf = goblin::elf::Elf::parse(data).map_err(|e| Problem::caused("unreadable ELF", e))?;
        let has_dynamic = elf.program_headers.iter().any(|p| p.p_type == goblin::elf::program_header::PT_DYNAMIC);
        let pie_flag = elf.dynamic.as_ref().is_some_and(|d| d.info.flags_1 & goblin::elf::dynamic::DF_1_PIE != 0);
        let elf_type = ElfType::classify(elf.header.e_type, pie_flag);
        let mut build_id = None;
        if let Some(notes) = elf.iter_note_headers(data) {
            for note in notes.take(64).flatten() {
                if note.n_type == goblin::elf::note::NT_GNU_BUILD_ID && note.name == "GNU" {
                    build_id = Some(crate::hashing::hex(note.desc));
                    break;
                }
            }
        }
        Ok(ElfInfo {
            elf_type,
            is_64: elf.is_64,
            machine: goblin::elf::header::machine_to_str(elf.header.e_machine).trim_start_matches("EM_").to_string(),
            interpreter: elf.interpreter.map(str::to_string),
            build_id,
            is_static: elf.interpreter.is_none() && !has_dynamic,
        })
    })?
}
