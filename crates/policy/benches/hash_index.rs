//! Lookup cost in a 10-million-hash index, against a std `HashSet` of the same keys and against
//! the hardware floor: one dependent random memory read in a region the size of the index.

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

/// A random cyclic walk over `lines` cache lines (Sattolo's shuffle), one `u64` per line used.
fn pointer_chain(lines: usize) -> Vec<u64> {
    let mut order: Vec<usize> = (0..lines).collect();
    let mut x = 0x2545_F491_4F6C_DD1D_u64;
    for i in (1..lines).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        order.swap(i, (x as usize) % i);
    }
    let mut chain = vec![0u64; lines * 8];
    for i in 0..lines {
        chain[order[i] * 8] = order[(i + 1) % lines] as u64;
    }
    chain
}

fn bench(c: &mut Criterion) {
    let n: u64 = std::env::var("PORTCULLIS_BENCH_HASHES").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000_000);
    let keys = keys(n + 1_000_000);
    let (present, absent) = keys.split_at(n as usize);
    let index = HashIndex::build(present.iter().map(|k| (*k, 0)).collect());
    eprintln!("index: {} hashes, {:.1} bytes/hash", index.len(), index.heap_bytes() as f64 / index.len() as f64);
    // Misses are the common case (most files are in no list); hits are measured apart.
    for (name, probes) in [
        ("miss", absent.iter().take(1_000_000).copied().collect::<Vec<_>>()),
        ("hit", present.iter().step_by(9).take(1_000_000).copied().collect::<Vec<_>>()),
    ] {
        let mut i = 0;
        c.bench_function(&format!("hash_index_{name}_10M"), |b| {
            b.iter(|| {
                i = (i + 1) % probes.len();
                black_box(index.get(&probes[i]).len())
            })
        });
    }
    // The floor on this hardware: one dependent random read in a region as large as the index.
    let lines = index.heap_bytes() / 64;
    let chain = pointer_chain(lines);
    let mut at = 0usize;
    c.bench_function("dram_dependent_read", |b| {
        b.iter(|| {
            at = chain[at * 8] as usize;
            black_box(at)
        })
    });
    drop(chain);
    let set: std::collections::HashSet<[u8; 32]> = present.iter().copied().collect();
    for (name, probes) in [
        ("miss", absent.iter().take(1_000_000).copied().collect::<Vec<_>>()),
        ("hit", present.iter().step_by(9).take(1_000_000).copied().collect::<Vec<_>>()),
    ] {
        let mut j = 0;
        c.bench_function(&format!("std_hashset_{name}_10M"), |b| {
            b.iter(|| {
                j = (j + 1) % probes.len();
                black_box(set.contains(&probes[j]))
            })
        });
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).warm_up_time(std::time::Duration::from_secs(1)).measurement_time(std::time::Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
