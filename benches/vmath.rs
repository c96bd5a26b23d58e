//! Slice-wide `tanh` and `exp`: ours against `libm` and `wide`.
//!
//! Groups `tanh` and `exp`, each at 1024 and 65536 inputs, with these ids:
//! - `ours/default`: `vmath::tanh` / `vmath::exp` on the backend the crate
//!   picks by itself (see `simd_attention::backend()`);
//! - `ours/<backend>`: the same, forced onto each backend this CPU has;
//! - `wide`: `wide::f32x8::{tanh, exp}` over chunks of 8, scalar tail;
//! - `libm`: `libm::{tanhf, expf}` in a plain scalar loop.
//!
//! Throughput is in elements, so criterion's `elem/s` is values per second.
//! Inputs are pseudo-random, uniform in [-5, 5] for `tanh` and [-80, 80]
//! for `exp`, the same for every contender.

mod common;

use common::uniform;
use std::hint::black_box;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use simd_attention::{Backend, Error, simd, vmath};
use wide::f32x8;

const LENS: [usize; 2] = [1024, 65536];

/// Benchmarks one function over every length. The three implementations are
/// passed as fn items (not pointers), so the scalar and `wide` loops are
/// monomorphised and can inline the per-element call.
fn bench_function(
    c: &mut Criterion,
    name: &str,
    range: f32,
    ours: impl Fn(&[f32], &mut [f32]) -> Result<(), Error> + Copy,
    scalar: impl Fn(f32) -> f32 + Copy,
    vector: impl Fn(f32x8) -> f32x8 + Copy,
) {
    let mut group = c.benchmark_group(name);
    for len in LENS {
        let x = uniform(len, 0x9E37_79B9, range);
        let mut y = vec![0.0f32; len];
        group.throughput(Throughput::Elements(len as u64));

        bench_ours(&mut group, "ours/default", &x, &mut y, ours);
        for backend in Backend::ALL.into_iter().filter(|b| b.is_available()) {
            let id = format!("ours/{}", backend.name());
            simd::with_backend(backend, || bench_ours(&mut group, &id, &x, &mut y, ours))
                .expect("backend was checked available");
        }

        group.bench_function(BenchmarkId::new("wide", len), |b| {
            b.iter(|| {
                let (x, y) = (black_box(x.as_slice()), black_box(y.as_mut_slice()));
                let (x_chunks, x_tail) = x.as_chunks::<8>();
                let (y_chunks, y_tail) = y.as_chunks_mut::<8>();
                for (xc, yc) in x_chunks.iter().zip(y_chunks) {
                    *yc = vector(f32x8::new(*xc)).to_array();
                }
                for (xi, yi) in x_tail.iter().zip(y_tail) {
                    *yi = scalar(*xi);
                }
            });
        });

        group.bench_function(BenchmarkId::new("libm", len), |b| {
            b.iter(|| {
                let (x, y) = (black_box(x.as_slice()), black_box(y.as_mut_slice()));
                for (xi, yi) in x.iter().zip(y) {
                    *yi = scalar(*xi);
                }
            });
        });
    }
    group.finish();
}

/// Times `ours` on whichever backend is active in this thread when called.
fn bench_ours(
    group: &mut BenchmarkGroup<'_, WallTime>,
    id: &str,
    x: &[f32],
    y: &mut [f32],
    ours: impl Fn(&[f32], &mut [f32]) -> Result<(), Error>,
) {
    group.bench_function(BenchmarkId::new(id, x.len()), |b| {
        b.iter(|| ours(black_box(x), black_box(&mut *y)).expect("lengths match"));
    });
}

fn benches(c: &mut Criterion) {
    bench_function(c, "tanh", 5.0, vmath::tanh, libm::tanhf, f32x8::tanh);
    bench_function(c, "exp", 80.0, vmath::exp, libm::expf, f32x8::exp);
}

criterion_group!(vmath_benches, benches);
criterion_main!(vmath_benches);
