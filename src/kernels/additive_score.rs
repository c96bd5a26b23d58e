//! The fused additive (Bahdanau) score of one query against a run of keys:
//! `s_j = Σ_h w_h · tanh(a_h + b_jh)`, with `a = W_q q` and `b_j = W_k k_j`
//! already projected. The `(Q, K, H)` tensor of features is never formed.
//!
//! Since `tanh(u) = 1 − 2/(1 + e^{2u})` and `e^{2(a+b)} = e^{2a}·e^{2b}`,
//!
//! `s_j = Σ_h w_h − 2 Σ_h w_h / (1 + A_h·B_jh)`, `A = e^{2a}`, `B_j = e^{2b_j}`,
//!
//! where `A` is computed once per query and `B_j` once per key (and kept in
//! the `KeyCache`), so the inner loop is one FMA, one division and one
//! accumulate per element instead of a full tanh.
//!
//! The guard: the product form is exact only while `A·B` stays finite and
//! `A`, `B` stay normal. When every `|a_h|` and `|b_jh|` is at most
//! [`EXP_PRODUCT_LIMIT`] (22), `A·B ∈ [e^-88, e^88]` and nothing overflows.
//! A query or key past it (saturated or hostile inputs, up to ±1e30) takes
//! the direct `Σ w·tanh(a + b)` for that pair instead, so the result is
//! always what tanh gives: finite for finite inputs, never `inf·0`.

use crate::math::tanh::tanh;
use crate::simd::F32Vector;
use crate::simd::vector::load_partial;

/// The largest `|a_h|`, `|b_h|` for which the exp-product form is used.
pub(crate) const EXP_PRODUCT_LIMIT: f32 = 22.0;

/// One projected query: `a`, `A = e^{2a}` and whether `max |a_h| ≤ limit`.
#[derive(Clone, Copy)]
pub(crate) struct ProjectedQuery<'a> {
    pub a: &'a [f32],
    pub exp_2a: &'a [f32],
    pub in_range: bool,
}

/// The scoring weights `w` (length H) and their sum.
#[derive(Clone, Copy)]
pub(crate) struct ScoreWeights<'a> {
    pub w: &'a [f32],
    pub sum: f32,
}

/// `out[j] = s(query, key j)` for `j < out.len()`, where key `j` has
/// projection `b[j·H..]`, `B = exp_2b[j·H..]` and `max |b_jh|` in
/// `key_magnitude[j]`.
#[inline(always)]
pub(crate) fn score_keys<V: F32Vector>(
    query: ProjectedQuery<'_>,
    b: &[f32],
    exp_2b: &[f32],
    key_magnitude: &[f32],
    w: ScoreWeights<'_>,
    out: &mut [f32],
) {
    let h = w.w.len();
    for (j, s) in out.iter_mut().enumerate() {
        let key = j * h..(j + 1) * h;
        *s = if query.in_range && key_magnitude[j] <= EXP_PRODUCT_LIMIT {
            w.sum
                - 2.0
                    * sum_over_hidden::<V, _>(w.w, query.exp_2a, &exp_2b[key], |w, a, b| {
                        w.div(a.mul_add(b, V::splat(1.0)))
                    })
        } else {
            sum_over_hidden::<V, _>(w.w, query.a, &b[key], |w, a, b| w.mul(tanh(a.add(b))))
        };
    }
}

/// `Σ_h term(w_h, x_h, y_h)` over three equally long slices. The tail is
/// padded with `w = 0`, `x = y = 0`, for which both terms above are 0.
#[inline(always)]
fn sum_over_hidden<V: F32Vector, F: Fn(V, V, V) -> V>(w: &[f32], x: &[f32], y: &[f32], term: F) -> f32 {
    let n = w.len();
    // Re-slicing proves the lengths the unsafe loads rely on.
    let (x, y) = (&x[..n], &y[..n]);
    let mut acc = V::splat(0.0);
    let mut i = 0;
    while i + V::LANES <= n {
        // SAFETY: i + LANES <= n, and all three slices hold n values.
        unsafe {
            acc = acc.add(term(V::load(w.as_ptr().add(i)), V::load(x.as_ptr().add(i)), V::load(y.as_ptr().add(i))));
        }
        i += V::LANES;
    }
    if i < n {
        let rest = n - i;
        // SAFETY: rest < LANES values remain in each slice from i on.
        unsafe {
            let (wv, xv, yv) = (
                load_partial::<V>(w.as_ptr().add(i), rest, 0.0),
                load_partial::<V>(x.as_ptr().add(i), rest, 0.0),
                load_partial::<V>(y.as_ptr().add(i), rest, 0.0),
            );
            acc = acc.add(term(wv, xv, yv));
        }
    }
    acc.reduce_add()
}
