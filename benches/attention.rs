//! Whole attention operators, serial, on one thread.
//!
//! Group `additive_scores`: Bahdanau's additive attention over `(B, Q, K)`
//! with `H` hidden features, ids `fused/B<b>xQ<q>xK<k>xH<h>` and
//! `naive/B<b>xQ<q>xK<k>xH<h>`, for `4×256×512×128` (long, encoder-like)
//! `32×64×64×256` (a batch) and `64×1×50×256` (one decoder step). Query, key and value widths all
//! equal `H`; no mask.
//! - `fused` is `AdditiveAttention::forward_cached` with its `KeyCache`
//!   built once outside the timed loop, so the key projection is not timed.
//!   The rest is: the query projection, the fused scores, the softmax and
//!   the weighted sum of the values (weights requested into a
//!   preallocated buffer).
//! - `naive` does what d2l does, in plain Rust: projects queries and keys,
//!   materialises the `(B, Q, K, H)` features `tanh(a_q + b_k)` (scalar
//!   `f32::tanh`), scores them against `w_v`, takes a scalar softmax per
//!   row and the weighted sum. It projects the keys inside the timed loop,
//!   which `fused` does not; the projections and the weighted sum go through
//!   the same `gemm` as the operator, so the gap is the features tensor and
//!   its tanh. The features buffer (268 MB for the long shape) is allocated
//!   outside the timed loop.
//!
//! Throughput is `B·Q·K·H`, so criterion's `elem/s` is `(q, k, h)` terms
//! per second. `naive` takes over a second per run on the long shape, so
//! both groups take ten flat samples and that case overruns the measurement
//! time (criterion warns; the ten runs are still taken).
//!
//! Group `sdpa`: `ScaledDotProductAttention::forward` without weights (the
//! FlashAttention path), batch 1, ids `<mask>/H<heads>xL<l>xS<s>xE<e>`:
//! no mask at 32 heads × 512 × 512 × 64, `is_causal` at 8 heads × 2048 ×
//! 2048 × 64, and one decoding step (`L = 1`, the streaming path) at 64
//! heads × 4096 keys × 128. Throughput is the nominal FLOP count `4·B·H·L·S·E` (2 for
//! `Q Kᵀ`, 2 for `P V`, `Ev = E`), halved for the causal mask, so `elem/s`
//! reads as FLOP/s: `Gelem/s` is GFLOP/s.
//!
//! Group `decode_in_cache`: one decoding step over 1 head × 1024 keys ×
//! 128 whose K and V stay in cache (in L2 but for f32's 1 MiB), stored as
//! `f32`, `bf16`, `f16` and `q8` (ids `<type>/H1xS1024xE128`): the
//! streamed row's instruction cost, apart from the memory. Throughput is
//! key rows per second.

mod common;

use common::uniform;
use std::hint::black_box;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use simd_attention::gemm::{MatMut, MatRef, gemm};
use simd_attention::io::StoredTensor;
use simd_attention::ops::{
    AdditiveAttention, AttentionShape, KeyCache, ScaledDotProductAttention, SdpaInputs, SdpaMask, SdpaShape, ValidLens,
};
use simd_attention::storage::Storage;

/// `(B, Q, K, H)` of the additive cases; every feature width is `H`.
const ADDITIVE_SHAPES: [(usize, usize, usize, usize); 3] = [(4, 256, 512, 128), (32, 64, 64, 256), (64, 1, 50, 256)];

/// `(id, mask, heads, L, S, E = Ev)` of the SDPA cases, batch 1.
const SDPA_CASES: [(&str, SdpaMask<'static>, usize, usize, usize, usize); 3] = [
    ("none", SdpaMask::None, 32, 512, 512, 64),
    ("causal", SdpaMask::Causal, 8, 2048, 2048, 64),
    ("decode", SdpaMask::None, 64, 1, 4096, 128),
];

/// A `(rows, fan_in)` weight matrix, uniform in ±1/√fan_in.
fn weight(rows: usize, fan_in: usize, seed: u32) -> Vec<f32> {
    uniform(rows * fan_in, seed, 1.0 / (fan_in as f32).sqrt())
}

/// Ten flat samples (the same iteration count in each): every case here is
/// slow. The measurement time stays criterion's (5 s by default), so
/// `--measurement-time` still applies.
fn slow_group<'c>(c: &'c mut Criterion, name: &str) -> BenchmarkGroup<'c, WallTime> {
    let mut group = c.benchmark_group(name);
    group.sample_size(10).sampling_mode(SamplingMode::Flat);
    group
}

/// `out (rows × hidden) = x (rows × in_dim) · Wᵀ`, `W` being `(hidden, in_dim)`.
fn project(x: &[f32], rows: usize, in_dim: usize, w: &[f32], hidden: usize, out: &mut [f32]) {
    let (x, w) = (MatRef::new(x, rows, in_dim), MatRef::new(w, hidden, in_dim).t());
    gemm(1.0, x, w, 0.0, MatMut::new(out, rows, hidden)).expect("projection shapes agree");
}

/// d2l's `AdditiveAttention` step by step, with the features materialised.
struct Naive<'a> {
    shape: AttentionShape,
    hidden: usize,
    w_q: &'a [f32],
    w_k: &'a [f32],
    w_v: &'a [f32],
    /// `a = W_q q`, `(B, Q, H)`.
    a: Vec<f32>,
    /// `b = W_k k`, `(B, K, H)`.
    b: Vec<f32>,
    /// `tanh(a_q + b_k)`, `(B, Q, K, H)`.
    features: Vec<f32>,
}

impl Naive<'_> {
    /// Writes `weights` `(B, Q, K)` and `out` `(B, Q, value_dim)`.
    fn forward(&mut self, queries: &[f32], keys: &[f32], values: &[f32], weights: &mut [f32], out: &mut [f32]) {
        let AttentionShape { batch, queries: nq, keys: nk, query_dim, key_dim, value_dim } = self.shape;
        let h = self.hidden;
        project(queries, batch * nq, query_dim, self.w_q, h, &mut self.a);
        project(keys, batch * nk, key_dim, self.w_k, h, &mut self.b);

        let mut cells = self.features.chunks_exact_mut(h);
        for (a, b) in self.a.chunks_exact(nq * h).zip(self.b.chunks_exact(nk * h)) {
            for a_q in a.chunks_exact(h) {
                for (b_k, cell) in b.chunks_exact(h).zip(&mut cells) {
                    for ((f, &x), &y) in cell.iter_mut().zip(a_q).zip(b_k) {
                        *f = (x + y).tanh();
                    }
                }
            }
        }

        for (s, cell) in weights.iter_mut().zip(self.features.chunks_exact(h)) {
            *s = cell.iter().zip(self.w_v).map(|(f, w)| f * w).sum();
        }
        for row in weights.chunks_exact_mut(nk) {
            let max = row.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
            let mut sum = 0.0;
            for x in row.iter_mut() {
                *x = (*x - max).exp();
                sum += *x;
            }
            for x in row.iter_mut() {
                *x /= sum;
            }
        }

        let per_batch = weights.chunks_exact(nq * nk).zip(values.chunks_exact(nk * value_dim));
        for ((w, v), o) in per_batch.zip(out.chunks_exact_mut(nq * value_dim)) {
            let (w, v) = (MatRef::new(w, nq, nk), MatRef::new(v, nk, value_dim));
            gemm(1.0, w, v, 0.0, MatMut::new(o, nq, value_dim)).expect("weighted-sum shapes agree");
        }
    }
}

fn additive(c: &mut Criterion) {
    let mut group = slow_group(c, "additive_scores");
    for (batch, queries, keys, h) in ADDITIVE_SHAPES {
        let shape = AttentionShape { batch, queries, keys, query_dim: h, key_dim: h, value_dim: h };
        let (w_q, w_k, w_v) = (weight(h, h, 0x9E37_79B9), weight(h, h, 0x2545_F491), weight(1, h, 0x6A09_E667));
        let q = uniform(batch * queries * h, 0xBB67_AE85, 1.0);
        let k = uniform(batch * keys * h, 0x3C6E_F372, 1.0);
        let v = uniform(batch * keys * h, 0xA54F_F53A, 1.0);
        let mut weights = vec![0.0f32; batch * queries * keys];
        let mut out = vec![0.0f32; batch * queries * h];

        group.throughput(Throughput::Elements((batch * queries * keys * h) as u64));
        let label = format!("B{batch}xQ{queries}xK{keys}xH{h}");

        let attn = AdditiveAttention::new(&w_q, &w_k, &w_v, h, h, h).expect("weights agree");
        let mut cache_buffer = vec![0.0f32; KeyCache::buffer_len(batch, keys, h, h).expect("fits")];
        let cache = attn.key_cache(&shape, &k, &v, &mut cache_buffer).expect("shapes agree");
        let mut workspace = vec![0.0f32; attn.cached_workspace_len(&shape, true).expect("fits")];
        group.bench_function(BenchmarkId::new("fused", &label), |bench| {
            bench.iter(|| {
                attn.forward_cached(
                    &cache,
                    queries,
                    black_box(&q),
                    ValidLens::All,
                    black_box(&mut out),
                    Some(black_box(&mut weights)),
                    &mut workspace,
                )
                .expect("shapes agree");
            });
        });

        // Dropped at the end of the shape, so only one features tensor lives.
        let mut naive = Naive {
            shape,
            hidden: h,
            w_q: &w_q,
            w_k: &w_k,
            w_v: &w_v,
            a: vec![0.0; batch * queries * h],
            b: vec![0.0; batch * keys * h],
            features: vec![0.0; batch * queries * keys * h],
        };
        group.bench_function(BenchmarkId::new("naive", &label), |bench| {
            bench.iter(|| naive.forward(black_box(&q), black_box(&k), &v, black_box(&mut weights), &mut out));
        });
    }
    group.finish();
}

fn sdpa(c: &mut Criterion) {
    let mut group = slow_group(c, "sdpa");
    let sdpa = ScaledDotProductAttention::default();
    for (name, mask, heads, l, s, e) in SDPA_CASES {
        let shape = SdpaShape { batch: 1, q_heads: heads, kv_heads: heads, q_len: l, kv_len: s, qk_dim: e, v_dim: e };
        let q = uniform(heads * l * e, 0x510E_527F, 1.0);
        let (k, v) = (uniform(heads * s * e, 0x9B05_688C, 1.0), uniform(heads * s * e, 0x1F83_D9AB, 1.0));
        let mut out = vec![0.0f32; heads * l * e];
        let mut workspace = vec![0.0f32; sdpa.workspace_len(&shape, false).expect("a small shape")];

        // Elements = nominal FLOPs; the causal mask skips half the (L, S) plane.
        let flops = 4 * heads * l * s * e;
        let flops = if matches!(mask, SdpaMask::Causal) { flops / 2 } else { flops };
        group.throughput(Throughput::Elements(flops as u64));
        group.bench_function(BenchmarkId::new(name, format!("H{heads}xL{l}xS{s}xE{e}")), |bench| {
            bench.iter(|| {
                sdpa.forward(
                    &shape,
                    SdpaInputs::f32(black_box(&q), &k, &v, mask),
                    black_box(&mut out),
                    None,
                    &mut workspace,
                )
                .expect("shapes agree");
            });
        });
    }
    group.finish();
}

/// One decoding step (`L = 1`, the streaming path) over keys and values
/// that stay in cache: 1 head × 1024 keys × 128, K and V stored as each
/// type (f32: 1 MiB, about a Zen 4 core's L2, so partly in L3; bf16 and
/// f16: 512 KiB; q8: 288 KiB). It times the streamed row's instructions
/// rather than the memory (group `sdpa`'s decode case reads 268 MB from
/// DRAM). Throughput is the key rows, so `elem/s` reads as rows per second.
fn decode_in_cache(c: &mut Criterion) {
    let (heads, s, e) = (1, 1024, 128);
    let shape = SdpaShape { batch: 1, q_heads: heads, kv_heads: heads, q_len: 1, kv_len: s, qk_dim: e, v_dim: e };
    let sdpa = ScaledDotProductAttention::default();
    let q = StoredTensor::from_f32(&uniform(heads * e, 0x510E_527F, 1.0), e, Storage::F32).expect("a row");
    let mut out = vec![0.0f32; heads * e];
    let mut workspace = vec![0.0f32; sdpa.workspace_len(&shape, false).expect("a small shape")];
    let mut group = c.benchmark_group("decode_in_cache");
    group.throughput(Throughput::Elements((heads * s) as u64));
    for storage in [Storage::F32, Storage::Bf16, Storage::F16, Storage::Q8] {
        let stored = |seed| StoredTensor::from_f32(&uniform(heads * s * e, seed, 1.0), e, storage).expect("rows");
        let (k, v) = (stored(0x9B05_688C), stored(0x1F83_D9AB));
        group.bench_function(BenchmarkId::new(storage.name(), format!("H{heads}xS{s}xE{e}")), |bench| {
            bench.iter(|| {
                let inputs =
                    SdpaInputs { query: q.as_stored(), key: k.as_stored(), value: v.as_stored(), mask: SdpaMask::None };
                sdpa.forward(&shape, inputs, black_box(&mut out), None, &mut workspace).expect("shapes agree");
            });
        });
    }
    group.finish();
}

criterion_group!(attention_benches, additive, sdpa, decode_in_cache);
criterion_main!(attention_benches);
