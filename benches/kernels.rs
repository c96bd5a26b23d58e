//! The two attention microkernels on their own (XNNPACK-style), through
//! `simd_attention::bench_kernels`, on whichever backend dispatch picks:
//!
//! - group `sdpa_tile`, id `E<e>`: one FlashAttention step, a full query tile
//!   (`TILE_QUERIES` rows) against one full key tile (`TILE_KEYS` keys) with
//!   `E = Ev`: `Q·Kᵀ`, the online softmax and `P·V`, Kᵀ and V packed
//!   beforehand as the operator packs them once per head. Throughput is
//!   FLOPs (`4·rows·keys·E`): read `Gelem/s` as GFLOP/s.
//! - group `additive_score_tile`, id `Q<q>xK<k>xH<h>`: the fused (folded) exp-product
//!   score of projected queries against cached keys. Throughput is
//!   (query, key, hidden) elements.
//!
//! The workloads in `attention.rs` time the same kernels inside whole calls.

mod common;

use common::uniform;
use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use simd_attention::bench_kernels::{SdpaTile, additive_score_tile};
use simd_attention::ops::{TILE_KEYS, TILE_QUERIES};

fn sdpa_tile(c: &mut Criterion) {
    let mut group = c.benchmark_group("sdpa_tile");
    for e in [64, 128] {
        let q = uniform(TILE_QUERIES * e, 0x9E37_79B9, 1.0);
        let k = uniform(TILE_KEYS * e, 0x2545_F491, 1.0);
        let v = uniform(TILE_KEYS * e, 0x1B87_3593, 1.0);
        let mut tile = SdpaTile::new(&q, &k, &v, e, e).expect("tile-sized inputs");
        group.throughput(Throughput::Elements((4 * TILE_QUERIES * TILE_KEYS * e) as u64));
        group.bench_function(BenchmarkId::from_parameter(format!("E{e}")), |bench| {
            bench.iter(|| black_box(tile.run().0[0]));
        });
    }
    group.finish();
}

fn additive_score(c: &mut Criterion) {
    let mut group = c.benchmark_group("additive_score_tile");
    for (queries, keys, h) in [(16, 64, 256), (1, 50, 256)] {
        let a = uniform(queries * h, 0x9E37_79B9, 1.0);
        let b = uniform(keys * h, 0x2545_F491, 1.0);
        let (exp_2a, exp_2b): (Vec<f32>, Vec<f32>) =
            (a.iter().map(|x| (2.0 * x).exp()).collect(), b.iter().map(|x| (2.0 * x).exp()).collect());
        let w = uniform(h, 0x1B87_3593, 1.0 / (h as f32).sqrt());
        let mut out = vec![0.0f32; queries * keys];
        group.throughput(Throughput::Elements((queries * keys * h) as u64));
        group.bench_function(BenchmarkId::from_parameter(format!("Q{queries}xK{keys}xH{h}")), |bench| {
            bench.iter(|| {
                additive_score_tile([black_box(&a), &exp_2a], [&b, &exp_2b], &w, black_box(&mut out))
                    .expect("consistent lengths")
            });
        });
    }
    group.finish();
}

criterion_group!(benches, sdpa_tile, additive_score);
criterion_main!(benches);
