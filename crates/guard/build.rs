//! The guard's BPF programs and their host-side logic tests (see portcullis-bpf-build).

fn main() {
    portcullis_bpf_build::skeleton_and_logic("guard", &["guard.h", "guard_logic.h"]);
}
