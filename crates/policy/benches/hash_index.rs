//! Lookup cost in a 10-million-hash index, against a std `HashSet` of the same keys.

use criterion::{Criterion, criterion_group, criterion_main};
use portcullis_policy::HashIndex;
use std::hint::black_box;

fn keys(n: u64) -> Vec<[u8; 32]> {
    // SplitMix64 gives digest-like, uniformly spread keys without pulling in a RNG crate.
    let mut state = 0x1234_5678_u64;
    let mut next = move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    (0..n)
        .map(|_| {
            let mut k = [0u8; 32];
            for chunk in k.chunks_exact_mut(8) {
                chunk.copy_from_slice(&next().to_le_bytes());
            }
            k
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let n: u64 = std::env::var("PORTCULLIS_BENCH_HASHES").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000_000);
    let keys = keys(n + 1_000_000);
    let (present, absent) = keys.split_at(n as usize);
    let index = HashIndex::build(present.iter().map(|k| (*k, 0)).collect());
    eprintln!("index: {} hashes, {:.1} bytes/hash", index.len(), index.heap_bytes() as f64 / index.len() as f64);
    let probes: Vec<[u8; 32]> =
        present.iter().step_by(97).take(500_000).chain(absent.iter().take(500_000)).copied().collect();
    let mut i = 0;
    c.bench_function("hash_index_lookup_10M", |b| {
        b.iter(|| {
            i = (i + 1) % probes.len();
            black_box(index.get(&probes[i]).len())
        })
    });
    let set: std::collections::HashSet<[u8; 32]> = present.iter().copied().collect();
    let mut j = 0;
    c.bench_function("std_hashset_lookup_10M", |b| {
        b.iter(|| {
            j = (j + 1) % probes.len();
            black_box(set.contains(&probes[j]))
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).warm_up_time(std::time::Duration::from_secs(1)).measurement_time(std::time::Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
