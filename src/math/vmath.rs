//! Hand-vectorised `tanh` and `exp` over slices, on the active backend.
//!
//! Accuracy against an f64 reference (checked by `tests/vmath_ulp.rs`):
//! `tanh` within 3 ulp over every finite f32, `exp` within 2 ulp on
//! [-87, 88]. Special values: `tanh(±0) = ±0`, `tanh(±inf) = ±1`,
//! `exp(-inf) = 0`, `exp(+inf) = inf`, overflow gives `inf`, underflow goes
//! through the subnormals to 0, and NaN stays NaN.

use super::{exp, lanewise, tanh};
use crate::Error;
use crate::error::expect_len;
use crate::simd::{self, F32Vector};
use lanewise::{LaneFn, MapSlice};

struct Tanh;
impl LaneFn for Tanh {
    #[inline(always)]
    fn apply<V: F32Vector>(x: V) -> V {
        tanh::tanh(x)
    }
}

struct Exp;
impl LaneFn for Exp {
    #[inline(always)]
    fn apply<V: F32Vector>(x: V) -> V {
        exp::exp(x)
    }
}

/// `out[i] = tanh(input[i])`. Errors if the lengths differ.
pub fn tanh(input: &[f32], out: &mut [f32]) -> Result<(), Error> {
    expect_len("out", input.len(), out.len())?;
    simd::dispatch(MapSlice::<Tanh>::new(input, out));
    Ok(())
}

/// `x[i] = tanh(x[i])`.
pub fn tanh_in_place(x: &mut [f32]) {
    simd::dispatch(MapSlice::<Tanh>::in_place(x));
}

/// `out[i] = exp(input[i])`. Errors if the lengths differ.
pub fn exp(input: &[f32], out: &mut [f32]) -> Result<(), Error> {
    expect_len("out", input.len(), out.len())?;
    simd::dispatch(MapSlice::<Exp>::new(input, out));
    Ok(())
}

/// `x[i] = exp(x[i])`.
pub fn exp_in_place(x: &mut [f32]) {
    simd::dispatch(MapSlice::<Exp>::in_place(x));
}
