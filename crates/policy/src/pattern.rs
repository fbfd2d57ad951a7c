//! Text and path patterns used by rule criteria.

use std::fmt;

/// Why a pattern did not compile.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid pattern {pattern:?}: {message}")]
pub struct PatternError {
    /// The pattern as written.
    pub pattern: String,
    /// What is wrong with it.
    pub message: String,
}

/// `text` with every glob character (`*`, `?`, `[`, `]`, `{`, `}`) in a one-character
/// class, so that a glob compiled from it matches the text literally.
fn escape_glob(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '*' | '?' | '[' | ']' | '{' | '}' => {
                out.push('[');
                out.push(c);
                out.push(']');
            }
            _ => out.push(c),
        }
    }
    out
}

/// A case-insensitive text pattern: exact text, or a glob when it contains `*`, `?` or `[`.
#[derive(Clone)]
pub struct TextPattern {
    source: String,
    lowered: String,
    glob: Option<globset::GlobMatcher>,
}

impl TextPattern {
    /// Compile `pattern`.
    pub fn new(pattern: &str) -> Result<TextPattern, PatternError> {
        let glob = if pattern.contains(['*', '?', '[']) {
            let glob = globset::GlobBuilder::new(pattern)
                .case_insensitive(true)
                .literal_separator(false)
                .backslash_escape(false)
                .build()
                .map_err(|e| PatternError { pattern: pattern.to_string(), message: e.kind().to_string() })?;
            Some(glob.compile_matcher())
        } else {
            None
        };
        Ok(TextPattern { source: pattern.to_string(), lowered: pattern.to_lowercase(), glob })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// A pattern that matches exactly `text` (ignoring case, as every text pattern does):
    /// glob characters are escaped. A signer subject taken from an event stays that subject.
    pub fn escape(text: &str) -> String {
        escape_glob(text)
    }

    /// Whether this pattern is plain text (no wildcards).
    pub fn is_literal(&self) -> bool {
        self.glob.is_none()
    }

    /// Whether `value` matches, ignoring case.
    pub fn matches(&self, value: &str) -> bool {
        match &self.glob {
            Some(glob) => glob.is_match(value),
            None => {
                value.len() == self.source.len() && value.eq_ignore_ascii_case(&self.source)
                    || value.to_lowercase() == self.lowered
            }
        }
    }

    /// Whether every value this pattern matches is also matched by `self`: true when both are
    /// the same text, or when `self` is a glob that matches `other` taken literally.
    pub fn covers(&self, other: &TextPattern) -> bool {
        self.lowered == other.lowered || (other.is_literal() && self.matches(&other.source))
    }

    /// OriginalFilename matching: `3CXDesktopApp` matches `3CXDesktopApp.exe`, because vendors
    /// and threat reports write it both ways. A pattern that names an extension must match it.
    pub fn matches_file_name(&self, value: &str) -> bool {
        if self.matches(value) {
            return true;
        }
        !self.source.contains('.') && value.rsplit_once('.').is_some_and(|(stem, _)| self.matches(stem))
    }
}

impl fmt::Debug for TextPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.source)
    }
}

impl PartialEq for TextPattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

/// A path glob: `*` stays within one path component, `**` crosses them; case-sensitive, as
/// paths are on Linux.
#[derive(Clone)]
pub struct PathPattern {
    source: String,
    glob: globset::GlobMatcher,
}

impl PathPattern {
    /// Compile `pattern`.
    pub fn new(pattern: &str) -> Result<PathPattern, PatternError> {
        let glob = globset::GlobBuilder::new(pattern)
            .literal_separator(true)
            .backslash_escape(false)
            .build()
            .map_err(|e| PatternError { pattern: pattern.to_string(), message: e.kind().to_string() })?;
        Ok(PathPattern { source: pattern.to_string(), glob: glob.compile_matcher() })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// A pattern that matches exactly `path` and nothing else: every glob character
    /// (`*`, `?`, `[`, `]`, `{`, `}`) is put in a one-character class. A path an agent
    /// reported (`/tmp/**`) becomes that one file, never a wildcard.
    pub fn escape(path: &str) -> String {
        escape_glob(path)
    }

    /// Whether `path` matches.
    pub fn matches(&self, path: &str) -> bool {
        self.glob.is_match(path)
    }

    /// Whether every path matched by `other` is matched by `self` (conservative: same pattern,
    /// a literal path that `self` matches, or `self` is `**`).
    pub fn covers(&self, other: &PathPattern) -> bool {
        self.source == other.source
            || self.source == "**"
            || (!other.source.contains(['*', '?', '[', '{']) && self.matches(&other.source))
    }
}

impl fmt::Debug for PathPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.source)
    }
}

impl PartialEq for PathPattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

#[cfg(test)]
mod escape_tests {
    use super::PathPattern;
    use proptest::prelude::*;

    #[test]
    fn an_escaped_text_matches_itself_only() {
        let p = super::TextPattern::new(&super::TextPattern::escape("CN=Evil*, O=[x]")).unwrap();
        assert!(p.matches("cn=evil*, o=[x]"));
        assert!(!p.matches("CN=Evil Corp, O=x"));
    }

    #[test]
    fn an_escaped_path_matches_itself_only() {
        let p = PathPattern::new(&PathPattern::escape("/tmp/**")).unwrap();
        assert!(p.matches("/tmp/**"));
        assert!(!p.matches("/tmp/evil"));
        assert!(!p.matches("/tmp/a/b"));
        let p = PathPattern::new(&PathPattern::escape("/opt/{a,b}/[x]?*")).unwrap();
        assert!(p.matches("/opt/{a,b}/[x]?*"));
        assert!(!p.matches("/opt/a/x12"));
    }

    proptest! {
        #[test]
        fn any_escaped_path_compiles_and_matches_exactly_itself(
            path in "[/a-z*?\\[\\]{}!,.-]{0,24}",
            other in "[/a-z*?\\[\\]{}!,.-]{0,24}",
        ) {
            let p = PathPattern::new(&PathPattern::escape(&path)).unwrap();
            prop_assert!(p.matches(&path));
            prop_assert_eq!(p.matches(&other), other == path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn original_filename_with_or_without_extension() {
        let p = TextPattern::new("3CXDesktopApp").unwrap();
        assert!(p.matches_file_name("3CXDesktopApp.exe"));
        assert!(p.matches_file_name("3cxdesktopapp.EXE"));
        assert!(p.matches_file_name("3CXDesktopApp"));
        assert!(!p.matches_file_name("3CXDesktopApp2.exe"));
        let with_ext = TextPattern::new("ffmpeg.dll").unwrap();
        assert!(with_ext.matches_file_name("FFMPEG.DLL"));
        assert!(!with_ext.matches_file_name("ffmpeg.exe"));
    }

    #[test]
    fn text_globs_ignore_case() {
        let p = TextPattern::new("3CX*").unwrap();
        assert!(p.matches("3cx Ltd"));
        assert!(!p.matches("Contoso"));
        assert!(p.covers(&TextPattern::new("3CX Ltd").unwrap()));
        assert!(!TextPattern::new("3CX Ltd").unwrap().covers(&p));
    }

    #[test]
    fn path_globs_respect_separators() {
        let p = PathPattern::new("/opt/*/bin/*").unwrap();
        assert!(p.matches("/opt/3cx/bin/app"));
        assert!(!p.matches("/opt/3cx/sub/bin/app"));
        assert!(PathPattern::new("/opt/**").unwrap().matches("/opt/3cx/sub/bin/app"));
        assert!(PathPattern::new("/opt/**").unwrap().covers(&PathPattern::new("/opt/3cx/bin/app").unwrap()));
    }

    #[test]
    fn bad_glob_is_an_error() {
        assert!(PathPattern::new("/opt/[").is_err());
    }
}
