//! The attention operators users call: parameters, shapes and masks in,
//! output and (optionally) weights out, with scratch given by the caller.

mod additive;
mod shape;
mod valid_lens;

pub use additive::{AdditiveAttention, KeyCache};
pub use shape::AttentionShape;
pub use valid_lens::ValidLens;
