//! Vector math, written once over [`F32Vector`](crate::simd::F32Vector):
//! `exp`, `tanh`, and the row reductions the softmax needs.

pub(crate) mod exp;
pub(crate) mod lanewise;
pub(crate) mod reduce;
pub(crate) mod tanh;
pub mod vmath;
