//! Dot-product, bilinear, multi-head and Nadaraya–Watson attention against
//! d2l/PyTorch (golden cases, every backend) and against the f64
//! references (proptest).

mod common;
use common::reference::{self, Dims, Lens};
use common::{Golden, assert_allclose, backends};
use proptest::prelude::*;
use simd_attention::ops::{
    Attention, AttentionInputs, AttentionShape, BilinearAttention, DotProductAttention, Linear, MhaDims,
    MultiHeadAttention, NadarayaWatson, ValidLens,
};
use simd_attention::simd::with_backend;

fn lens_of(lens: &Lens) -> ValidLens<'_> {
    match lens {
        Lens::All => ValidLens::All,
        Lens::PerBatch(l) => ValidLens::PerBatch(l),
        Lens::PerQuery(l) => ValidLens::PerQuery(l),
    }
}

fn golden_lens(g: &Golden) -> Lens {
    if !g.has("valid_lens") {
        Lens::All
    } else if g.shape("valid_lens").len() == 1 {
        Lens::PerBatch(g.lens("valid_lens"))
    } else {
        Lens::PerQuery(g.lens("valid_lens"))
    }
}

fn golden_shape(g: &Golden) -> AttentionShape {
    let (q, k, v) = (g.shape("queries"), g.shape("keys"), g.shape("values"));
    AttentionShape { batch: q[0], queries: q[1], keys: k[1], query_dim: q[2], key_dim: k[2], value_dim: v[2] }
}

/// Which operator a test runs, with its parameters.
#[derive(Debug, Clone)]
enum Op {
    Dot,
    Bilinear(Vec<f32>),
    Mha { heads: usize, hidden: usize, w: [Vec<f32>; 4] },
}

#[derive(Clone)]
struct Inputs {
    shape: AttentionShape,
    queries: Vec<f32>,
    keys: Vec<f32>,
    values: Vec<f32>,
    lens: Lens,
}

impl std::fmt::Debug for Inputs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} {:?} q={:?} k={:?} v={:?}", self.shape, self.lens, self.queries, self.keys, self.values)
    }
}

fn run(op: &Op, x: &Inputs) -> (Vec<f32>, Vec<f32>) {
    let s = &x.shape;
    let (out_w, heads) = match op {
        Op::Mha { heads, hidden, .. } => (*hidden, *heads),
        _ => (s.value_dim, 1),
    };
    let mut out = vec![f32::NAN; s.batch * s.queries * out_w];
    let mut weights = vec![f32::NAN; heads * s.batch * s.queries * s.keys];
    let lens = lens_of(&x.lens);
    match op {
        Op::Dot => {
            let mut ws = vec![0.0; DotProductAttention.workspace_len(s, true).unwrap()];
            DotProductAttention.forward(
                s,
                AttentionInputs { queries: &x.queries, keys: &x.keys, values: &x.values, valid_lens: lens },
                &mut out,
                Some(&mut weights),
                &mut ws,
            )
        }
        Op::Bilinear(w_a) => {
            let attn = BilinearAttention::new(w_a, s.query_dim, s.key_dim).unwrap();
            let mut ws = vec![0.0; attn.workspace_len(s, true).unwrap()];
            attn.forward(
                s,
                AttentionInputs { queries: &x.queries, keys: &x.keys, values: &x.values, valid_lens: lens },
                &mut out,
                Some(&mut weights),
                &mut ws,
            )
        }
        Op::Mha { heads, hidden, w } => {
            let dims = MhaDims {
                heads: *heads,
                hidden: *hidden,
                query_dim: s.query_dim,
                key_dim: s.key_dim,
                value_dim: s.value_dim,
            };
            let attn =
                MultiHeadAttention::new(linear(&w[0]), linear(&w[1]), linear(&w[2]), linear(&w[3]), dims).unwrap();
            let mut ws = vec![0.0; attn.workspace_len(s, true).unwrap()];
            attn.forward(
                s,
                AttentionInputs { queries: &x.queries, keys: &x.keys, values: &x.values, valid_lens: lens },
                &mut out,
                Some(&mut weights),
                &mut ws,
            )
        }
    }
    .unwrap();
    (out, weights)
}

fn linear(weight: &[f32]) -> Linear<'_> {
    Linear { weight, bias: None }
}

fn reference_of(op: &Op, x: &Inputs) -> (Vec<f64>, Vec<f64>) {
    let s = &x.shape;
    let dims = Dims { batch: s.batch, queries: s.queries, keys: s.keys, value_dim: s.value_dim };
    match op {
        Op::Dot => reference::dot_product(dims, &x.queries, &x.keys, &x.values, &x.lens),
        Op::Bilinear(w_a) => reference::bilinear(dims, &x.queries, &x.keys, &x.values, &x.lens, w_a),
        Op::Mha { heads, hidden, w } => reference::multi_head(
            dims,
            *heads,
            *hidden,
            &x.queries,
            &x.keys,
            &x.values,
            &x.lens,
            [&w[0], &w[1], &w[2], &w[3]],
        ),
    }
}

#[test]
fn golden_cases_on_every_backend() {
    let cases = ["dot-lens1d", "dot-nomask", "bilinear-lens1d", "mha-2heads", "mha-4heads-2d"];
    for name in cases {
        let g = Golden::load(name);
        let op = match g.meta("kind").as_deref() {
            Some("dot") => Op::Dot,
            Some("bilinear") => Op::Bilinear(g.f32s("W_a.weight")),
            Some("mha") => {
                assert_eq!(g.meta("bias").as_deref(), Some("false"));
                Op::Mha {
                    heads: g.meta("num_heads").unwrap().parse().unwrap(),
                    hidden: g.meta("num_hiddens").unwrap().parse().unwrap(),
                    w: ["W_q", "W_k", "W_v", "W_o"].map(|n| g.f32s(&format!("{n}.weight"))),
                }
            }
            other => panic!("{name}: kind {other:?}"),
        };
        let x = Inputs {
            shape: golden_shape(&g),
            queries: g.f32s("queries"),
            keys: g.f32s("keys"),
            values: g.f32s("values"),
            lens: golden_lens(&g),
        };
        for backend in backends() {
            let (out, w) = with_backend(backend, || run(&op, &x)).unwrap();
            assert_allclose(&out, &g.f32s("expected.output"), 5e-5, 1e-4, &format!("{name} output on {backend}"));
            assert_allclose(
                &w,
                &g.f32s("expected.attention_weights"),
                5e-5,
                1e-4,
                &format!("{name} weights on {backend}"),
            );
        }
    }
}

#[test]
fn golden_nadaraya_watson() {
    let g = Golden::load("nadaraya-watson");
    let (q, k, v) = (g.f32s("queries"), g.f32s("keys"), g.f32s("values"));
    let nw = NadarayaWatson { w: g.f32s("w")[0] };
    for backend in backends() {
        let mut out = vec![0.0; q.len()];
        let mut w = vec![0.0; k.len()];
        with_backend(backend, || nw.forward(&q, &k, &v, &mut out, &mut w)).unwrap().unwrap();
        assert_allclose(&out, &g.f32s("expected.output"), 5e-5, 1e-4, &format!("output on {backend}"));
        assert_allclose(&w, &g.f32s("expected.attention_weights"), 5e-5, 1e-4, &format!("weights on {backend}"));
    }
}

fn arb_inputs(same_qk: bool) -> impl Strategy<Value = Inputs> {
    (1usize..3, 1usize..5, 1usize..12, 1usize..9, 1usize..9, 1usize..6).prop_flat_map(
        move |(batch, queries, keys, qd, kd, vd)| {
            let kd = if same_qk { qd } else { kd };
            let v = |n: usize| prop::collection::vec(-2.0f32..2.0, n);
            let lens = prop_oneof![
                Just(Lens::All),
                prop::collection::vec(0usize..keys + 2, batch).prop_map(Lens::PerBatch),
                prop::collection::vec(0usize..keys + 2, batch * queries).prop_map(Lens::PerQuery),
            ];
            (v(batch * queries * qd), v(batch * keys * kd), v(batch * keys * vd), lens).prop_map(
                move |(queries_v, keys_v, values, lens)| Inputs {
                    shape: AttentionShape { batch, queries, keys, query_dim: qd, key_dim: kd, value_dim: vd },
                    queries: queries_v,
                    keys: keys_v,
                    values,
                    lens,
                },
            )
        },
    )
}

fn check(op: &Op, x: &Inputs) {
    let (want_out, want_w) = reference_of(op, x);
    let mut poisoned = x.clone();
    let s = &x.shape;
    let rows = [(&mut poisoned.keys[..], s.key_dim), (&mut poisoned.values[..], s.value_dim)];
    x.lens.poison_padding(s.batch, s.queries, s.keys, rows);
    for backend in backends() {
        let (out, w) = with_backend(backend, || run(op, x)).unwrap();
        // Keys and values past every row's valid length are never read.
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        let (padded_out, padded_w) = with_backend(backend, || run(op, &poisoned)).unwrap();
        assert_eq!(bits(&padded_out), bits(&out), "{op:?} on {backend}: NaN padding changed the output");
        assert_eq!(bits(&padded_w), bits(&w), "{op:?} on {backend}: NaN padding changed the weights");
        for (i, (&g, &e)) in w.iter().zip(&want_w).enumerate() {
            assert!((g as f64 - e).abs() <= 1e-5 + 1e-4 * e, "{op:?} on {backend}: weights[{i}] {g} vs {e}");
            if e == 0.0 {
                assert_eq!(g, 0.0);
            }
        }
        for (i, (&g, &e)) in out.iter().zip(&want_out).enumerate() {
            assert!((g as f64 - e).abs() <= 5e-5 + 1e-4 * e.abs(), "{op:?} on {backend}: out[{i}] {g} vs {e}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(100))]

    #[test]
    fn dot_matches_reference(x in arb_inputs(true)) {
        check(&Op::Dot, &x);
    }

    #[test]
    fn bilinear_matches_reference((x, w_a) in arb_inputs(false).prop_flat_map(|x| {
        let n = x.shape.query_dim * x.shape.key_dim;
        (Just(x), prop::collection::vec(-0.5f32..0.5, n))
    })) {
        check(&Op::Bilinear(w_a), &x);
    }

    #[test]
    fn mha_matches_reference((x, heads, width, w) in arb_inputs(false).prop_flat_map(|x| {
        (Just(x), 1usize..4, 1usize..5).prop_flat_map(|(x, heads, width)| {
            let hidden = heads * width;
            let s = x.shape;
            let m = |inp: usize| prop::collection::vec(-0.5f32..0.5, hidden * inp);
            (Just(x), Just(heads), Just(width), [m(s.query_dim), m(s.key_dim), m(s.value_dim), m(hidden)])
        })
    })) {
        check(&Op::Mha { heads, hidden: heads * width, w }, &x);
    }
}

/// A value that one query row weighs and another masks reaches the first
/// alone: each row reads only the keys it keeps.
#[test]
fn a_row_never_reads_values_past_its_own_valid_length() {
    // Rows keeping 1, 3 and none (uniform: every key) of 3 keys; value row
    // 2 is NaN.
    let shape = AttentionShape { batch: 1, queries: 3, keys: 3, query_dim: 2, key_dim: 2, value_dim: 2 };
    let x = Inputs {
        shape,
        queries: vec![0.1, 0.2, 0.3, -0.4, 0.5, 0.6],
        keys: vec![0.5, -0.1, 0.2, 0.3, -0.6, 0.4],
        values: vec![1.0, 2.0, 3.0, 4.0, f32::NAN, f32::NAN],
        lens: Lens::PerQuery(vec![1, 3, 0]),
    };
    let m = |n: usize| (0..n).map(|i| 0.1 * i as f32 - 0.3).collect::<Vec<f32>>();
    let mha = Op::Mha { heads: 2, hidden: 4, w: [m(8), m(8), m(8), m(16)] };
    for op in [Op::Dot, Op::Bilinear(m(4)), mha] {
        for backend in backends() {
            let (out, _) = with_backend(backend, || run(&op, &x)).unwrap();
            let width = out.len() / 3;
            assert!(out[..width].iter().all(|o| o.is_finite()), "{op:?} on {backend}: row 0 read value row 2");
            assert!(out[width..].iter().all(|o| o.is_nan()), "{op:?} on {backend}: rows 1 and 2 lost value row 2");
        }
    }
}

#[test]
fn attend_allocates_and_matches_forward() {
    let g = Golden::load("dot-lens1d");
    let (shape, q, k, v) = (golden_shape(&g), g.f32s("queries"), g.f32s("keys"), g.f32s("values"));
    let lens = g.lens("valid_lens");
    let got = DotProductAttention
        .attend(
            &shape,
            AttentionInputs { queries: &q, keys: &k, values: &v, valid_lens: ValidLens::PerBatch(&lens) },
            true,
        )
        .unwrap();
    assert_allclose(&got.output, &g.f32s("expected.output"), 5e-5, 1e-4, "attend output");
    assert_allclose(
        got.weights.as_deref().unwrap(),
        &g.f32s("expected.attention_weights"),
        5e-5,
        1e-4,
        "attend weights",
    );
    let without = DotProductAttention
        .attend(
            &shape,
            AttentionInputs { queries: &q, keys: &k, values: &v, valid_lens: ValidLens::PerBatch(&lens) },
            false,
        )
        .unwrap();
    assert_eq!((without.output, without.weights), (got.output, None));
    let g = Golden::load("nadaraya-watson");
    let nw =
        NadarayaWatson { w: g.f32s("w")[0] }.attend(&g.f32s("queries"), &g.f32s("keys"), &g.f32s("values")).unwrap();
    assert_allclose(&nw.output, &g.f32s("expected.output"), 5e-5, 1e-4, "nadaraya-watson attend");
}

/// `d = 0`: every score is the empty sum 0, so the weights are uniform
/// over each row's valid keys (d2l's `0 / √0` would give NaN), on every
/// backend and through the `par` layer.
#[test]
fn zero_width_dot_products_give_uniform_weights_over_the_valid_keys() {
    let s = AttentionShape { batch: 2, queries: 3, keys: 4, query_dim: 0, key_dim: 0, value_dim: 2 };
    let values: Vec<f32> = (0..s.batch * s.keys * s.value_dim).map(|i| i as f32).collect();
    let lens = [4usize, 2];
    let inputs = AttentionInputs { queries: &[], keys: &[], values: &values, valid_lens: ValidLens::PerBatch(&lens) };
    for backend in backends() {
        with_backend(backend, || {
            let mut out = vec![f32::NAN; s.batch * s.queries * s.value_dim];
            let mut weights = vec![f32::NAN; s.batch * s.queries * s.keys];
            DotProductAttention.forward(&s, inputs, &mut out, Some(&mut weights), &mut []).unwrap();
            for (b, &len) in lens.iter().enumerate() {
                for i in 0..s.queries {
                    let row = &weights[(b * s.queries + i) * s.keys..][..s.keys];
                    let expected: Vec<f32> =
                        (0..s.keys).map(|j| if j < len { 1.0 / len as f32 } else { 0.0 }).collect();
                    assert_eq!(row, &expected[..], "{backend:?}: weights of batch {b}, query {i}");
                    for c in 0..s.value_dim {
                        let mean =
                            (0..len).map(|j| values[(b * s.keys + j) * s.value_dim + c]).sum::<f32>() / len as f32;
                        let got = out[(b * s.queries + i) * s.value_dim + c];
                        assert!((got - mean).abs() <= 1e-5 * mean.abs().max(1.0), "{backend:?}: out {got} vs {mean}");
                    }
                }
            }
            let mut parallel = vec![f32::NAN; out.len()];
            simd_attention::par::batched(&DotProductAttention, &s, inputs, &mut parallel, None).unwrap();
            assert_eq!(parallel, out, "{backend:?}: par");
        })
        .unwrap();
    }
}

#[test]
fn empty_problems_with_huge_batches_return_at_once() {
    // Found by the fuzz seed corpus: nothing to write, yet a batch loop of
    // usize::MAX iterations. Such calls now return right after the checks.
    let s = AttentionShape { batch: usize::MAX, queries: 0, keys: 0, query_dim: 3, key_dim: 3, value_dim: 2 };
    let nothing = AttentionInputs { queries: &[], keys: &[], values: &[], valid_lens: ValidLens::All };
    DotProductAttention.forward(&s, nothing, &mut [], None, &mut []).unwrap();
    simd_attention::par::batched(&DotProductAttention, &s, nothing, &mut [], None).unwrap();
    // Fuzz-found: a huge batch with Q = 1 but zero widths reached the batch split.
    let wide = AttentionShape { queries: 1, keys: 1, query_dim: 0, key_dim: 0, value_dim: 0, ..s };
    simd_attention::par::batched(&DotProductAttention, &wide, nothing, &mut [], None).unwrap();
    let (w_q, w_k, w_v) = ([0.5f32; 6], [0.5f32; 6], [1.0f32; 2]);
    let additive = simd_attention::ops::AdditiveAttention::new(&w_q, &w_k, &w_v, 2, 3, 3).unwrap();
    additive.forward(&s, nothing, &mut [], None, &mut []).unwrap();
    simd_attention::par::additive(&additive, &s, nothing, &mut [], None).unwrap();
    let op = simd_attention::ops::ScaledDotProductAttention::default();
    let none = simd_attention::ops::SdpaMask::None;
    let mut sdpa = simd_attention::ops::SdpaShape {
        batch: usize::MAX,
        q_heads: 0,
        kv_heads: 0,
        q_len: 4,
        kv_len: 5,
        qk_dim: 3,
        v_dim: 2,
    };
    op.forward(&sdpa, simd_attention::ops::SdpaInputs::f32(&[], &[], &[], none), &mut [], None, &mut []).unwrap();
    simd_attention::par::sdpa(&op, &sdpa, simd_attention::ops::SdpaInputs::f32(&[], &[], &[], none), &mut [], None)
        .unwrap();
    // A shape whose element count overflows is still an error.
    sdpa.q_heads = 2;
    assert_eq!(
        op.forward(&sdpa, simd_attention::ops::SdpaInputs::f32(&[], &[], &[], none), &mut [], None, &mut []),
        Err(simd_attention::Error::Overflow { arg: "shape" })
    );
}
