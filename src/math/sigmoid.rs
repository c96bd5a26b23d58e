//! `σ(x) = 1/(1 + e^{−x})` for every lane, within 3 ulp over every finite
//! f32 whose result is normal, and through the subnormals below that.
//!
//! With `t = e^{−|x|}` (in `(0, 1]`, so it never overflows):
//! `σ(x) = 1/(1 + t)` for `x ≥ 0` and `t/(1 + t)` for `x < 0`. One
//! exponential and one division, where `½ + ½·tanh(x/2)` costs a tanh (a
//! polynomial, an exponential, a division and two selects) and cancels for
//! negative `x`: `σ(−20) ≈ 2e-9` would come out as a difference of two
//! numbers near ½, most of its bits lost. Here the negative side is
//! `e^{x}` divided by a number in `[1, 2]`, as exact as the exponential.
//!
//! Special values: `σ(±0) = ½`, `σ(+inf) = 1`, `σ(−inf) = 0`, NaN stays NaN.

use super::exp::exp;
use crate::simd::F32Vector;

#[inline(always)]
pub(crate) fn sigmoid<V: F32Vector>(x: V) -> V {
    let one = V::splat(1.0);
    let t = exp(V::splat(0.0).sub(x.abs()));
    let numerator = V::select(x.lt(V::splat(0.0)), t, one);
    numerator.div(one.add(t))
}
