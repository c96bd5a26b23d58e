//! The fused additive (Bahdanau) score of one query against a run of keys:
//! `s_j = Σ_h w_h · tanh(a_h + b_jh)`, with `a = W_q q` and `b_j = W_k k_j`
//! already projected. The `(Q, K, H)` tensor of features is never formed.
//!
//! Since `tanh(u) = 1 − 2/(1 + e^{2u})` and `e^{2(a+b)} = e^{2a}·e^{2b}`,
//!
//! `s_j = Σ_h w_h − 2 Σ_h w_h / (1 + A_h·B_jh) = Σ_h w_h − 2 Σ_h 1 / (C_h + D_h·B_jh)`,
//!
//! with `B_j = e^{2b_j}` once per key (kept in the `KeyCache`), `C_h = 1/w_h`
//! once per call ([`fold_weights`]) and `D_h = e^{2a_h}·C_h` once per query
//! ([`fold_query`]). Folding `w` into the denominator leaves the inner loop
//! one FMA, one reciprocal ([`F32Vector::recip`]: an estimate and a Newton
//! step on AVX2/AVX-512) and one *add* per element, where `w_h / (1 +
//! A_h·B_jh)` needed a multiply-add to weight each term. On AMD's cores
//! the add runs on the two FP adders beside the two FMA pipes, so the FMA
//! pipes carry four operations a term instead of five; Intel's cores add
//! on the FMA ports, where the count per port is unchanged (unmeasured).
//! One Zen 3 core (avx2, 2026-12-03), `benches/alternate.sh -r 9` against
//! the earlier form: `add-long` 1.05×, `add-batch` 1.00× (its projections
//! dominate). Four keys share each loaded `C` and `D` vector
//! (`KEY_BLOCK`), and two vectors of terms share one reciprocal
//! (`pair_sum`: `1/x + 1/y = (x + y)/(x·y)`). Against one reciprocal a
//! term, on one Zen 4 core (2026-12-05): `cargo bench --bench kernels --
//! additive_score_tile` 11.41 → 13.05 G terms/s at H = 256 (1.14×) and
//! 7.09 → 7.59 at one query (1.07×); `benches/alternate.sh -r 5`,
//! avx512: `add-long` 1.066×, `add-decode` 1.024–1.057×, `add-batch`
//! within noise (its projections dominate); avx2 on the same core (`-r
//! 3`): `add-long` 1.062×, `add-decode` 1.00×. Four sums reduced at once
//! (`reduce_add4`'s shared shuffles) measured no faster on top of it.
//!
//! Weights below [`WEIGHT_FLOOR`] in magnitude (zeros among them) are left
//! out of the folded sum: their lanes take `C = DROPPED`, `D = 0`, whose
//! term is `2^-60` (the padding past `H` is the same); paired with a
//! kept lane `y` it adds nothing to `1/y`, and the exact term is below
//! `|w_h|`. The sum `Σ w_h` keeps them.
//!
//! The guard: the folded form is exact only while the product of two
//! terms' `C + D·B` stays inside the reciprocal's domain `[2^-126, 2^126]`,
//! so each within `[2^-63, 2^61]` (`|C_h| ≥ 2^-63` below
//! [`WEIGHT_CEILING`]). [`fold_weights`] derives from the largest `|C_h|`
//! the bound on `|a_h|` and `|b_jh|` that keeps it there, at most
//! [`EXP_PRODUCT_LIMIT`] (10; about 9.2 for weights near 0.01, and at
//! least 3.4 for any weight above the floor). A query or key
//! past it (saturated or hostile inputs, up to ±1e30), and every pair when a
//! weight is NaN or above [`WEIGHT_CEILING`], takes the direct `Σ w·tanh(a +
//! b)` instead, so the result is always what tanh gives: finite for finite
//! inputs, never `inf·0`.

use crate::math::exp::exp;
use crate::math::tanh::tanh;
use crate::simd::F32Vector;
use crate::simd::vector::{load_partial, store_partial};

/// The largest `|a_h|`, `|b_h|` for which the folded form is ever used.
pub(crate) const EXP_PRODUCT_LIMIT: f32 = 10.0;

/// Weights smaller in magnitude are left out of the folded sum.
pub(crate) const WEIGHT_FLOOR: f32 = 1.0 / (1u64 << 40) as f32;

/// A weight larger in magnitude (or NaN) sends every pair to the direct sum.
pub(crate) const WEIGHT_CEILING: f32 = (1u64 << 63) as f32;

/// `C` of the lanes left out, and of the padding: with `D = 0` their term
/// is `2^-60`, a normal number, so no lane ever computes with subnormals;
/// a power of two, so that a pair of it and a kept term `y` (`|y| <
/// 2^35`) gives `1/y` exactly; and at most `2^61`, the guard's bound.
const DROPPED: f32 = (1u64 << 60) as f32;

/// Keys scored together: each loaded `C` and `D` vector serves this many
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
/// the weights' limit test and takes the NaN-propagating direct
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

/// Writes `C_h = 1/w_h` (`DROPPED` below [`WEIGHT_FLOOR`]) to
/// `reciprocal` and returns the largest `|a_h|`, `|b_h|` for which the
/// folded form stays in the pairs' domain: `|C + D·B| ≤ C_max·(1 +
/// e^{4L}) ≤ 2^61` for `C_max = max |C_h|` (at least 1), capped at
/// [`EXP_PRODUCT_LIMIT`]; `-inf` when a weight is NaN or past
/// [`WEIGHT_CEILING`], so that every pair takes the direct sum. Once per
/// call: `H` divisions.
pub(crate) fn fold_weights(w: &[f32], reciprocal: &mut [f32]) -> f32 {
    let mut largest = 1.0f32;
    let mut usable = true;
    for (c, &w) in reciprocal[..w.len()].iter_mut().zip(w) {
        usable &= w.abs() <= WEIGHT_CEILING;
        *c = if w.abs() < WEIGHT_FLOOR { DROPPED } else { 1.0 / w };
        if w.abs() >= WEIGHT_FLOOR {
            largest = largest.max(c.abs());
        }
    }
    if !usable {
        return f32::NEG_INFINITY;
    }
    // 2^60 leaves a factor 2 for the `1 +` and the roundings.
    let headroom = libm::logf((1u64 << 60) as f32 / largest) / 4.0;
    EXP_PRODUCT_LIMIT.min(headroom)
}

/// Turns one query's `A = e^{2a}` into `D = A·C` in place (0 in the
/// dropped lanes), on the caller's backend.
#[inline(always)]
pub(crate) fn fold_query<V: F32Vector>(exp_2a: &mut [f32], reciprocal: &[f32]) {
    let n = exp_2a.len();
    let reciprocal = &reciprocal[..n];
    let kept = V::splat(DROPPED);
    let fold = |a: V, c: V| V::select(c.abs().lt(kept), a.mul(c), V::splat(0.0));
    let mut i = 0;
    while i + V::LANES <= n {
        // SAFETY: i + LANES <= n, and both slices hold n values.
        unsafe {
            let d = fold(V::load(exp_2a.as_ptr().add(i)), V::load(reciprocal.as_ptr().add(i)));
            d.store(exp_2a.as_mut_ptr().add(i));
        }
        i += V::LANES;
    }
    if i < n {
        let rest = n - i;
        // SAFETY: rest < LANES values remain in both slices from i on.
        unsafe {
            let a = load_partial::<V>(exp_2a.as_ptr().add(i), rest, 0.0);
            let d = fold(a, load_partial::<V>(reciprocal.as_ptr().add(i), rest, DROPPED));
            store_partial(d, exp_2a.as_mut_ptr().add(i), rest);
        }
    }
}

/// One projected query: `a`, its folded `D = e^{2a}·C` ([`fold_query`])
/// and whether `max |a_h|` is within the weights' limit.
#[derive(Clone, Copy)]
pub(crate) struct ProjectedQuery<'a> {
    pub a: &'a [f32],
    pub folded: &'a [f32],
    pub in_range: bool,
}

/// The scoring weights `w` (length H), their sum, their reciprocals `C`
/// and the limit on `|a_h|`, `|b_h|` ([`fold_weights`]).
#[derive(Clone, Copy)]
pub(crate) struct ScoreWeights<'a> {
    pub w: &'a [f32],
    pub sum: f32,
    pub reciprocal: &'a [f32],
    pub limit: f32,
}

/// `out[j] = s(query, key j)` for `j < out.len()`, where key `j` has
/// projection `b[j·H..]`, `B = exp_2b[j·H..]` and `max |b_jh|` in
/// `key_magnitude[j]`.
///
/// Runs of [`KEY_BLOCK`] keys in the folded form's range go through
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
    let in_range = |j: usize| query.in_range && key_magnitude[j] <= w.limit;
    let product_form = |sum: f32| w.sum - 2.0 * sum;
    let mut j = 0;
    while j < out.len() {
        if j + KEY_BLOCK <= out.len() && (j..j + KEY_BLOCK).all(in_range) {
            let keys = core::array::from_fn(|r| &exp_2b[(j + r) * h..(j + r + 1) * h]);
            let sums = sum_over_keys::<V, KEY_BLOCK>(w.reciprocal, query.folded, keys);
            for (s, sum) in out[j..j + KEY_BLOCK].iter_mut().zip(sums) {
                *s = product_form(sum);
            }
            j += KEY_BLOCK;
            continue;
        }
        let key = j * h..(j + 1) * h;
        out[j] = if in_range(j) {
            product_form(sum_over_keys::<V, 1>(w.reciprocal, query.folded, [&exp_2b[key]])[0])
        } else {
            direct_sum::<V>(w.w, query.a, &b[key])
        };
        j += 1;
    }
}

/// `Σ_h 1 / (C_h + D_h·B_jh)` for `N` keys at once, one accumulator each.
///
/// Two vectors of terms share one reciprocal: `1/x + 1/y = (x + y)·(1/(x·y))`
/// ([`pair_sum`]). The tail is padded like the dropped lanes (`C =
/// DROPPED`, `D = B = 0`), and an odd last vector is paired with a whole
/// vector of that padding.
#[inline(always)]
fn sum_over_keys<V: F32Vector, const N: usize>(reciprocal: &[f32], folded: &[f32], keys: [&[f32]; N]) -> [f32; N] {
    let n = folded.len();
    // Re-slicing proves the lengths the unsafe loads rely on (a plain loop:
    // a closure here may be left out of line, outside the backend's features).
    let reciprocal = &reciprocal[..n];
    let mut rows = keys;
    for row in rows.iter_mut() {
        *row = &row[..n];
    }
    let mut acc = [V::splat(0.0); N];
    let mut i = 0;
    while i + 2 * V::LANES <= n {
        // SAFETY: i + 2·LANES <= n, and every slice holds n values.
        unsafe {
            let (c0, d0) = (V::load(reciprocal.as_ptr().add(i)), V::load(folded.as_ptr().add(i)));
            let (c1, d1) = (V::load(reciprocal.as_ptr().add(i + V::LANES)), V::load(folded.as_ptr().add(i + V::LANES)));
            for (acc, key) in acc.iter_mut().zip(&rows) {
                let x = d0.mul_add(V::load(key.as_ptr().add(i)), c0);
                let y = d1.mul_add(V::load(key.as_ptr().add(i + V::LANES)), c1);
                *acc = pair_sum(x, y, *acc);
            }
        }
        i += 2 * V::LANES;
    }
    if i < n {
        let (first, second) = ((n - i).min(V::LANES), (n - i).saturating_sub(V::LANES));
        // SAFETY: first + second = n - i values remain in each slice from i on.
        unsafe {
            let c0 = load_partial::<V>(reciprocal.as_ptr().add(i), first, DROPPED);
            let d0 = load_partial::<V>(folded.as_ptr().add(i), first, 0.0);
            let c1 = load_partial::<V>(reciprocal.as_ptr().add(i + first), second, DROPPED);
            let d1 = load_partial::<V>(folded.as_ptr().add(i + first), second, 0.0);
            for (acc, key) in acc.iter_mut().zip(&rows) {
                let x = d0.mul_add(load_partial::<V>(key.as_ptr().add(i), first, 0.0), c0);
                let y = d1.mul_add(load_partial::<V>(key.as_ptr().add(i + first), second, 0.0), c1);
                *acc = pair_sum(x, y, *acc);
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

/// `acc + 1/x + 1/y`, as `acc + (x + y)·(1/(x·y))`: one reciprocal (an
/// estimate and a Newton step) for two terms, where the FMA pipes carried
/// the reciprocal's three operations for each. With `|x|`, `|y|` in
/// `[2^-63, 2^61]` ([`fold_weights`]' guard) the product stays normal and
/// the sum finite. The rounding is that of a division: `x + y` is exact
/// when the two nearly cancel (Sterbenz), so the pair is accurate to a few
/// ulp of its own value, as the two reciprocals were; and a padding lane
/// (`DROPPED`, a power of two far above the other) gives `1/y` exactly.
#[inline(always)]
fn pair_sum<V: F32Vector>(x: V, y: V, acc: V) -> V {
    x.add(y).mul_add(x.mul(y).recip(), acc)
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
