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
//! (`KEY_BLOCK`), and two vectors of terms share one quotient (`pair_sum`:
//! `1/x + 1/y = (x + y)/(x·y)`), a division on AMD and other cores and a
//! reciprocal estimate on Intel's ([`reciprocal_estimate_pays`]). The pairs
//! against one reciprocal a term, both by estimate, on one Zen 4 core
//! (2026-12-05): `cargo bench --bench kernels -- additive_score_tile`
//! 11.41 → 13.05 G terms/s at H = 256 (1.14×) and 7.09 → 7.59 at one
//! query (1.07×); `benches/alternate.sh -r 5`, avx512: `add-long` 1.066×,
//! `add-decode` 1.024–1.057×, `add-batch` within noise (its projections
//! dominate); avx2 on the same core (`-r 3`): `add-long` 1.062×,
//! `add-decode` 1.00×. Four sums reduced at once (`reduce_add4`'s shared
//! shuffles) measured no faster on top of it, and neither did four terms
//! a quotient (`((x+y)·zw + (z+w)·xy)/(xy·zw)`, 13.80 against 13.59 G
//! terms/s, 2026-12-05): the loop is bound by its count of vector
//! operations, about six for 32 terms either way, not by the divider.
//!
//! Weights below [`WEIGHT_FLOOR`] in magnitude (zeros among them) are left
//! out of the folded sum: their lanes take `C = DROPPED`, `D = 0`, whose
//! term is `2^-60` (the padding past `H` is the same); paired with a
//! kept lane `y` it adds nothing to `1/y`, and the exact term is below
//! `|w_h|`. The sum `Σ w_h` keeps them.
//!
//! The guard: the folded form is exact only while the product of two
//! terms' `C + D·B` stays normal, inside `[2^-126, 2^126]` (the estimate's
//! domain),
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
use crate::simd::vendor::{Vendor, vendor};

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
    let mut largest = V::splat(0.0);
    let mut i = 0;
    while i + V::LANES <= n {
        // SAFETY: i + LANES <= n, and both slices hold n values.
        unsafe {
            let v = V::load(x.as_ptr().add(i));
            exp(v.add(v)).store(exp_2x.as_mut_ptr().add(i));
            largest = largest.max(lane_magnitude(v));
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
            largest = largest.max(lane_magnitude(v));
        }
    }
    largest.reduce_max()
}

/// `|x|` per lane, `+inf` where a lane is NaN: what the limit test compares.
#[inline(always)]
fn lane_magnitude<V: F32Vector>(v: V) -> V {
    V::select(v.is_nan(), V::splat(f32::INFINITY), v.abs())
}

/// `max_h |x_h|` of a row (`+inf` when a lane is NaN), the magnitude
/// [`exp_of_double_row`] returns, for a row whose exponentials are at hand
/// (`bench_kernels`' score tile).
#[cfg(feature = "std")]
#[inline(always)]
pub(crate) fn row_magnitude<V: F32Vector>(x: &[f32]) -> f32 {
    let mut largest = V::splat(0.0);
    let mut chunks = x.chunks_exact(V::LANES);
    for chunk in &mut chunks {
        // SAFETY: chunk holds exactly LANES values.
        largest = largest.max(lane_magnitude(unsafe { V::load(chunk.as_ptr()) }));
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        // SAFETY: rest.len() < LANES readable values; the padding lanes are 0.
        largest = largest.max(lane_magnitude(unsafe { load_partial::<V>(rest.as_ptr(), rest.len(), 0.0) }));
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
    if reciprocal_estimate_pays() {
        score_keys_by::<V, true>(query, (b, exp_2b, key_magnitude), w, out);
    } else {
        score_keys_by::<V, false>(query, (b, exp_2b, key_magnitude), w, out);
    }
}

/// Whether a pair's `(x + y)/(x·y)` should multiply by a reciprocal
/// estimate (`vrcp14ps` and a Newton step) rather than divide: on Intel
/// cores only. On one Zen 4 core (2026-12-05) the division ran faster and
/// is correctly rounded: `cargo bench --bench kernels --
/// additive_score_tile` 12.53 → 13.87 G terms/s at H = 256 and 7.46 →
/// 7.81 at one query; `benches/alternate.sh -r 5` `add-long` 1.085×,
/// `add-batch` 1.038×, `add-decode` 1.024× on avx512, and 1.072×,
/// 1.044×, 1.037× on avx2. Intel's cores divide 512-bit vectors at a
/// fraction of that rate (unmeasured here), so they keep the estimate;
/// so does nothing else (without AVX the reciprocal is a division anyway).
/// One answer per core, so serial and parallel runs keep the same bits.
fn reciprocal_estimate_pays() -> bool {
    vendor() == Vendor::Intel
}

/// [`score_keys`] with the pairs' quotient by reciprocal estimate
/// (`ESTIMATE`) or by division.
#[inline(always)]
pub(crate) fn score_keys_by<V: F32Vector, const ESTIMATE: bool>(
    query: ProjectedQuery<'_>,
    (b, exp_2b, key_magnitude): (&[f32], &[f32], &[f32]),
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
            let sums = sum_over_keys::<V, KEY_BLOCK, ESTIMATE>(w.reciprocal, query.folded, keys);
            for (s, sum) in out[j..j + KEY_BLOCK].iter_mut().zip(sums) {
                *s = product_form(sum);
            }
            j += KEY_BLOCK;
            continue;
        }
        let key = j * h..(j + 1) * h;
        out[j] = if in_range(j) {
            product_form(sum_over_keys::<V, 1, ESTIMATE>(w.reciprocal, query.folded, [&exp_2b[key]])[0])
        } else {
            direct_sum::<V>(w.w, query.a, &b[key])
        };
        j += 1;
    }
}

/// `Σ_h 1 / (C_h + D_h·B_jh)` for `N` keys at once, one accumulator each.
///
/// Two vectors of terms share one quotient: `1/x + 1/y = (x + y)/(x·y)`
/// ([`pair_sum`]). The tail is padded like the dropped lanes (`C =
/// DROPPED`, `D = B = 0`), and an odd last vector is paired with a whole
/// vector of that padding.
#[inline(always)]
fn sum_over_keys<V: F32Vector, const N: usize, const ESTIMATE: bool>(
    reciprocal: &[f32],
    folded: &[f32],
    keys: [&[f32]; N],
) -> [f32; N] {
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
                *acc = pair_sum::<V, ESTIMATE>(x, y, *acc);
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
                *acc = pair_sum::<V, ESTIMATE>(x, y, *acc);
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

/// `acc + 1/x + 1/y`, as `acc + (x + y)/(x·y)`: one quotient for two
/// terms, by division or (`ESTIMATE`) by a reciprocal estimate and a
/// Newton step ([`reciprocal_estimate_pays`]), where the estimate took
/// three operations of the FMA pipes for each term. With `|x|`, `|y|` in
/// `[2^-63, 2^61]` ([`fold_weights`]' guard) the product stays normal and
/// the sum finite. `x + y` is exact when the two nearly cancel (Sterbenz),
/// so the pair is accurate to an ulp or two of its own value; and a padding
/// lane (`DROPPED`, a power of two far above the other) gives `1/y`
/// exactly.
#[inline(always)]
fn pair_sum<V: F32Vector, const ESTIMATE: bool>(x: V, y: V, acc: V) -> V {
    if ESTIMATE { x.add(y).mul_add(x.mul(y).recip(), acc) } else { acc.add(x.add(y).div(x.mul(y))) }
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

#[cfg(test)]
mod tests {
    extern crate std;
    use super::{ProjectedQuery, ScoreWeights, exp_of_double_row, fold_query, fold_weights, score_keys_by};
    use crate::simd::{Backend, F32Vector, WithSimd, dispatch_on};
    use std::vec;
    use std::vec::Vec;

    /// One query's scores against `keys` rows of `b`, by either quotient.
    struct Scores<'a> {
        a: &'a [f32],
        b: &'a [f32],
        w: &'a [f32],
        estimate: bool,
    }

    impl WithSimd for Scores<'_> {
        type Output = Vec<f32>;

        fn run<V: F32Vector>(self) -> Vec<f32> {
            let h = self.w.len();
            let mut reciprocal = vec![0.0; h];
            let limit = fold_weights(self.w, &mut reciprocal);
            let mut folded = vec![0.0; h];
            let in_range = exp_of_double_row::<V>(self.a, &mut folded) <= limit;
            fold_query::<V>(&mut folded, &reciprocal);
            let keys = self.b.len() / h;
            let mut exp_2b = vec![0.0; keys * h];
            let magnitude: Vec<f32> = (0..keys)
                .map(|j| exp_of_double_row::<V>(&self.b[j * h..(j + 1) * h], &mut exp_2b[j * h..(j + 1) * h]))
                .collect();
            let query = ProjectedQuery { a: self.a, folded: &folded, in_range };
            let w = ScoreWeights { w: self.w, sum: self.w.iter().sum(), reciprocal: &reciprocal, limit };
            let mut out = vec![0.0; keys];
            if self.estimate {
                score_keys_by::<V, true>(query, (self.b, &exp_2b, &magnitude), w, &mut out);
            } else {
                score_keys_by::<V, false>(query, (self.b, &exp_2b, &magnitude), w, &mut out);
            }
            out
        }
    }

    /// Both quotients, on every backend this CPU has (whatever its maker,
    /// which picks one of them in calls), match `Σ w·tanh(a + b)` in f64:
    /// odd widths (pairs of a vector and padding, or of two partial ones),
    /// blocks of four keys and single ones, dropped weights, and inputs up
    /// to and past the folded form's limit.
    #[test]
    fn both_quotients_match_the_direct_sum() {
        let mut state = 0x9E37_79B9_u32;
        let mut uniform = move |s: f32| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            ((state >> 8) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0) * s
        };
        for h in [1, 7, 16, 17, 31, 32, 33, 40, 64, 100] {
            for spread in [1.0f32, 4.0, 9.5, 30.0] {
                let w: Vec<f32> = (0..h)
                    .map(|i| {
                        if i % 11 == 3 {
                            0.0
                        } else if i % 13 == 5 {
                            1e-13
                        } else {
                            uniform(0.3)
                        }
                    })
                    .collect();
                let a: Vec<f32> = (0..h).map(|_| uniform(spread)).collect();
                let keys = 9;
                let b: Vec<f32> = (0..keys * h).map(|_| uniform(spread)).collect();
                let scale: f64 = w.iter().map(|&x| f64::from(x.abs())).sum::<f64>() + 1e-3;
                for backend in Backend::ALL.into_iter().filter(|b| b.is_available()) {
                    for estimate in [false, true] {
                        let got = dispatch_on(backend, Scores { a: &a, b: &b, w: &w, estimate });
                        for (j, &s) in got.iter().enumerate() {
                            let want: f64 = (0..h)
                                .map(|i| f64::from(w[i]) * (f64::from(a[i]) + f64::from(b[j * h + i])).tanh())
                                .sum();
                            let err = (f64::from(s) - want).abs();
                            assert!(
                                err <= 2e-6 * scale,
                                "{backend:?}, estimate {estimate}, H {h}, spread {spread}: key {j} {s} vs {want}"
                            );
                        }
                    }
                }
            }
        }
    }
}
