//! Four-part numeric versions (`18.12.416.0`) and ranges over them.

use std::fmt;
use std::str::FromStr;

/// A version of four 16-bit parts, as in a PE VS_FIXEDFILEINFO. Missing parts are zero, so
/// `18.12` is `18.12.0.0`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version(pub [u16; 4]);

/// Why a version or a version range did not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VersionError {
    /// The text is empty.
    #[error("empty version")]
    Empty,
    /// More than four parts.
    #[error("{0:?} has more than four parts (a version is at most a.b.c.d)")]
    TooManyParts(String),
    /// A part is not a number from 0 to 65535.
    #[error("{part:?} in {text:?} is not a number from 0 to 65535")]
    BadPart {
        /// The whole text.
        text: String,
        /// The offending part.
        part: String,
    },
    /// A range term does not start with a known operator.
    #[error("{0:?} is not a version comparison; write e.g. \">=18.12.407\", \"<18.13\" or \"=18.12.416\"")]
    BadComparison(String),
    /// The range can never match (its lower bound is above its upper bound).
    #[error("range {0:?} matches no version")]
    EmptyRange(String),
}

impl Version {
    /// Build a version from its parts.
    pub const fn new(a: u16, b: u16, c: u16, d: u16) -> Version {
        Version([a, b, c, d])
    }

    /// The version packed as the 64-bit number a VS_FIXEDFILEINFO holds (MS << 32 | LS).
    pub fn from_ms_ls(ms: u32, ls: u32) -> Version {
        Version([(ms >> 16) as u16, ms as u16, (ls >> 16) as u16, ls as u16])
    }
}

impl FromStr for Version {
    type Err = VersionError;

    fn from_str(text: &str) -> Result<Version, VersionError> {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(VersionError::Empty);
        }
        let mut parts = [0u16; 4];
        for (i, part) in trimmed.split('.').enumerate() {
            if i >= 4 {
                return Err(VersionError::TooManyParts(text.to_string()));
            }
            parts[i] = part
                .trim()
                .parse()
                .map_err(|_| VersionError::BadPart { text: text.to_string(), part: part.to_string() })?;
        }
        Ok(Version(parts))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d] = self.0;
        write!(f, "{a}.{b}.{c}.{d}")
    }
}

/// One end of a range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Bound {
    /// The version at the end.
    pub version: Version,
    /// Whether the version itself is in the range.
    pub inclusive: bool,
}

/// A set of versions between two optional bounds, written as comma-separated comparisons:
/// `">=18.12.407, <=18.12.416"`, `"<2"`, `"=18.12.416"` (a bare version means `=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct VersionRange {
    /// Lowest version in the range, if bounded below.
    pub min: Option<Bound>,
    /// Highest version in the range, if bounded above.
    pub max: Option<Bound>,
}

impl VersionRange {
    /// The range holding exactly `v`.
    pub fn exactly(v: Version) -> VersionRange {
        let bound = Some(Bound { version: v, inclusive: true });
        VersionRange { min: bound, max: bound }
    }

    /// Whether `v` lies in the range.
    pub fn contains(&self, v: Version) -> bool {
        let above_min = match self.min {
            None => true,
            Some(b) if b.inclusive => v >= b.version,
            Some(b) => v > b.version,
        };
        let below_max = match self.max {
            None => true,
            Some(b) if b.inclusive => v <= b.version,
            Some(b) => v < b.version,
        };
        above_min && below_max
    }

    /// Whether every version in `other` is also in `self`.
    pub fn covers(&self, other: &VersionRange) -> bool {
        let min_ok = match (self.min, other.min) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(a), Some(b)) => a.version < b.version || (a.version == b.version && (a.inclusive || !b.inclusive)),
        };
        let max_ok = match (self.max, other.max) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(a), Some(b)) => a.version > b.version || (a.version == b.version && (a.inclusive || !b.inclusive)),
        };
        min_ok && max_ok
    }

    fn is_empty(&self) -> bool {
        match (self.min, self.max) {
            (Some(lo), Some(hi)) => {
                lo.version > hi.version || (lo.version == hi.version && !(lo.inclusive && hi.inclusive))
            }
            _ => false,
        }
    }
}

impl FromStr for VersionRange {
    type Err = VersionError;

    fn from_str(text: &str) -> Result<VersionRange, VersionError> {
        let mut range = VersionRange::default();
        let mut any = false;
        for term in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            any = true;
            let (op, rest) = ["<=", ">=", "==", "<", ">", "="]
                .iter()
                .find_map(|op| term.strip_prefix(op).map(|rest| (*op, rest)))
                .unwrap_or(("=", term));
            if rest.trim_start().starts_with(['<', '>', '=']) {
                return Err(VersionError::BadComparison(term.to_string()));
            }
            let version: Version = rest.parse()?;
            let tighten_min = |range: &mut VersionRange, b: Bound| {
                if range.min.is_none_or(|m| {
                    VersionRange { min: Some(m), max: None }.covers(&VersionRange { min: Some(b), max: None })
                }) {
                    range.min = Some(b);
                }
            };
            let tighten_max = |range: &mut VersionRange, b: Bound| {
                if range.max.is_none_or(|m| {
                    VersionRange { min: None, max: Some(m) }.covers(&VersionRange { min: None, max: Some(b) })
                }) {
                    range.max = Some(b);
                }
            };
            match op {
                ">=" => tighten_min(&mut range, Bound { version, inclusive: true }),
                ">" => tighten_min(&mut range, Bound { version, inclusive: false }),
                "<=" => tighten_max(&mut range, Bound { version, inclusive: true }),
                "<" => tighten_max(&mut range, Bound { version, inclusive: false }),
                _ => {
                    tighten_min(&mut range, Bound { version, inclusive: true });
                    tighten_max(&mut range, Bound { version, inclusive: true });
                }
            }
        }
        if !any {
            return Err(VersionError::Empty);
        }
        if range.is_empty() {
            return Err(VersionError::EmptyRange(text.to_string()));
        }
        Ok(range)
    }
}

impl fmt::Display for VersionRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.min, self.max) {
            (Some(lo), Some(hi)) if lo == hi && lo.inclusive => write!(f, "={}", lo.version),
            (lo, hi) => {
                let mut parts = Vec::new();
                if let Some(b) = lo {
                    parts.push(format!("{}{}", if b.inclusive { ">=" } else { ">" }, b.version));
                }
                if let Some(b) = hi {
                    parts.push(format!("{}{}", if b.inclusive { "<=" } else { "<" }, b.version));
                }
                if parts.is_empty() {
                    parts.push(">=0.0.0.0".to_string());
                }
                f.write_str(&parts.join(", "))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parse_and_contain() {
        let r: VersionRange = ">=18.12.407, <=18.12.416".parse().unwrap();
        assert!(r.contains("18.12.407".parse().unwrap()));
        assert!(r.contains("18.12.416.0".parse().unwrap()));
        assert!(!r.contains("18.12.417".parse().unwrap()));
        assert!(!r.contains("18.11.1213".parse().unwrap()));
        let exact: VersionRange = "18.12.416".parse().unwrap();
        assert_eq!(exact, VersionRange::exactly(Version::new(18, 12, 416, 0)));
        assert_eq!(exact.to_string(), "=18.12.416.0");
    }

    #[test]
    fn errors_say_what_to_write() {
        assert!(matches!("1.2.3.4.5".parse::<Version>(), Err(VersionError::TooManyParts(_))));
        assert!(matches!("1.70000".parse::<Version>(), Err(VersionError::BadPart { .. })));
        assert!(matches!(">2, <1".parse::<VersionRange>(), Err(VersionError::EmptyRange(_))));
        assert!(matches!("=>2".parse::<VersionRange>(), Err(VersionError::BadComparison(_))));
        assert!(matches!(" , ".parse::<VersionRange>(), Err(VersionError::Empty)));
    }

    fn version() -> impl Strategy<Value = Version> {
        // Small parts make equal and neighbouring versions likely, which is where bugs hide.
        proptest::array::uniform4(0u16..4).prop_map(Version)
    }

    fn bound() -> impl Strategy<Value = Option<Bound>> {
        proptest::option::of((version(), any::<bool>()).prop_map(|(version, inclusive)| Bound { version, inclusive }))
    }

    fn range() -> impl Strategy<Value = VersionRange> {
        (bound(), bound()).prop_map(|(min, max)| VersionRange { min, max }).prop_filter("non-empty", |r| !r.is_empty())
    }

    proptest! {
        #[test]
        fn display_parses_back(r in range()) {
            let text = r.to_string();
            let back: VersionRange = text.parse().unwrap();
            for a in 0..4u16 { for b in 0..4u16 {
                let v = Version::new(a, b, 1, 0);
                prop_assert_eq!(r.contains(v), back.contains(v), "{} vs {}", r, text);
            }}
        }

        #[test]
        fn contains_agrees_with_ordering(r in range(), v in version()) {
            let expected = r.min.is_none_or(|b| if b.inclusive { v >= b.version } else { v > b.version })
                && r.max.is_none_or(|b| if b.inclusive { v <= b.version } else { v < b.version });
            prop_assert_eq!(r.contains(v), expected);
        }

        #[test]
        fn covers_means_every_member_is_contained(a in range(), b in range(), v in version()) {
            if a.covers(&b) && b.contains(v) {
                prop_assert!(a.contains(v));
            }
        }

        #[test]
        fn version_text_round_trips(v in proptest::array::uniform4(any::<u16>()).prop_map(Version)) {
            prop_assert_eq!(v.to_string().parse::<Version>().unwrap(), v);
        }
    }
}
