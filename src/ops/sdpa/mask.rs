//! SDPA's masks: the checks of a call's mask, and one head's view of it.

use super::{SdpaMask, SdpaShape};
use crate::error::{Error, expect_len};

pub(super) fn check_mask(shape: &SdpaShape, mask: &SdpaMask<'_>) -> Result<(), Error> {
    let (len, batch, heads) = match *mask {
        SdpaMask::None | SdpaMask::Causal | SdpaMask::CausalLowerRight => return Ok(()),
        SdpaMask::Keep { mask, batch, heads } => (mask.len(), batch, heads),
        SdpaMask::Additive { mask, batch, heads } => (mask.len(), batch, heads),
    };
    if batch != 1 && batch != shape.batch {
        return Err(Error::Dimension { arg: "attn_mask.batch", expected: shape.batch, actual: batch });
    }
    if heads != 1 && heads != shape.q_heads {
        return Err(Error::Dimension { arg: "attn_mask.heads", expected: shape.q_heads, actual: heads });
    }
    let expected = [batch, heads, shape.q_len, shape.kv_len].into_iter().try_fold(1usize, |a, b| a.checked_mul(b));
    let expected = expected.ok_or(Error::Overflow { arg: "attn_mask" })?;
    expect_len("attn_mask", expected, len)
}

/// Keys that query row `i` may see at all: a prefix of the `S` keys.
#[cfg(feature = "std")]
pub(super) fn visible_keys(mask: &SdpaMask<'_>, shape: &SdpaShape, i: usize) -> usize {
    match mask {
        SdpaMask::Causal => causal_prefix(false, shape, i),
        SdpaMask::CausalLowerRight => causal_prefix(true, shape, i),
        _ => shape.kv_len,
    }
}

/// The keys row `i` sees under a causal mask: `0..=i` aligned top-left,
/// `0..=i + S − L` aligned bottom-right.
fn causal_prefix(lower_right: bool, shape: &SdpaShape, i: usize) -> usize {
    let s = shape.kv_len;
    let end = if lower_right { (i + 1).saturating_add(s).saturating_sub(shape.q_len) } else { i + 1 };
    end.min(s)
}

/// One head's `(L, S)` slice of the mask.
#[derive(Clone, Copy)]
pub(super) enum HeadMask<'a> {
    None,
    /// Causal, aligned top-left (`false`) or bottom-right (`true`).
    Causal {
        lower_right: bool,
    },
    Keep(&'a [bool]),
    Additive(&'a [f32]),
}

impl<'a> HeadMask<'a> {
    pub(super) fn of(mask: &SdpaMask<'a>, shape: &SdpaShape, b: usize, h: usize) -> HeadMask<'a> {
        let per_head = shape.q_len * shape.kv_len;
        let offset = |batch: usize, heads: usize| {
            let (b, h) = (if batch == 1 { 0 } else { b }, if heads == 1 { 0 } else { h });
            (b * heads + h) * per_head
        };
        match *mask {
            SdpaMask::None => HeadMask::None,
            SdpaMask::Causal => HeadMask::Causal { lower_right: false },
            SdpaMask::CausalLowerRight => HeadMask::Causal { lower_right: true },
            SdpaMask::Keep { mask, batch, heads } => HeadMask::Keep(&mask[offset(batch, heads)..][..per_head]),
            SdpaMask::Additive { mask, batch, heads } => HeadMask::Additive(&mask[offset(batch, heads)..][..per_head]),
        }
    }

    /// Keys that query row `i` may see at all (a prefix of the row).
    pub(super) fn visible(&self, i: usize, shape: &SdpaShape) -> usize {
        match *self {
            HeadMask::Causal { lower_right } => causal_prefix(lower_right, shape, i),
            _ => shape.kv_len,
        }
    }

    /// Applies the mask to scores of query row `i`, keys `j0..j0 + row.len()`,
    /// the scores being in `units` of the natural ones (the flash loop's are
    /// scaled by `log2 e`, so an additive mask is scaled with them; 1 leaves
    /// it exact).
    pub(super) fn apply(&self, row: &mut [f32], (i, j0): (usize, usize), shape: &SdpaShape, units: f32) {
        let s = shape.kv_len;
        match *self {
            HeadMask::None => {}
            HeadMask::Causal { .. } => {
                // Keys past the visible prefix are hidden: a suffix of the row, if any.
                let visible = self.visible(i, shape).saturating_sub(j0).min(row.len());
                row[visible..].fill(f32::NEG_INFINITY);
            }
            HeadMask::Keep(m) => {
                for (v, &keep) in row.iter_mut().zip(&m[i * s + j0..]) {
                    if !keep {
                        *v = f32::NEG_INFINITY;
                    }
                }
            }
            HeadMask::Additive(m) => {
                for (v, &add) in row.iter_mut().zip(&m[i * s + j0..]) {
                    *v += add * units;
                }
            }
        }
    }
}
