//! What the inspect test files share: where the fixtures are and how to read their manifests.

use std::collections::HashMap;
use std::path::PathBuf;

/// The fixture folder (`PORTCULLIS_FIXTURES`, default `target/fixtures`), built by `./x fixtures`.
pub fn fixtures() -> PathBuf {
    let dir = std::env::var_os("PORTCULLIS_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/fixtures"));
    assert!(
        dir.join("manifest.txt").exists() && dir.join("thirdparty/manifest.txt").exists(),
        "fixtures missing in {}: run `./x fixtures` (tests/fixtures/make-fixtures.sh and fetch-thirdparty.sh)",
        dir.display()
    );
    dir
}

/// The `NAME key=value ...` lines of a manifest, in order.
pub fn manifest(path: PathBuf) -> Vec<(String, HashMap<String, String>)> {
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let mut parts = l.split_whitespace();
            let name = parts.next().unwrap_or_default().to_string();
            let kv = parts
                .filter_map(|p| p.split_once('='))
                .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
                .collect();
            (name, kv)
        })
        .collect()
}
