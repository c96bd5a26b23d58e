//! Hand-vectorised `tanh`, `exp` and `sigmoid` over slices, on the active
//! backend.
//!
//! Accuracy against an f64 reference (checked by `tests/vmath_ulp.rs`):
//! `tanh` within 3 ulp over every finite f32, `exp` within 2 ulp on
//! [-87, 88], `sigmoid` within 3 ulp wherever its result is normal (below
//! that, within two subnormal steps). Special values: `tanh(±0) = ±0`,
//! `tanh(±inf) = ±1`, `exp(-inf) = 0`, `exp(+inf) = inf`, `sigmoid(±0) = ½`,
//! `sigmoid(+inf) = 1`, `sigmoid(-inf) = 0`, overflow gives `inf`, underflow
//! goes through the subnormals to 0, and NaN stays NaN.

use super::{exp, lanewise, sigmoid, tanh};
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

struct Sigmoid;
impl LaneFn for Sigmoid {
    #[inline(always)]
    fn apply<V: F32Vector>(x: V) -> V {
        sigmoid::sigmoid(x)
    }
}

/// `out[i] = F(input[i])` on the active backend, after the length check.
fn map<F: LaneFn>(input: &[f32], out: &mut [f32]) -> Result<(), Error> {
    expect_len("out", input.len(), out.len())?;
    simd::dispatch(MapSlice::<F>::new(input, out));
    Ok(())
}

/// `x[i] = F(x[i])` on the active backend.
fn map_in_place<F: LaneFn>(x: &mut [f32]) {
    simd::dispatch(MapSlice::<F>::in_place(x));
}

/// `out[i] = tanh(input[i])`. Errors if the lengths differ.
pub fn tanh(input: &[f32], out: &mut [f32]) -> Result<(), Error> {
    map::<Tanh>(input, out)
}

/// `x[i] = tanh(x[i])`.
pub fn tanh_in_place(x: &mut [f32]) {
    map_in_place::<Tanh>(x);
}

/// `out[i] = exp(input[i])`. Errors if the lengths differ.
pub fn exp(input: &[f32], out: &mut [f32]) -> Result<(), Error> {
    map::<Exp>(input, out)
}

/// `x[i] = exp(x[i])`.
pub fn exp_in_place(x: &mut [f32]) {
    map_in_place::<Exp>(x);
}

/// `out[i] = σ(input[i]) = 1/(1 + e^{−input[i]})`. Errors if the lengths
/// differ.
pub fn sigmoid(input: &[f32], out: &mut [f32]) -> Result<(), Error> {
    map::<Sigmoid>(input, out)
}

/// `x[i] = σ(x[i])`.
pub fn sigmoid_in_place(x: &mut [f32]) {
    map_in_place::<Sigmoid>(x);
}
