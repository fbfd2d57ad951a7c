//! Fuzz the policy-file readers (TOML and YAML): errors, never panics; what loads compiles.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    for format in [portcullis_policy_file::Format::Toml, portcullis_policy_file::Format::Yaml] {
        if let Ok(loaded) = portcullis_policy_file::parse(text, format, &[]) {
            let _ = portcullis_policy::lint(&loaded.set, portcullis_policy::Timestamp(0));
            portcullis_policy::Engine::new(loaded.set).expect("a loaded policy set compiles");
        }
    }
});
