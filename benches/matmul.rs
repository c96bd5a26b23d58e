//! `C = A·B` through `simd_attention::gemm::gemm` against a direct
//! `matrixmultiply::sgemm` call with the same row-major strides.
//!
//! Group `gemm`, ids `ours/<m>x<n>x<k>` and `matrixmultiply/<m>x<n>x<k>`,
//! for 512³ (the headline size), 64³, 16³, 8×256×256 (few rows, long
//! inner dimension) and 2048×256×256 (`add-batch`'s query and key
//! projections: 73 % of its FLOP). `α = 1`, `β = 0`.
//!
//! Throughput is set to the product's floating-point operation count,
//! `2·m·n·k`, so criterion's `elem/s` is FLOP/s: read `Gelem/s` as GFLOP/s.
//! While B has fewer than `gemm::LARGE_GEMM_MIN_B` elements (32²) ours runs
//! its own blocked kernel; from there on it forwards to `matrixmultiply`, and
//! the difference to the direct call is our dispatch and checking overhead.

mod common;

use common::uniform;
use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use simd_attention::gemm::{MatMut, MatRef, gemm};

/// `(m, n, k)`: C is `m×n`, A is `m×k`, B is `k×n`.
const SIZES: [(usize, usize, usize); 5] =
    [(512, 512, 512), (64, 64, 64), (16, 16, 16), (8, 256, 256), (2048, 256, 256)];

fn benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("gemm");
    for (m, n, k) in SIZES {
        let a = uniform(m * k, 0x9E37_79B9, 1.0);
        let b = uniform(k * n, 0x2545_F491, 1.0);
        let mut out = vec![0.0f32; m * n];
        // Elements = FLOPs (one multiply and one add per m·n·k term).
        group.throughput(Throughput::Elements((2 * m * n * k) as u64));
        let label = format!("{m}x{n}x{k}");

        group.bench_function(BenchmarkId::new("ours", &label), |bench| {
            bench.iter(|| {
                let (a, b) = (MatRef::new(black_box(&a), m, k), MatRef::new(black_box(&b), k, n));
                gemm(1.0, a, b, 0.0, MatMut::new(black_box(&mut out), m, n)).expect("shapes agree");
            });
        });

        group.bench_function(BenchmarkId::new("matrixmultiply", &label), |bench| {
            bench.iter(|| {
                let (a, b, c) = (black_box(&a), black_box(&b), black_box(&mut out));
                // SAFETY: a, b and c hold m·k, k·n and m·n values, read and
                // written row-major (row stride = columns, column stride 1),
                // so every index sgemm touches is in bounds; c is a unique
                // borrow, so it aliases neither input.
                unsafe {
                    matrixmultiply::sgemm(
                        m,
                        k,
                        n,
                        1.0,
                        a.as_ptr(),
                        k as isize,
                        1,
                        b.as_ptr(),
                        n as isize,
                        1,
                        0.0,
                        c.as_mut_ptr(),
                        n as isize,
                        1,
                    );
                }
            });
        });
    }
    group.finish();
}

criterion_group!(matmul_benches, benches);
criterion_main!(matmul_benches);
