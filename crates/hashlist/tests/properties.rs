//! Property tests: whatever surrounds a hash, it is found exactly once and never cut.

use portcullis_hashlist::{Hash, HashKind, SkipReason, extract};
use proptest::prelude::*;

fn any_hash() -> impl Strategy<Value = Hash> {
    prop_oneof![
        any::<[u8; 16]>().prop_map(Hash::Md5),
        any::<[u8; 20]>().prop_map(Hash::Sha1),
        any::<[u8; 32]>().prop_map(Hash::Sha256),
    ]
    // A digest whose hex form has no letter is taken for a number; such digests are
    // astronomically rare and are covered by a unit test instead.
    .prop_filter("has a hex letter", |h| h.to_string().bytes().any(|b| b.is_ascii_alphabetic()))
}

/// Text that cannot glue onto a hash: separators and whole words that end in separators.
fn separator_text() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just(" ".to_string()),
            Just("\n".to_string()),
            Just(",".to_string()),
            Just("| ".to_string()),
            Just("sha256: ".to_string()),
            Just("\"".to_string()),
            Just("hxxp://evil[.]com ".to_string()),
            "[ -~&&[^0-9a-zA-Z]]{0,8}".prop_map(|s| s),
        ],
        0..6,
    )
    .prop_map(|parts| parts.concat())
}

proptest! {
    #[test]
    fn every_embedded_hash_is_found_once(
        items in proptest::collection::vec((separator_text(), any_hash(), any::<bool>()), 1..20),
        tail in separator_text(),
    ) {
        let mut text = String::new();
        let mut expected: Vec<Hash> = Vec::new();
        for (sep, hash, upper) in &items {
            text.push_str(sep);
            if !text.is_empty() && !text.ends_with(|c: char| !c.is_ascii_alphanumeric()) {
                text.push(' ');
            }
            let hex = hash.to_string();
            text.push_str(&if *upper { hex.to_uppercase() } else { hex });
            text.push(' ');
            if !expected.contains(hash) {
                expected.push(*hash);
            }
        }
        text.push_str(&tail);
        let found = extract(text.as_bytes());
        let got: Vec<Hash> = found.hashes.iter().map(|f| f.hash).collect();
        prop_assert_eq!(&got, &expected);
        prop_assert_eq!(found.duplicates, items.len() - expected.len());
    }

    #[test]
    fn longer_runs_are_never_cut(hex in "[0-9a-f]{65,200}") {
        let found = extract(hex.as_bytes());
        prop_assert!(found.hashes.is_empty());
        prop_assert_eq!(found.skipped[0].reason, SkipReason::UnusualLength(hex.len()));
    }

    #[test]
    fn never_panics_and_only_returns_valid_hashes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        for found in extract(&bytes).hashes {
            let hex = found.hash.to_string();
            prop_assert_eq!(Hash::from_hex(&hex), Some(found.hash));
            prop_assert!(matches!(found.hash.kind(), HashKind::Md5 | HashKind::Sha1 | HashKind::Sha256));
        }
    }
}

proptest! {
    #[test]
    fn pieces_give_the_same_result_as_the_whole(text in "([0-9a-fA-F]{0,70}[ \n,x:g]{1,3}){0,30}", cuts in proptest::collection::vec(0usize..2000, 0..6)) {
        let bytes = text.as_bytes();
        let whole = extract(bytes);
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(bytes.len())).collect();
        cuts.sort_unstable();
        let mut e = portcullis_hashlist::Extractor::new();
        let mut prev = 0;
        for c in cuts.into_iter().chain(std::iter::once(bytes.len())) {
            e.feed(&bytes[prev..c]);
            prev = c;
        }
        prop_assert_eq!(e.finish(), whole);
    }
}
