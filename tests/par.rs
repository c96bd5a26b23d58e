//! The parallel layer against the serial operators, bit for bit, in rayon
//! pools of 1, 2 and 3 threads, on every backend, with and without weights.
//! Shapes are large enough to be split (above `par::PARALLEL_MIN_WORK`) and
//! odd enough that blocks are ragged.

mod common;
use common::{Rng, backends};
use simd_attention::io::StoredTensor;
use simd_attention::ops::{
    AdditiveAttention, Attention, AttentionInputs, AttentionShape, BilinearAttention, DotProductAttention, Linear,
    MhaDims, MultiHeadAttention, ScaledDotProductAttention, SdpaInputs, SdpaMask, SdpaShape, ValidLens,
};
use simd_attention::storage::{Storage, Stored};
use simd_attention::{par, simd::with_backend};

fn random(rng: &mut Rng, n: usize, scale: f32) -> Vec<f32> {
    (0..n).map(|_| rng.unit() * scale).collect()
}

fn assert_same_bits(got: &[f32], want: &[f32], what: &str) {
    if let Some(i) = got.iter().zip(want).position(|(a, b)| a.to_bits() != b.to_bits()) {
        panic!("{what}: first difference at {i}: {} vs {}", got[i], want[i]);
    }
}

/// Runs `serial` once and `parallel` in pools of 1–3 threads on every
/// backend; both write (out, weights) and must agree exactly.
fn check(
    name: &str,
    out_len: usize,
    weights_len: usize,
    serial: impl Fn(&mut [f32], Option<&mut [f32]>),
    parallel: impl Fn(&mut [f32], Option<&mut [f32]>) + Sync,
) {
    for backend in backends() {
        for with_weights in [true, false] {
            let (mut out, mut w) = (vec![0.0; out_len], vec![0.0; weights_len]);
            with_backend(backend, || serial(&mut out, with_weights.then_some(&mut w[..]))).unwrap();
            for threads in 1..=3 {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                let (mut out2, mut w2) = (vec![f32::NAN; out_len], vec![0.0; weights_len]);
                // The backend override is per thread, so it is set on the pool's thread.
                pool.install(|| with_backend(backend, || parallel(&mut out2, with_weights.then_some(&mut w2[..]))))
                    .unwrap();
                let what = format!("{name} on {backend}, {threads} threads, weights {with_weights}");
                assert_same_bits(&out2, &out, &what);
                assert_same_bits(&w2, &w, &what);
            }
        }
    }
}

fn shape() -> AttentionShape {
    // Every operator's cost estimate is above par::PARALLEL_MIN_WORK here.
    AttentionShape { batch: 3, queries: 70, keys: 90, query_dim: 24, key_dim: 20, value_dim: 11 }
}

#[test]
fn additive_parallel_equals_serial() {
    // Long query runs split into query blocks; short ones (decoding) into
    // groups of whole batch entries.
    let decode_like = AttentionShape { batch: 64, queries: 3, ..shape() };
    for s in [shape(), decode_like] {
        let mut rng = Rng(11);
        let h = 48;
        let (w_q, w_k, w_v) =
            (random(&mut rng, h * s.query_dim, 0.3), random(&mut rng, h * s.key_dim, 0.3), random(&mut rng, h, 0.3));
        let attn = AdditiveAttention::new(&w_q, &w_k, &w_v, h, s.query_dim, s.key_dim).unwrap();
        let q = random(&mut rng, s.batch * s.queries * s.query_dim, 2.0);
        let k = random(&mut rng, s.batch * s.keys * s.key_dim, 2.0);
        let mut v = random(&mut rng, s.batch * s.keys * s.value_dim, 1.0);
        // A NaN value some rows weigh and others mask: a split of a batch
        // entry's rows must not change which rows read it.
        for b in 0..s.batch {
            v[(b * s.keys + s.keys / 2) * s.value_dim] = f32::NAN;
        }
        let per_query: Vec<usize> = (0..s.batch * s.queries).map(|i| i % (s.keys + 3)).collect();
        let per_batch: Vec<usize> = (0..s.batch).map(|i| (i * 7) % (s.keys + 3)).collect();
        for valid in [ValidLens::PerQuery(&per_query), ValidLens::PerBatch(&per_batch), ValidLens::All] {
            check(
                "additive",
                s.batch * s.queries * s.value_dim,
                s.batch * s.queries * s.keys,
                |out, w| {
                    let mut ws = vec![0.0; attn.workspace_len(&s, w.is_some()).unwrap()];
                    attn.forward(
                        &s,
                        AttentionInputs { queries: &q, keys: &k, values: &v, valid_lens: valid },
                        out,
                        w,
                        &mut ws,
                    )
                    .unwrap();
                },
                |out, w| {
                    par::additive(
                        &attn,
                        &s,
                        AttentionInputs { queries: &q, keys: &k, values: &v, valid_lens: valid },
                        out,
                        w,
                    )
                    .unwrap()
                },
            );
        }
    }
}

#[test]
fn dot_bilinear_and_mha_parallel_equal_serial() {
    let mut rng = Rng(5);
    let s = AttentionShape { key_dim: 24, ..shape() };
    let q = random(&mut rng, s.batch * s.queries * s.query_dim, 1.0);
    let k = random(&mut rng, s.batch * s.keys * s.key_dim, 1.0);
    let v = random(&mut rng, s.batch * s.keys * s.value_dim, 1.0);
    let lens = [3usize, 0, 50];
    let valid = ValidLens::PerBatch(&lens);
    let (out_len, w_len) = (s.batch * s.queries * s.value_dim, s.batch * s.queries * s.keys);
    check(
        "dot",
        out_len,
        w_len,
        |out, w| {
            DotProductAttention
                .forward(
                    &s,
                    AttentionInputs { queries: &q, keys: &k, values: &v, valid_lens: valid },
                    out,
                    w,
                    &mut vec![0.0; w_len],
                )
                .unwrap()
        },
        |out, w| {
            par::batched(
                &DotProductAttention,
                &s,
                AttentionInputs { queries: &q, keys: &k, values: &v, valid_lens: valid },
                out,
                w,
            )
            .unwrap()
        },
    );
    let w_a = random(&mut rng, s.query_dim * s.key_dim, 0.3);
    let bil = BilinearAttention::new(&w_a, s.query_dim, s.key_dim).unwrap();
    check(
        "bilinear",
        out_len,
        w_len,
        |out, w| {
            let mut ws = vec![0.0; bil.workspace_len(&s, w.is_some()).unwrap()];
            bil.forward(&s, AttentionInputs { queries: &q, keys: &k, values: &v, valid_lens: valid }, out, w, &mut ws)
                .unwrap()
        },
        |out, w| {
            par::batched(&bil, &s, AttentionInputs { queries: &q, keys: &k, values: &v, valid_lens: valid }, out, w)
                .unwrap()
        },
    );
    let (heads, hidden) = (4, 32);
    let m = [s.query_dim, s.key_dim, s.value_dim, hidden].map(|inp| random(&mut rng, hidden * inp, 0.3));
    let b = [0; 4].map(|_| random(&mut rng, hidden, 0.1));
    let lin = |i: usize| Linear { weight: &m[i], bias: Some(&b[i]) };
    let dims = MhaDims { heads, hidden, query_dim: s.query_dim, key_dim: s.key_dim, value_dim: s.value_dim };
    let mha = MultiHeadAttention::new(lin(0), lin(1), lin(2), lin(3), dims).unwrap();
    check(
        "mha",
        s.batch * s.queries * hidden,
        heads * w_len,
        |out, w| {
            let mut ws = vec![0.0; mha.workspace_len(&s, w.is_some()).unwrap()];
            mha.forward(&s, AttentionInputs { queries: &q, keys: &k, values: &v, valid_lens: valid }, out, w, &mut ws)
                .unwrap()
        },
        |out, w| {
            par::batched(&mha, &s, AttentionInputs { queries: &q, keys: &k, values: &v, valid_lens: valid }, out, w)
                .unwrap()
        },
    );
}

/// `par::sdpa` against the serial operator on random inputs, with no mask,
/// `is_causal`, and a bool mask keeping the keys `keep(i)` says (flat over
/// `(L, S)`, broadcast over batch and heads).
fn check_sdpa(s: SdpaShape, seed: u64, keep: impl Fn(usize) -> bool) {
    let mut rng = Rng(seed);
    let q = random(&mut rng, s.batch * s.q_heads * s.q_len * s.qk_dim, 1.0);
    let k = random(&mut rng, s.batch * s.kv_heads * s.kv_len * s.qk_dim, 1.0);
    let v = random(&mut rng, s.batch * s.kv_heads * s.kv_len * s.v_dim, 1.0);
    let keep: Vec<bool> = (0..s.q_len * s.kv_len).map(keep).collect();
    let op = ScaledDotProductAttention::default();
    let out_len = s.batch * s.q_heads * s.q_len * s.v_dim;
    let w_len = s.batch * s.q_heads * s.q_len * s.kv_len;
    for mask in [SdpaMask::None, SdpaMask::Causal, SdpaMask::Keep { mask: &keep, batch: 1, heads: 1 }] {
        check(
            &format!("sdpa {s:?} {mask:?}"),
            out_len,
            w_len,
            |out, w| {
                let mut ws = vec![0.0; op.workspace_len(&s, w.is_some()).unwrap()];
                op.forward(&s, SdpaInputs::f32(&q, &k, &v, mask), out, w, &mut ws).unwrap()
            },
            |out, w| par::sdpa(&op, &s, SdpaInputs::f32(&q, &k, &v, mask), out, w).unwrap(),
        );
    }
}

/// Heads split across tasks, on the flash path.
#[test]
fn sdpa_parallel_equals_serial() {
    let s = SdpaShape { batch: 2, q_heads: 4, kv_heads: 2, q_len: 70, kv_len: 131, qk_dim: 16, v_dim: 12 };
    check_sdpa(s, 3, |i| i % 3 != 0);
}

/// Decoding shapes: few query rows stream over several key chunks, and with
/// fewer rows than threads the chunks are split across threads (split-K).
#[test]
fn sdpa_decode_split_keys_equals_serial() {
    for (batch, q_heads, kv_heads, q_len) in [(1, 1, 1, 1), (1, 2, 1, 3), (2, 1, 1, 1), (1, 8, 2, 1)] {
        // Over two chunks of 4096 keys, the last part-masked.
        let s = SdpaShape { batch, q_heads, kv_heads, q_len, kv_len: 9100, qk_dim: 128, v_dim: 100 };
        check_sdpa(s, 4, |i| i % 7 != 3 && i < 8900);
    }
}

/// q8 decoding over two chunks, at a common value width (128) and an odd
/// one (100): split-K gives the serial bits.
#[test]
fn sdpa_q8_decode_split_keys_equals_serial() {
    for v_dim in [128, 100] {
        let s = SdpaShape { batch: 1, q_heads: 2, kv_heads: 1, q_len: 1, kv_len: 9100, qk_dim: 64, v_dim };
        let mut rng = Rng(9);
        let q = random(&mut rng, 2 * 64, 1.0);
        let k = StoredTensor::from_f32(&random(&mut rng, 9100 * 64, 1.0), 64, Storage::Q8).unwrap();
        let v = StoredTensor::from_f32(&random(&mut rng, 9100 * v_dim, 1.0), v_dim, Storage::Q8).unwrap();
        let op = ScaledDotProductAttention::default();
        let inputs =
            SdpaInputs { query: Stored::F32(&q), key: k.as_stored(), value: v.as_stored(), mask: SdpaMask::None };
        check(
            &format!("q8 decode, Ev {v_dim}"),
            2 * v_dim,
            2 * 9100,
            |out, w| {
                let mut ws = vec![0.0; op.workspace_len(&s, w.is_some()).unwrap()];
                op.forward(&s, inputs, out, w, &mut ws).unwrap()
            },
            |out, w| par::sdpa(&op, &s, inputs, out, w).unwrap(),
        );
    }
}

/// Fewer heads than threads: a head's query tiles are split across tasks.
#[test]
fn sdpa_query_blocks_equal_serial() {
    let s = SdpaShape { batch: 1, q_heads: 2, kv_heads: 1, q_len: 300, kv_len: 270, qk_dim: 16, v_dim: 12 };
    check_sdpa(s, 6, |i| i % 5 != 1);
}
