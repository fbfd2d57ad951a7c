//! What a file is, from its first bytes: enough to tell whether an open of it is a load of
//! code, without hashing it.

/// The broad shape of a file's content.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// An ELF file.
    Elf(ElfShape),
    /// Text starting with `#!`.
    Shebang,
    /// Anything else.
    Other,
}

/// The parts of an ELF file that decide how an open of it is judged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ElfShape {
    /// `e_type` is `ET_DYN`.
    pub dynamic: bool,
    /// A `PT_INTERP` program header names an ELF interpreter.
    pub has_interpreter: bool,
    /// `DT_FLAGS_1` has `DF_1_PIE`: a position-independent program, which glibc's loader
    /// refuses to load as a library.
    pub pie: bool,
}

impl ElfShape {
    /// What it is, by the one rule inspection uses too ([`ElfType::classify`]).
    pub fn elf_type(self) -> ElfType {
        ElfType::classify(if self.dynamic { ET_DYN } else { ET_EXEC }, self.pie)
    }

    /// A shared object: anything ld.so would load as a library (`ET_DYN` without `DF_1_PIE`;
    /// glibc's own libc.so.6 has a `PT_INTERP` and is one). Every open of one is judged as a
    /// load: ld.so, `dlopen` and a copy command open it the same way.
    pub fn is_shared_object(self) -> bool {
        self.elf_type() == ElfType::SharedObject
    }

    /// What a program loader looks like: a process whose executable has this shape can map
    /// other programs (`/lib64/ld-linux-x86-64.so.2 ./program`): a shared object with no
    /// interpreter of its own.
    pub fn can_be_loader(self) -> bool {
        self.is_shared_object() && !self.has_interpreter
    }
}

/// How many bytes the first read takes: the ELF header and, in the usual layout, the program
/// headers right after it.
pub const HEAD_LEN: usize = 4096;
const MAX_DYNAMIC: usize = 64 << 10;

use portcullis_inspect::ElfType;

const PT_INTERP: u32 = 3;
const PT_DYNAMIC: u32 = 2;
const ET_EXEC: u16 = 2;
const ET_DYN: u16 = 3;
const DT_FLAGS_1: u64 = 0x6fff_fffb;
const DF_1_PIE: u64 = 0x0800_0000;

struct Reader<'a> {
    data: &'a [u8],
    little: bool,
}

impl Reader<'_> {
    fn bytes<const N: usize>(&self, o: usize) -> Option<[u8; N]> {
        self.data.get(o..o.checked_add(N)?)?.try_into().ok()
    }
    fn u16(&self, o: usize) -> Option<u16> {
        self.bytes(o).map(|b| if self.little { u16::from_le_bytes(b) } else { u16::from_be_bytes(b) })
    }
    fn u32(&self, o: usize) -> Option<u32> {
        self.bytes(o).map(|b| if self.little { u32::from_le_bytes(b) } else { u32::from_be_bytes(b) })
    }
    fn u64(&self, o: usize) -> Option<u64> {
        self.bytes(o).map(|b| if self.little { u64::from_le_bytes(b) } else { u64::from_be_bytes(b) })
    }
    fn word(&self, o: usize, wide: bool) -> Option<u64> {
        if wide { self.u64(o) } else { self.u32(o).map(u64::from) }
    }
}

impl Shape {
    /// The shape of a file, reading what it needs through `read_at(offset, len)`: the first
    /// [`HEAD_LEN`] bytes, and for an `ET_DYN` ELF its dynamic section. Program headers or a
    /// dynamic section that cannot be read count as "no interpreter" and "not PIE", which
    /// judges more opens as loads, never fewer.
    pub fn read(mut read_at: impl FnMut(u64, usize) -> std::io::Result<Vec<u8>>) -> std::io::Result<Shape> {
        let head = read_at(0, HEAD_LEN)?;
        let (mut shape, dynamic) = Shape::from_head(&head);
        if let (Shape::Elf(elf), Some((offset, len))) = (&mut shape, dynamic)
            && elf.dynamic
        {
            let section = read_at(offset, len.min(MAX_DYNAMIC as u64) as usize)?;
            elf.pie = has_pie_flag(&head, &section);
        }
        Ok(shape)
    }

    /// The shape from the first bytes alone (the PIE flag needs the dynamic section: see
    /// [`Shape::read`]).
    pub fn of(head: &[u8]) -> Shape {
        Shape::from_head(head).0
    }

    fn from_head(head: &[u8]) -> (Shape, Option<(u64, u64)>) {
        if head.starts_with(b"#!") {
            return (Shape::Shebang, None);
        }
        if !head.starts_with(b"\x7fELF") {
            return (Shape::Other, None);
        }
        let unknown = Shape::Elf(ElfShape { dynamic: true, has_interpreter: false, pie: false });
        if head.len() < 52 {
            return (unknown, None);
        }
        let wide = head[4] == 2;
        let r = Reader { data: head, little: head[5] != 2 };
        let dynamic = r.u16(16) == Some(ET_DYN);
        let (phoff, phentsize, phnum) =
            if wide { (r.u64(32), r.u16(54), r.u16(56)) } else { (r.u32(28).map(u64::from), r.u16(42), r.u16(44)) };
        let mut has_interpreter = false;
        let mut dynamic_section = None;
        if let (Some(off), Some(size), Some(num)) = (phoff, phentsize, phnum) {
            for i in 0..u64::from(num) {
                let at = off.saturating_add(i.saturating_mul(u64::from(size)));
                let Ok(at) = usize::try_from(at) else { break };
                let Some(kind) = r.u32(at) else { break };
                if kind == PT_INTERP {
                    has_interpreter = true;
                } else if kind == PT_DYNAMIC {
                    // p_offset and p_filesz.
                    let (o, f) = if wide { (at + 8, at + 32) } else { (at + 4, at + 16) };
                    dynamic_section = r.word(o, wide).zip(r.word(f, wide));
                }
            }
        }
        (Shape::Elf(ElfShape { dynamic, has_interpreter, pie: false }), dynamic_section)
    }

    /// Whether this is an ELF file.
    pub fn elf(self) -> Option<ElfShape> {
        match self {
            Shape::Elf(e) => Some(e),
            _ => None,
        }
    }
}

fn has_pie_flag(head: &[u8], section: &[u8]) -> bool {
    let wide = head[4] == 2;
    let r = Reader { data: section, little: head[5] != 2 };
    let step = if wide { 16 } else { 8 };
    let mut at = 0;
    while let (Some(tag), Some(value)) = (r.word(at, wide), r.word(at + step / 2, wide)) {
        if tag == 0 {
            break;
        }
        if tag == DT_FLAGS_1 {
            return value & DF_1_PIE != 0;
        }
        at += step;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape_of(path: &str) -> Shape {
        let data = std::fs::read(path).unwrap();
        Shape::read(|offset, len| {
            let start = (offset as usize).min(data.len());
            Ok(data[start..(start + len).min(data.len())].to_vec())
        })
        .unwrap()
    }

    fn ld_so() -> String {
        std::fs::canonicalize("/lib64/ld-linux-x86-64.so.2").unwrap().to_string_lossy().into_owned()
    }

    #[test]
    fn real_system_files_have_the_shapes_the_agent_relies_on() {
        let ls = shape_of("/usr/bin/ls").elf().unwrap();
        assert!(ls.has_interpreter && ls.pie && !ls.is_shared_object(), "a PIE program: {ls:?}");
        let ld = shape_of(&ld_so()).elf().unwrap();
        assert!(ld.is_shared_object() && ld.can_be_loader(), "ld.so is ET_DYN without PT_INTERP: {ld:?}");
        let libc = std::fs::canonicalize("/lib/x86_64-linux-gnu/libc.so.6").unwrap();
        let libc = shape_of(libc.to_str().unwrap()).elf().unwrap();
        // glibc's libc.so.6 can be run, so it has PT_INTERP, but it is a library, not a loader.
        assert!(libc.has_interpreter && libc.is_shared_object() && !libc.can_be_loader(), "{libc:?}");
        assert_eq!(shape_of("/usr/bin/ldd"), Shape::Shebang);
        assert_eq!(shape_of("/etc/passwd"), Shape::Other);
    }

    #[test]
    fn truncated_elf_counts_as_a_shared_object() {
        assert!(Shape::of(b"\x7fELF\x02\x01").elf().unwrap().is_shared_object());
        let mut head = std::fs::read("/usr/bin/ls").unwrap();
        head.truncate(64);
        // Program headers cut off: no interpreter seen, so every open is judged as code.
        assert!(Shape::of(&head).elf().unwrap().is_shared_object());
    }
}
