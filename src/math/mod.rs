//! Vector math, written once over [`F32Vector`](crate::simd::F32Vector):
//! `exp`, `tanh`, `sigmoid`, and the row reductions the softmax needs.

pub(crate) mod exp;
pub(crate) mod lanewise;
pub(crate) mod reduce;
pub(crate) mod sigmoid;
pub(crate) mod tanh;
pub mod vmath;
