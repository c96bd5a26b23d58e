//! The fused additive (Bahdanau) score of one query against a run of keys:
//! `s_j = Σ_h w_h · tanh(a_h + b_jh)`, with `a = W_q q` and `b_j = W_k k_j`
//! already projected. The `(Q, K, H)` tensor of features is never formed.
//!
//! Since `tanh(u) = 1 − 2/(1 + e^{2u})` and `e^{2(a+b)} = e^{2a}·e^{2b}`,
//!
//! `s_j = Σ_h w_h − 2 Σ_h w_h / (1 + A_h·B_jh)`, `A = e^{2a}`, `B_j = e^{2b_j}`,
//!
//! where `A` is computed once per query and `B_j` once per key (and kept in
//! the `KeyCache`), so the inner loop is one FMA, one reciprocal
//! ([`F32Vector::recip`]: an estimate and a Newton step on AVX2/AVX-512)
//! and one FMA to accumulate per element, instead of a full tanh. Four keys
//! share each loaded `A` vector (`KEY_BLOCK`).
//!
//! The guard: the product form is exact only while `A·B` stays finite and
//! `A`, `B` stay normal. When every `|a_h|` and `|b_jh|` is at most
//! [`EXP_PRODUCT_LIMIT`] (22), `A·B ∈ [e^-88, e^88]` and nothing overflows.
//! (Past `2^126` the hardware reciprocal may flush `1/(1 + A·B)` to 0: an
//! absolute error under `2^-126` on a term that tanh rounds to ±1 anyway.)
//! A query or key past it (saturated or hostile inputs, up to ±1e30) takes
//! the direct `Σ w·tanh(a + b)` for that pair instead, so the result is
//! always what tanh gives: finite for finite inputs, never `inf·0`.

use crate::math::exp::exp;
use crate::math::tanh::tanh;
use crate::simd::F32Vector;
use crate::simd::vector::{load_partial, store_partial};

/// The largest `|a_h|`, `|b_h|` for which the exp-product form is used.
pub(crate) const EXP_PRODUCT_LIMIT: f32 = 22.0;

/// Keys scored together: each loaded `A` and `w` vector serves this many
/// keys, and their sums are independent chains, so the adds' latency hides
/// behind each other. The same on every backend: on AVX-512 (one Zen 4
/// core, 2026-12-01, three alternating rounds, medians in ms, four keys
/// then eight) eight was mixed, add-batch about 4 % faster (13.5 / 13.1 /
/// 13.7 against 13.4 / 12.5 / 12.9) and add-long slower (10.1 / 9.9 / 10.3
/// against 11.2 / 10.1 / 11.9), and 4 queries × 4 keys at once was no
/// faster: the kernel is bound by its reciprocal and FMA operations, not by
/// loads.
const KEY_BLOCK: usize = 4;

/// One row's operands of the exp-product form: writes `exp_2x = e^{2x}` and
/// returns `max_h |x_h|` (`+inf` when a lane is NaN, so that the row fails
/// the [`EXP_PRODUCT_LIMIT`] test and takes the NaN-propagating direct
/// sum). One pass, on the caller's backend: the projections are read once,
/// while they are in cache. Each lane's exponential is the lane function
/// `exp(x + x)`, so the bits are those of `vmath::exp` on the doubled row.
#[inline(always)]
pub(crate) fn exp_of_double_row<V: F32Vector>(x: &[f32], exp_2x: &mut [f32]) -> f32 {
    let n = x.len();
    let exp_2x = &mut exp_2x[..n];
    let infinity = V::splat(f32::INFINITY);
    let magnitude = |v: V| V::select(v.is_nan(), infinity, v.abs());
    let mut largest = V::splat(0.0);
    let mut i = 0;
    while i + V::LANES <= n {
        // SAFETY: i + LANES <= n, and both slices hold n values.
        unsafe {
            let v = V::load(x.as_ptr().add(i));
            exp(v.add(v)).store(exp_2x.as_mut_ptr().add(i));
            largest = largest.max(magnitude(v));
        }
        i += V::LANES;
    }
    if i < n {
        let rest = n - i;
        // SAFETY: rest < LANES values remain in both slices from i on; the padding
        // lanes are 0, which changes no maximum of magnitudes.
        unsafe {
            let v = load_partial::<V>(x.as_ptr().add(i), rest, 0.0);
            store_partial(exp(v.add(v)), exp_2x.as_mut_ptr().add(i), rest);
            largest = largest.max(magnitude(v));
        }
    }
    largest.reduce_max()
}

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
///
/// Runs of [`KEY_BLOCK`] keys in the exp-product range go through
/// [`sum_over_keys`] together; every key gets the same operations whichever
/// way it is grouped, so its score never depends on its neighbours.
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
    let in_range = |j: usize| query.in_range && key_magnitude[j] <= EXP_PRODUCT_LIMIT;
    let product_form = |sum: f32| w.sum - 2.0 * sum;
    let mut j = 0;
    while j < out.len() {
        if j + KEY_BLOCK <= out.len() && (j..j + KEY_BLOCK).all(in_range) {
            let keys = core::array::from_fn(|r| &exp_2b[(j + r) * h..(j + r + 1) * h]);
            let sums = sum_over_keys::<V, KEY_BLOCK>(w.w, query.exp_2a, keys);
            for (s, sum) in out[j..j + KEY_BLOCK].iter_mut().zip(sums) {
                *s = product_form(sum);
            }
            j += KEY_BLOCK;
            continue;
        }
        let key = j * h..(j + 1) * h;
        out[j] = if in_range(j) {
            product_form(sum_over_keys::<V, 1>(w.w, query.exp_2a, [&exp_2b[key]])[0])
        } else {
            direct_sum::<V>(w.w, query.a, &b[key])
        };
        j += 1;
    }
}

/// `Σ_h w_h / (1 + A_h·B_jh)` for `N` keys at once, one accumulator each.
/// The tail is padded with `w = 0`, `A = B = 0`, whose term is 0.
#[inline(always)]
fn sum_over_keys<V: F32Vector, const N: usize>(w: &[f32], exp_2a: &[f32], keys: [&[f32]; N]) -> [f32; N] {
    let n = w.len();
    // Re-slicing proves the lengths the unsafe loads rely on.
    let exp_2a = &exp_2a[..n];
    let keys = keys.map(|k| &k[..n]);
    let one = V::splat(1.0);
    let mut acc = [V::splat(0.0); N];
    let term = |w: V, a: V, b: V, acc: V| a.mul_add(b, one).recip().mul_add(w, acc);
    let mut i = 0;
    while i + V::LANES <= n {
        // SAFETY: i + LANES <= n, and every slice holds n values.
        unsafe {
            let (wv, av) = (V::load(w.as_ptr().add(i)), V::load(exp_2a.as_ptr().add(i)));
            for (acc, key) in acc.iter_mut().zip(&keys) {
                *acc = term(wv, av, V::load(key.as_ptr().add(i)), *acc);
            }
        }
        i += V::LANES;
    }
    if i < n {
        let rest = n - i;
        // SAFETY: rest < LANES values remain in each slice from i on.
        unsafe {
            let wv = load_partial::<V>(w.as_ptr().add(i), rest, 0.0);
            let av = load_partial::<V>(exp_2a.as_ptr().add(i), rest, 0.0);
            for (acc, key) in acc.iter_mut().zip(&keys) {
                *acc = term(wv, av, load_partial::<V>(key.as_ptr().add(i), rest, 0.0), *acc);
            }
        }
    }
    // A plain loop: `array::map` here left the lane sums as calls outside
    // the backend's target features.
    let mut sums = [0.0; N];
    for (sum, acc) in sums.iter_mut().zip(acc) {
        *sum = acc.reduce_add();
    }
    sums
}

/// `Σ_h w_h · tanh(a_h + b_h)`, for a query or key past the exp-product
/// range. The tail is padded with zeros, whose term is 0.
#[inline(always)]
fn direct_sum<V: F32Vector>(w: &[f32], a: &[f32], b: &[f32]) -> f32 {
    let n = w.len();
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = V::splat(0.0);
    let mut i = 0;
    while i + V::LANES <= n {
        // SAFETY: i + LANES <= n, and all three slices hold n values.
        unsafe {
            let x = V::load(a.as_ptr().add(i)).add(V::load(b.as_ptr().add(i)));
            acc = acc.add(V::load(w.as_ptr().add(i)).mul(tanh(x)));
        }
        i += V::LANES;
    }
    if i < n {
        let rest = n - i;
        // SAFETY: rest < LANES values remain in each slice from i on.
        unsafe {
            let x =
                load_partial::<V>(a.as_ptr().add(i), rest, 0.0).add(load_partial::<V>(b.as_ptr().add(i), rest, 0.0));
            acc = acc.add(load_partial::<V>(w.as_ptr().add(i), rest, 0.0).mul(tanh(x)));
        }
    }
    acc.reduce_add()
}
