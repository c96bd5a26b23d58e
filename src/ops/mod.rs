//! The attention operators users call: parameters, shapes and masks in,
//! output and (optionally) weights out, with scratch given by the caller.
//! Each has a `workspace_len` that says how much scratch it needs, and
//! (with `alloc`) an `attend` that allocates everything itself.

pub(crate) mod additive;
#[cfg(feature = "alloc")]
mod attended;
mod attention;
mod bilinear;
mod dot;
mod kv_cache;
mod mha;
mod nadaraya_watson;
pub(crate) mod sdpa;
mod shape;
mod valid_lens;

pub use additive::{AdditiveAttention, KeyCache};
#[cfg(feature = "alloc")]
pub use attended::Attended;
pub use attention::{Attention, AttentionInputs};
pub use bilinear::BilinearAttention;
pub use dot::DotProductAttention;
pub use kv_cache::{CacheQuery, KvCache, KvCacheShape, KvCacheView};
pub use mha::{Linear, MhaDims, MultiHeadAttention};
pub use nadaraya_watson::NadarayaWatson;
pub use sdpa::{
    STREAM_MAX_QUERIES, ScaledDotProductAttention, SdpaInputs, SdpaMask, SdpaShape, TILE_KEYS, TILE_QUERIES,
};
pub use shape::AttentionShape;
pub use valid_lens::ValidLens;

/// True when a call has no observable result: an empty output and no (or
/// empty) weights. Such a call returns right after its checks, so a shape
/// like `batch = usize::MAX, queries = 0` never loops over its batch.
pub(crate) fn nothing_to_write(out: &[f32], weights: Option<&[f32]>) -> bool {
    out.is_empty() && weights.is_none_or(<[f32]>::is_empty)
}
