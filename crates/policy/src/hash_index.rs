//! A compact, sorted index from digests to the rules that list them.
//!
//! Built-in catalogues and imported threat feeds reach millions of hashes, and the agent looks
//! a file up on every first sight. Sorted `(digest, owner)` entries plus, per bucket of about
//! eight to sixteen entries, a 16-byte fingerprint slot and a 4-byte offset cost about
//! `N + 6` bytes per hash (38 for SHA-256). A miss reads one fingerprint slot; a hit reads the
//! slot and the bucket offset side by side, then, by interpolation inside the bucket, usually
//! one entry.

/// Maps fixed-size digests to the ids of the rules that list them.
#[derive(Clone, Debug, Default)]
pub struct HashIndex<const N: usize> {
    /// Sorted by digest, then owner. Owners sit next to their digest so that a hit costs one
    /// cache line, not two.
    entries: Vec<([u8; N], u32)>,
    /// Per bucket, in a fixed 16-byte slot: the entry count (saturating) and byte 8 of the
    /// first 15 digests. Most lookups are misses (a file is in no list), and a miss is then
    /// answered by this one slot, whose address depends on the digest alone: one memory access
    /// with nothing waiting on it.
    filters: Vec<[u8; 16]>,
    /// `buckets[b]..buckets[b + 1]` is the range of entries whose leading `bits` bits equal
    /// `b`. About eight entries per bucket keeps the table (4 bytes per bucket) small enough to
    /// stay in the last-level cache, so the only memory access that misses is the entry itself.
    buckets: Vec<u32>,
    bits: u32,
}

/// The owners of one digest.
#[derive(Clone, Copy, Debug)]
pub struct Owners<'a, const N: usize>(&'a [([u8; N], u32)]);

impl<const N: usize> Owners<'_, N> {
    /// Number of owners.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the digest is not listed.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The owner ids, ascending.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.0.iter().map(|(_, o)| *o)
    }
}

const KEYS_PER_BUCKET: usize = 8;

impl<const N: usize> HashIndex<N> {
    /// Build the index from `(digest, owner)` pairs; duplicates of a pair are kept once.
    ///
    /// # Panics
    /// If more than `u32::MAX` entries are given, or `N < 9`.
    pub fn build(mut entries: Vec<([u8; N], u32)>) -> HashIndex<N> {
        assert!(N >= 9, "digests are at least 9 bytes");
        assert!(entries.len() < u32::MAX as usize, "at most 4 billion hashes per index");
        entries.sort_unstable();
        entries.dedup();
        entries.shrink_to_fit();
        let per = entries.len() / KEYS_PER_BUCKET;
        let bits = if per < 2 { 0 } else { (usize::BITS - 1 - per.leading_zeros()).min(28) };
        let mut buckets = Vec::with_capacity((1usize << bits) + 1);
        let mut next = 0usize;
        for b in 0..(1u64 << bits) {
            buckets.push(next as u32);
            while next < entries.len() && Self::lead(&entries[next].0) >> (63 - bits) >> 1 == b {
                next += 1;
            }
        }
        buckets.push(entries.len() as u32);
        let filters = buckets
            .windows(2)
            .map(|w| {
                let bucket = &entries[w[0] as usize..w[1] as usize];
                let mut slot = [0u8; 16];
                slot[0] = bucket.len().min(255) as u8;
                for (fp, (k, _)) in slot[1..].iter_mut().zip(bucket) {
                    *fp = k[8];
                }
                slot
            })
            .collect();
        HashIndex { entries, filters, buckets, bits }
    }

    #[inline]
    fn lead(key: &[u8; N]) -> u64 {
        u64::from_be_bytes([key[0], key[1], key[2], key[3], key[4], key[5], key[6], key[7]])
    }

    /// The owners of `key`; empty if it is not listed.
    #[inline]
    pub fn get(&self, key: &[u8; N]) -> Owners<'_, N> {
        if self.entries.is_empty() {
            return Owners(&[]);
        }
        let lead = Self::lead(key);
        // `>> (63 - bits) >> 1` is `>> (64 - bits)` without overflow when bits is 0.
        let b = (lead >> (63 - self.bits) >> 1) as usize;
        let filter = &self.filters[b];
        let count = filter[0] as usize;
        if count <= 15 && !filter[1..=count].contains(&key[8]) {
            return Owners(&[]);
        }
        let (lo, hi) = (self.buckets[b] as usize, self.buckets[b + 1] as usize);
        let slice = &self.entries[lo..hi];
        // Digests are uniform, so the bits after the bucket's say where in the bucket to look.
        let fraction = (lead << self.bits) >> 32;
        let mut i = ((fraction * slice.len() as u64) >> 32) as usize;
        while i > 0 && slice[i - 1].0 >= *key {
            i -= 1;
        }
        while i < slice.len() && slice[i].0 < *key {
            i += 1;
        }
        let end = i + slice[i..].iter().take_while(|(k, _)| k == key).count();
        Owners(&slice[i..end])
    }

    /// Number of (digest, owner) entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the index is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Heap bytes used, for the benchmark's bytes-per-hash figure.
    pub fn heap_bytes(&self) -> usize {
        self.entries.capacity() * std::mem::size_of::<([u8; N], u32)>()
            + self.filters.capacity() * 16
            + self.buckets.capacity() * 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn finds_exactly_what_was_put_in(entries in proptest::collection::vec((any::<[u8; 9]>(), 0u32..4), 0..300), probe in any::<[u8; 9]>()) {
            let index = HashIndex::build(entries.clone());
            for (key, _) in &entries {
                let mut want: Vec<u32> = entries.iter().filter(|(k, _)| k == key).map(|(_, o)| *o).collect();
                want.sort_unstable();
                want.dedup();
                prop_assert_eq!(index.get(key).iter().collect::<Vec<_>>(), want);
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
        assert_eq!(index.get(&probe).iter().collect::<Vec<_>>(), vec![0]);
        let per_hash = index.heap_bytes() as f64 / index.len() as f64;
        assert!(per_hash <= 40.0, "{per_hash} bytes per hash");
    }
}
