//! Proof that the caller-buffer entry points never touch the heap: a
//! counting `#[global_allocator]` watches each call (per thread, so other
//! tests running beside these do not count).
//!
//! Sizes: `gemm` sends products whose B has at least
//! [`LARGE_GEMM_MIN_B`] values to `matrixmultiply` when `alloc` is on, and
//! that crate packs into the heap (DESIGN.md, the `gemm` row). So with
//! `alloc` these tests keep every internal product below that bound, and
//! without it (`cargo test --no-default-features --test zero_alloc`, run by
//! `.ci/run`) they also use large shapes, where our own tiles do all the
//! work. The SDPA flash and decode paths never use `matrixmultiply`, so
//! they are checked large in every build.
//!
//! The one-time CPU detection reads `SIMD_ATTENTION_BACKEND` from the
//! environment in `std` builds, which allocates; `warm_up` runs it before
//! anything is counted.

use simd_attention::gemm::{LARGE_GEMM_MIN_B, MatMut, MatRef, gemm};
use simd_attention::kernels::{Mask, ScoreShape, masked_softmax};
use simd_attention::models::{DecodeOptions, GruLayer, Seq2Seq, Weight};
use simd_attention::ops::{
    AdditiveAttention, Attention, AttentionInputs, AttentionShape, BilinearAttention, CacheQuery, DotProductAttention,
    KeyCache, KvCache, KvCacheShape, Linear, MhaDims, MultiHeadAttention, NadarayaWatson, ScaledDotProductAttention,
    SdpaInputs, SdpaMask, SdpaShape, ValidLens,
};
use simd_attention::storage::{Stored, StoredMut, bf16, f16, q8_blocks};
use simd_attention::vmath;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: the caller's contract is System's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Runs `f` and asserts it allocated nothing.
fn assert_no_alloc<R>(what: &str, f: impl FnOnce() -> R) -> R {
    let before = ALLOCATIONS.with(Cell::get);
    let r = f();
    let n = ALLOCATIONS.with(Cell::get) - before;
    assert_eq!(n, 0, "{what} allocated {n} times");
    r
}

fn warm_up() {
    let _ = simd_attention::simd::active();
}

/// Large dims only where no product can reach `matrixmultiply`.
const LARGE: bool = !cfg!(feature = "alloc");
/// Widths and key counts whose products stay under `LARGE_GEMM_MIN_B` when
/// `alloc` is on.
const D: usize = if LARGE { 96 } else { 16 };
const K: usize = if LARGE { 300 } else { 16 };
const _: () = assert!(LARGE || D * K < LARGE_GEMM_MIN_B && D * D < LARGE_GEMM_MIN_B);

fn data(n: usize, seed: u32) -> Vec<f32> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        })
        .collect()
}

#[test]
fn vmath_and_softmax() {
    warm_up();
    let x = data(4099, 1);
    let mut out = vec![0.0; x.len()];
    let mut y = x.clone();
    assert_no_alloc("vmath", || {
        vmath::tanh(&x, &mut out).unwrap();
        vmath::exp(&x, &mut out).unwrap();
        vmath::tanh_in_place(&mut y);
        vmath::exp_in_place(&mut y);
    });
    let shape = ScoreShape { batch: 3, queries: 7, keys: 191 };
    let mut scores = data(3 * 7 * 191, 2);
    let lens = [5usize, 191, 0];
    assert_no_alloc("masked_softmax", || {
        masked_softmax(&mut scores, shape, Mask::None).unwrap();
        masked_softmax(&mut scores, shape, Mask::ValidLens(&lens)).unwrap();
        masked_softmax(&mut scores, shape, Mask::Causal).unwrap();
    });
}

#[test]
fn gemm_on_caller_buffers() {
    warm_up();
    let (m, k, n) = (37, D, if LARGE { 200 } else { 16 });
    let (a, b) = (data(m * k, 3), data(k * n, 4));
    let mut c = vec![0.0; m * n];
    assert_no_alloc("gemm", || {
        gemm(1.0, MatRef::new(&a, m, k), MatRef::new(&b, k, n), 0.0, MatMut::new(&mut c, m, n)).unwrap();
        gemm(0.5, MatRef::new(&a, m, k), MatRef::new(&b, k, n), 1.0, MatMut::new(&mut c, m, n)).unwrap();
    });
}

fn attention_shape() -> AttentionShape {
    AttentionShape { batch: 2, queries: 9, keys: K, query_dim: D, key_dim: D, value_dim: D }
}

/// `forward` with and without weights, on a workspace sized beforehand.
fn check_forward(name: &str, op: &impl Attention, s: &AttentionShape) {
    let (q, k, v) = (
        data(s.batch * s.queries * s.query_dim, 5),
        data(s.batch * s.keys * s.key_dim, 6),
        data(s.batch * s.keys * s.value_dim, 7),
    );
    let mut out = vec![0.0; s.batch * s.queries * op.output_width(s)];
    let mut weights = vec![0.0; s.batch * s.queries * s.keys * op.weight_sets()];
    let mut ws = vec![0.0; op.workspace_len(s, true).unwrap().max(op.workspace_len(s, false).unwrap())];
    let lens = [3usize, K];
    assert_no_alloc(name, || {
        op.forward(
            s,
            AttentionInputs { queries: &q, keys: &k, values: &v, valid_lens: ValidLens::PerBatch(&lens) },
            &mut out,
            Some(&mut weights),
            &mut ws,
        )
        .unwrap();
        op.forward(
            s,
            AttentionInputs { queries: &q, keys: &k, values: &v, valid_lens: ValidLens::All },
            &mut out,
            None,
            &mut ws,
        )
        .unwrap();
    });
}

#[test]
fn attention_operators() {
    warm_up();
    let s = attention_shape();
    let (w_q, w_k, w_v) = (data(D * D, 8), data(D * D, 9), data(D, 10));
    let additive = AdditiveAttention::new(&w_q, &w_k, &w_v, D, D, D).unwrap();
    check_forward("additive", &additive, &s);
    check_forward("dot", &DotProductAttention, &s);
    let w_a = data(D * D, 11);
    check_forward("bilinear", &BilinearAttention::new(&w_a, D, D).unwrap(), &s);
    let m: Vec<Vec<f32>> = (0..4).map(|i| data(D * D, 12 + i)).collect();
    let bias = data(D, 16);
    let lin = |i: usize| Linear { weight: &m[i], bias: Some(&bias) };
    let dims = MhaDims { heads: 4, hidden: D, query_dim: D, key_dim: D, value_dim: D };
    check_forward("mha", &MultiHeadAttention::new(lin(0), lin(1), lin(2), lin(3), dims).unwrap(), &s);

    // The decoder's path: one key cache, then cached single-query steps.
    let (k, v, q) = (data(s.batch * s.keys * D, 17), data(s.batch * s.keys * D, 18), data(s.batch * D, 19));
    let mut cache_buf = vec![0.0; KeyCache::buffer_len(s.batch, s.keys, D, D).unwrap()];
    let step = AttentionShape { queries: 1, ..s };
    let mut ws = vec![0.0; additive.cached_workspace_len(&step, true).unwrap()];
    let (mut out, mut w) = (vec![0.0; s.batch * D], vec![0.0; s.batch * s.keys]);
    assert_no_alloc("additive key cache", || {
        let cache = additive.key_cache(&s, &k, &v, &mut cache_buf).unwrap();
        additive.forward_cached(&cache, 1, &q, ValidLens::All, &mut out, Some(&mut w), &mut ws).unwrap();
    });

    // Each of the n queries has its own m keys and values (d2l's layout).
    let (n, m_keys) = (50, 70);
    let (xq, xk, yv) = (data(n, 20), data(n * m_keys, 21), data(n * m_keys, 22));
    let (mut out, mut w) = (vec![0.0; n], vec![0.0; n * m_keys]);
    assert_no_alloc("nadaraya_watson", || NadarayaWatson { w: 2.0 }.forward(&xq, &xk, &yv, &mut out, &mut w).unwrap());
}

#[test]
fn sdpa_every_path() {
    warm_up();
    let op = ScaledDotProductAttention::default();
    // Decode (streamed), flash (packed tiles), and with weights.
    for (q_len, kv_len, with_weights) in [(1, 1500, false), (3, 700, false), (130, 300, false), (9, K, true)] {
        let e = if with_weights { D } else { 64 };
        let s = SdpaShape { batch: 2, q_heads: 4, kv_heads: 2, q_len, kv_len, qk_dim: e, v_dim: e };
        let q = data(s.batch * s.q_heads * q_len * e, 23);
        let (k, v) = (data(s.batch * s.kv_heads * kv_len * e, 24), data(s.batch * s.kv_heads * kv_len * e, 25));
        let mut out = vec![0.0; s.batch * s.q_heads * q_len * e];
        let mut weights = vec![0.0; s.batch * s.q_heads * q_len * kv_len];
        let mut ws = vec![0.0; op.workspace_len(&s, with_weights).unwrap()];
        assert_no_alloc(&format!("sdpa {s:?}"), || {
            for mask in [SdpaMask::None, SdpaMask::Causal] {
                let w = with_weights.then_some(&mut weights[..]);
                op.forward(&s, SdpaInputs::f32(&q, &k, &v, mask), &mut out, w, &mut ws).unwrap();
            }
        });
    }
}

/// A decoder loop over a `KvCache` in each storage type: every append and
/// every attention step (stream and flash, causal) on caller buffers.
#[test]
fn kv_cache_appends_and_attends() {
    warm_up();
    let op = ScaledDotProductAttention::default();
    let (e, capacity) = (40, 600);
    let shape = KvCacheShape { batch: 2, kv_heads: 2, capacity, qk_dim: e, v_dim: e };
    let rows = 4 * capacity;
    let (mut k32, mut v32) = (vec![0.0f32; rows * e], vec![0.0f32; rows * e]);
    let (mut kb, mut vb) = (vec![bf16::ZERO; rows * e], vec![bf16::ZERO; rows * e]);
    let (mut kh, mut vh) = (vec![f16::ZERO; rows * e], vec![f16::ZERO; rows * e]);
    let (mut kq, mut vq) = (vec![0i8; rows * e], vec![0i8; rows * e]);
    let (mut ks, mut vs) = (vec![0.0f32; rows * q8_blocks(e)], vec![0.0f32; rows * q8_blocks(e)]);
    let caches = [
        (StoredMut::F32(&mut k32), StoredMut::F32(&mut v32)),
        (StoredMut::Bf16(&mut kb), StoredMut::Bf16(&mut vb)),
        (StoredMut::F16(&mut kh), StoredMut::F16(&mut vh)),
        (StoredMut::Q8 { values: &mut kq, scales: &mut ks }, StoredMut::Q8 { values: &mut vq, scales: &mut vs }),
    ];
    let new_rows = data(4 * 100 * e, 26);
    let query = data(2 * 4 * 100 * e, 27);
    let mut out = vec![0.0; 2 * 4 * 100 * e];
    let mut ws = vec![
        0.0;
        op.workspace_len(
            &SdpaShape { batch: 2, q_heads: 4, kv_heads: 2, q_len: 100, kv_len: capacity, qk_dim: e, v_dim: e },
            false
        )
        .unwrap()
    ];
    for (key, value) in caches {
        let mut cache = KvCache::new(shape, key, value).unwrap();
        assert_no_alloc("kv cache", || {
            for new in [100, 1, 1, 5, 1] {
                cache.append(new, &new_rows[..4 * new * e], &new_rows[..4 * new * e]).unwrap();
                let q = CacheQuery {
                    query: Stored::F32(&query[..8 * new * e]),
                    q_heads: 4,
                    q_len: new,
                    mask: SdpaMask::Causal,
                };
                cache.attend(&op, q, &mut out[..8 * new * e], &mut ws).unwrap();
            }
        });
    }
}

#[test]
fn seq2seq_decoding() {
    warm_up();
    // The GRU's gate products are (3·hidden) × input: small unless LARGE.
    let (vocab, embed, hidden, src_len, batch) = (12, if LARGE { 16 } else { 4 }, if LARGE { 32 } else { 8 }, 7, 3);
    let gates = 3 * hidden;
    let p: Vec<Vec<f32>> = (0..8).map(|i| data(gates * (hidden + embed), 30 + i)).collect();
    let layer = |i: usize, input: usize| {
        GruLayer::new(
            Weight::Rows(&p[i][..gates * input]),
            Weight::Rows(&p[i + 1][..gates * hidden]),
            &p[i + 2][..gates],
            &p[i + 3][..gates],
            input,
            hidden,
        )
        .unwrap()
    };
    let encoder = [layer(0, embed)];
    let decoder = [layer(4, hidden + embed)];
    let (table, dense_w, dense_b) = (data(vocab * embed, 40), data(vocab * hidden, 41), data(vocab, 42));
    let (w_q, w_k, w_v) = (data(hidden * hidden, 43), data(hidden * hidden, 44), data(hidden, 45));
    let model = Seq2Seq {
        encoder_embedding: &table,
        encoder: &encoder,
        decoder_embedding: &table,
        decoder: &decoder,
        attention: AdditiveAttention::new(&w_q, &w_k, &w_v, hidden, hidden, hidden).unwrap(),
        dense_weight: Weight::Rows(&dense_w),
        dense_bias: &dense_b,
    };
    let src: Vec<usize> = (0..batch * src_len).map(|i| i % vocab).collect();
    let lens = [src_len, 3, 1];
    let options = DecodeOptions { num_steps: 9, bos: 1, stop_at: Some(2) };
    let mut tokens = vec![0; batch * options.num_steps];
    let mut weights = vec![0.0; batch * options.num_steps * src_len];
    let mut ws = vec![0.0; model.workspace_len(batch, src_len).unwrap()];
    let x = data(batch * embed, 46);
    let mut h = data(batch * hidden, 47);
    let mut gru_ws = vec![0.0; encoder[0].workspace_len(batch).unwrap()];
    assert_no_alloc("seq2seq", || {
        encoder[0].step(batch, &x, &mut h, &mut gru_ws).unwrap();
        model.greedy_decode(batch, src_len, &src, &lens, options, &mut tokens, Some(&mut weights), &mut ws).unwrap();
    });

    // The same decode through the C API, whose layers sit in fixed arrays.
    #[cfg(feature = "capi")]
    {
        use simd_attention::capi::*;
        let weight = |v: &[f32]| simd_attention_weight::over(v, SIMD_ATTENTION_LAYOUT_ROWS);
        let layer = |i: usize, input: usize| simd_attention_gru_layer {
            weight_ih: weight(&p[i][..gates * input]),
            weight_hh: weight(&p[i + 1][..gates * hidden]),
            bias_ih: p[i + 2].as_ptr(),
            bias_ih_len: gates,
            bias_hh: p[i + 3].as_ptr(),
            bias_hh_len: gates,
            input,
            hidden,
        };
        let (c_encoder, c_decoder) = ([layer(0, embed)], [layer(4, hidden + embed)]);
        let params = simd_attention_seq2seq_params {
            encoder_embedding: table.as_ptr(),
            encoder_embedding_len: table.len(),
            encoder_layers: c_encoder.as_ptr(),
            decoder_embedding: table.as_ptr(),
            decoder_embedding_len: table.len(),
            decoder_layers: c_decoder.as_ptr(),
            num_layers: 1,
            attention: simd_attention_additive_params::over(&w_q, &w_k, &w_v, hidden, hidden, hidden),
            dense_weight: weight(&dense_w),
            dense_bias: dense_b.as_ptr(),
            dense_bias_len: dense_b.len(),
        };
        let sources = simd_attention_sources::over(&src, &lens, batch, src_len);
        let c_options = simd_attention_decode_options { num_steps: 9, bos: 1, eos: 2, stop_at_eos: 1 };
        let (mut c_tokens, mut c_weights) = (vec![0; tokens.len()], vec![0.0; weights.len()]);
        let rc = assert_no_alloc("seq2seq through C", || {
            // SAFETY: live buffers of the lengths given.
            unsafe {
                simd_attention_seq2seq_greedy_decode(
                    &params,
                    sources,
                    c_options,
                    c_tokens.as_mut_ptr(),
                    c_tokens.len(),
                    c_weights.as_mut_ptr(),
                    c_weights.len(),
                    ws.as_mut_ptr(),
                    ws.len(),
                )
            }
        });
        assert_eq!((rc, &c_tokens), (0, &tokens), "the C decode");
    }
}
