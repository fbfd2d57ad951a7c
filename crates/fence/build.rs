//! Compiles the BPF programs with clang into a libbpf skeleton, and the same decision logic
//! for the host so that it is unit-tested without loading anything into a kernel.

use libbpf_cargo::SkeletonBuilder;
use std::path::PathBuf;

fn main() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let src = "src/bpf/fence.bpf.c";
    // clang -target bpf does not search the multiarch directory that holds <asm/types.h>.
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_else(|_| "x86_64".into());
    let multiarch = format!("/usr/include/{arch}-linux-gnu");
    let target_arch =
        if arch == "x86_64" { "-D__TARGET_ARCH_x86".to_string() } else { format!("-D__TARGET_ARCH_{arch}") };
    SkeletonBuilder::new()
        .source(src)
        .clang_args(["-Wall", "-Wno-unused-function", &target_arch, "-I", "src/bpf", "-I", &multiarch])
        .build_and_generate(out.join("fence.skel.rs"))
        .unwrap_or_else(|e| {
            panic!("building {src} (needs Debian clang, libelf-dev, zlib1g-dev, pkg-config: ./x installs them): {e:#}")
        });
    cc::Build::new().file("src/bpf/logic_test.c").include("src/bpf").warnings(true).compile("fence_logic_test");
    for f in ["fence.bpf.c", "fence.h", "fence_logic.h", "logic_test.c"] {
        println!("cargo:rerun-if-changed=src/bpf/{f}");
    }
}
