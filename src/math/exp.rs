//! `exp(x)` for every lane, within 2 ulp on [-87, 88].
//!
//! Range reduction: `x = n·ln2 + r` with `n = round(x·log2 e)` and
//! `|r| ≤ ln2/2`, using a Cody–Waite split of ln2 whose high part has 9
//! significant bits, so `n·LN2_HI` is exact even without FMA (the portable
//! backend on baseline x86_64). Then `e^r = 1 + r + r²·P(r)` with a degree-4
//! `P` fitted (relative minimax on [-ln2/2, ln2/2], error about 0.06 ulp)
//! for this crate, and `2^n` is built from exponent bits in two halves so
//! that `n` from -151 to 128 works: results overflow to `inf` and underflow
//! through the subnormals to 0 with a single rounding.

use crate::simd::F32Vector;

const LOG2_E: f32 = core::f32::consts::LOG2_E;
/// ln 2 = LN2_HI + LN2_LO; LN2_HI = 355/512 has 9 significant bits.
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// 1.5·2²³: adding it rounds a float of magnitude < 2²² to an integer, held
/// in the low mantissa bits.
const ROUND_MAGIC: f32 = 12_582_912.0;
/// Below this, `exp` is 0 in f32 (e^-105 < half the smallest subnormal).
pub(crate) const EXP_ARG_MIN: f32 = -105.0;
/// Above this, `exp` is `inf` in f32 (e^89 > f32::MAX).
pub(crate) const EXP_ARG_MAX: f32 = 89.0;
/// `e^r = 1 + r + r²·(P0 + P1 r + P2 r² + P3 r³ + P4 r⁴)`.
const P: [f32; 5] = [0.499_999_97, 0.166_665_21, 0.041_667_227, 0.008_368_693, 0.001_387_969];

/// Rounds integral-valued lanes of magnitude < 2²² to the nearest integer.
#[inline(always)]
fn round_to_integer<V: F32Vector>(x: V) -> V {
    x.add(V::splat(ROUND_MAGIC)).sub(V::splat(ROUND_MAGIC))
}

/// `2^k` for integral `k` in [-126, 127].
#[inline(always)]
fn pow2<V: F32Vector>(k: V) -> V {
    // k + MAGIC + 127 holds the biased exponent in its low mantissa bits.
    k.add(V::splat(ROUND_MAGIC + 127.0)).shl_23()
}

/// `e^r` for `r = x − n·ln2`, with `n` integral and `|r| ≤ ln2/2` or so.
#[inline(always)]
fn exp_remainder<V: F32Vector>(x: V, n: V) -> V {
    let r = n.mul_add(V::splat(-LN2_HI), x);
    let r = n.mul_add(V::splat(-LN2_LO), r);
    let mut p = V::splat(P[4]);
    p = p.mul_add(r, V::splat(P[3]));
    p = p.mul_add(r, V::splat(P[2]));
    p = p.mul_add(r, V::splat(P[1]));
    p = p.mul_add(r, V::splat(P[0]));
    r.mul(r).mul_add(p, r).add(V::splat(1.0))
}

/// `exp(x)` for lanes already inside [`EXP_ARG_MIN`], [`EXP_ARG_MAX`] (no NaN).
#[inline(always)]
pub(crate) fn exp_in_range<V: F32Vector>(x: V) -> V {
    let n = round_to_integer(x.mul(V::splat(LOG2_E)));
    let e_r = exp_remainder(x, n);
    // n in [-152, 129] splits into two halves in [-76, 65]: both powers are
    // normal, and the last multiply rounds once into the subnormals or inf.
    let half = round_to_integer(n.mul(V::splat(0.5)));
    e_r.mul(pow2(half)).mul(pow2(n.sub(half)))
}

/// `exp(x)` for every lane: NaN stays NaN, `-inf` gives 0, `+inf` gives `inf`.
#[inline(always)]
pub(crate) fn exp<V: F32Vector>(x: V) -> V {
    let clamped = x.max(V::splat(EXP_ARG_MIN)).min(V::splat(EXP_ARG_MAX));
    V::select(x.is_nan(), x, exp_in_range(clamped))
}

/// Below this, [`exp_nonpositive`] gives 0: `e^-87 ≈ 1.6e-38` is still
/// above the smallest normal float (`2^-126 ≈ 1.2e-38`).
pub(crate) const NONPOSITIVE_ARG_MIN: f32 = -87.0;

/// `exp(x)` for lanes `x ≤ 0`, the softmax's `s − max`: within 2 ulp down to
/// [`NONPOSITIVE_ARG_MIN`] and 0 below it (so `-inf` gives 0); NaN stays NaN.
///
/// It skips what [`exp`] spends on positive arguments and subnormal
/// results: no clamps, and `2^n` comes in one piece from the bits of the
/// rounding sum itself. The
/// price is that results under `e^-87` flush to 0 instead of going through
/// the subnormals: an absolute error below 2e-38 in a softmax weight, whose
/// row sum is at least 1. Lanes above 88 give garbage.
///
/// What a cheaper one could gain the flash loop, measured as a bound: with
/// this call replaced by a multiply (wrong results, a throwaway build), one
/// Zen 4 core (2026-12-04, `benches/alternate.sh -r 3`) ran `sdpa-512`
/// 1.10× and `sdpa-causal-2048` 1.06× faster. The flash loop now takes
/// [`exp2_nonpositive`], with about a third fewer operations.
#[inline(always)]
pub(crate) fn exp_nonpositive<V: F32Vector>(x: V) -> V {
    // The rounding sum holds n + 127, with n = round(x·log2 e), in its low
    // mantissa bits; shifted into the exponent field, that is 2^n.
    const BIASED_MAGIC: f32 = ROUND_MAGIC + 127.0;
    let t = x.mul_add(V::splat(LOG2_E), V::splat(BIASED_MAGIC));
    let n = t.sub(V::splat(BIASED_MAGIC));
    let value = exp_remainder(x, n).mul(t.shl_23());
    V::select(x.lt(V::splat(NONPOSITIVE_ARG_MIN)), V::splat(0.0), value)
}

/// `2^r = 1 + r·(Q0 + Q1 r + … + Q5 r⁵)` on `[−½, ½]`: a degree-6 fit of
/// the relative error (Lawson-weighted least squares, about 2e-9) made for
/// this crate; evaluated in f32 it is within 0.94 ulp of `2^r`.
// Q0 came out as ln 2 rounded to f32, as the Taylor series has it.
const Q: [f32; 6] =
    [core::f32::consts::LN_2, 0.240_226_48, 0.055_503_324, 0.009_618_438, 0.001_339_887_6, 0.000_153_532_86];

/// `2^x` for lanes `x ≤ 0`: the flash loop's softmax, whose scores come
/// scaled by `log2 e` so that `e^{s − m} = 2^{s' − m'}`. While the result
/// is normal (`x ≥ −126`): within 1 ulp on the backends with a fused
/// multiply-add (0.93 measured), 2 on the others (1.19 measured); below,
/// 0 or (AVX-512) the subnormal the exact power rounds to. `−inf` gives
/// 0, NaN stays NaN.
///
/// No `ln 2` to split: [`F32Vector::round_split`] and
/// [`F32Vector::mul_pow2`] are AVX-512's `vrndscaleps` (after a clamp) and
/// `vscalefps`, so a vector costs 10 operations where [`exp_nonpositive`]
/// takes 15 (the flash loop's measured gain is documented where it calls
/// this, in `ops::sdpa::flash`).
#[inline(always)]
pub(crate) fn exp2_nonpositive<V: F32Vector>(x: V) -> V {
    let (n, r) = x.round_split();
    let mut p = V::splat(Q[5]);
    for &q in Q[..5].iter().rev() {
        p = p.mul_add(r, V::splat(q));
    }
    p.mul_add(r, V::splat(1.0)).mul_pow2(n)
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::{NONPOSITIVE_ARG_MIN, exp_nonpositive, exp2_nonpositive};
    use crate::simd::vector::MAX_LANES;
    use crate::simd::{Backend, F32Vector, WithSimd, dispatch_on};
    use std::vec::Vec;

    /// `exp_nonpositive` (or, with `base2`, `exp2_nonpositive`) of every
    /// value, on one backend.
    struct Nonpositive<'a> {
        xs: &'a [f32],
        base2: bool,
    }

    impl WithSimd for Nonpositive<'_> {
        type Output = Vec<f32>;

        #[inline(always)]
        fn run<V: F32Vector>(self) -> Vec<f32> {
            let mut out = Vec::new();
            for chunk in self.xs.chunks_exact(V::LANES) {
                let mut got = [0.0f32; MAX_LANES];
                // SAFETY: chunk holds LANES values.
                let x = unsafe { V::load(chunk.as_ptr()) };
                let y = if self.base2 { exp2_nonpositive(x) } else { exp_nonpositive(x) };
                // SAFETY: got holds MAX_LANES >= LANES values.
                unsafe { y.store(got.as_mut_ptr()) };
                out.extend_from_slice(&got[..V::LANES]);
            }
            out
        }
    }

    /// Distance of `y` from `exact` in ulps of the f32 nearest `exact`.
    fn ulps(y: f32, exact: f64) -> f64 {
        let ulp = f64::from(f32::from_bits((exact as f32).to_bits() + 1) - exact as f32);
        (f64::from(y) - exact).abs() / ulp
    }

    /// 2 ulp over [-87, 0], 0 below, and NaN kept, on every backend here.
    #[test]
    fn exp_nonpositive_is_within_two_ulp_and_flushes_below_its_range() {
        let mut xs: Vec<f32> = (0..=1 << 20).map(|i| NONPOSITIVE_ARG_MIN * i as f32 / (1 << 20) as f32).collect();
        // Every float near 0 and near the flush threshold, and the specials.
        xs.extend((0..4096u32).map(|b| -f32::from_bits(b * 4096)));
        xs.extend((0..4096u32).map(|b| f32::from_bits(NONPOSITIVE_ARG_MIN.to_bits() - 2048 + b)));
        xs.extend([f32::NEG_INFINITY, f32::NAN, -1e30, f32::MIN, -0.0]);
        xs.resize(xs.len().next_multiple_of(16), 0.0);
        for backend in Backend::ALL.into_iter().filter(|b| b.is_available()) {
            let got = dispatch_on(backend, Nonpositive { xs: &xs, base2: false });
            for (&x, &y) in xs.iter().zip(&got) {
                if x.is_nan() {
                    assert!(y.is_nan(), "{backend:?}: exp({x}) = {y}");
                } else if x < NONPOSITIVE_ARG_MIN {
                    assert_eq!(y, 0.0, "{backend:?}: exp({x}) should flush to 0");
                } else {
                    let exact = f64::from(x).exp();
                    let err = ulps(y, exact);
                    assert!(err <= 2.0, "{backend:?}: exp({x}) = {y}, {err} ulp from {exact}");
                }
            }
        }
    }

    /// 1 ulp over [-126, 0] (where 2^x is normal) on the backends with a
    /// fused multiply-add, 2 on the others; below, 0 or within an ulp of the
    /// subnormal 2^x rounds to; -inf gives 0 and NaN stays NaN.
    #[test]
    fn exp2_nonpositive_is_within_an_ulp_while_normal_with_fma() {
        let mut xs: Vec<f32> = (0..=1 << 21).map(|i| -126.0 * i as f32 / (1 << 21) as f32).collect();
        // Every float near 0, the subnormal range and the specials.
        xs.extend((0..4096u32).map(|b| -f32::from_bits(b * 4096)));
        xs.extend((0..4096).map(|i| -126.0 - 25.0 * i as f32 / 4096.0));
        xs.extend([f32::NEG_INFINITY, f32::NAN, -1e30, f32::MIN, -0.0, -0.5, -1.5, -2.5]);
        xs.resize(xs.len().next_multiple_of(16), 0.0);
        for backend in Backend::ALL.into_iter().filter(|b| b.is_available()) {
            let got = dispatch_on(backend, Nonpositive { xs: &xs, base2: true });
            let bound = if matches!(backend, Backend::Avx512 | Backend::Avx2) { 1.0 } else { 2.0 };
            let mut worst = 0.0f64;
            for (&x, &y) in xs.iter().zip(&got) {
                let exact = f64::from(x).exp2();
                if x.is_nan() {
                    assert!(y.is_nan(), "{backend:?}: exp2({x}) = {y}");
                } else if x < -126.0 {
                    let subnormal = exact as f32;
                    let off = (y.to_bits() as i64 - subnormal.to_bits() as i64).abs();
                    assert!(y == 0.0 || off <= 1, "{backend:?}: exp2({x}) = {y:e}, not 0 or {subnormal:e}");
                } else {
                    let err = ulps(y, exact);
                    worst = worst.max(err);
                    assert!(err <= bound, "{backend:?}: exp2({x}) = {y}, {err} ulp from {exact}");
                }
            }
            std::eprintln!("{backend:?}: exp2_nonpositive within {worst:.3} ulp");
        }
    }
}
