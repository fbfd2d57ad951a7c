//! The keys that seal what the store must keep secret but cannot hash: the organizations'
//! bundle signing seeds (every server must sign with them). They are kept outside the
//! database — a key file, or the environment — so that a copied database file, a backup or
//! an injected `SELECT` yields no signing key.
//!
//! A key file holds one key per line (64 hex digits; blank lines and `#` comments are
//! ignored). The first key seals; every key unseals. Replacing the sealing key is putting a
//! new key first: the next start reseals every seed with it ([`crate::Store::connect`]),
//! after which the older lines can go. Servers that share a database take the new key
//! second first (a standby key: every server can open what any of them will seal), then
//! first.
//!
//! A sealed value is `v1.<key id>.<nonce>.<ciphertext>` (hex), AES-256-GCM with the
//! organization as associated data, so a sealed seed copied to another organization's row
//! does not open.

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use std::path::Path;

/// Why the sealing keys could not be read or used.
#[derive(Debug, thiserror::Error)]
pub enum SecretKeyError {
    /// A line of a key file is not a key.
    #[error(
        "{source_name}, line {line}: not a secret key (a key is 64 hex digits; make one with `portcullis server new-secret-key`)"
    )]
    Syntax {
        /// The file, or the environment variable.
        source_name: String,
        /// 1-based.
        line: usize,
    },
    /// No key at all.
    #[error("{0} holds no secret key (make one with `portcullis server new-secret-key`)")]
    Empty(String),
    /// Promoting needs a second key.
    #[error("{0} holds one key only: add a standby key first with `portcullis server new-secret-key --standby`")]
    NoStandby(String),
    /// The key file can be read by others.
    #[error("{0} can be read by other users; it seals the bundle signing keys: run `chmod 600 {0}`")]
    Readable(String),
    /// The key file could not be read or written.
    #[error("{path}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        #[source]
        error: std::io::Error,
    },
    /// No random bytes for a new key.
    #[error("{path}: the system gave no random bytes for a new key")]
    NoRandomness {
        /// The key file.
        path: String,
        /// Why.
        #[source]
        error: getrandom::Error,
    },
    /// A sealed value names a key that is not given.
    #[error(
        "{what} is sealed with secret key {key_id}, which is not among the keys given ({given}); start the server \
         with the key file it was sealed with (an older key may follow the current one in the file)"
    )]
    UnknownKey {
        /// What was sealed.
        what: String,
        /// The id of the key that sealed it.
        key_id: String,
        /// The ids of the keys given.
        given: String,
    },
    /// A sealed value does not open with its key (changed, or moved from another row).
    #[error(
        "{0} does not open with its secret key: the stored value was changed or copied from another row; \
         make a new one with `portcullis server reset-bundle-key`"
    )]
    Tampered(String),
    /// A value is stored unsealed after every value was sealed: written by hand, or by
    /// someone with write access to the database who wants the server to use a key they know.
    #[error(
        "{0} is stored unsealed, though every one was sealed: it was written into the database by hand or by an \
         attacker; make a new one with `portcullis server reset-bundle-key`"
    )]
    Unsealed(String),
    /// Sealing failed (a value too large for the cipher).
    #[error("{0} could not be sealed")]
    Sealing(String),
}

/// One 256-bit key and its id.
struct SecretKey {
    id: String,
    key: LessSafeKey,
    bytes: [u8; 32],
}

impl SecretKey {
    fn new(bytes: [u8; 32]) -> SecretKey {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        h.update(b"portcullis secret key id\n");
        h.update(bytes);
        let id = crate::hex(&h.finalize()[..8]);
        let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &bytes).expect("32 bytes is an AES-256 key"));
        SecretKey { id, key, bytes }
    }
}

/// The sealing keys: the first seals, all unseal.
pub struct SecretKeys {
    keys: Vec<SecretKey>,
}

impl std::fmt::Debug for SecretKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Ids only: a key must never reach a log.
        f.debug_struct("SecretKeys").field("ids", &self.ids()).finish()
    }
}

impl SecretKeys {
    /// One new random key.
    pub fn generate() -> Result<SecretKeys, crate::StoreError> {
        Ok(SecretKeys { keys: vec![SecretKey::new(random_key().map_err(crate::StoreError::NoRandomness)?)] })
    }

    /// Keys from text: one per line (or separated by commas, as in an environment
    /// variable), 64 hex digits each; blank lines and `#` comments are ignored.
    /// `source_name` names the text in errors.
    pub fn parse(text: &str, source_name: &str) -> Result<SecretKeys, SecretKeyError> {
        let mut keys = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or_default();
            for word in line.split([',', ' ', '\t']).map(str::trim).filter(|w| !w.is_empty()) {
                let bytes = unhex32(word)
                    .ok_or_else(|| SecretKeyError::Syntax { source_name: source_name.to_owned(), line: i + 1 })?;
                keys.push(SecretKey::new(bytes));
            }
        }
        if keys.is_empty() {
            return Err(SecretKeyError::Empty(source_name.to_owned()));
        }
        Ok(SecretKeys { keys })
    }

    /// Read a key file; it must not be readable by other users.
    pub fn read_file(path: &Path) -> Result<SecretKeys, SecretKeyError> {
        use std::os::unix::fs::PermissionsExt;
        let name = path.display().to_string();
        let io = |error: std::io::Error| SecretKeyError::Io { path: name.clone(), error };
        let meta = std::fs::metadata(path).map_err(io)?;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(SecretKeyError::Readable(name));
        }
        SecretKeys::parse(&std::fs::read_to_string(path).map_err(io)?, &name)
    }

    /// Write a key file with a new key first (or, `standby`, second: it unseals but does not
    /// seal yet) and the keys of the existing file (if any) around it, mode 0600, atomically;
    /// returns the new keys. With no file yet this makes the first key; with one, it is the
    /// first step of replacing the sealing key.
    pub fn add_to_file(path: &Path, standby: bool) -> Result<SecretKeys, SecretKeyError> {
        let name = path.display().to_string();
        let io = |error: std::io::Error| SecretKeyError::Io { path: name.clone(), error };
        let mut keys = match std::fs::metadata(path) {
            Ok(_) => SecretKeys::read_file(path)?.keys,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io(e)),
        };
        let fresh = random_key().map_err(|error| SecretKeyError::NoRandomness { path: name.clone(), error })?;
        keys.insert(usize::from(standby).min(keys.len()), SecretKey::new(fresh));
        let new = SecretKeys { keys };
        write_private(path, new.to_text().as_bytes()).map_err(io)?;
        Ok(new)
    }

    /// Put the second key of a key file first (the standby key becomes the sealing key).
    pub fn promote_in_file(path: &Path) -> Result<SecretKeys, SecretKeyError> {
        let name = path.display().to_string();
        let mut keys = SecretKeys::read_file(path)?.keys;
        if keys.len() < 2 {
            return Err(SecretKeyError::NoStandby(name));
        }
        keys.swap(0, 1);
        let new = SecretKeys { keys };
        write_private(path, new.to_text().as_bytes()).map_err(|error| SecretKeyError::Io { path: name, error })?;
        Ok(new)
    }

    /// The keys as a key file's text, the sealing key first.
    pub fn to_text(&self) -> String {
        let mut out = String::from(
            "# Portcullis secret keys: the first seals the bundle signing keys, all of them unseal.\n\
             # Keep this file outside the database, readable by the server only, the same on every server.\n",
        );
        for (i, k) in self.keys.iter().enumerate() {
            let note = if i == 0 {
                "sealing"
            } else {
                "unseals only: a standby key to promote, or an older one to remove once every server sealed with the first"
            };
            out.push_str(&format!("{}  # id {} ({note})\n", crate::hex(&k.bytes), k.id));
        }
        out
    }

    /// The ids of the keys, the sealing key first (safe to show).
    pub fn ids(&self) -> Vec<String> {
        self.keys.iter().map(|k| k.id.clone()).collect()
    }

    /// Seal `secret`; `context` is bound to it (the row it belongs in).
    pub(crate) fn seal(&self, secret: &[u8], context: &str) -> Result<String, crate::StoreError> {
        let key = &self.keys[0];
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(crate::StoreError::NoRandomness)?;
        let mut data = secret.to_vec();
        key.key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(context.as_bytes()), &mut data)
            .map_err(|_| SecretKeyError::Sealing(context.to_owned()))?;
        Ok(format!("v1.{}.{}.{}", key.id, crate::hex(&nonce), crate::hex(&data)))
    }

    /// Open a sealed value. A value that is not sealed at all (written before sealing
    /// existed) comes back as [`Opened::Plain`], to be sealed now.
    pub(crate) fn open(&self, stored: &str, context: &str, what: &str) -> Result<Opened, SecretKeyError> {
        let Some(rest) = stored.strip_prefix("v1.") else {
            return Ok(Opened::Plain(stored.to_owned()));
        };
        let tampered = || SecretKeyError::Tampered(what.to_owned());
        let mut parts = rest.split('.');
        let (Some(id), Some(nonce), Some(data), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(tampered());
        };
        let Some((index, key)) = self.keys.iter().enumerate().find(|(_, k)| k.id == id) else {
            return Err(SecretKeyError::UnknownKey {
                what: what.to_owned(),
                key_id: id.to_owned(),
                given: self.ids().join(", "),
            });
        };
        let nonce = unhex(nonce).and_then(|n| <[u8; NONCE_LEN]>::try_from(n).ok()).ok_or_else(tampered)?;
        let mut data = unhex(data).ok_or_else(tampered)?;
        let plain = key
            .key
            .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(context.as_bytes()), &mut data)
            .map_err(|_| tampered())?;
        let text = String::from_utf8(plain.to_vec()).map_err(|_| tampered())?;
        Ok(if index == 0 { Opened::Current(text) } else { Opened::Older(text) })
    }
}

/// What [`SecretKeys::open`] found.
pub(crate) enum Opened {
    /// Sealed with the sealing key.
    Current(String),
    /// Sealed with an older key: reseal.
    Older(String),
    /// Not sealed (stored before sealing existed): seal.
    Plain(String),
}

impl Opened {
    pub(crate) fn text(&self) -> &str {
        match self {
            Opened::Current(t) | Opened::Older(t) | Opened::Plain(t) => t,
        }
    }
}

fn random_key() -> Result<[u8; 32], getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(bytes)
}

pub(crate) fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok()).collect()
}

fn unhex32(text: &str) -> Option<[u8; 32]> {
    unhex(text).and_then(|b| <[u8; 32]>::try_from(b).ok())
}

/// Write `bytes` to `path` (mode 0600) through a temporary file and a rename.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    }
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_with_its_key_and_context_only() {
        let keys = SecretKeys::generate().unwrap();
        let sealed = keys.seal(b"seed text", "org:1").unwrap();
        assert!(!sealed.contains(&crate::hex(b"seed text")));
        assert!(matches!(keys.open(&sealed, "org:1", "x"), Ok(Opened::Current(t)) if t == "seed text"));
        // Moved to another organization's row.
        assert!(matches!(keys.open(&sealed, "org:2", "x"), Err(SecretKeyError::Tampered(w)) if w == "x"));
        // One flipped digit.
        let mut flipped = sealed.clone().into_bytes();
        let last = flipped.len() - 1;
        flipped[last] = if flipped[last] == b'0' { b'1' } else { b'0' };
        let flipped = String::from_utf8(flipped).unwrap();
        assert!(matches!(keys.open(&flipped, "org:1", "x"), Err(SecretKeyError::Tampered(_))));
        // Another key.
        let other = SecretKeys::generate().unwrap();
        assert!(matches!(other.open(&sealed, "org:1", "x"), Err(SecretKeyError::UnknownKey { .. })));
        // Not sealed: legacy.
        assert!(matches!(keys.open("abcd", "org:1", "x"), Ok(Opened::Plain(t)) if t == "abcd"));
    }

    #[test]
    fn key_files_are_parsed_strictly_and_rotated_by_putting_a_new_key_first() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/secret.key");
        let first = SecretKeys::add_to_file(&path, false).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let sealed = first.seal(b"s", "c").unwrap();
        assert!(matches!(SecretKeys::promote_in_file(&path), Err(SecretKeyError::NoStandby(_))));
        // A standby key unseals but does not seal; promoted, it seals.
        let standby = SecretKeys::add_to_file(&path, true).unwrap();
        assert_eq!(standby.ids()[0], first.ids()[0]);
        assert!(matches!(standby.open(&sealed, "c", "x"), Ok(Opened::Current(_))));
        let promoted = SecretKeys::promote_in_file(&path).unwrap();
        assert_eq!(promoted.ids(), vec![standby.ids()[1].clone(), first.ids()[0].clone()]);
        assert!(promoted.seal(b"s", "c").unwrap().contains(&promoted.ids()[0]));
        let rotated = SecretKeys::add_to_file(&path, false).unwrap();
        assert_eq!(rotated.ids()[1..], promoted.ids()[..]);
        let read = SecretKeys::read_file(&path).unwrap();
        assert_eq!(read.ids(), rotated.ids());
        assert!(matches!(read.open(&sealed, "c", "x"), Ok(Opened::Older(_))));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(SecretKeys::read_file(&path), Err(SecretKeyError::Readable(_))));
        let e = SecretKeys::parse("# only a comment\n\n", "env").unwrap_err();
        assert!(matches!(e, SecretKeyError::Empty(ref w) if w == "env"), "{e}");
        let e = SecretKeys::parse(&format!("{}\nnot-a-key\n", "ab".repeat(32)), "f").unwrap_err();
        assert!(matches!(e, SecretKeyError::Syntax { ref source_name, line: 2 } if source_name == "f"), "{e}");
        let two = SecretKeys::parse(&format!("{},{}", "ab".repeat(32), "cd".repeat(32)), "env").unwrap();
        assert_eq!(two.ids().len(), 2);
        assert!(!format!("{two:?}").contains(&"ab".repeat(32)));
    }
}
