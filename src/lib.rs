//! A `no_std` attention engine for CPUs.
//!
//! The layers, bottom up (each uses only those below it):
//! - [`simd`]: the `f32` vector trait, its backends (AVX-512, AVX2+FMA,
//!   portable `wide`, scalar) and the runtime dispatch between them.
//! - [`vmath`]: hand-vectorised `tanh`, `exp` and `sigmoid` over slices.
//! - [`kernels`]: the numerically stable [`masked_softmax`](kernels::masked_softmax)
//!   and the register-blocked matmul tile.
//! - [`storage`]: how keys and values are stored (f32, bf16, f16, q8
//!   blocks), widened to f32 in registers as the kernels load them.
//! - [`gemm`]: `C = αAB + βC` over strided views, through `matrixmultiply`
//!   when `alloc` is on and our own blocked tiles otherwise.
//!
//! ```
//! use simd_attention::{kernels::{masked_softmax, Mask, ScoreShape}, vmath};
//!
//! let x = [-1.0f32, 0.0, 0.5, 2.0];
//! let mut y = [0.0f32; 4];
//! vmath::tanh(&x, &mut y)?;
//! assert!((y[3] - 2.0f32.tanh()).abs() < 1e-6);
//!
//! // Two rows of three scores; d2l valid_lens keep 2 keys in row 0, 3 in row 1.
//! let mut scores = [1.0f32, 2.0, 3.0, 0.0, 0.0, 0.0];
//! let shape = ScoreShape { batch: 2, queries: 1, keys: 3 };
//! masked_softmax(&mut scores, shape, Mask::ValidLens(&[2, 3]))?;
//! assert_eq!(scores[2], 0.0);
//! assert!((scores[3] - 1.0 / 3.0).abs() < 1e-7);
//! # Ok::<(), simd_attention::Error>(())
//! ```
//!
//! Features: `std` (default; implies `alloc`, adds std CPU detection, the
//! `SIMD_ATTENTION_BACKEND` override and rayon), `alloc` (matrixmultiply for
//! large GEMMs), `cli` (the `attn` binary), `capi` (C entry points over the
//! core, the `capi` module; the header is `include/simd_attention.h`).
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

#[cfg(feature = "std")]
#[doc(hidden)]
pub mod bench_kernels;
#[cfg(feature = "capi")]
pub mod capi;
mod error;
pub mod gemm;
#[cfg(feature = "std")]
pub mod io;
pub mod kernels;
mod math;
pub mod models;
pub mod ops;
#[cfg(feature = "std")]
pub mod par;
#[cfg(feature = "std")]
#[doc(hidden)]
pub mod roofline;
pub mod simd;
pub mod storage;

pub use error::Error;
pub use math::vmath;
pub use simd::Backend;

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// The backend the kernels run on in this thread, for example `avx512`.
pub fn backend() -> Backend {
    simd::active()
}
