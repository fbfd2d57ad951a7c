//! What an organization already has in another engine — AppLocker policy XML, App Control
//! (WDAC) SiPolicy XML, Santa rules (`santactl rule --export`), fapolicyd rules and trust
//! files — as Portcullis applications and policies, so that moving to Portcullis keeps it.
//!
//! Pure: the file's text in, a policy [`Document`] (applications and policies only, for the
//! administrator to review and load) and a report out: every foreign rule imported as it is,
//! approximated (and how Portcullis's result differs), or not expressible (and why) — the same
//! three outcomes as the exports ([`portcullis_export::Outcome`]).
//!
//! The invariant is the exports': a condition Portcullis cannot check makes a permit not
//! importable rather than broader; where an import allows or denies more, the report says so.

mod appcontrol;
mod applocker;
mod fapolicyd;
mod santa;

pub use portcullis_export::Outcome;
use portcullis_policy_file::document::{ApplicationDoc, Document, PolicyDoc, RuleDoc};

/// A format Portcullis imports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// AppLocker policy XML (`Get-AppLockerPolicy -Xml`).
    AppLocker,
    /// App Control for Business SiPolicy XML.
    AppControl,
    /// Santa rules as `santactl rule --export` writes them.
    Santa,
    /// fapolicyd rules (`rules.d/*.rules`, `compiled.rules`) or a trust file.
    Fapolicyd,
}

impl Source {
    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Source::AppLocker => "applocker",
            Source::AppControl => "appcontrol",
            Source::Santa => "santa",
            Source::Fapolicyd => "fapolicyd",
        }
    }

    /// The format a name stands for.
    pub fn from_name(name: &str) -> Option<Source> {
        [Source::AppLocker, Source::AppControl, Source::Santa, Source::Fapolicyd]
            .into_iter()
            .find(|s| s.name().eq_ignore_ascii_case(name.trim()))
    }
}

/// One foreign rule and what became of it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Entry {
    /// The rule as its engine names it (collection, type, name or line).
    pub rule: String,
    /// What became of it.
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// An import: the applications and policies made, and what became of every rule.
#[derive(Clone, Debug)]
pub struct Imported {
    /// Applications and policies (no organization, groups or computers), ready to review.
    pub document: Document,
    /// What became of each foreign rule.
    pub entries: Vec<Entry>,
}

impl Imported {
    /// How many rules were imported as they are, approximated and not expressible.
    pub fn counts(&self) -> (usize, usize, usize) {
        let count = |n: &str| self.entries.iter().filter(|e| e.outcome.name() == n).count();
        (count("exported"), count("approximated"), count("not expressible"))
    }
}

/// Why a file cannot be imported at all.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ImportError(pub String);

/// Import `text` (a file of `source`'s format). `prefix` starts the name of every
/// application and policy made (`Imported`), so they are easy to find and cannot collide
/// with the organization's.
pub fn import(source: Source, text: &str, prefix: &str) -> Result<Imported, ImportError> {
    let prefix = prefix.trim();
    let prefix = if prefix.is_empty() { "Imported" } else { prefix };
    let mut b = Builder::new(prefix);
    match source {
        Source::AppLocker => applocker::import(text, &mut b)?,
        Source::AppControl => appcontrol::import(text, &mut b)?,
        Source::Santa => santa::import(text, &mut b)?,
        Source::Fapolicyd => fapolicyd::import(text, &mut b)?,
    }
    Ok(b.finish())
}

/// Collects applications by (name, action) and the policies that use them, in order.
struct Builder {
    prefix: String,
    /// Application name, its policy's action, its rules and exclusions.
    groups: Vec<(String, &'static str, Vec<RuleDoc>, Vec<RuleDoc>)>,
    entries: Vec<Entry>,
}

impl Builder {
    fn new(prefix: &str) -> Builder {
        Builder { prefix: prefix.to_owned(), groups: Vec::new(), entries: Vec::new() }
    }

    /// Add `rule` to the application `name` that a policy with `action` uses; consecutive
    /// additions to the same (name, action) share one application (fapolicyd's first-match
    /// order makes a new one whenever the action changes).
    fn add(&mut self, name: &str, action: &'static str, rule: RuleDoc, except: Vec<RuleDoc>) {
        let full = format!("{}: {name}", self.prefix);
        match self.groups.last_mut() {
            Some((n, a, rules, ex)) if *n == full && *a == action => {
                rules.push(rule);
                ex.extend(except);
            }
            _ => {
                let taken = self.groups.iter().filter(|(n, ..)| n.starts_with(&full)).count();
                let unique = if taken == 0 { full } else { format!("{full} ({})", taken + 1) };
                self.groups.push((unique, action, vec![rule], except));
            }
        }
    }

    fn entry(&mut self, rule: impl Into<String>, outcome: Outcome) {
        self.entries.push(Entry { rule: rule.into(), outcome });
    }

    fn exported(&mut self, rule: impl Into<String>, to: impl Into<String>) {
        self.entry(rule, Outcome::Exported { to: to.into() });
    }

    fn not(&mut self, rule: impl Into<String>, why: impl Into<String>) {
        self.entry(rule, Outcome::NotExpressible { why: why.into() });
    }

    fn finish(self) -> Imported {
        let mut document = Document::default();
        for (i, (name, action, rules, except)) in self.groups.into_iter().enumerate() {
            document.policies.push(PolicyDoc {
                name: name.clone(),
                description: Some(format!("Imported: {action} what {name:?} matches")),
                position: (i as i64 + 1) * 10,
                applications: vec![name.clone()],
                action: action.to_owned(),
                ..PolicyDoc::default()
            });
            document.applications.push(ApplicationDoc {
                name,
                description: Some("Imported from another engine's policy".into()),
                rules,
                except,
            });
        }
        Imported { document, entries: self.entries }
    }
}

/// Lower-case hexadecimal of `text` when it is `bytes` bytes of hex (an optional `0x`).
fn hex_of(text: &str, bytes: usize) -> Option<String> {
    let t = text.trim();
    let t = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")).unwrap_or(t);
    (t.len() == bytes * 2 && t.bytes().all(|b| b.is_ascii_hexdigit())).then(|| t.to_ascii_lowercase())
}

/// A Windows engine's path with its `*` (which crosses folders) as Portcullis's `**`, every
/// other character literal.
fn windows_glob(path: &str) -> String {
    path.split('*').map(portcullis_policy::PathPattern::escape).collect::<Vec<_>>().join("**").replace("****", "**")
}

/// A text pattern that matches `text` literally.
fn literal(text: &str) -> String {
    portcullis_policy::TextPattern::escape(text)
}

/// A small element tree, read with quick-xml: enough for the policy XML of both Windows
/// engines (namespaces dropped, attributes unescaped, text ignored but where asked).
mod xml {
    use super::ImportError;
    use quick_xml::events::{BytesStart, Event};

    #[derive(Debug, Default)]
    pub(crate) struct El {
        pub(crate) name: String,
        attrs: Vec<(String, String)>,
        pub(crate) children: Vec<El>,
        pub(crate) text: String,
    }

    impl El {
        pub(crate) fn attr(&self, name: &str) -> Option<&str> {
            self.attrs.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
        }

        pub(crate) fn child(&self, name: &str) -> Option<&El> {
            self.children.iter().find(|c| c.name == name)
        }

        pub(crate) fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a El> + 'a {
            self.children.iter().filter(move |c| c.name == name)
        }

        /// Every element below, depth first.
        pub(crate) fn descendants(&self) -> Vec<&El> {
            let mut out = Vec::new();
            for c in &self.children {
                out.push(c);
                out.extend(c.descendants());
            }
            out
        }
    }

    fn element(e: &BytesStart<'_>) -> Result<El, ImportError> {
        let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
        let mut attrs = Vec::new();
        for a in e.attributes() {
            let a = a.map_err(|err| ImportError(format!("<{name}>: {err}")))?;
            let key = String::from_utf8_lossy(a.key.local_name().as_ref()).into_owned();
            let value = a.unescape_value().map_err(|err| ImportError(format!("<{name} {key}>: {err}")))?;
            attrs.push((key, value.into_owned()));
        }
        Ok(El { name, attrs, ..El::default() })
    }

    /// The document's root element. Deeply nested or huge input is refused, not followed.
    pub(crate) fn parse(text: &str) -> Result<El, ImportError> {
        let text = text.trim_start_matches('\u{feff}');
        let mut reader = quick_xml::Reader::from_str(text);
        let mut stack: Vec<El> = vec![El::default()];
        let mut count = 0usize;
        loop {
            let event = reader
                .read_event()
                .map_err(|e| ImportError(format!("not well-formed XML at byte {}: {e}", reader.buffer_position())))?;
            match event {
                Event::Start(e) => {
                    if stack.len() > 64 {
                        return Err(ImportError("the XML nests more than 64 elements deep".into()));
                    }
                    stack.push(element(&e)?);
                }
                Event::Empty(e) => stack.last_mut().expect("a root").children.push(element(&e)?),
                Event::Text(t) => {
                    let text = t.decode().map_err(|e| ImportError(e.to_string()))?;
                    stack.last_mut().expect("a root").text.push_str(text.trim());
                }
                Event::End(_) => {
                    let done = stack.pop().expect("matched by the reader");
                    match stack.last_mut() {
                        Some(parent) => parent.children.push(done),
                        None => return Err(ImportError("an end tag without its start".into())),
                    }
                }
                Event::Eof => break,
                _ => {}
            }
            count += 1;
            if count > 2_000_000 {
                return Err(ImportError("more than two million XML events: not a policy".into()));
            }
        }
        let top =
            stack.pop().filter(|_| stack.is_empty()).ok_or_else(|| ImportError("an element is not closed".into()))?;
        top.children.into_iter().next().ok_or_else(|| ImportError("no root element".into()))
    }
}
