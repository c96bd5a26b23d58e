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

/// `exp(x)` for lanes already inside [`EXP_ARG_MIN`], [`EXP_ARG_MAX`] (no NaN).
#[inline(always)]
pub(crate) fn exp_in_range<V: F32Vector>(x: V) -> V {
    let n = round_to_integer(x.mul(V::splat(LOG2_E)));
    let r = n.mul_add(V::splat(-LN2_HI), x);
    let r = n.mul_add(V::splat(-LN2_LO), r);
    let mut p = V::splat(P[4]);
    p = p.mul_add(r, V::splat(P[3]));
    p = p.mul_add(r, V::splat(P[2]));
    p = p.mul_add(r, V::splat(P[1]));
    p = p.mul_add(r, V::splat(P[0]));
    let e_r = r.mul(r).mul_add(p, r).add(V::splat(1.0));
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
