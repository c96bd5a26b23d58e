//! The bodies of the fuzz targets, one function per target, callable from
//! libFuzzer (`fuzz_targets/`) and from the corpus replay test below.
//!
//! Each carves shapes and values out of the bytes (zero sizes, huge
//! dimensions, NaN, ±inf and ±1e30 included) and checks: no panic; an `Err`,
//! with the output untouched, for shapes that do not fit; agreement with a
//! plain f64 computation for valid finite inputs; and parallel equal to
//! serial, bit for bit.

use arbitrary::Unstructured;
use simd_attention::gemm::{self as matmul, MatMut, MatRef};
use simd_attention::io::{StoredTensor, TensorFile, case::run_case};
use simd_attention::kernels::{self, Mask, ScoreShape};
use simd_attention::ops::{
    AdditiveAttention, Attention, AttentionInputs, AttentionShape, CacheQuery, KeyCache, KvCache, KvCacheShape, Linear,
    MhaDims, MultiHeadAttention, ScaledDotProductAttention, SdpaInputs, SdpaMask, SdpaShape, ValidLens,
};
use simd_attention::storage::{Storage, Stored, StoredMut, bf16, f16, q8_blocks};
use simd_attention::{par, vmath};

mod c_buffers;
mod capi_batched;
mod capi_kv_cache;
mod capi_seq2seq;
pub use capi_batched::capi_batched;
pub use capi_kv_cache::capi_kv_cache;
pub use capi_seq2seq::capi_seq2seq;

/// A size in `0..=max`.
pub(crate) fn size(u: &mut Unstructured<'_>, max: usize) -> usize {
    u.int_in_range(0..=max).unwrap_or(0)
}

/// A value: mostly moderate, sometimes special or huge.
fn value(u: &mut Unstructured<'_>) -> f32 {
    match u.int_in_range(0u8..=9).unwrap_or(0) {
        0 => [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 1e30, -1e30, 0.0, -0.0, f32::MIN_POSITIVE][size(u, 7)],
        1 => f32::from_bits(u.arbitrary().unwrap_or(0)),
        _ => u.int_in_range(-4096i32..=4096).unwrap_or(0) as f32 / 512.0,
    }
}

/// A moderate finite value (for checks against f64).
pub(crate) fn moderate(u: &mut Unstructured<'_>) -> f32 {
    u.int_in_range(-2048i32..=2048).unwrap_or(0) as f32 / 512.0
}

pub(crate) fn values(u: &mut Unstructured<'_>, n: usize, finite: bool) -> Vec<f32> {
    (0..n).map(|_| if finite { moderate(u) } else { value(u) }).collect()
}

pub(crate) fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

/// Distance in f32 ulps at `want`.
fn ulps(got: f32, want: f64) -> f64 {
    let a = want.abs().max(f32::MIN_POSITIVE as f64);
    (got as f64 - want).abs() / 2f64.powi(a.log2().floor() as i32 - 23)
}

pub fn vmath(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let n = size(&mut u, 300);
    let x = values(&mut u, n, false);
    let (mut t, mut e) = (vec![0.0; n], vec![0.0; n]);
    vmath::tanh(&x, &mut t).unwrap();
    vmath::exp(&x, &mut e).unwrap();
    for (i, &v) in x.iter().enumerate() {
        if v.is_finite() {
            assert!(ulps(t[i], (v as f64).tanh()) <= 3.0, "tanh({v:e}) = {:e}", t[i]);
        } else if v.is_nan() {
            assert!(t[i].is_nan() && e[i].is_nan());
        }
        if (-87.0..=88.0).contains(&v) {
            assert!(ulps(e[i], (v as f64).exp()) <= 2.0, "exp({v:e}) = {:e}", e[i]);
        }
    }
    let mut in_place = x.clone();
    vmath::tanh_in_place(&mut in_place);
    assert!(same_bits(&in_place, &t));
    let mut short = vec![7.0; n.saturating_sub(1)];
    if n > 0 {
        assert!(vmath::exp(&x, &mut short).is_err());
        assert!(short.iter().all(|&v| v == 7.0));
    }
}

pub fn masked_softmax(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let huge = u.ratio(1, 16).unwrap_or(false);
    let shape = ScoreShape {
        batch: if huge { usize::MAX / 2 } else { size(&mut u, 4) },
        queries: size(&mut u, 6),
        keys: size(&mut u, 40),
    };
    let n = if huge { 64 } else { shape.batch * shape.queries * shape.keys };
    let finite = u.arbitrary().unwrap_or(false);
    let mut scores = values(&mut u, n, finite);
    let lens: Vec<usize> =
        (0..shape.batch.min(64) * shape.queries.max(1)).map(|_| size(&mut u, shape.keys + 2)).collect();
    let keep: Vec<bool> = (0..n).map(|_| u.ratio(3, 4).unwrap_or(true)).collect();
    let mask = match size(&mut u, 4) {
        0 => Mask::None,
        1 => Mask::ValidLens(&lens[..shape.batch.min(lens.len())]),
        2 => Mask::ValidLensPerQuery(&lens),
        3 => Mask::Keep(&keep),
        _ => Mask::Causal,
    };
    let before = scores.clone();
    match kernels::masked_softmax(&mut scores, shape, mask) {
        Err(_) => assert!(same_bits(&scores, &before), "a refused call wrote"),
        Ok(()) if finite => {
            for row in scores.chunks(shape.keys.max(1)) {
                let sum: f32 = row.iter().sum();
                assert!(row.iter().all(|w| (0.0..=1.0).contains(w)), "{row:?}");
                assert!((sum - 1.0).abs() < 1e-4 || sum == 0.0, "row sums to {sum}");
            }
        }
        Ok(()) => {}
    }
}

pub fn gemm(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let (m, k, n) = (size(&mut u, 12), size(&mut u, 40), size(&mut u, 40));
    let mut stride = |rows: usize, cols: usize| -> (usize, usize) {
        match size(&mut u, 3) {
            0 => (cols, 1),
            1 => (1, rows),
            2 => (cols + size(&mut u, 3), 1),
            _ => (size(&mut u, 50), size(&mut u, 50)),
        }
    };
    let ((ars, acs), (brs, bcs), (crs, ccs)) = (stride(m, k), stride(k, n), stride(m, n));
    let len = |rows: usize, cols: usize, rs: usize, cs: usize, slack: usize| {
        if rows == 0 || cols == 0 { slack } else { (rows - 1) * rs + (cols - 1) * cs + 1 + slack }
    };
    let slack = size(&mut u, 2);
    // Small integers: every product and sum is exact in f32.
    let mut int = || u.int_in_range(-3i32..=3).unwrap_or(0) as f32;
    let a: Vec<f32> = (0..len(m, k, ars, acs, slack)).map(|_| int()).collect();
    let b: Vec<f32> = (0..len(k, n, brs, bcs, slack)).map(|_| int()).collect();
    let c_len = len(m, n, crs, ccs, slack);
    let mut c = vec![f32::NAN; c_len];
    let before = c.clone();
    let alpha = 2.0;
    let r = matmul::gemm(
        alpha,
        MatRef::strided(&a, m, k, ars, acs),
        MatRef::strided(&b, k, n, brs, bcs),
        0.0,
        MatMut::strided(&mut c, m, n, crs, ccs),
    );
    match r {
        Err(_) => assert!(same_bits(&c, &before), "a refused gemm wrote"),
        Ok(()) => {
            for i in 0..m {
                for j in 0..n {
                    let want: f32 = alpha * (0..k).map(|p| a[i * ars + p * acs] * b[p * brs + j * bcs]).sum::<f32>();
                    assert_eq!(c[i * crs + j * ccs], want, "C[{i},{j}]");
                }
            }
        }
    }
}

/// A batched attention shape (with a rare huge batch that must be refused).
fn attention_shape(u: &mut Unstructured<'_>) -> AttentionShape {
    AttentionShape {
        batch: if u.ratio(1, 32).unwrap_or(false) { usize::MAX } else { size(u, 3) },
        queries: size(u, 5),
        keys: size(u, 9),
        query_dim: size(u, 6),
        key_dim: size(u, 6),
        value_dim: size(u, 4),
    }
}

fn lens<'a>(u: &mut Unstructured<'_>, store: &'a mut Vec<usize>, s: &AttentionShape) -> ValidLens<'a> {
    let rows = s.batch.min(8).saturating_mul(s.queries);
    *store = (0..rows).map(|_| size(u, s.keys + 1)).collect();
    match size(u, 2) {
        0 => ValidLens::All,
        1 => ValidLens::PerBatch(&store[..s.batch.min(8).min(store.len())]),
        _ => ValidLens::PerQuery(store),
    }
}

pub fn additive(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let s = attention_shape(&mut u);
    let h = size(&mut u, 8);
    let finite = u.arbitrary().unwrap_or(false);
    let count = |a: usize, b: usize, c: usize| a.min(8) * b * c;
    let w_q = values(&mut u, h * s.query_dim, true);
    let w_k = values(&mut u, h * s.key_dim, true);
    let w_v = values(&mut u, h, true);
    let Ok(attn) = AdditiveAttention::new(&w_q, &w_k, &w_v, h, s.query_dim, s.key_dim) else { return };
    let q = values(&mut u, count(s.batch, s.queries, s.query_dim), finite);
    let k = values(&mut u, count(s.batch, s.keys, s.key_dim), finite);
    let v = values(&mut u, count(s.batch, s.keys, s.value_dim), true);
    let mut store = Vec::new();
    let valid = lens(&mut u, &mut store, &s);
    let out_len = count(s.batch, s.queries, s.value_dim);
    let w_len = count(s.batch, s.queries, s.keys);
    let (mut out, mut w) = (vec![7.0; out_len], vec![7.0; w_len]);
    let ws_len = attn.workspace_len(&s, true).unwrap_or(0).min(1 << 20);
    let result = attn.forward(
        &s,
        AttentionInputs { queries: &q, keys: &k, values: &v, valid_lens: valid },
        &mut out,
        Some(&mut w),
        &mut vec![0.0; ws_len],
    );
    if result.is_err() {
        assert!(out.iter().chain(&w).all(|&x| x == 7.0), "a refused call wrote");
        return;
    }
    if finite {
        assert!(out.iter().chain(&w).all(|x| x.is_finite()));
    }
    // Through a KeyCache, and in parallel: the same bits. An empty call may
    // name a huge batch whose cache and scratch no one could allocate: it
    // returned right after its checks, and there is nothing to compare.
    if out.is_empty() && w.is_empty() {
        return;
    }
    let cache_len = KeyCache::buffer_len(s.batch, s.keys, h, s.query_dim).unwrap_or(usize::MAX);
    if cache_len > 1 << 24 {
        return;
    }
    let mut buf = vec![0.0; cache_len];
    let cache = attn.key_cache(&s, &k, &v, &mut buf).unwrap();
    let (mut out2, mut w2) = (vec![0.0; out_len], vec![0.0; w_len]);
    let mut ws = vec![0.0; attn.cached_workspace_len(&s, true).unwrap()];
    attn.forward_cached(&cache, s.queries, &q, valid, &mut out2, Some(&mut w2), &mut ws).unwrap();
    assert!(same_bits(&out, &out2) && same_bits(&w, &w2), "cached differs");
    let (mut out3, mut w3) = (vec![0.0; out_len], vec![0.0; w_len]);
    par::additive(
        &attn,
        &s,
        AttentionInputs { queries: &q, keys: &k, values: &v, valid_lens: valid },
        &mut out3,
        Some(&mut w3),
    )
    .unwrap();
    assert!(same_bits(&out, &out3) && same_bits(&w, &w3), "parallel differs");
}

pub fn sdpa(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let kv_heads = size(&mut u, 2);
    let s = SdpaShape {
        batch: size(&mut u, 2),
        q_heads: kv_heads * size(&mut u, 2) + usize::from(u.ratio(1, 16).unwrap_or(false)),
        kv_heads,
        q_len: size(&mut u, 70),
        kv_len: size(&mut u, 70),
        // Up to 6, or the widths the q8 keys' integer pass takes (64, 128).
        qk_dim: match size(&mut u, 8) {
            7 => 64,
            8 => 128,
            e => e,
        },
        v_dim: size(&mut u, 5),
    };
    let finite = u.arbitrary().unwrap_or(false);
    let q = values(&mut u, s.batch * s.q_heads * s.q_len * s.qk_dim, finite);
    let k = values(&mut u, s.batch * s.kv_heads * s.kv_len * s.qk_dim, finite);
    let v = values(&mut u, s.batch * s.kv_heads * s.kv_len * s.v_dim, finite);
    // K and V in any storage type (converted as a KV cache would store them).
    let storage = [Storage::F32, Storage::Bf16, Storage::F16, Storage::Q8][size(&mut u, 3)];
    let (k_f32, v_f32) = (k, v);
    let (k, v) = (
        StoredTensor::from_f32(&k_f32, s.qk_dim, storage).unwrap(),
        StoredTensor::from_f32(&v_f32, s.v_dim, storage).unwrap(),
    );
    let split = size(&mut u, s.kv_len);
    let spare = size(&mut u, 3);
    let heads = if u.arbitrary().unwrap_or(false) { 1 } else { s.q_heads };
    let per = heads * s.q_len * s.kv_len;
    let keep: Vec<bool> = (0..per).map(|_| u.ratio(4, 5).unwrap_or(true)).collect();
    let add: Vec<f32> =
        (0..per).map(|_| if u.ratio(1, 5).unwrap_or(false) { f32::NEG_INFINITY } else { moderate(&mut u) }).collect();
    let mask = match size(&mut u, 4) {
        0 => SdpaMask::None,
        1 => SdpaMask::Causal,
        4 => SdpaMask::CausalLowerRight,
        2 => SdpaMask::Keep { mask: &keep, batch: 1, heads },
        _ => SdpaMask::Additive { mask: &add, batch: 1, heads },
    };
    let op = ScaledDotProductAttention { scale: None };
    let n_out = s.batch * s.q_heads * s.q_len * s.v_dim;
    let mut flash = vec![7.0; n_out];
    let ws_len = op.workspace_len(&s, false).unwrap_or(0).min(1 << 22);
    let r = op.forward(
        &s,
        SdpaInputs { query: Stored::F32(&q), key: k.as_stored(), value: v.as_stored(), mask },
        &mut flash,
        None,
        &mut vec![0.0; ws_len],
    );
    if r.is_err() {
        assert!(flash.iter().all(|&x| x == 7.0), "a refused call wrote");
        return;
    }
    let mut direct = vec![0.0; n_out];
    let mut weights = vec![0.0; s.batch * s.q_heads * s.q_len * s.kv_len];
    let ws_weights = op.workspace_len(&s, true).unwrap();
    op.forward(
        &s,
        SdpaInputs { query: Stored::F32(&q), key: k.as_stored(), value: v.as_stored(), mask },
        &mut direct,
        Some(&mut weights),
        &mut vec![0.0; ws_weights],
    )
    .unwrap();
    if finite {
        for (a, b) in flash.iter().zip(&direct) {
            assert!((a - b).abs() <= 1e-4 + 1e-4 * b.abs(), "flash {a} vs weights {b} for {s:?} {mask:?}");
        }
    }
    let mut parallel = vec![0.0; n_out];
    par::sdpa(
        &op,
        &s,
        SdpaInputs { query: Stored::F32(&q), key: k.as_stored(), value: v.as_stored(), mask },
        &mut parallel,
        None,
    )
    .unwrap();
    assert!(same_bits(&flash, &parallel), "parallel differs");
    // The same K and V appended to a KvCache in two steps: attention over it
    // has the plain call's bits (its `Causal` is the decoder's alignment, so
    // that mask is left out), and an append past capacity changes nothing.
    let shape = KvCacheShape {
        batch: s.batch,
        kv_heads: s.kv_heads,
        capacity: s.kv_len + spare,
        qk_dim: s.qk_dim,
        v_dim: s.v_dim,
    };
    with_cache(storage, shape, |mut cache| {
        let rows = |t: &[f32], w: usize, r: core::ops::Range<usize>| -> Vec<f32> {
            (0..s.batch * s.kv_heads)
                .flat_map(|h| t[(h * s.kv_len + r.start) * w..(h * s.kv_len + r.end) * w].iter().copied())
                .collect()
        };
        for r in [0..split, split..s.kv_len] {
            cache.append(r.len(), &rows(&k_f32, s.qk_dim, r.clone()), &rows(&v_f32, s.v_dim, r)).unwrap();
        }
        let past = spare + 1;
        let n = s.batch * s.kv_heads * past;
        assert!(cache.append(past, &vec![1.0; n * s.qk_dim], &vec![1.0; n * s.v_dim]).is_err(), "append past capacity");
        assert_eq!(cache.len(), s.kv_len, "a refused append changed the cache");
        if !matches!(mask, SdpaMask::Causal) {
            let mut cached = vec![0.0; n_out];
            let q = CacheQuery { query: Stored::F32(&q), q_heads: s.q_heads, q_len: s.q_len, mask };
            cache.attend(&op, q, &mut cached, &mut vec![0.0; ws_len]).unwrap();
            assert!(same_bits(&flash, &cached), "the cache differs from plain SDPA");
        }
    });
}

/// Runs `f` on an empty cache of `shape` over fresh buffers of `storage`.
fn with_cache(storage: Storage, shape: KvCacheShape, f: impl FnOnce(KvCache<'_>)) {
    let rows = shape.batch * shape.kv_heads * shape.capacity;
    let (ke, ve) = (rows * shape.qk_dim, rows * shape.v_dim);
    let scales = |w: usize| vec![0.0f32; rows * q8_blocks(w)];
    let new = |k, v| KvCache::new(shape, k, v).unwrap();
    match storage {
        Storage::F32 => f(new(StoredMut::F32(&mut vec![0.0; ke]), StoredMut::F32(&mut vec![0.0; ve]))),
        Storage::Bf16 => f(new(StoredMut::Bf16(&mut vec![bf16::ZERO; ke]), StoredMut::Bf16(&mut vec![bf16::ZERO; ve]))),
        Storage::F16 => f(new(StoredMut::F16(&mut vec![f16::ZERO; ke]), StoredMut::F16(&mut vec![f16::ZERO; ve]))),
        Storage::Q8 => f(new(
            StoredMut::Q8 { values: &mut vec![0; ke], scales: &mut scales(shape.qk_dim) },
            StoredMut::Q8 { values: &mut vec![0; ve], scales: &mut scales(shape.v_dim) },
        )),
    }
}

pub fn mha(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let s = attention_shape(&mut u);
    let (heads, hidden) = (size(&mut u, 3), size(&mut u, 8));
    let m = |u: &mut Unstructured<'_>, inp: usize| values(u, hidden * inp, true);
    let w = [m(&mut u, s.query_dim), m(&mut u, s.key_dim), m(&mut u, s.value_dim), m(&mut u, hidden)];
    let bias = values(&mut u, hidden, true);
    let with_bias = u.arbitrary().unwrap_or(false);
    let lin = |i: usize| Linear { weight: &w[i], bias: with_bias.then_some(&bias[..]) };
    let dims = MhaDims { heads, hidden, query_dim: s.query_dim, key_dim: s.key_dim, value_dim: s.value_dim };
    let Ok(attn) = MultiHeadAttention::new(lin(0), lin(1), lin(2), lin(3), dims) else {
        assert!(heads == 0 || hidden % heads != 0, "valid heads refused");
        return;
    };
    let count = |a: usize, b: usize, c: usize| a.min(8) * b * c;
    let q = values(&mut u, count(s.batch, s.queries, s.query_dim), false);
    let k = values(&mut u, count(s.batch, s.keys, s.key_dim), false);
    let v = values(&mut u, count(s.batch, s.keys, s.value_dim), false);
    let mut store = Vec::new();
    let valid = lens(&mut u, &mut store, &s);
    let (out_len, w_len) = (count(s.batch, s.queries, hidden), count(s.batch, s.queries, s.keys) * heads);
    let (mut out, mut wts) = (vec![7.0; out_len], vec![7.0; w_len]);
    let ws_len = attn.workspace_len(&s, true).unwrap_or(0).min(1 << 20);
    if attn
        .forward(
            &s,
            AttentionInputs { queries: &q, keys: &k, values: &v, valid_lens: valid },
            &mut out,
            Some(&mut wts),
            &mut vec![0.0; ws_len],
        )
        .is_err()
    {
        assert!(out.iter().chain(&wts).all(|&x| x == 7.0), "a refused call wrote");
        return;
    }
    let (mut out2, mut w2) = (vec![0.0; out_len], vec![0.0; w_len]);
    par::batched(
        &attn,
        &s,
        AttentionInputs { queries: &q, keys: &k, values: &v, valid_lens: valid },
        &mut out2,
        Some(&mut w2),
    )
    .unwrap();
    assert!(same_bits(&out, &out2) && same_bits(&wts, &w2), "parallel differs");
}

pub fn load_case(data: &[u8]) {
    if let Ok(file) = TensorFile::from_bytes(data.to_vec()) {
        let _ = run_case(&file, None);
    }
}

/// A length as a C caller might pass it: usually the one the shape needs,
/// sometimes one off or anything small. The buffer behind it always has
/// that many elements (a longer length would be the caller's bug).
pub(crate) fn c_len(u: &mut Unstructured<'_>, needed: usize) -> usize {
    match u.int_in_range(0u8..=7).unwrap_or(0) {
        0 => needed.saturating_sub(1).min(1 << 16),
        1 => needed.saturating_add(1).min(1 << 16),
        2 => size(u, 64),
        _ => needed.min(1 << 16),
    }
}

/// Whether a C call was refused, after checking its status: 0, or a
/// negative code that has a message.
pub(crate) fn refused(rc: core::ffi::c_int) -> bool {
    assert!(rc <= 0, "status {rc}");
    assert!(!simd_attention::capi::simd_attention_status_message(rc).is_null());
    rc != 0
}

/// A pointer to `buf`, or now and then `NULL`.
pub(crate) fn c_ptr<T>(u: &mut Unstructured<'_>, buf: &[T]) -> *const T {
    if u.ratio(1u8, 64).unwrap_or(false) { core::ptr::null() } else { buf.as_ptr() }
}

/// A mask as the C API takes it, carved from the bytes for `heads` heads
/// of `q_len` queries against `kv_len` keys: any kind, including undefined
/// ones and valid lengths (which SDPA does not take), `(1 | batch, 1 |
/// heads)` broadcast, a length now and then one off, and NULL pointers.
pub(crate) struct FuzzMask {
    kind: simd_attention::capi::simd_attention_mask_kind,
    batch: usize,
    heads: usize,
    /// Bytes of 0, 1 or 2 (2 is neither keep nor drop: refused).
    keep: Vec<u8>,
    keep_bools: Vec<bool>,
    additive: Vec<f32>,
    lens: Vec<usize>,
    /// Which of `lens`, `keep` and `additive` go over as NULL.
    null: [bool; 3],
    /// Whether the mask itself goes over as NULL (only for `NONE`).
    absent: bool,
}

impl FuzzMask {
    pub(crate) fn carve(u: &mut Unstructured<'_>, batch: usize, heads: usize, q_len: usize, kv_len: usize) -> Self {
        use simd_attention::capi::*;
        let kind = if u.ratio(1u8, 8).unwrap_or(false) {
            [SIMD_ATTENTION_MASK_VALID_LENS, SIMD_ATTENTION_MASK_VALID_LENS_PER_QUERY, 7][size(u, 2)]
        } else {
            [
                SIMD_ATTENTION_MASK_NONE,
                SIMD_ATTENTION_MASK_KEEP,
                SIMD_ATTENTION_MASK_ADDITIVE,
                SIMD_ATTENTION_MASK_CAUSAL,
                SIMD_ATTENTION_MASK_CAUSAL_LOWER_RIGHT,
            ][size(u, 4)]
        };
        let (batch, heads) = ([1, batch][size(u, 1)], [1, heads][size(u, 1)]);
        let len = c_len(u, batch.saturating_mul(heads).saturating_mul(q_len).saturating_mul(kv_len));
        let keep: Vec<u8> = (0..len).map(|_| u.int_in_range(0u8..=2).unwrap_or(1)).collect();
        let keep_bools = keep.iter().map(|&b| b == 1).collect();
        let additive = values(u, len, false);
        let lens = (0..len).map(|_| size(u, 50)).collect();
        let null = [(); 3].map(|_| u.ratio(1u8, 64).unwrap_or(false));
        let absent = kind == SIMD_ATTENTION_MASK_NONE && u.ratio(1u8, 2).unwrap_or(false);
        FuzzMask { kind, batch, heads, keep, keep_bools, additive, lens, null, absent }
    }

    /// The C descriptor, pointing into `self`.
    pub(crate) fn c(&self) -> simd_attention::capi::simd_attention_mask {
        fn ptr<T>(buf: &[T], null: bool) -> *const T {
            if null { core::ptr::null() } else { buf.as_ptr() }
        }
        simd_attention::capi::simd_attention_mask {
            kind: self.kind,
            valid_lens: ptr(&self.lens, self.null[0]),
            keep: ptr(&self.keep, self.null[1]),
            additive: ptr(&self.additive, self.null[2]),
            len: self.keep.len(),
            batch: self.batch,
            heads: self.heads,
        }
    }

    /// `c`, or NULL where the mask goes over absent.
    pub(crate) fn c_ptr(
        &self,
        c: &simd_attention::capi::simd_attention_mask,
    ) -> *const simd_attention::capi::simd_attention_mask {
        if self.absent { core::ptr::null() } else { c }
    }

    /// Whether the C API takes this mask for SDPA exactly when the Rust
    /// operator takes [`rust`](Self::rust): a kind SDPA has, its data not
    /// NULL, and keep bytes all 0 or 1 (C refuses a 2; Rust sees a bool).
    pub(crate) fn well_formed(&self) -> bool {
        use simd_attention::capi::*;
        match self.kind {
            SIMD_ATTENTION_MASK_KEEP => !self.null[1] && self.keep.iter().all(|&b| b <= 1),
            SIMD_ATTENTION_MASK_ADDITIVE => !self.null[2],
            SIMD_ATTENTION_MASK_NONE | SIMD_ATTENTION_MASK_CAUSAL | SIMD_ATTENTION_MASK_CAUSAL_LOWER_RIGHT => true,
            _ => false,
        }
    }

    /// The same mask for the Rust operator (`None` for the kinds SDPA
    /// refuses).
    pub(crate) fn rust(&self) -> SdpaMask<'_> {
        use simd_attention::capi::*;
        let (batch, heads) = (self.batch, self.heads);
        match self.kind {
            SIMD_ATTENTION_MASK_KEEP => SdpaMask::Keep { mask: &self.keep_bools, batch, heads },
            SIMD_ATTENTION_MASK_ADDITIVE => SdpaMask::Additive { mask: &self.additive, batch, heads },
            SIMD_ATTENTION_MASK_CAUSAL => SdpaMask::Causal,
            SIMD_ATTENTION_MASK_CAUSAL_LOWER_RIGHT => SdpaMask::CausalLowerRight,
            _ => SdpaMask::None,
        }
    }
}

/// SDPA through the C API, every argument carved from the bytes (storage
/// and mask kinds past the defined ones, NULLs, lengths one off, shapes that
/// overflow): it never crashes; a refused call returns a negative code and
/// leaves the outputs as they were; an accepted one gives the Rust
/// operator's bits.
pub fn capi(data: &[u8]) {
    use simd_attention::capi::*;
    let mut u = Unstructured::new(data);
    let mut shape = simd_attention_sdpa_shape {
        batch: size(&mut u, 2),
        q_heads: size(&mut u, 4),
        kv_heads: size(&mut u, 4),
        q_len: size(&mut u, 9),
        kv_len: size(&mut u, 40),
        qk_dim: size(&mut u, 9),
        v_dim: size(&mut u, 9),
    };
    if u.ratio(1u8, 16).unwrap_or(false) {
        shape.kv_len = usize::MAX / 2 + size(&mut u, 3);
    }
    let rows = |heads: usize, len: usize| shape.batch.saturating_mul(heads).saturating_mul(len);
    let (q_rows, kv_rows) = (rows(shape.q_heads, shape.q_len), rows(shape.kv_heads, shape.kv_len));
    // Now and then 4, a storage type that does not exist (f32 buffers).
    let storage = if u.ratio(1u8, 16).unwrap_or(false) { 4 } else { u.int_in_range(0u32..=3).unwrap_or(0) };
    let query_len = c_len(&mut u, q_rows.saturating_mul(shape.qk_dim));
    let query = values(&mut u, query_len, false);
    let mut carve = |width: usize| {
        let len = c_len(&mut u, kv_rows.saturating_mul(width));
        let scales_len = c_len(&mut u, kv_rows.saturating_mul(q8_blocks(width)));
        c_buffers::buffer(&mut u, c_buffers::storage_of(storage), len, scales_len)
    };
    let (mut k, mut v) = (carve(shape.qk_dim), carve(shape.v_dim));
    let key = c_buffers::tensor(&mut u, storage, &mut k);
    let value = c_buffers::tensor(&mut u, storage, &mut v);
    let query_t = simd_attention_tensor {
        storage: SIMD_ATTENTION_STORAGE_F32,
        data: c_ptr(&mut u, &query).cast(),
        len: query.len(),
        scales: core::ptr::null(),
        scales_len: 0,
    };
    let mask = FuzzMask::carve(&mut u, shape.batch, shape.q_heads, shape.q_len, shape.kv_len);
    let scale = moderate(&mut u);
    let scale_ptr: *const f32 = if u.ratio(1u8, 2).unwrap_or(false) { &scale } else { core::ptr::null() };
    let with_weights = u.ratio(1u8, 3).unwrap_or(false);
    let mut ws_len = 0usize;
    // SAFETY: a valid `size_t` to write.
    let sized = unsafe { simd_attention_sdpa_workspace_len(shape, with_weights, &mut ws_len) };
    let ws_len = if sized == 0 { c_len(&mut u, ws_len.min(1 << 20)) } else { size(&mut u, 64) };
    let out_len = c_len(&mut u, q_rows.saturating_mul(shape.v_dim));
    let w_len = if with_weights { c_len(&mut u, q_rows.saturating_mul(shape.kv_len)) } else { 0 };
    let (mut out, mut weights, mut ws) = (vec![7.0f32; out_len], vec![7.0f32; w_len], vec![0.0f32; ws_len]);
    let w_ptr = if with_weights { weights.as_mut_ptr() } else { core::ptr::null_mut() };
    let c_mask = mask.c();
    let mask_ptr = mask.c_ptr(&c_mask);
    // SAFETY: every pointer is NULL or points to as many elements as its
    // length says, and the outputs overlap nothing.
    let rc = unsafe {
        simd_attention_sdpa(
            shape,
            &query_t,
            &key,
            &value,
            mask_ptr,
            scale_ptr,
            out.as_mut_ptr(),
            out_len,
            w_ptr,
            w_len,
            ws.as_mut_ptr(),
            ws_len,
        )
    };
    if refused(rc) {
        assert!(out.iter().chain(&weights).all(|&v| v == 7.0), "a refused call (status {rc}) wrote");
        return;
    }
    // Accepted: the Rust operator on the same values gives the same bits.
    let op = ScaledDotProductAttention { scale: (!scale_ptr.is_null()).then_some(scale) };
    let inputs = SdpaInputs { query: Stored::F32(&query), key: k.as_stored(), value: v.as_stored(), mask: mask.rust() };
    let (mut want, mut want_w) = (vec![0.0; out_len], vec![0.0; w_len]);
    let mut ws = vec![0.0; ws_len];
    op.forward(&(shape.into()), inputs, &mut want, with_weights.then_some(&mut want_w[..]), &mut ws).unwrap();
    assert!(same_bits(&out, &want) && same_bits(&weights, &want_w), "C and Rust differ");
}

#[cfg(test)]
mod replay {
    /// Every file in `corpus/<target>/` through its target: the seeds, and
    /// any crash reproducer kept there, run in every CI pass.
    #[test]
    fn seed_corpus() {
        /// A target's corpus folder and body.
        type Target = (&'static str, fn(&[u8]));
        let targets: [Target; 11] = [
            ("vmath", super::vmath),
            ("masked_softmax", super::masked_softmax),
            ("additive", super::additive),
            ("sdpa", super::sdpa),
            ("mha", super::mha),
            ("gemm", super::gemm),
            ("load_case", super::load_case),
            ("capi", super::capi),
            ("capi_kv_cache", super::capi_kv_cache),
            ("capi_batched", super::capi_batched),
            ("capi_seq2seq", super::capi_seq2seq),
        ];
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
        for (name, run) in targets {
            let mut count = 0;
            for entry in std::fs::read_dir(root.join(name)).unwrap_or_else(|e| panic!("corpus/{name}: {e}")) {
                let path = entry.unwrap().path();
                run(&std::fs::read(&path).unwrap());
                count += 1;
            }
            assert!(count > 0, "corpus/{name} is empty");
            println!("{name}: {count} inputs replayed");
        }
    }
}
