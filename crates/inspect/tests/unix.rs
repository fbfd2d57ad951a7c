//! ELF, Mach-O and script facts on files built by gcc, clang/ld64.lld/llvm-lipo
//! (tests/fixtures/make-fixtures.sh), compared with what readelf and llvm-objdump say.

mod common;

use common::{fixtures, manifest};
use portcullis_inspect::*;
use std::collections::HashMap;
use std::path::PathBuf;

fn manifest_by_name() -> HashMap<String, HashMap<String, String>> {
    manifest(fixtures().join("manifest.txt")).into_iter().collect()
}

#[test]
fn elf_types_interpreters_and_build_ids_agree_with_readelf() {
    let m = manifest_by_name();
    for (name, format) in [
        ("hello-pie", Format::ElfPie),
        ("hello-nopie", Format::ElfExecutable),
        ("hello-static", Format::ElfExecutable),
        ("libhello.so", Format::ElfSharedObject),
    ] {
        let kv = &m[name];
        let f = inspect_path(&fixtures().join(name), &Options::default()).unwrap();
        assert_eq!(f.format, format, "{name}");
        assert_eq!(hex(&f.hashes.sha256), kv["sha256"]);
        let elf = f.elf.unwrap();
        assert_eq!(elf.interpreter.as_deref().unwrap_or("none"), kv["interp"], "{name}");
        assert_eq!(elf.build_id.as_deref(), Some(kv["build-id"].as_str()), "{name}");
        assert_eq!(elf.is_static, kv["elf-type"] == "static", "{name}");
        assert_eq!(elf.machine, "X86_64");
        assert!(elf.is_64);
    }
}

/// One rule for what an ELF file is, the agent's (`ET_DYN` is a program only with
/// `DF_1_PIE`): a `kind = "library"` rule matches glibc's libc.so.6 in `check` exactly as the
/// agent judges opens of it as loads.
#[test]
fn elf_kinds_follow_the_pie_flag_for_libc_ld_so_a_pie_a_static_program_and_a_plain_so() {
    use portcullis_policy::FileKind;
    let kind = |p: &std::path::Path| {
        let f = inspect_path(&std::fs::canonicalize(p).unwrap(), &Options::default()).unwrap();
        (f.format, policy_facts(&f).kind)
    };
    let libc = kind("/lib/x86_64-linux-gnu/libc.so.6".as_ref());
    assert_eq!(libc, (Format::ElfSharedObject, FileKind::Library), "libc.so.6 has PT_INTERP and is a library");
    let ld = kind("/lib64/ld-linux-x86-64.so.2".as_ref());
    assert_eq!(ld, (Format::ElfSharedObject, FileKind::Library));
    assert_eq!(kind("/usr/bin/ls".as_ref()), (Format::ElfPie, FileKind::Executable));
    assert_eq!(kind(&fixtures().join("hello-pie")), (Format::ElfPie, FileKind::Executable));
    assert_eq!(kind(&fixtures().join("hello-static")), (Format::ElfExecutable, FileKind::Executable));
    assert_eq!(kind(&fixtures().join("libhello.so")), (Format::ElfSharedObject, FileKind::Library));
    use goblin::elf::header::{ET_DYN, ET_EXEC};
    assert_eq!(ElfType::classify(ET_DYN, false), ElfType::SharedObject);
    assert_eq!(ElfType::classify(ET_DYN, true), ElfType::Pie);
    assert_eq!(ElfType::classify(ET_EXEC, false), ElfType::Executable);
}

#[test]
fn system_binaries() {
    let ls = inspect_path(std::path::Path::new("/bin/ls"), &Options::default()).unwrap();
    assert!(matches!(ls.format, Format::ElfPie | Format::ElfExecutable), "{:?}", ls.format);
    assert!(ls.elf.unwrap().interpreter.is_some_and(|i| i.contains("ld-linux")));
}

#[test]
fn macho_slices_and_signatures_agree_with_llvm() {
    let m = manifest_by_name();
    for name in ["hello-macho-x86_64", "hello-macho-arm64", "hello-macho-universal"] {
        let kv = &m[name];
        let f = inspect_path(&fixtures().join(name), &Options::default()).unwrap();
        assert_eq!(f.format, Format::MachO, "{name}: {:?}", f.parse_error);
        let mo = f.macho.unwrap();
        let arches: Vec<&str> = mo.arches.iter().map(|a| a.arch.as_str()).collect();
        assert_eq!(arches.join(","), kv["macho-arches"], "{name}");
        assert_eq!(mo.universal, arches.len() > 1);
        assert_eq!(if mo.signed() { "yes" } else { "no" }, kv["signed"], "{name}");
        let signed: Vec<&str> = mo.arches.iter().filter(|a| a.signed).map(|a| a.arch.as_str()).collect();
        let expected = if kv["signed-slices"] == "none" { String::new() } else { kv["signed-slices"].clone() };
        assert_eq!(signed.join(","), expected, "{name}");
    }
}

#[test]
fn scripts_name_their_interpreter() {
    let m = manifest_by_name();
    for name in ["hello.sh", "hello.py"] {
        let kv = &m[name];
        let f = inspect_path(&fixtures().join(name), &Options::default()).unwrap();
        assert_eq!(f.format, Format::Script);
        let s = f.script.unwrap();
        assert_eq!(s.interpreter, kv["shebang"]);
        let arg = if kv["shebang-arg"] == "none" { None } else { Some(kv["shebang-arg"].clone()) };
        assert_eq!(s.arguments, arg);
    }
}

#[test]
fn java_class_files_are_not_mach_o() {
    // 0xCAFEBABE followed by a class-file version (major 61) is Java, not a universal binary.
    let class = [0xca, 0xfe, 0xba, 0xbe, 0x00, 0x00, 0x00, 0x3d, 0, 0];
    assert_eq!(inspect_bytes("A.class", &class, &Options::default()).format, Format::Other);
}

/// Found by the fuzz targets: MSI files whose string pool (2 GiB) or summary information (4 GiB)
/// declare strings far larger than the file made the `msi` crate allocate them before reading.
/// They must be refused with a parse error.
#[test]
fn fuzz_msi_declaring_gigabytes() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    for (name, expected) in [
        ("fuzz-msi-string-pool-oom.msi", "string pool declares"),
        ("fuzz-msi-summary-string-oom.bin", "summary-information string declares"),
    ] {
        let data = std::fs::read(dir.join(name)).unwrap();
        let f = portcullis_inspect::fuzzing::msi(&data);
        let e = f.parse_error.unwrap_or_default();
        assert!(e.contains(expected), "{name}: {e}");
    }
}
