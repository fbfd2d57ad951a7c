//! Fuzz hash extraction: every hash returned must be a valid hash found in the input.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let found = portcullis_hashlist::extract(data);
    let lower = data.to_ascii_lowercase();
    for h in &found.hashes {
        let hex = h.hash.to_string();
        assert!(lower.windows(hex.len()).any(|w| w == hex.as_bytes()), "{hex} not in input");
    }
});
