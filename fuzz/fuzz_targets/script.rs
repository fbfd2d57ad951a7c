//! Fuzz the script parser: whatever the bytes, facts come back, never a panic, hang or huge allocation.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    quiet_panics();
    let _ = portcullis_inspect::fuzzing::script(data);
});

/// Panics caught inside the parser (third-party crates run behind catch_unwind) are part of
/// normal operation; silence the hook so only panics that escape count as crashes.
fn quiet_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| std::panic::set_hook(Box::new(|_| {})));
}
