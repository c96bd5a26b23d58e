//! Row-wise `masked_softmax` over `(B, Q, K)` scores.
//!
//! Group `masked_softmax`: for each shape (decode-like `64×1×50`, square
//! `32×64×64`, long `4×256×512`) and each mask (`none`, `valid_lens` with one
//! length per batch entry, `causal`), ids read `<mask>/B<b>xQ<q>xK<k>`.
//!
//! Throughput is the row count `B·Q`, so criterion's `elem/s` is rows per
//! second. The softmax works in place: every iteration gets a fresh copy of
//! the scores from `iter_batched_ref`, and that copy is made outside the
//! timed region.

mod common;

use common::uniform;
use std::hint::black_box;

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use simd_attention::kernels::{Mask, ScoreShape, masked_softmax};

/// `(B, Q, K)`.
const SHAPES: [(usize, usize, usize); 3] = [(64, 1, 50), (32, 64, 64), (4, 256, 512)];

fn benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("masked_softmax");
    for (batch, queries, keys) in SHAPES {
        let shape = ScoreShape { batch, queries, keys };
        let rows = shape.rows().expect("small shape");
        let original = uniform(shape.elements().expect("small shape"), 0x2545_F491, 4.0);
        // Between K/2 and K-1 keys kept, varying with the batch entry.
        let half = keys / 2;
        let lens: Vec<usize> = (0..batch).map(|b| half + b % half).collect();
        let masks = [("none", Mask::None), ("valid_lens", Mask::ValidLens(&lens)), ("causal", Mask::Causal)];

        group.throughput(Throughput::Elements(rows as u64));
        let label = format!("B{batch}xQ{queries}xK{keys}");
        for (name, mask) in masks {
            group.bench_function(BenchmarkId::new(name, &label), |b| {
                b.iter_batched_ref(
                    || original.clone(),
                    |s| masked_softmax(black_box(s), shape, mask).expect("shape and mask agree"),
                    BatchSize::LargeInput,
                );
            });
        }
    }
    group.finish();
}

criterion_group!(softmax_benches, benches);
criterion_main!(softmax_benches);
