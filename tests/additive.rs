//! `AdditiveAttention` against d2l/PyTorch (golden cases), an f64
//! reference (proptest, saturated inputs included), itself through a
//! `KeyCache`, and bad input.

mod common;
use common::reference::{self, Dims, Lens};
use common::{Golden, assert_allclose, backends};
use proptest::prelude::*;
use simd_attention::ops::{AdditiveAttention, Attention, AttentionInputs, AttentionShape, KeyCache, ValidLens};
use simd_attention::{Error, simd::with_backend};

fn lens_of(lens: &Lens) -> ValidLens<'_> {
    match lens {
        Lens::All => ValidLens::All,
        Lens::PerBatch(l) => ValidLens::PerBatch(l),
        Lens::PerQuery(l) => ValidLens::PerQuery(l),
    }
}

#[derive(Clone, Debug)]
struct Case {
    shape: AttentionShape,
    hidden: usize,
    queries: Vec<f32>,
    keys: Vec<f32>,
    values: Vec<f32>,
    lens: Lens,
    w_q: Vec<f32>,
    w_k: Vec<f32>,
    w_v: Vec<f32>,
}

impl Case {
    fn attention(&self) -> AdditiveAttention<'_> {
        let s = &self.shape;
        AdditiveAttention::new(&self.w_q, &self.w_k, &self.w_v, self.hidden, s.query_dim, s.key_dim).unwrap()
    }

    /// Output and weights through `forward`.
    fn run(&self) -> (Vec<f32>, Vec<f32>) {
        let attn = self.attention();
        let s = &self.shape;
        let mut out = vec![f32::NAN; s.batch * s.queries * s.value_dim];
        let mut weights = vec![f32::NAN; s.batch * s.queries * s.keys];
        let mut ws = vec![f32::NAN; attn.workspace_len(s, true).unwrap()];
        attn.forward(
            s,
            AttentionInputs {
                queries: &self.queries,
                keys: &self.keys,
                values: &self.values,
                valid_lens: lens_of(&self.lens),
            },
            &mut out,
            Some(&mut weights),
            &mut ws,
        )
        .unwrap();
        (out, weights)
    }

    fn reference(&self) -> (Vec<f64>, Vec<f64>) {
        let s = &self.shape;
        let dims = Dims { batch: s.batch, queries: s.queries, keys: s.keys, value_dim: s.value_dim };
        reference::additive(dims, &self.queries, &self.keys, &self.values, &self.lens, &self.w_q, &self.w_k, &self.w_v)
    }

    /// Per query row, how far f32 rounding of the tanh arguments alone may
    /// move the row's weighed scores (see `reference::additive_argument_slack`).
    fn row_slack(&self) -> Vec<f64> {
        let s = &self.shape;
        let dims = Dims { batch: s.batch, queries: s.queries, keys: s.keys, value_dim: s.value_dim };
        let slack =
            reference::additive_argument_slack(dims, &self.queries, &self.keys, &self.w_q, &self.w_k, &self.w_v);
        let weighed = |row: usize| match self.lens.get(row / s.queries, row % s.queries, s.queries) {
            Some(0) | None => s.keys,
            Some(len) => len.min(s.keys),
        };
        slack
            .chunks(s.keys.max(1))
            .enumerate()
            .map(|(row, r)| r[..weighed(row)].iter().fold(0.0, |m, &x| f64::max(m, x)))
            .collect()
    }

    fn golden(name: &str) -> (Case, Vec<f32>, Vec<f32>) {
        let g = Golden::load(name);
        let (q, k, v) = (g.shape("queries"), g.shape("keys"), g.shape("values"));
        let lens = if !g.has("valid_lens") {
            Lens::All
        } else if g.shape("valid_lens").len() == 1 {
            Lens::PerBatch(g.lens("valid_lens"))
        } else {
            Lens::PerQuery(g.lens("valid_lens"))
        };
        let case = Case {
            shape: AttentionShape {
                batch: q[0],
                queries: q[1],
                keys: k[1],
                query_dim: q[2],
                key_dim: k[2],
                value_dim: v[2],
            },
            hidden: g.shape("w_v.weight")[1],
            queries: g.f32s("queries"),
            keys: g.f32s("keys"),
            values: g.f32s("values"),
            lens,
            w_q: g.f32s("W_q.weight"),
            w_k: g.f32s("W_k.weight"),
            w_v: g.f32s("w_v.weight"),
        };
        (case, g.f32s("expected.output"), g.f32s("expected.attention_weights"))
    }
}

#[test]
fn golden_d2l_cases_on_every_backend() {
    for name in
        ["additive-d2l-toy", "additive-lens1d-edges", "additive-lens2d", "additive-nomask", "additive-saturated"]
    {
        let (case, out, weights) = Case::golden(name);
        for backend in backends() {
            let (got_out, got_w) = with_backend(backend, || case.run()).unwrap();
            assert_allclose(&got_out, &out, 5e-5, 1e-4, &format!("{name} output on {backend}"));
            assert_allclose(&got_w, &weights, 5e-5, 1e-4, &format!("{name} weights on {backend}"));
        }
    }
}

fn arb_case(scale: f32) -> impl Strategy<Value = Case> {
    (1usize..4, 1usize..5, 1usize..20, 1usize..9, 1usize..9, 1usize..6, 1usize..40).prop_flat_map(
        move |(batch, queries, keys, qd, kd, vd, hidden)| {
            let v = move |n: usize| prop::collection::vec(-scale..scale, n);
            let w = |n: usize, fan_in: usize| {
                let s = 1.0 / (fan_in as f32).sqrt();
                prop::collection::vec(-s..s, n)
            };
            let lens = prop_oneof![
                Just(Lens::All),
                prop::collection::vec(0usize..keys + 2, batch).prop_map(Lens::PerBatch),
                prop::collection::vec(0usize..keys + 2, batch * queries).prop_map(Lens::PerQuery),
            ];
            (
                Just(AttentionShape { batch, queries, keys, query_dim: qd, key_dim: kd, value_dim: vd }),
                Just(hidden),
                (v(batch * queries * qd), v(batch * keys * kd), prop::collection::vec(-1.0f32..1.0, batch * keys * vd)),
                lens,
                (w(hidden * qd, qd), w(hidden * kd, kd), w(hidden, hidden)),
            )
                .prop_map(|(shape, hidden, (queries, keys, values), lens, (w_q, w_k, w_v))| Case {
                    shape,
                    hidden,
                    queries,
                    keys,
                    values,
                    lens,
                    w_q,
                    w_k,
                    w_v,
                })
        },
    )
}

/// Scores of magnitude up to ~Σ|w_v| must agree closely in the weights.
/// Also: keys and values past every row's valid length are never read.
///
/// The tolerances are fixed, plus what rounding the tanh arguments to f32
/// alone may cost a row: a score slack δ moves a weight by at most a factor
/// e^{±2δ}, and an output by (e^{2δ} - 1) max|v|, since its weights sum to 1.
fn check_against_reference(case: &Case) {
    let (want_out, want_w) = case.reference();
    let s = &case.shape;
    let spread: Vec<f64> = case.row_slack().iter().map(|d| (2.0 * d).exp_m1()).collect();
    let max_value = case.values.iter().fold(0.0f64, |m, v| m.max(v.abs() as f64));
    let mut poisoned = case.clone();
    let rows = [(&mut poisoned.keys[..], s.key_dim), (&mut poisoned.values[..], s.value_dim)];
    case.lens.poison_padding(s.batch, s.queries, s.keys, rows);
    for backend in backends() {
        let (out, w) = with_backend(backend, || case.run()).unwrap();
        let (padded_out, padded_w) = with_backend(backend, || poisoned.run()).unwrap();
        assert_eq!(bits(&padded_out), bits(&out), "{backend}: NaN padding changed the output");
        assert_eq!(bits(&padded_w), bits(&w), "{backend}: NaN padding changed the weights");
        for (i, (&g, &e)) in w.iter().zip(&want_w).enumerate() {
            let tolerance = 2e-5 + (1e-4 + spread[i / s.keys]) * e;
            assert!(g.is_finite() && (g as f64 - e).abs() <= tolerance, "{backend}: weights[{i}] {g} vs {e}");
            if e == 0.0 {
                assert_eq!(g, 0.0, "{backend}: masked weight [{i}]");
            }
        }
        for (i, (&g, &e)) in out.iter().zip(&want_out).enumerate() {
            let tolerance = 5e-5 + 1e-4 * e.abs() + spread[i / s.value_dim] * max_value;
            assert!(g.is_finite() && (g as f64 - e).abs() <= tolerance, "{backend}: out[{i}] {g} vs {e}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(150))]

    #[test]
    fn matches_f64_reference(case in arb_case(3.0)) {
        check_against_reference(&case);
    }

    /// Inputs up to ±1e4: tanh saturates, the exp-product guard must route
    /// these to the direct form, and nothing may become NaN or inf.
    #[test]
    fn saturated_inputs_stay_exact(case in arb_case(1e4)) {
        check_against_reference(&case);
    }

    /// Score weights of every kind the folded form treats apart: zeros,
    /// magnitudes under and just over its floor (2^-40, which lowers the
    /// range limit to about 3.5), and weights of several units, over inputs
    /// inside, near (10: pairs of terms up to the guard's 2^61) and far
    /// past that limit.
    #[test]
    fn unusual_score_weights_match_the_reference(
        (mut case, w_v) in (prop_oneof![Just(3.0f32), Just(10.0), Just(30.0), Just(1e4)].prop_flat_map(arb_case), prop::collection::vec(
            prop_oneof![Just(0.0f32), Just(-0.0), Just(3e-13), Just(-2e-12), Just(1e-20), -0.5f32..0.5, -4.0f32..4.0],
            40,
        ))
    ) {
        let h = case.hidden;
        case.w_v.copy_from_slice(&w_v[..h]);
        check_against_reference(&case);
    }

    #[test]
    fn key_cache_gives_identical_bits(case in arb_case(5.0)) {
        let attn = case.attention();
        let s = &case.shape;
        let (out, weights) = case.run();
        let mut buffer = vec![0.0; KeyCache::buffer_len(s.batch, s.keys, case.hidden, s.query_dim).unwrap()];
        let cache = attn.key_cache(s, &case.keys, &case.values, &mut buffer).unwrap();
        // Twice through the same cache, as a decoder would, with one
        // workspace: NaN at first, then what the first pass left in it.
        let mut ws = vec![f32::NAN; attn.cached_workspace_len(s, true).unwrap()];
        for _ in 0..2 {
            let mut out2 = vec![0.0; out.len()];
            let mut w2 = vec![0.0; weights.len()];
            attn.forward_cached(&cache, s.queries, &case.queries, lens_of(&case.lens), &mut out2, Some(&mut w2), &mut ws).unwrap();
            prop_assert_eq!(bits(&out2), bits(&out));
            prop_assert_eq!(bits(&w2), bits(&weights));
        }
        // Without asking for weights, the output is the same too.
        let mut out3 = vec![0.0; out.len()];
        let mut ws = vec![0.0; attn.workspace_len(s, false).unwrap()];
        attn.forward(s, AttentionInputs { queries: &case.queries, keys: &case.keys, values: &case.values, valid_lens: lens_of(&case.lens) }, &mut out3, None, &mut ws).unwrap();
        prop_assert_eq!(bits(&out3), bits(&out));
    }
}

fn bits(x: &[f32]) -> Vec<u32> {
    x.iter().map(|v| v.to_bits()).collect()
}

#[test]
fn hostile_magnitudes_stay_finite_and_nan_stays_in_its_row() {
    let (mut case, _, _) = Case::golden("additive-nomask");
    for (i, q) in case.queries.iter_mut().enumerate() {
        *q = if i % 2 == 0 { 1e30 } else { -1e30 };
    }
    let (out, w) = case.run();
    assert!(out.iter().chain(&w).all(|v| v.is_finite()));
    let (mut case, _, _) = Case::golden("additive-nomask");
    let qd = case.shape.query_dim;
    case.queries[3 * qd + 1] = f32::NAN;
    let (out, _) = case.run();
    let vd = case.shape.value_dim;
    for (row, chunk) in out.chunks(vd).enumerate() {
        assert_eq!(chunk.iter().all(|v| v.is_nan()), row == 3, "row {row}");
        assert!(row == 3 || chunk.iter().all(|v| v.is_finite()));
    }
}

/// A value that one query row weighs and another masks reaches the first
/// alone: each row reads only the keys it keeps.
#[test]
fn a_row_never_reads_values_past_its_own_valid_length() {
    let (mut case, _, _) = Case::golden("additive-lens2d");
    let s = case.shape;
    // Rows keeping 1 key, every key, and none (uniform: every key); the
    // last key's value is NaN.
    let lens: Vec<usize> = (0..s.batch * s.queries).map(|r| [1, s.keys, 0][r % 3]).collect();
    case.lens = Lens::PerQuery(lens.clone());
    for b in 0..s.batch {
        case.values[((b + 1) * s.keys - 1) * s.value_dim] = f32::NAN;
    }
    for backend in backends() {
        let (out, _) = with_backend(backend, || case.run()).unwrap();
        for (r, row) in out.chunks(s.value_dim).enumerate() {
            assert_eq!(row[0].is_nan(), lens[r] != 1, "{backend}: row {r} keeping {}", lens[r]);
        }
    }
}

#[test]
fn bad_input_is_refused_and_nothing_written() {
    let (case, _, _) = Case::golden("additive-lens2d");
    let attn = case.attention();
    let s = case.shape;
    let mut out = vec![7.0f32; s.batch * s.queries * s.value_dim];
    let mut ws = vec![0.0; attn.workspace_len(&s, false).unwrap()];
    let run = |shape: &AttentionShape, queries: &[f32], lens: ValidLens<'_>, out: &mut [f32], ws: &mut [f32]| {
        attn.forward(
            shape,
            AttentionInputs { queries, keys: &case.keys, values: &case.values, valid_lens: lens },
            out,
            None,
            ws,
        )
    };
    let lens = ValidLens::PerBatch(&[1, 2]);
    assert_eq!(
        run(&s, &case.queries[1..], lens, &mut out, &mut ws),
        Err(Error::Length { arg: "queries", expected: case.queries.len(), actual: case.queries.len() - 1 })
    );
    assert_eq!(
        run(&s, &case.queries, ValidLens::PerBatch(&[1]), &mut out, &mut ws),
        Err(Error::Length { arg: "valid_lens", expected: 2, actual: 1 })
    );
    let wrong = AttentionShape { query_dim: s.query_dim + 1, ..s };
    assert_eq!(
        run(&wrong, &case.queries, lens, &mut out, &mut ws),
        Err(Error::Dimension { arg: "shape.query_dim", expected: s.query_dim, actual: s.query_dim + 1 })
    );
    let short = ws.len() - 1;
    assert_eq!(
        run(&s, &case.queries, lens, &mut out, &mut ws[..short]),
        Err(Error::Length { arg: "workspace", expected: short + 1, actual: short })
    );
    assert!(out.iter().all(|&v| v == 7.0));
    assert_eq!(
        AdditiveAttention::new(&case.w_q, &case.w_k, &case.w_v[1..], case.hidden, s.query_dim, s.key_dim).unwrap_err(),
        Error::Length { arg: "w_v", expected: case.hidden, actual: case.hidden - 1 }
    );
}

/// A key cache packs the `W_q` of the attention that built it; an attention
/// with the same `W_k` but another `W_q` still projects with its own.
#[test]
fn key_cache_from_another_query_projection() {
    let (h, d, k) = (8, 5, 6);
    let s = AttentionShape { batch: 2, queries: 3, keys: k, query_dim: d, key_dim: d, value_dim: 4 };
    let fill = |n: usize, seed: usize| -> Vec<f32> {
        (0..n).map(|i| ((i * 7 + seed * 13) % 11) as f32 / 11.0 - 0.4).collect()
    };
    let (w_q1, w_q2, w_k, w_v) = (fill(h * d, 1), fill(h * d, 2), fill(h * d, 3), fill(h, 4));
    let (q, keys, values) = (fill(2 * 3 * d, 5), fill(2 * k * d, 6), fill(2 * k * 4, 7));
    let first = AdditiveAttention::new(&w_q1, &w_k, &w_v, h, d, d).unwrap();
    let second = AdditiveAttention::new(&w_q2, &w_k, &w_v, h, d, d).unwrap();
    let mut buffer = vec![0.0; KeyCache::buffer_len(2, k, h, d).unwrap()];
    let cache = first.key_cache(&s, &keys, &values, &mut buffer).unwrap();
    let mut ws = vec![0.0; second.cached_workspace_len(&s, false).unwrap()];
    let mut cached = vec![0.0; 2 * 3 * 4];
    second.forward_cached(&cache, 3, &q, ValidLens::All, &mut cached, None, &mut ws).unwrap();
    let want = second
        .attend(&s, AttentionInputs { queries: &q, keys: &keys, values: &values, valid_lens: ValidLens::All }, false)
        .unwrap();
    assert_allclose(&cached, &want.output, 1e-6, 1e-5, "second attention through the first's cache");
}

/// A `W_q` of another `query_dim` that starts at the same address (a
/// prefix of one buffer) is not taken for the one the cache packed: the
/// cache's panels would have the wrong shape.
#[test]
fn key_cache_from_a_query_projection_of_another_width_at_the_same_address() {
    let (h, k) = (8, 6);
    let fill = |n: usize, seed: usize| -> Vec<f32> {
        (0..n).map(|i| ((i * 7 + seed * 13) % 11) as f32 / 11.0 - 0.4).collect()
    };
    let (w_q, w_k, w_v) = (fill(h * 6, 1), fill(h * 5, 3), fill(h, 4));
    let (keys, values) = (fill(k * 5, 6), fill(k * 4, 7));
    let narrow = AdditiveAttention::new(&w_q[..h * 4], &w_k, &w_v, h, 4, 5).unwrap();
    let wide = AdditiveAttention::new(&w_q, &w_k, &w_v, h, 6, 5).unwrap();
    let shape = |query_dim| AttentionShape { batch: 1, queries: 2, keys: k, query_dim, key_dim: 5, value_dim: 4 };
    let mut buffer = vec![0.0; KeyCache::buffer_len(1, k, h, 6).unwrap()];
    let cache = narrow.key_cache(&shape(4), &keys, &values, &mut buffer).unwrap();
    let q = fill(2 * 6, 5);
    let mut ws = vec![0.0; wide.cached_workspace_len(&shape(6), false).unwrap()];
    let mut cached = vec![0.0; 2 * 4];
    wide.forward_cached(&cache, 2, &q, ValidLens::All, &mut cached, None, &mut ws).unwrap();
    let inputs = AttentionInputs { queries: &q, keys: &keys, values: &values, valid_lens: ValidLens::All };
    let want = wide.attend(&shape(6), inputs, false).unwrap();
    assert_allclose(&cached, &want.output, 1e-6, 1e-5, "a wider W_q at the cache's W_q address");
}
