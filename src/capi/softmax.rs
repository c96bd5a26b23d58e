//! The masked softmax, in place over a C buffer of scores
//! (`kernels::masked_softmax`).

use super::buffer::{Buffer, disjoint};
use super::mask::{CheckedMask, MaskFor, simd_attention_mask};
use super::run;
use crate::kernels::{ScoreShape, masked_softmax};
use core::ffi::c_int;

/// The shape of a score tensor: `batch × queries` rows of `keys` scores.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct simd_attention_score_shape {
    /// `B`.
    pub batch: usize,
    /// `Q`, rows per batch entry.
    pub queries: usize,
    /// `K`, scores per row.
    pub keys: usize,
}

impl From<simd_attention_score_shape> for ScoreShape {
    fn from(s: simd_attention_score_shape) -> Self {
        ScoreShape { batch: s.batch, queries: s.queries, keys: s.keys }
    }
}

/// Turns `scores` `(B, Q, K)` into attention weights, row by row, in
/// place: `w_j = exp(s_j - m) / sum_k exp(s_k - m)` over the keys the mask
/// keeps, masked keys getting weight exactly 0. `mask` is `NULL` (every
/// key) or of kind `SIMD_ATTENTION_MASK_NONE`, `_VALID_LENS` (`(B,)`),
/// `_VALID_LENS_PER_QUERY` (`(B, Q)`), `_KEEP` or `_ADDITIVE` (`(Q, K)`
/// shared by the batch, or `(B, Q, K)`), or `_CAUSAL`. A `valid_len` of 0
/// gives the row uniform weights `1/K` (d2l); a row that a bool mask
/// hides entirely gives zeros (PyTorch).
///
/// # Safety
/// `scores` must be `NULL` (refused unless `scores_len` is 0) or valid for
/// reads and writes of `scores_len` floats; `mask` must be `NULL` or point
/// to a readable descriptor whose data is readable for its `len`. No
/// buffer may be written by another thread during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn simd_attention_masked_softmax(
    scores: *mut f32,
    scores_len: usize,
    shape: simd_attention_score_shape,
    mask: *const simd_attention_mask,
) -> c_int {
    run(|| {
        let scores = Buffer::new_mut(scores, scores_len)?;
        // SAFETY: `mask` as the caller promises.
        let mask = unsafe { CheckedMask::from_ptr(mask, MaskFor::Softmax)? };
        disjoint(&[scores.bytes()], &[mask.bytes()])?;
        // SAFETY: the mask's data as the caller promises.
        let mask = unsafe { mask.view()? }.softmax()?;
        // SAFETY: a checked buffer, valid as the caller promises, that
        // overlaps the mask nowhere (`disjoint`).
        let scores = unsafe { scores.as_mut_slice() };
        masked_softmax(scores, shape.into(), mask)?;
        Ok(())
    })
}
