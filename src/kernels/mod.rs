//! Kernels built on the vector math: the masked softmax and the
//! register-blocked matmul tile.

pub(crate) mod additive_score;
#[cfg(simd_attention_x86_backends)]
pub(crate) mod bf16_pair_tile;
pub(crate) mod matmul_tile;
pub(crate) mod online_softmax;
pub(crate) mod packed_panels;
#[cfg(simd_attention_x86_backends)]
pub(crate) mod q8_key_pass;
pub(crate) mod softmax;
pub(crate) mod streaming_row;

pub use softmax::{Mask, ScoreShape, masked_softmax};
