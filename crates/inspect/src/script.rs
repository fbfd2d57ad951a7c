//! Scripts that name their interpreter on a `#!` line.

/// What a shebang line says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScriptInfo {
    /// The interpreter path as written (`/usr/bin/env`, `/bin/sh`).
    pub interpreter: String,
    /// The program that really runs: the interpreter, or for `/usr/bin/env python3` the
    /// program `env` looks up.
    pub program: String,
    /// Arguments after the interpreter, as one string.
    pub arguments: Option<String>,
}

/// The kernel reads at most this much of a `#!` line (BINPRM_BUF_SIZE).
const SHEBANG_MAX: usize = 256;

pub(crate) fn parse(data: &[u8]) -> Option<ScriptInfo> {
    let rest = data.strip_prefix(b"#!")?;
    let line = &rest[..rest.len().min(SHEBANG_MAX)];
    let line = line.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let line = line.trim();
    let (interpreter, arguments) = match line.split_once([' ', '\t']) {
        Some((i, a)) => (i.to_string(), Some(a.trim().to_string()).filter(|a| !a.is_empty())),
        None => (line.to_string(), None),
    };
    if interpreter.is_empty() {
        return None;
    }
    let program = if interpreter.ends_with("/env") {
        arguments
            .as_deref()
            .and_then(|a| a.split_whitespace().find(|w| !w.starts_with('-') && !w.contains('=')))
            .unwrap_or(&interpreter)
            .to_string()
    } else {
        interpreter.clone()
    };
    Some(ScriptInfo { interpreter, program, arguments })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shebangs() {
        let s = parse(b"#!/bin/sh\necho hi\n").unwrap();
        assert_eq!((s.interpreter.as_str(), s.program.as_str(), s.arguments), ("/bin/sh", "/bin/sh", None));
        let s = parse(b"#! /usr/bin/env -S python3 -u\n").unwrap();
        assert_eq!((s.interpreter.as_str(), s.program.as_str()), ("/usr/bin/env", "python3"));
        assert!(parse(b"#!\n").is_none());
        assert!(parse(b"echo").is_none());
    }
}
