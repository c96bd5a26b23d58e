//! Row reductions used by the softmax: max, and the fused
//! `x ← exp(x − shift)` pass (or its base-2 form) that also returns the sum.
//!
//! Each keeps one accumulator vector and reduces its lanes with the
//! backend's fixed pairwise tree, so a backend always gives the same bits.

use super::exp::{exp_nonpositive, exp2_nonpositive};
use crate::simd::F32Vector;
use crate::simd::vector::{load_partial, store_partial};

/// The maximum of `x` (`-inf` for an empty slice). NaN lanes may be skipped.
#[inline(always)]
pub(crate) fn max<V: F32Vector>(x: &[f32]) -> f32 {
    let mut acc = V::splat(f32::NEG_INFINITY);
    let mut chunks = x.chunks_exact(V::LANES);
    for chunk in &mut chunks {
        // SAFETY: chunk holds exactly LANES values.
        acc = acc.max(unsafe { V::load(chunk.as_ptr()) });
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        // SAFETY: rest.len() < LANES readable values.
        acc = acc.max(unsafe { load_partial::<V>(rest.as_ptr(), rest.len(), f32::NEG_INFINITY) });
    }
    acc.reduce_max()
}

/// Replaces each `x[i]` by `exp(x[i] − shift)` and returns their sum.
/// `shift` must be at least every `x[i]` (the softmax's row maximum): the
/// exponent is then never positive, and results under `e^-87` are 0 (see
/// [`exp_nonpositive`]).
#[inline(always)]
pub(crate) fn exp_shifted_sum<V: F32Vector>(x: &mut [f32], shift: f32) -> f32 {
    shifted_sum::<V, false>(x, shift)
}

/// [`exp_shifted_sum`] in base 2, `2^{x[i] − shift}`, for scores already
/// scaled by `log2 e` (the flash loop's; see [`exp2_nonpositive`]).
#[inline(always)]
pub(crate) fn exp2_shifted_sum<V: F32Vector>(x: &mut [f32], shift: f32) -> f32 {
    shifted_sum::<V, true>(x, shift)
}

/// `x[i] ← e^{x[i] − shift}` (`2^…` with `BASE2`), returning the sum of
/// the results. The base is a const parameter, not a function passed in:
/// a function value leaves the exponential out of line, compiled without
/// the backend's target features (that made `add-long` 1.5× and
/// `sdpa-decode-q8` 1.5–1.9× slower until it was found).
#[inline(always)]
fn shifted_sum<V: F32Vector, const BASE2: bool>(x: &mut [f32], shift: f32) -> f32 {
    let shift = V::splat(shift);
    let mut acc = V::splat(0.0);
    let mut chunks = x.chunks_exact_mut(V::LANES);
    for chunk in &mut chunks {
        // SAFETY: chunk holds exactly LANES values.
        unsafe {
            let e = exp_in_base::<V, BASE2>(V::load(chunk.as_ptr()).sub(shift));
            e.store(chunk.as_mut_ptr());
            acc = acc.add(e);
        }
    }
    let rest = chunks.into_remainder();
    if !rest.is_empty() {
        // SAFETY: rest.len() < LANES values; the padding lanes are -inf, so their exp is 0.
        unsafe {
            let e = exp_in_base::<V, BASE2>(load_partial::<V>(rest.as_ptr(), rest.len(), f32::NEG_INFINITY).sub(shift));
            store_partial(e, rest.as_mut_ptr(), rest.len());
            acc = acc.add(e);
        }
    }
    acc.reduce_add()
}

/// `e^x`, or `2^x` with `BASE2`, for lanes `x ≤ 0`.
#[inline(always)]
fn exp_in_base<V: F32Vector, const BASE2: bool>(x: V) -> V {
    if BASE2 { exp2_nonpositive(x) } else { exp_nonpositive(x) }
}

/// `x[i] *= factor`.
#[inline(always)]
pub(crate) fn scale<V: F32Vector>(x: &mut [f32], factor: f32) {
    let lanes = V::splat(factor);
    let mut chunks = x.chunks_exact_mut(V::LANES);
    for chunk in &mut chunks {
        // SAFETY: chunk holds exactly LANES values.
        unsafe { V::load(chunk.as_ptr()).mul(lanes).store(chunk.as_mut_ptr()) };
    }
    for v in chunks.into_remainder() {
        *v *= factor;
    }
}
