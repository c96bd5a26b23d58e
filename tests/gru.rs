//! `GruLayer::step` against an f64 reference of PyTorch's GRU cell, on
//! every backend, in both weight layouts, at widths that are not a
//! multiple of any vector; and each row's bits do not depend on the batch
//! it is computed in.

mod common;

use common::backends;
use proptest::prelude::*;
use simd_attention::models::{GruLayer, Weight, transpose};
use simd_attention::simd::with_backend;

/// One GRU step in f64: gate order r, z, n, as `nn.GRU`.
fn reference(x: &[f32], h: &[f32], w_ih: &[f32], w_hh: &[f32], b_ih: &[f32], b_hh: &[f32], input: usize) -> Vec<f64> {
    let hidden = h.len();
    let affine = |w: &[f32], b: &[f32], v: &[f32], g: usize| -> f64 {
        f64::from(b[g])
            + w[g * v.len()..][..v.len()].iter().zip(v).map(|(&w, &v)| f64::from(w) * f64::from(v)).sum::<f64>()
    };
    let sigmoid = |x: f64| 1.0 / (1.0 + (-x).exp());
    (0..hidden)
        .map(|j| {
            let (gi, gh) = (|g| affine(w_ih, b_ih, &x[..input], g), |g| affine(w_hh, b_hh, h, g));
            let r = sigmoid(gi(j) + gh(j));
            let z = sigmoid(gi(hidden + j) + gh(hidden + j));
            let n = (gi(2 * hidden + j) + r * gh(2 * hidden + j)).tanh();
            (1.0 - z) * n + z * f64::from(h[j])
        })
        .collect()
}

/// `n` values in `[-scale, scale)`.
fn values(n: usize, scale: f32) -> impl Strategy<Value = Vec<f32>> {
    proptest::collection::vec(-scale..scale, n)
}

#[derive(Debug, Clone)]
struct Case {
    batch: usize,
    input: usize,
    hidden: usize,
    x: Vec<f32>,
    h: Vec<f32>,
    w_ih: Vec<f32>,
    w_hh: Vec<f32>,
    b_ih: Vec<f32>,
    b_hh: Vec<f32>,
}

fn arb_case() -> impl Strategy<Value = Case> {
    (1usize..6, 1usize..40, prop_oneof![1usize..20, 60usize..70]).prop_flat_map(|(batch, input, hidden)| {
        let gates = 3 * hidden;
        (
            values(batch * input, 2.0),
            values(batch * hidden, 1.0),
            values(gates * input, 0.5),
            values(gates * hidden, 0.5),
            values(gates, 0.5),
            values(gates, 0.5),
        )
            .prop_map(move |(x, h, w_ih, w_hh, b_ih, b_hh)| Case {
                batch,
                input,
                hidden,
                x,
                h,
                w_ih,
                w_hh,
                b_ih,
                b_hh,
            })
    })
}

/// The layer over `c`'s weights, PyTorch's layout or transposed.
fn step(c: &Case, columns: bool, batch: usize, x: &[f32], h: &[f32]) -> Vec<f32> {
    let gates = 3 * c.hidden;
    let (mut t_ih, mut t_hh) = (vec![0.0; c.w_ih.len()], vec![0.0; c.w_hh.len()]);
    transpose(&c.w_ih, gates, c.input, &mut t_ih).unwrap();
    transpose(&c.w_hh, gates, c.hidden, &mut t_hh).unwrap();
    let (w_ih, w_hh) = if columns {
        (Weight::Columns(&t_ih), Weight::Columns(&t_hh))
    } else {
        (Weight::Rows(&c.w_ih), Weight::Rows(&c.w_hh))
    };
    let layer = GruLayer::new(w_ih, w_hh, &c.b_ih, &c.b_hh, c.input, c.hidden).unwrap();
    let mut h = h.to_vec();
    let mut ws = vec![f32::NAN; layer.workspace_len(batch).unwrap()];
    layer.step(batch, x, &mut h, &mut ws).unwrap();
    h
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn step_matches_the_f64_reference_and_is_batch_invariant(c in arb_case()) {
        let (input, hidden) = (c.input, c.hidden);
        for backend in backends() {
            for columns in [false, true] {
                let got = with_backend(backend, || step(&c, columns, c.batch, &c.x, &c.h)).unwrap();
                for b in 0..c.batch {
                    let (x, h) = (&c.x[b * input..][..input], &c.h[b * hidden..][..hidden]);
                    let want = reference(x, h, &c.w_ih, &c.w_hh, &c.b_ih, &c.b_hh, input);
                    let row = &got[b * hidden..][..hidden];
                    for (j, (&g, &w)) in row.iter().zip(&want).enumerate() {
                        prop_assert!((f64::from(g) - w).abs() <= 1e-5 + 1e-5 * w.abs(),
                            "{backend} columns={columns} row {b} [{j}]: {g} vs {w}");
                    }
                    let alone = with_backend(backend, || step(&c, columns, 1, x, h)).unwrap();
                    prop_assert!(alone.iter().zip(row).all(|(a, r)| a.to_bits() == r.to_bits()),
                        "{backend} columns={columns}: row {b} alone differs from its batch");
                }
            }
        }
    }
}
