//! Offline one-time bypass codes: the console issues one for a computer and a duration; on
//! that computer, `portcullis bypass CODE` puts the agent in Monitor mode for that long, even
//! without a network. The agent and the server share a per-agent key (the agent makes it and
//! registers it over its authenticated channel; the server keeps it sealed). A code is
//! `COUNTER-MINUTES-EXPIRY-TAG`: the issue counter (the agent accepts each counter once, in
//! rising order), the bypass duration, the last hour (Unix hours) it may be used in, and an
//! HMAC-SHA256 tag over all of them and the computer's name, 80 bits in Crockford base32.
//! Both ends use this one definition.

use hmac::{KeyInit, Mac};

/// The longest bypass a code can give (7 days).
pub const MAX_MINUTES: u32 = 7 * 24 * 60;
/// The longest an unused code stays valid (30 days).
pub const MAX_VALID_HOURS: i64 = 30 * 24;

/// What a code grants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BypassCode {
    /// The issue counter (rising; each used once).
    pub counter: u64,
    /// Minutes of Monitor mode.
    pub minutes: u32,
    /// The last Unix hour the code may be used in.
    pub expires_hour: i64,
}

/// Why a code is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BypassError {
    /// Not the shape of a code.
    #[error("{0:?} is not a bypass code: a code looks like 12-60-493821-ABCD-EFGH-JKMN-PQRS")]
    Malformed(String),
    /// The duration is out of range.
    #[error("a bypass lasts 1 to {MAX_MINUTES} minutes, not {0}")]
    Minutes(u32),
    /// Past its last hour.
    #[error("this bypass code expired at {0}: ask for a new one")]
    Expired(String),
    /// The tag does not match: mistyped, or issued for another computer.
    #[error("this bypass code is not valid for this computer: check it was typed as given, for this computer's name")]
    Wrong,
    /// Its counter was used already (or an older code).
    #[error("this bypass code was used already (or a newer one was): ask for a new one")]
    Used,
}

const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

fn tag(key: &[u8; 32], computer: &str, c: &BypassCode) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(b"portcullis-bypass-v1\0");
    mac.update(computer.to_ascii_lowercase().as_bytes());
    mac.update(b"\0");
    mac.update(&c.counter.to_be_bytes());
    mac.update(&c.minutes.to_be_bytes());
    mac.update(&c.expires_hour.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    // 80 bits: 16 base32 characters.
    let bits = digest[..10].iter().fold(0u128, |acc, b| (acc << 8) | u128::from(*b));
    let chars: String = (0..16).rev().map(|i| ALPHABET[((bits >> (i * 5)) & 31) as usize] as char).collect();
    format!("{}-{}-{}-{}", &chars[0..4], &chars[4..8], &chars[8..12], &chars[12..16])
}

/// The code for `computer` granting `c`.
pub fn issue(key: &[u8; 32], computer: &str, c: &BypassCode) -> String {
    format!("{}-{}-{}-{}", c.counter, c.minutes, c.expires_hour, tag(key, computer, c))
}

/// Check a code typed on `computer` at Unix second `now_s`: what it grants, if it is valid.
/// (Whether its counter was used already is the agent's to check.)
pub fn check(key: &[u8; 32], computer: &str, text: &str, now_s: i64) -> Result<BypassCode, BypassError> {
    let malformed = || BypassError::Malformed(crate::bounded_text(text, 60));
    let cleaned: String = text.trim().chars().filter(|c| !c.is_whitespace()).collect();
    let mut parts = cleaned.splitn(4, '-');
    let mut number = || parts.next().and_then(|p| p.parse::<u64>().ok());
    let (Some(counter), Some(minutes), Some(expires)) = (number(), number(), number()) else {
        return Err(malformed());
    };
    let given: String = parts
        .next()
        .ok_or_else(malformed)?
        .chars()
        .filter(|c| *c != '-')
        .map(|c| match c.to_ascii_uppercase() {
            'O' => '0',
            'I' | 'L' => '1',
            c => c,
        })
        .collect();
    if given.len() != 16 || !given.bytes().all(|b| ALPHABET.contains(&b)) {
        return Err(malformed());
    }
    let minutes = u32::try_from(minutes).map_err(|_| malformed())?;
    let expires_hour = i64::try_from(expires).map_err(|_| malformed())?;
    let code = BypassCode { counter, minutes, expires_hour };
    let expected: String = tag(key, computer, &code).chars().filter(|c| *c != '-').collect();
    // Constant time: the tag is the secret part.
    let differ = expected.bytes().zip(given.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b));
    if differ != 0 {
        return Err(BypassError::Wrong);
    }
    if !(1..=MAX_MINUTES).contains(&minutes) {
        return Err(BypassError::Minutes(minutes));
    }
    if now_s >= (expires_hour + 1).saturating_mul(3600) {
        return Err(BypassError::Expired(hour_text(expires_hour + 1)));
    }
    Ok(code)
}

fn hour_text(hour: i64) -> String {
    let s = hour.saturating_mul(3600);
    let (days, rest) = (s.div_euclid(86_400), s.rem_euclid(86_400));
    format!("{} {:02}:00 UTC", civil(days), rest / 3600)
}

/// `YYYY-MM-DD` of a day number since 1970-01-01 (Howard Hinnant's algorithm).
fn civil(days: i64) -> String {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 32] = [7; 32];

    #[test]
    fn a_code_is_accepted_on_its_computer_until_it_expires_and_nowhere_else() {
        let c = BypassCode { counter: 3, minutes: 60, expires_hour: 500_000 };
        let code = issue(&KEY, "Web-01", &c);
        assert!(code.starts_with("3-60-500000-"), "{code}");
        let now = 500_000 * 3600;
        assert_eq!(check(&KEY, "web-01", &code, now), Ok(c), "names compare ignoring case");
        // Typed by a person: lower case, spaces, O for 0 and I for 1.
        let tag = &code["3-60-500000-".len()..];
        let typed = format!(
            " 3-60-500000 - {} ",
            tag.to_ascii_lowercase().replace('-', " ").replace('0', "o").replace('1', "i")
        );
        assert_eq!(check(&KEY, "web-01", &typed, now).map(|c| c.counter), Ok(3), "{typed}");
        assert_eq!(check(&KEY, "web-01", &code, now + 3600), Err(BypassError::Expired("2027-01-15 09:00 UTC".into())));
        assert_eq!(check(&KEY, "web-02", &code, now), Err(BypassError::Wrong));
        assert_eq!(check(&[8; 32], "web-01", &code, now), Err(BypassError::Wrong));
        // A longer bypass or a later expiry cannot be written into a code.
        let longer = code.replacen("-60-", "-600-", 1);
        assert_eq!(check(&KEY, "web-01", &longer, now), Err(BypassError::Wrong));
        let later = code.replacen("-500000-", "-500001-", 1);
        assert_eq!(check(&KEY, "web-01", &later, now), Err(BypassError::Wrong));
        for bad in
            ["", "3-60", "x-60-500000-AAAA-AAAA-AAAA-AAAA", "3-60-500000-AAAA", "3-60-500000-UUUU-UUUU-UUUU-UUUU"]
        {
            assert!(matches!(check(&KEY, "web-01", bad, now), Err(BypassError::Malformed(_))), "{bad:?}");
        }
        let zero = BypassCode { minutes: 0, ..c };
        assert_eq!(check(&KEY, "web-01", &issue(&KEY, "web-01", &zero), now), Err(BypassError::Minutes(0)));
    }

    #[test]
    fn dates_are_written_as_people_read_them() {
        assert_eq!(hour_text(0), "1970-01-01 00:00 UTC");
        assert_eq!(civil(19_723), "2024-01-01");
        assert_eq!(civil(11_016), "2000-02-29");
    }
}
