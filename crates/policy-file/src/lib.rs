//! Read Portcullis policy files into a validated [`PolicySet`].
//!
//! Policy files are TOML or YAML with the same shape (see `examples/` in the repository and
//! the README). Every problem comes back as a [`Diagnostic`] with the line and column it was
//! found at and a message that says how to fix it; all problems are reported at once, not
//! just the first.
//!
//! ```
//! let text = r#"
//! [[applications]]
//! name = "Notepad"
//! rules = [{ original_filename = "notepad.exe" }]
//!
//! [[policies]]
//! name = "Allow Notepad"
//! position = 100
//! applications = ["Notepad"]
//! action = "permit"
//! "#;
//! let loaded = portcullis_policy_file::parse(text, portcullis_policy_file::Format::Toml, &[]).unwrap();
//! assert_eq!(loaded.set.policies[0].position, 100);
//!
//! let err = portcullis_policy_file::parse("[[policies]]\nname = 1\n", portcullis_policy_file::Format::Toml, &[]).unwrap_err();
//! assert_eq!(err.diagnostics[0].line, Some(2));
//! ```

mod convert;
pub use convert::{parse_time, signing_id_form};
pub mod document;
mod raw;
mod spanned;

use portcullis_policy::{Application, Engine, ItemRef, PolicySet};
use std::collections::HashMap;
use std::fmt;
use std::path::Path;

/// The syntax of a policy file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// TOML.
    Toml,
    /// YAML.
    Yaml,
    /// JSON, as written by programs (see [`document::Document`]); problems found while
    /// checking carry no line or column.
    Json,
}

impl Format {
    /// The format a file name's extension says, if it says one (`.toml`, `.yaml`, `.yml`).
    pub fn from_path(path: &Path) -> Option<Format> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "toml" => Some(Format::Toml),
            "yaml" | "yml" => Some(Format::Yaml),
            "json" => Some(Format::Json),
            _ => None,
        }
    }
}

/// One problem in a policy file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (Some(l), Some(c)) => write!(f, "{l}:{c}: {}", self.message),
            (Some(l), None) => write!(f, "{l}: {}", self.message),
            _ => f.write_str(&self.message),
        }
    }
}

/// Why a policy file could not be loaded: every problem found.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{} problem(s) in the policy file; first: {}", .diagnostics.len(), .diagnostics.first().map(|d| d.to_string()).unwrap_or_default())]
pub struct LoadError {
    /// The problems, in the order found.
    pub diagnostics: Vec<Diagnostic>,
}

/// A loaded policy set and where each of its items was written.
#[derive(Debug)]
pub struct Loaded {
    /// The validated policy set, built-in applications included.
    pub set: PolicySet,
    places: HashMap<ItemRef, (usize, usize)>,
}

impl Loaded {
    /// Line and column where `item` is defined, if it comes from the file.
    pub fn locate(&self, item: ItemRef) -> Option<(usize, usize)> {
        self.places.get(&item).copied()
    }
}

/// Read a policy document the way every part of Portcullis does — the CLI, the agent (its
/// bundle) and the server (every change, every bundle): with the built-in applications of
/// [`portcullis_catalog`].
pub fn load(text: &str, format: Format) -> Result<Loaded, LoadError> {
    parse(text, format, portcullis_catalog::builtin_applications())
}

/// Document text → an engine that decides: [`load`], then compile. The one path from a
/// policy to decisions; what it refuses, no agent would enforce.
pub fn compile(text: &str, format: Format) -> Result<Engine, LoadError> {
    let loaded = load(text, format)?;
    loaded.compile()
}

impl Loaded {
    /// Compile the set into an engine; problems keep the place of the item they name.
    pub fn compile(self) -> Result<Engine, LoadError> {
        let places = self.places;
        Engine::new(self.set).map_err(|errors| LoadError {
            diagnostics: errors
                .into_iter()
                .map(|e| {
                    let (line, column) = places.get(&e.item).copied().unzip();
                    Diagnostic { line, column, message: e.message }
                })
                .collect(),
        })
    }
}

/// Parse and validate a policy file. `builtins` are added to the file's applications (their
/// names are reserved). Programs use [`load`], which adds the built-in catalogue.
pub fn parse(text: &str, format: Format, builtins: &[Application]) -> Result<Loaded, LoadError> {
    let syntax = match format {
        Format::Toml => spanned::Syntax::Toml,
        Format::Yaml => spanned::Syntax::Yaml,
        Format::Json => spanned::Syntax::Json,
    };
    let index = spanned::LineIndex::new(text);
    let raw: raw::RawFile = spanned::with_syntax(syntax, || match format {
        Format::Toml => toml::from_str(text).map_err(|e| {
            let (line, column) = e.span().and_then(|s| index.locate(&spanned::Place::Bytes(s))).unzip();
            Diagnostic { line, column, message: tidy_message(e.message()) }
        }),
        Format::Yaml => serde_saphyr::from_str(text).map_err(|e| {
            let place = e.location().filter(|l| l.line() > 0);
            Diagnostic {
                line: place.map(|l| l.line() as usize),
                column: place.map(|l| l.column() as usize),
                message: tidy_message(&yaml_message(&e)),
            }
        }),
        Format::Json => serde_json::from_str(text).map_err(|e| Diagnostic {
            line: Some(e.line()).filter(|l| *l > 0),
            column: Some(e.column()).filter(|c| *c > 0),
            message: tidy_message(&json_message(&e)),
        }),
    })
    .map_err(|d| LoadError { diagnostics: vec![d] })?;
    convert::convert(raw, &index, builtins)
}

fn yaml_message(e: &serde_saphyr::Error) -> String {
    // The crate's Display repeats the position and may quote the source; keep the first line.
    let text = e.to_string();
    text.lines().next().unwrap_or_default().to_string()
}

fn json_message(e: &serde_json::Error) -> String {
    // serde_json appends " at line L column C", which the diagnostic already carries.
    let text = e.to_string();
    match text.rfind(" at line ") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

fn tidy_message(message: &str) -> String {
    let m = message.trim();
    if let Some(rest) = m.strip_prefix("unknown field ") {
        return format!("unknown field {rest}; check the spelling (field names use snake_case)");
    }
    m.to_string()
}
