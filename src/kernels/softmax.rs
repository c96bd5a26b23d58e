//! Row-wise masked softmax over `(batch, queries, keys)` scores, in place.
//!
//! `w_j = exp(s_j − m) / Σ_k exp(s_k − m)` with `m` the row maximum, so no
//! row overflows. Masked keys get weight exactly 0. The mask forms and their
//! edge cases follow the two references this crate is tested against:
//!
//! | mask | row with no key left |
//! |---|---|
//! | d2l `valid_lens` (`(B,)` or `(B, Q)`) | `valid_len = 0`: uniform `1/K` (d2l fills −1e6) |
//! | PyTorch bool (`true` = key takes part) | zeros |
//! | additive float | zeros if every score becomes −inf |
//! | causal, top-left | never happens: query `i` always sees key 0 |
//!
//! A `valid_len ≥ K` masks nothing. A NaN score makes its own row NaN (unless
//! the mask hides it) and touches no other row. A row whose kept scores are
//! all −inf is treated like a fully masked PyTorch row: zeros.

use crate::error::{Error, checked_mul, expect_len};
use crate::math::reduce;
use crate::simd::{self, F32Vector, WithSimd};

/// The shape of a score tensor: `batch × queries` rows of `keys` scores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScoreShape {
    /// `B`.
    pub batch: usize,
    /// `Q`, rows per batch entry.
    pub queries: usize,
    /// `K`, scores per row.
    pub keys: usize,
}

impl ScoreShape {
    /// `B·Q`, or an overflow error.
    pub fn rows(self) -> Result<usize, Error> {
        checked_mul("shape", self.batch, self.queries)
    }

    /// `B·Q·K`, or an overflow error.
    pub fn elements(self) -> Result<usize, Error> {
        checked_mul("shape", self.rows()?, self.keys)
    }
}

/// Which keys each row may attend to.
#[derive(Clone, Copy, Debug)]
pub enum Mask<'a> {
    /// Every key.
    None,
    /// d2l `valid_lens` of shape `(B,)`: row `(b, q)` keeps keys `< lens[b]`.
    ValidLens(&'a [usize]),
    /// d2l `valid_lens` of shape `(B, Q)`: row `(b, q)` keeps keys `< lens[b·Q + q]`.
    ValidLensPerQuery(&'a [usize]),
    /// PyTorch bool mask, `true` where the key takes part: shape `(Q, K)`
    /// (shared by every batch entry) or `(B, Q, K)`.
    Keep(&'a [bool]),
    /// Float mask added to the scores: shape `(Q, K)` or `(B, Q, K)`.
    Additive(&'a [f32]),
    /// Query `i` keeps keys `0..=i` (PyTorch `is_causal`, aligned top-left).
    Causal,
}

/// Turns `scores` (shape `shape`) into attention weights, row by row.
///
/// Errors, before anything is written, if `scores` does not hold
/// `B·Q·K` values, if a mask has the wrong length, or if a size overflows.
pub fn masked_softmax(scores: &mut [f32], shape: ScoreShape, mask: Mask<'_>) -> Result<(), Error> {
    let len = shape.elements()?;
    expect_len("scores", len, scores.len())?;
    check_mask(shape, mask)?;
    if len == 0 {
        return Ok(());
    }
    simd::dispatch(SoftmaxRows { scores, shape, mask });
    Ok(())
}

fn check_mask(shape: ScoreShape, mask: Mask<'_>) -> Result<(), Error> {
    let per_batch = checked_mul("shape", shape.queries, shape.keys)?;
    let full = shape.elements()?;
    let matrix_len = |arg, actual: usize| {
        if actual == per_batch || actual == full { Ok(()) } else { Err(Error::Length { arg, expected: full, actual }) }
    };
    match mask {
        Mask::None | Mask::Causal => Ok(()),
        Mask::ValidLens(lens) => expect_len("valid_lens", shape.batch, lens.len()),
        Mask::ValidLensPerQuery(lens) => expect_len("valid_lens", shape.rows()?, lens.len()),
        Mask::Keep(keep) => matrix_len("mask", keep.len()),
        Mask::Additive(add) => matrix_len("mask", add.len()),
    }
}

struct SoftmaxRows<'a> {
    scores: &'a mut [f32],
    shape: ScoreShape,
    mask: Mask<'a>,
}

impl WithSimd for SoftmaxRows<'_> {
    type Output = ();

    #[inline(always)]
    fn run<V: F32Vector>(self) {
        let ScoreShape { queries, keys, .. } = self.shape;
        let per_batch = queries * keys;
        for (r, row) in self.scores.chunks_exact_mut(keys).enumerate() {
            let (b, q) = (r / queries, r % queries);
            // Offset of this row inside a (Q, K) or (B, Q, K) mask.
            let mask_row = |len: usize| if len == per_batch { q * keys } else { r * keys };
            match self.mask {
                Mask::None => softmax_row::<V>(row),
                Mask::ValidLens(lens) => valid_prefix_row::<V>(row, lens[b]),
                Mask::ValidLensPerQuery(lens) => valid_prefix_row::<V>(row, lens[r]),
                Mask::Causal => valid_prefix_row::<V>(row, q + 1),
                Mask::Keep(keep) => {
                    let start = mask_row(keep.len());
                    for (s, &k) in row.iter_mut().zip(&keep[start..start + keys]) {
                        if !k {
                            *s = f32::NEG_INFINITY;
                        }
                    }
                    softmax_row::<V>(row);
                }
                Mask::Additive(add) => {
                    let start = mask_row(add.len());
                    for (s, &a) in row.iter_mut().zip(&add[start..start + keys]) {
                        *s += a;
                    }
                    softmax_row::<V>(row);
                }
            }
        }
    }
}

/// d2l semantics: keep the first `valid` keys; none kept means uniform.
#[inline(always)]
fn valid_prefix_row<V: F32Vector>(row: &mut [f32], valid: usize) {
    if valid == 0 {
        row.fill(1.0 / row.len() as f32);
        return;
    }
    let (kept, masked) = row.split_at_mut(valid.min(row.len()));
    softmax_row::<V>(kept);
    masked.fill(0.0);
}

/// Stable softmax of one row; an all −inf row becomes zeros.
#[inline(always)]
pub(crate) fn softmax_row<V: F32Vector>(row: &mut [f32]) {
    let max = reduce::max::<V>(row);
    if max == f32::NEG_INFINITY {
        // The vector max may skip NaN lanes, so look again before calling the
        // row fully masked: a NaN row must stay NaN.
        let fill = if row.iter().any(|v| v.is_nan()) { f32::NAN } else { 0.0 };
        row.fill(fill);
        return;
    }
    let sum = reduce::exp_shifted_sum::<V>(row, max);
    reduce::scale::<V>(row, 1.0 / sum);
}
