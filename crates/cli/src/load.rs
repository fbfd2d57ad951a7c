//! Reading the inputs every command shares: policy files, trust stores, times.

use crate::exit::{BAD_POLICY, OrExit, UNREADABLE, fail};
use portcullis_policy_file::{Format, Loaded};
use std::path::Path;
use std::sync::Arc;

/// Read and validate a policy file with the built-in applications, or fail with every
/// problem listed as `file:line:column: error: …`.
pub fn policy(path: &Path) -> anyhow::Result<Loaded> {
    let text =
        std::fs::read_to_string(path).or_exit(UNREADABLE, format!("cannot read policy file {}", path.display()))?;
    let result = match Format::from_path(path) {
        Some(format) => portcullis_policy_file::load(&text, format),
        // No telling extension: take whichever syntax reads it, reporting TOML's complaints.
        None => portcullis_policy_file::load(&text, Format::Toml)
            .or_else(|toml_err| portcullis_policy_file::load(&text, Format::Yaml).map_err(|_| toml_err)),
    };
    result.map_err(|e| {
        let shown = path.display();
        let lines: Vec<String> = e
            .diagnostics
            .iter()
            .map(|d| match (d.line, d.column) {
                (Some(l), Some(c)) => format!("{shown}:{l}:{c}: error: {}", d.message),
                _ => format!("{shown}: error: {}", d.message),
            })
            .collect();
        fail(BAD_POLICY, format!("{} problem(s) in {shown}:\n{}", lines.len(), lines.join("\n")))
    })
}

/// Compile a loaded policy set for deciding.
pub fn engine(set: portcullis_policy::PolicySet) -> anyhow::Result<portcullis_policy::Engine> {
    portcullis_policy::Engine::new(set)
        .map_err(|errors| fail(BAD_POLICY, errors.iter().map(|e| e.message.clone()).collect::<Vec<_>>().join("\n")))
}

/// Read a PEM bundle of trusted roots.
pub fn trust_store(path: Option<&Path>) -> anyhow::Result<Option<Arc<portcullis_inspect::TrustStore>>> {
    let Some(path) = path else { return Ok(None) };
    let pem = std::fs::read(path).or_exit(UNREADABLE, format!("cannot read trust store {}", path.display()))?;
    let store = portcullis_inspect::TrustStore::from_pem(&pem)
        .or_exit(UNREADABLE, format!("{} is not a trust store; give a PEM file of CA certificates", path.display()))?;
    Ok(Some(Arc::new(store)))
}

/// `--at` as Unix seconds, or now.
pub fn moment(at: Option<&str>) -> anyhow::Result<i64> {
    let Some(text) = at else {
        return Ok(jiff::Timestamp::now().as_second());
    };
    let parsed = text.parse::<jiff::Timestamp>().ok().or_else(|| {
        text.parse::<jiff::civil::Date>()
            .ok()
            .and_then(|d| d.to_zoned(jiff::tz::TimeZone::UTC).ok())
            .map(|z| z.timestamp())
    });
    parsed
        .map(|t| t.as_second())
        .ok_or_else(|| fail(2, format!("--at {text:?} is not a time; write 2026-12-31 or 2026-12-31T08:00:00Z")))
}
