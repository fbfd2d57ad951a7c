//! Why part of a file could not be read or verified.
//!
//! Parsers and verifiers inside this crate return [`Problem`]: what was being read, and the
//! third-party parser's own error as its cause. Where a problem becomes a fact (a file's
//! `parse_error`, a signature's `error`, an anomaly) it is written out with [`Problem::report`],
//! which keeps every cause on one line.

use std::error::Error;
use std::fmt;

type Cause = Box<dyn Error + Send + Sync + 'static>;

/// What kept this crate from reading or verifying part of a file.
#[derive(Debug)]
pub(crate) struct Problem {
    what: String,
    cause: Option<Cause>,
}

impl Problem {
    /// A problem this crate found itself.
    pub(crate) fn new(what: impl Into<String>) -> Problem {
        Problem { what: what.into(), cause: None }
    }

    /// A problem a parser reported while this crate was reading `what`.
    pub(crate) fn caused(what: impl Into<String>, cause: impl Into<Cause>) -> Problem {
        Problem { what: what.into(), cause: Some(cause.into()) }
    }

    /// This problem as the cause of a wider one.
    pub(crate) fn within(self, what: impl Into<String>) -> Problem {
        Problem::caused(what, self)
    }

    /// The problem and every cause, `what: cause: cause`, as facts carry it.
    pub(crate) fn report(&self) -> String {
        portcullis_policy::with_causes(self)
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.what)
    }
}

impl Error for Problem {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.cause.as_deref().map(|c| c as &(dyn Error + 'static))
    }
}

impl From<&'static str> for Problem {
    fn from(what: &'static str) -> Problem {
        Problem::new(what)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_names_every_cause_in_order() {
        let io = std::io::Error::other("stream ends early");
        let p = Problem::caused("unreadable DigitalSignature stream", io).within("MSI signature");
        assert_eq!(p.to_string(), "MSI signature");
        assert_eq!(p.report(), "MSI signature: unreadable DigitalSignature stream: stream ends early");
        assert!(p.source().is_some_and(|c| c.source().is_some()));
        assert_eq!(Problem::from("no MZ header").report(), "no MZ header");
    }
}
