//! A value with the place in the source text it came from, for TOML and YAML (JSON, written
//! by programs, keeps none).
//!
//! `toml::Spanned` and `serde_saphyr::Spanned` each work only with their own deserializer, so
//! this wrapper asks the one matching the format being read (set by the loader for the
//! duration of a parse) and keeps the position in a common form.

use serde::{Deserialize, Deserializer};
use std::cell::Cell;
use std::ops::Range;

/// The source format being read on this thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Syntax {
    Toml,
    Yaml,
    /// JSON written by programs: no positions are kept (serde_json has no spans).
    Json,
}

thread_local! {
    static SYNTAX: Cell<Syntax> = const { Cell::new(Syntax::Toml) };
}

/// Run `f` with `syntax` as the current format, restoring the previous one afterwards.
pub(crate) fn with_syntax<R>(syntax: Syntax, f: impl FnOnce() -> R) -> R {
    let previous = SYNTAX.with(|s| s.replace(syntax));
    let result = f();
    SYNTAX.with(|s| s.set(previous));
    result
}

/// Where a value stands in the source.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub(crate) enum Place {
    /// Byte range (TOML), turned into line and column against the source text.
    Bytes(Range<usize>),
    /// 1-based line and column (YAML).
    LineColumn(usize, usize),
    /// Unknown (e.g. a default value that is not in the file).
    #[default]
    Unknown,
}

/// A deserialized value and where it was written.
#[derive(Clone, Debug)]
pub(crate) struct Spanned<T> {
    pub(crate) value: T,
    pub(crate) place: Place,
}

impl<T> Spanned<T> {
    pub(crate) fn get(&self) -> &T {
        &self.value
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Spanned<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match SYNTAX.with(Cell::get) {
            Syntax::Toml => {
                let s = toml::Spanned::<T>::deserialize(deserializer)?;
                let place = Place::Bytes(s.span());
                Ok(Spanned { value: s.into_inner(), place })
            }
            Syntax::Yaml => {
                let s = serde_saphyr::Spanned::<T>::deserialize(deserializer)?;
                let line = s.referenced.line() as usize;
                let column = s.referenced.column() as usize;
                let place = if line == 0 { Place::Unknown } else { Place::LineColumn(line, column) };
                Ok(Spanned { value: s.value, place })
            }
            Syntax::Json => Ok(Spanned { value: T::deserialize(deserializer)?, place: Place::Unknown }),
        }
    }
}

/// Turns byte offsets into 1-based line and column (in characters).
pub(crate) struct LineIndex<'a> {
    text: &'a str,
    starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    pub(crate) fn new(text: &'a str) -> LineIndex<'a> {
        let starts = std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1)).collect();
        LineIndex { text, starts }
    }

    pub(crate) fn locate(&self, place: &Place) -> Option<(usize, usize)> {
        match place {
            Place::Bytes(range) => {
                let offset = range.start.min(self.text.len());
                let line = self.starts.partition_point(|&s| s <= offset);
                let line_start = self.starts[line - 1];
                let column = self.text.get(line_start..offset).map_or(1, |s| s.chars().count() + 1);
                Some((line, column))
            }
            Place::LineColumn(l, c) => Some((*l, *c)),
            Place::Unknown => None,
        }
    }
}
