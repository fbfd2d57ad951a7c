//! A compact, sorted index from digests to the rules that list them.
//!
//! Built-in catalogues and imported threat feeds reach millions of hashes, and the agent looks
//! a file up on every first sight. A sorted array of keys with a parallel array of owners and a
//! bucket table over the leading bits costs `N + 4 + ~2` bytes per hash (38 for SHA-256) and a
//! lookup touches one bucket entry and a handful of neighbouring keys.

/// Maps fixed-size digests to the ids of the rules that list them.
#[derive(Clone, Debug, Default)]
pub struct HashIndex<const N: usize> {
    keys: Vec<[u8; N]>,
    owners: Vec<u32>,
    /// `buckets[b]..buckets[b + 1]` is the range of keys whose leading `bits` bits equal `b`.
    buckets: Vec<u32>,
    bits: u32,
}

impl<const N: usize> HashIndex<N> {
    /// Build the index from `(digest, owner)` pairs; duplicates of a pair are kept once.
    ///
    /// # Panics
    /// If more than `u32::MAX` entries are given, or `N < 4`.
    pub fn build(mut entries: Vec<([u8; N], u32)>) -> HashIndex<N> {
        assert!(N >= 4, "digests are at least 4 bytes");
        assert!(entries.len() < u32::MAX as usize, "at most 4 billion hashes per index");
        entries.sort_unstable();
        entries.dedup();
        // About two keys per bucket: the table then costs ~2 bytes per key.
        let bits = if entries.len() < 2 { 0 } else { (usize::BITS - (entries.len() / 2).leading_zeros()).min(28) };
        let mut buckets = Vec::with_capacity((1usize << bits) + 1);
        let mut next = 0usize;
        for b in 0..(1u64 << bits) {
            buckets.push(next as u32);
            while next < entries.len() && Self::bucket_of(&entries[next].0, bits) as u64 == b {
                next += 1;
            }
        }
        buckets.push(entries.len() as u32);
        let (keys, owners) = entries.into_iter().unzip();
        HashIndex { keys, owners, buckets, bits }
    }

    fn bucket_of(key: &[u8; N], bits: u32) -> usize {
        if bits == 0 {
            return 0;
        }
        let lead = u32::from_be_bytes([key[0], key[1], key[2], key[3]]);
        (lead >> (32 - bits)) as usize
    }

    /// The owners of `key`, in ascending order; empty if it is not listed.
    #[inline]
    pub fn get(&self, key: &[u8; N]) -> &[u32] {
        if self.keys.is_empty() {
            return &[];
        }
        let b = Self::bucket_of(key, self.bits);
        let (lo, hi) = (self.buckets[b] as usize, self.buckets[b + 1] as usize);
        let slice = &self.keys[lo..hi];
        let start = slice.partition_point(|k| k < key);
        let end = start + slice[start..].iter().take_while(|k| *k == key).count();
        &self.owners[lo + start..lo + end]
    }

    /// Number of (digest, owner) entries.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the index is empty.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Heap bytes used, for the benchmark's bytes-per-hash figure.
    pub fn heap_bytes(&self) -> usize {
        self.keys.capacity() * N + self.owners.capacity() * 4 + self.buckets.capacity() * 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn finds_exactly_what_was_put_in(entries in proptest::collection::vec((any::<[u8; 8]>(), 0u32..4), 0..300), probe in any::<[u8; 8]>()) {
            let index = HashIndex::build(entries.clone());
            for (key, _) in &entries {
                let mut want: Vec<u32> = entries.iter().filter(|(k, _)| k == key).map(|(_, o)| *o).collect();
                want.sort_unstable();
                want.dedup();
                prop_assert_eq!(index.get(key), &want[..]);
            }
            if !entries.iter().any(|(k, _)| *k == probe) {
                prop_assert!(index.get(&probe).is_empty());
            }
        }
    }

    #[test]
    fn a_million_keys_cost_under_forty_bytes_each() {
        let entries: Vec<([u8; 32], u32)> = (0u32..1_000_000)
            .map(|i| {
                let mut k = [0u8; 32];
                // Spread like real digests: a cheap mix of the counter.
                let x = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                k[..8].copy_from_slice(&x.to_be_bytes());
                k[8..12].copy_from_slice(&i.to_be_bytes());
                (k, 0)
            })
            .collect();
        let probe = entries[123_456].0;
        let index = HashIndex::build(entries);
        assert_eq!(index.get(&probe), &[0]);
        let per_hash = index.heap_bytes() as f64 / index.len() as f64;
        assert!(per_hash <= 40.0, "{per_hash} bytes per hash");
    }
}
