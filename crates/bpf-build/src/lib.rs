//! What a BPF crate's `build.rs` does, once: compile `src/bpf/<name>.bpf.c` with Debian's
//! clang into a libbpf skeleton (`$OUT_DIR/<name>.skel.rs`, CO-RE), and compile
//! `src/bpf/logic_test.c` — the same decision logic the programs use — for the host, so that
//! it is unit-tested without loading anything into a kernel.

use libbpf_cargo::SkeletonBuilder;
use std::path::PathBuf;

/// Build the skeleton and the host logic of the BPF program `name` (`src/bpf/<name>.bpf.c`);
/// `headers` are the other files in `src/bpf/` it includes (rebuilt when they change).
pub fn skeleton_and_logic(name: &str, headers: &[&str]) {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let src = format!("src/bpf/{name}.bpf.c");
    // clang -target bpf does not search the multiarch directory that holds <asm/types.h>.
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_else(|_| "x86_64".into());
    let multiarch = format!("/usr/include/{arch}-linux-gnu");
    let target_arch =
        if arch == "x86_64" { "-D__TARGET_ARCH_x86".to_string() } else { format!("-D__TARGET_ARCH_{arch}") };
    SkeletonBuilder::new()
        .source(&src)
        .clang_args(["-Wall", "-Wno-unused-function", &target_arch, "-I", "src/bpf", "-I", &multiarch])
        .build_and_generate(out.join(format!("{name}.skel.rs")))
        .unwrap_or_else(|e| {
            panic!("building {src} (needs Debian clang, libelf-dev, zlib1g-dev, pkg-config: ./x installs them): {e:#}")
        });
    cc::Build::new()
        .file("src/bpf/logic_test.c")
        .include("src/bpf")
        .warnings(true)
        .compile(&format!("{name}_logic_test"));
    println!("cargo:rerun-if-changed={src}");
    for f in headers.iter().chain(&["logic_test.c"]) {
        println!("cargo:rerun-if-changed=src/bpf/{f}");
    }
}
