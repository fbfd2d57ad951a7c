//! Mach-O files, thin or universal: architectures and whether each carries a code signature.

use crate::{Problem, guard};

/// One architecture slice of a Mach-O file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MachOArch {
    /// Architecture name (`x86_64`, `arm64`, …).
    pub arch: String,
    /// Has an `LC_CODE_SIGNATURE` load command.
    pub signed: bool,
    /// Mach-O file type (`MH_EXECUTE` = 2, `MH_DYLIB` = 6, `MH_BUNDLE` = 8, …).
    pub filetype: u32,
}

/// What a Mach-O file holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MachOInfo {
    /// Universal (fat) binary.
    pub universal: bool,
    /// The slices.
    pub arches: Vec<MachOArch>,
}

impl MachOInfo {
    /// Every slice is signed.
    pub fn signed(&self) -> bool {
        !self.arches.is_empty() && self.arches.iter().all(|a| a.signed)
    }
}

/// Whether `data` starts with a Mach-O or universal magic. The universal magic is shared with
/// Java class files, so it needs a plausible architecture count too.
pub fn looks_like_macho(data: &[u8]) -> bool {
    let Some(magic) = data.get(..4) else { return false };
    match magic {
        [0xfe, 0xed, 0xfa, 0xce | 0xcf] | [0xce | 0xcf, 0xfa, 0xed, 0xfe] => true,
        [0xca, 0xfe, 0xba, 0xbe] => {
            data.get(4..8).is_some_and(|n| (1..20).contains(&u32::from_be_bytes([n[0], n[1], n[2], n[3]])))
        }
        _ => false,
    }
}

fn arch_of(m: &goblin::mach::MachO<'_>) -> MachOArch {
    let signed = m
        .load_commands
        .iter()
        .any(|lc| matches!(lc.command, goblin::mach::load_command::CommandVariant::CodeSignature(_)));
    let arch = goblin::mach::constants::cputype::get_arch_name_from_types(m.header.cputype(), m.header.cpusubtype())
        .unwrap_or("unknown")
        .to_string();
    MachOArch { arch, signed, filetype: m.header.filetype }
}

pub(crate) fn parse(data: &[u8]) -> Result<MachOInfo, Problem> {
    guard(|| match goblin::mach::Mach::parse(data).map_err(|e| Problem::caused("unreadable Mach-O", e))? {
        goblin::mach::Mach::Binary(m) => Ok(MachOInfo { universal: false, arches: vec![arch_of(&m)] }),
        goblin::mach::Mach::Fat(fat) => {
            let mut arches = Vec::new();
            for i in 0..fat.narches.min(16) {
                match fat.get(i) {
                    Ok(goblin::mach::SingleArch::MachO(m)) => arches.push(arch_of(&m)),
                    Ok(goblin::mach::SingleArch::Archive(_)) => {}
                    Err(e) => return Err(Problem::caused(format!("unreadable slice {i} of universal Mach-O"), e)),
                }
            }
            Ok(MachOInfo { universal: true, arches })
        }
    })?
}
