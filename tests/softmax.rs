//! `masked_softmax` against an f64 reference of the d2l and PyTorch
//! semantics, against PyTorch's own numbers (tests/data), across backends,
//! and on bad input.

mod common;
use common::{Golden, assert_allclose, backends};
use proptest::prelude::*;
use simd_attention::kernels::{Mask, ScoreShape, masked_softmax};
use simd_attention::{Error, simd::with_backend};

/// The reference: which keys a row keeps, then softmax in f64.
fn reference(scores: &[f32], shape: ScoreShape, mask: Mask<'_>) -> Vec<f64> {
    let ScoreShape { batch, queries, keys } = shape;
    let mut out = vec![0.0f64; batch * queries * keys];
    for r in 0..batch * queries {
        let (b, q) = (r / queries, r % queries);
        let row = &scores[r * keys..(r + 1) * keys];
        let at = |len: usize, j: usize| if len == queries * keys { q * keys + j } else { r * keys + j };
        let mut kept: Vec<Option<f64>> = (0..keys)
            .map(|j| match mask {
                Mask::None => Some(row[j] as f64),
                Mask::ValidLens(l) => (j < l[b]).then_some(row[j] as f64),
                Mask::ValidLensPerQuery(l) => (j < l[r]).then_some(row[j] as f64),
                Mask::Causal => (j <= q).then_some(row[j] as f64),
                Mask::Keep(k) => k[at(k.len(), j)].then_some(row[j] as f64),
                // The mask is added in f32, as PyTorch does, before the f64 softmax.
                Mask::Additive(a) => Some((row[j] + a[at(a.len(), j)]) as f64),
            })
            .collect();
        let d2l_empty = match mask {
            Mask::ValidLens(l) => l[b] == 0,
            Mask::ValidLensPerQuery(l) => l[r] == 0,
            _ => false,
        };
        let dst = &mut out[r * keys..(r + 1) * keys];
        if d2l_empty {
            dst.fill(1.0 / keys as f64);
            continue;
        }
        // Scores of -inf count as masked (PyTorch: fully masked row gives zeros).
        for k in kept.iter_mut() {
            if *k == Some(f64::NEG_INFINITY) {
                *k = None;
            }
        }
        let max = kept.iter().flatten().fold(f64::NEG_INFINITY, |m, &x| if x > m || x.is_nan() { x } else { m });
        if max == f64::NEG_INFINITY {
            continue;
        }
        let sum: f64 = kept.iter().flatten().map(|&x| (x - max).exp()).sum();
        for (d, k) in dst.iter_mut().zip(&kept) {
            *d = k.map_or(0.0, |x| (x - max).exp() / sum);
        }
    }
    out
}

fn assert_close(got: &[f32], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len());
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        if w.is_nan() {
            assert!(g.is_nan(), "{what}[{i}]: got {g}, want NaN");
        } else if w == 0.0 {
            assert_eq!(g, 0.0, "{what}[{i}]: masked weight must be exactly 0");
        } else {
            assert!((g as f64 - w).abs() <= 2e-6 + 2e-5 * w.abs(), "{what}[{i}]: got {g}, want {w}");
        }
    }
}

#[derive(Debug, Clone)]
enum MaskKind {
    None,
    Lens(Vec<usize>),
    LensPerQuery(Vec<usize>),
    Keep(Vec<bool>),
    Additive(Vec<f32>),
    Causal,
}

fn score_value() -> impl Strategy<Value = f32> {
    prop_oneof![
        8 => -10.0f32..10.0,
        1 => -1e4f32..1e4,
        1 => Just(f32::NEG_INFINITY),
        1 => prop::sample::select(vec![0.0f32, -0.0, 88.0, -88.0, 1e4, -1e4]),
    ]
}

fn case() -> impl Strategy<Value = (ScoreShape, Vec<f32>, MaskKind)> {
    (0usize..4, 0usize..5, 0usize..70).prop_flat_map(|(batch, queries, keys)| {
        let shape = ScoreShape { batch, queries, keys };
        let n = batch * queries * keys;
        // Bool and additive masks come shared over the batch, (Q, K), or per entry, (B, Q, K).
        let keep = prop::bool::weighted(0.7);
        let add = prop_oneof![3 => -3.0f32..3.0, 1 => Just(f32::NEG_INFINITY)];
        let mask = prop_oneof![
            Just(MaskKind::None),
            prop::collection::vec(0usize..keys + 3, batch).prop_map(MaskKind::Lens),
            prop::collection::vec(0usize..keys + 3, batch * queries).prop_map(MaskKind::LensPerQuery),
            prop::collection::vec(keep, queries * keys).prop_map(MaskKind::Keep),
            prop::collection::vec(keep, n).prop_map(MaskKind::Keep),
            prop::collection::vec(add.clone(), queries * keys).prop_map(MaskKind::Additive),
            prop::collection::vec(add, n).prop_map(MaskKind::Additive),
            Just(MaskKind::Causal),
        ];
        (Just(shape), prop::collection::vec(score_value(), n), mask)
    })
}

fn as_mask(kind: &MaskKind) -> Mask<'_> {
    match kind {
        MaskKind::None => Mask::None,
        MaskKind::Lens(l) => Mask::ValidLens(l),
        MaskKind::LensPerQuery(l) => Mask::ValidLensPerQuery(l),
        MaskKind::Keep(k) => Mask::Keep(k),
        MaskKind::Additive(a) => Mask::Additive(a),
        MaskKind::Causal => Mask::Causal,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn matches_f64_reference_on_every_backend((shape, scores, kind) in case()) {
        let mask = as_mask(&kind);
        let want = reference(&scores, shape, mask);
        for backend in backends() {
            let mut got = scores.clone();
            with_backend(backend, || masked_softmax(&mut got, shape, mask)).unwrap().unwrap();
            assert_close(&got, &want, backend.name());
        }
    }
}

#[test]
fn nan_stays_in_its_row() {
    let shape = ScoreShape { batch: 1, queries: 3, keys: 20 };
    let mut scores: Vec<f32> = (0..60).map(|i| (i as f32 * 0.37).sin()).collect();
    scores[25] = f32::NAN;
    masked_softmax(&mut scores, shape, Mask::None).unwrap();
    assert!(scores[20..40].iter().all(|w| w.is_nan()));
    for row in [&scores[..20], &scores[40..]] {
        let sum: f32 = row.iter().sum();
        assert!((sum - 1.0).abs() < 1e-5);
    }
}

#[test]
fn masked_nan_is_ignored() {
    let shape = ScoreShape { batch: 1, queries: 1, keys: 4 };
    let mut scores = [0.0f32, 0.0, f32::NAN, 1.0];
    masked_softmax(&mut scores, shape, Mask::ValidLens(&[2])).unwrap();
    assert_eq!(scores, [0.5, 0.5, 0.0, 0.0]);
}

#[test]
fn edge_semantics() {
    let shape = ScoreShape { batch: 2, queries: 1, keys: 4 };
    // d2l: valid_len 0 gives uniform weights; valid_len > K masks nothing.
    let mut s = [1.0f32, 2.0, 3.0, 4.0, 0.0, 0.0, 0.0, 0.0];
    masked_softmax(&mut s, shape, Mask::ValidLens(&[0, 9])).unwrap();
    assert_eq!(&s[..4], &[0.25; 4]);
    assert_eq!(&s[4..], &[0.25; 4]);
    // PyTorch: a fully masked row gives zeros.
    let mut s = [1.0f32, 2.0, 3.0, 4.0, 1.0, 2.0, 3.0, 4.0];
    let keep = [false, false, false, false, true, false, false, false];
    masked_softmax(&mut s, shape, Mask::Keep(&keep)).unwrap();
    assert_eq!(s, [0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]);
}

#[test]
fn bad_input_is_refused_and_nothing_written() {
    let shape = ScoreShape { batch: 2, queries: 2, keys: 3 };
    let mut s = [7.0f32; 12];
    let cases: [(Mask<'_>, Error); 4] = [
        (Mask::ValidLens(&[1]), Error::Length { arg: "valid_lens", expected: 2, actual: 1 }),
        (Mask::ValidLensPerQuery(&[1, 2]), Error::Length { arg: "valid_lens", expected: 4, actual: 2 }),
        (Mask::Keep(&[true; 5]), Error::Length { arg: "mask", expected: 12, actual: 5 }),
        (Mask::Additive(&[0.0; 7]), Error::Length { arg: "mask", expected: 12, actual: 7 }),
    ];
    for (mask, err) in cases {
        assert_eq!(masked_softmax(&mut s, shape, mask), Err(err));
        assert_eq!(s, [7.0; 12]);
    }
    assert_eq!(
        masked_softmax(&mut s[..11], shape, Mask::None),
        Err(Error::Length { arg: "scores", expected: 12, actual: 11 })
    );
    let huge = ScoreShape { batch: usize::MAX, queries: 2, keys: 1 };
    assert_eq!(masked_softmax(&mut s, huge, Mask::None), Err(Error::Overflow { arg: "shape" }));
    assert_eq!(s, [7.0; 12]);
}

#[test]
fn golden_pytorch_cases() {
    for file in ["masked-softmax-1d", "masked-softmax-2d"] {
        let case = Golden::load(file);
        let scores = case.f32s("scores");
        let dims = case.shape("scores");
        let expected = case.f32s("expected.attention_weights");
        let lens = case.lens("valid_lens");
        let shape = ScoreShape { batch: dims[0], queries: dims[1], keys: dims[2] };
        let mask =
            if case.shape("valid_lens").len() == 1 { Mask::ValidLens(&lens) } else { Mask::ValidLensPerQuery(&lens) };
        for backend in backends() {
            let mut got = scores.clone();
            with_backend(backend, || masked_softmax(&mut got, shape, mask)).unwrap().unwrap();
            assert_allclose(&got, &expected, 5e-5, 1e-4, &format!("{file} on {backend}"));
        }
    }
}

#[test]
fn all_nan_row_stays_nan() {
    // 19 keys: two full vectors plus a tail padded with -inf, which a
    // NaN-skipping max could otherwise mistake for a fully masked row.
    for keys in [1usize, 7, 8, 19, 33] {
        let shape = ScoreShape { batch: 1, queries: 2, keys };
        let mut s = vec![f32::NAN; 2 * keys];
        s[keys..].fill(0.5);
        for backend in backends() {
            let mut got = s.clone();
            with_backend(backend, || masked_softmax(&mut got, shape, Mask::None)).unwrap().unwrap();
            assert!(got[..keys].iter().all(|w| w.is_nan()), "{backend}, K={keys}");
            assert!(got[keys..].iter().all(|&w| (w - 1.0 / keys as f32).abs() < 1e-6));
        }
    }
}
