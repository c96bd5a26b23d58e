//! One mask descriptor for every operator: a kind, and the pointer that
//! kind reads. Each operator takes the kinds its Rust form has:
//!
//! | kind | masked softmax | additive, dot, bilinear, multi-head | SDPA |
//! |---|---|---|---|
//! | `NONE` | ✓ | ✓ | ✓ |
//! | `VALID_LENS` (`(B,)`) | ✓ | ✓ | |
//! | `VALID_LENS_PER_QUERY` (`(B, Q)`) | ✓ | ✓ | |
//! | `KEEP` (bytes 0/1) | `(Q, K)` or `(B, Q, K)` | | `(batch, heads, L, S)` |
//! | `ADDITIVE` (floats) | `(Q, K)` or `(B, Q, K)` | | `(batch, heads, L, S)` |
//! | `CAUSAL` | ✓ | | ✓ |
//! | `CAUSAL_LOWER_RIGHT` | | | ✓ |
//!
//! A bool mask comes as bytes (`uint8_t`, PyTorch's and the golden files'
//! layout) rather than C `bool`: Rust may only see a `bool` that is 0 or 1,
//! so every byte is checked first and another value is refused with
//! `SIMD_ATTENTION_ERROR_VALUE`.

use super::buffer::{Buffer, read_one};
use super::simd_attention_status::{self, SIMD_ATTENTION_ERROR_KIND, SIMD_ATTENTION_ERROR_VALUE};
use crate::kernels::Mask;
use crate::ops::{SdpaMask, ValidLens};
use core::ops::Range;

/// A mask's kind: one of the `SIMD_ATTENTION_MASK_*` values.
pub type simd_attention_mask_kind = u32;

/// Every key takes part.
pub const SIMD_ATTENTION_MASK_NONE: simd_attention_mask_kind = 0;
/// d2l `valid_lens` of shape `(B,)` in `valid_lens`: row `(b, q)` keeps
/// keys `< valid_lens[b]`; a length of 0 gives the row uniform weights.
pub const SIMD_ATTENTION_MASK_VALID_LENS: simd_attention_mask_kind = 1;
/// d2l `valid_lens` of shape `(B, Q)` in `valid_lens`: row `(b, q)` keeps
/// keys `< valid_lens[b·Q + q]`.
pub const SIMD_ATTENTION_MASK_VALID_LENS_PER_QUERY: simd_attention_mask_kind = 2;
/// PyTorch bool mask in `keep`: 1 where the key takes part, 0 where it is
/// hidden; a row with no key left gives zeros.
pub const SIMD_ATTENTION_MASK_KEEP: simd_attention_mask_kind = 3;
/// Float mask in `additive`, added to the (scaled) scores.
pub const SIMD_ATTENTION_MASK_ADDITIVE: simd_attention_mask_kind = 4;
/// PyTorch `is_causal`, aligned top-left: query `i` sees keys `0..=i`.
pub const SIMD_ATTENTION_MASK_CAUSAL: simd_attention_mask_kind = 5;
/// Causal aligned bottom-right (SDPA only): query `i` sees keys
/// `0..=i + S - L`, a decoder's `L` new queries against `S` cached keys.
pub const SIMD_ATTENTION_MASK_CAUSAL_LOWER_RIGHT: simd_attention_mask_kind = 6;

/// Which keys each query sees. Only the pointer of `kind` is read, for
/// `len` values; the others are ignored. `{0}` is "no mask".
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct simd_attention_mask {
    /// A `SIMD_ATTENTION_MASK_*` value.
    pub kind: simd_attention_mask_kind,
    /// The lengths of `SIMD_ATTENTION_MASK_VALID_LENS(_PER_QUERY)`.
    pub valid_lens: *const usize,
    /// The bytes (0 or 1) of `SIMD_ATTENTION_MASK_KEEP`.
    pub keep: *const u8,
    /// The values of `SIMD_ATTENTION_MASK_ADDITIVE`.
    pub additive: *const f32,
    /// Values at the pointer `kind` reads.
    pub len: usize,
    /// SDPA's `KEEP` and `ADDITIVE` masks: 1 (broadcast over the batch) or
    /// `B`. Ignored otherwise (the softmax infers it from `len`).
    pub batch: usize,
    /// SDPA's `KEEP` and `ADDITIVE` masks: 1 (broadcast over the heads) or
    /// `Hq`. Ignored otherwise.
    pub heads: usize,
}

/// The operator a mask is for: each takes the kinds of the table above.
#[derive(Clone, Copy)]
pub(super) enum MaskFor {
    Softmax,
    ValidLens,
    Sdpa,
}

impl MaskFor {
    fn takes(self, kind: simd_attention_mask_kind) -> bool {
        match self {
            MaskFor::Softmax => kind <= SIMD_ATTENTION_MASK_CAUSAL,
            MaskFor::ValidLens => kind <= SIMD_ATTENTION_MASK_VALID_LENS_PER_QUERY,
            MaskFor::Sdpa => {
                kind == SIMD_ATTENTION_MASK_NONE
                    || (SIMD_ATTENTION_MASK_KEEP..=SIMD_ATTENTION_MASK_CAUSAL_LOWER_RIGHT).contains(&kind)
            }
        }
    }
}

/// A mask whose pointer is checked (not yet a slice).
#[derive(Clone, Copy)]
pub(super) enum CheckedMask {
    None,
    ValidLens(Buffer<usize>),
    ValidLensPerQuery(Buffer<usize>),
    Keep { mask: Buffer<u8>, batch: usize, heads: usize },
    Additive { mask: Buffer<f32>, batch: usize, heads: usize },
    Causal,
    CausalLowerRight,
}

/// A checked mask's data as slices, ready for any operator's mask type.
#[derive(Clone, Copy)]
pub(super) enum MaskView<'a> {
    None,
    ValidLens(&'a [usize]),
    ValidLensPerQuery(&'a [usize]),
    Keep { mask: &'a [bool], batch: usize, heads: usize },
    Additive { mask: &'a [f32], batch: usize, heads: usize },
    Causal,
    CausalLowerRight,
}

impl CheckedMask {
    /// The mask at `mask` for operator `op`, checked: `NULL` is no mask; a
    /// kind `op` does not take is refused before its pointer is looked at.
    ///
    /// # Safety
    /// A non-null, aligned `mask` must be valid for reading one
    /// [`simd_attention_mask`].
    pub(super) unsafe fn from_ptr(
        mask: *const simd_attention_mask,
        op: MaskFor,
    ) -> Result<Self, simd_attention_status> {
        if mask.is_null() {
            return Ok(CheckedMask::None);
        }
        // SAFETY: the caller promises one readable descriptor, plain data.
        let mask = unsafe { read_one(mask)? };
        if !op.takes(mask.kind) {
            return Err(SIMD_ATTENTION_ERROR_KIND);
        }
        Self::new(&mask)
    }

    /// Checks the kind and its pointer; reads nothing.
    fn new(mask: &simd_attention_mask) -> Result<Self, simd_attention_status> {
        let (batch, heads) = (mask.batch, mask.heads);
        Ok(match mask.kind {
            SIMD_ATTENTION_MASK_NONE => CheckedMask::None,
            SIMD_ATTENTION_MASK_VALID_LENS => CheckedMask::ValidLens(Buffer::new(mask.valid_lens, mask.len)?),
            SIMD_ATTENTION_MASK_VALID_LENS_PER_QUERY => {
                CheckedMask::ValidLensPerQuery(Buffer::new(mask.valid_lens, mask.len)?)
            }
            SIMD_ATTENTION_MASK_KEEP => CheckedMask::Keep { mask: Buffer::new(mask.keep, mask.len)?, batch, heads },
            SIMD_ATTENTION_MASK_ADDITIVE => {
                CheckedMask::Additive { mask: Buffer::new(mask.additive, mask.len)?, batch, heads }
            }
            SIMD_ATTENTION_MASK_CAUSAL => CheckedMask::Causal,
            SIMD_ATTENTION_MASK_CAUSAL_LOWER_RIGHT => CheckedMask::CausalLowerRight,
            _ => return Err(SIMD_ATTENTION_ERROR_KIND),
        })
    }

    /// The bytes its data covers, for the aliasing check.
    pub(super) fn bytes(&self) -> Range<usize> {
        match self {
            CheckedMask::ValidLens(b) | CheckedMask::ValidLensPerQuery(b) => b.bytes(),
            CheckedMask::Keep { mask, .. } => mask.bytes(),
            CheckedMask::Additive { mask, .. } => mask.bytes(),
            CheckedMask::None | CheckedMask::Causal | CheckedMask::CausalLowerRight => 0..0,
        }
    }

    /// The data as slices. A `KEEP` byte other than 0 or 1 is refused.
    ///
    /// # Safety
    /// The pointer of the kind must be valid for reads of `len` values,
    /// unwritten for `'a`.
    pub(super) unsafe fn view<'a>(self) -> Result<MaskView<'a>, simd_attention_status> {
        // SAFETY (each arm): the buffer was checked by `Buffer::new`; the
        // caller promises it is valid and unwritten for `'a`.
        Ok(match self {
            CheckedMask::None => MaskView::None,
            CheckedMask::ValidLens(b) => MaskView::ValidLens(unsafe { b.as_slice() }),
            CheckedMask::ValidLensPerQuery(b) => MaskView::ValidLensPerQuery(unsafe { b.as_slice() }),
            CheckedMask::Keep { mask, batch, heads } => {
                let bytes: &'a [u8] = unsafe { mask.as_slice() };
                if bytes.iter().any(|&b| b > 1) {
                    return Err(SIMD_ATTENTION_ERROR_VALUE);
                }
                // SAFETY: every byte is 0 or 1 (just checked), the two valid
                // `bool`s, and `bool` has the size and alignment of `u8`.
                let mask = unsafe { core::slice::from_raw_parts(bytes.as_ptr().cast::<bool>(), bytes.len()) };
                MaskView::Keep { mask, batch, heads }
            }
            CheckedMask::Additive { mask, batch, heads } => {
                MaskView::Additive { mask: unsafe { mask.as_slice() }, batch, heads }
            }
            CheckedMask::Causal => MaskView::Causal,
            CheckedMask::CausalLowerRight => MaskView::CausalLowerRight,
        })
    }
}

impl<'a> MaskView<'a> {
    /// As the masked softmax's [`Mask`].
    pub(super) fn softmax(self) -> Result<Mask<'a>, simd_attention_status> {
        Ok(match self {
            MaskView::None => Mask::None,
            MaskView::ValidLens(l) => Mask::ValidLens(l),
            MaskView::ValidLensPerQuery(l) => Mask::ValidLensPerQuery(l),
            MaskView::Keep { mask, .. } => Mask::Keep(mask),
            MaskView::Additive { mask, .. } => Mask::Additive(mask),
            MaskView::Causal => Mask::Causal,
            MaskView::CausalLowerRight => return Err(SIMD_ATTENTION_ERROR_KIND),
        })
    }

    /// As the additive attention's [`ValidLens`].
    pub(super) fn valid_lens(self) -> Result<ValidLens<'a>, simd_attention_status> {
        match self {
            MaskView::None => Ok(ValidLens::All),
            MaskView::ValidLens(l) => Ok(ValidLens::PerBatch(l)),
            MaskView::ValidLensPerQuery(l) => Ok(ValidLens::PerQuery(l)),
            _ => Err(SIMD_ATTENTION_ERROR_KIND),
        }
    }

    /// As SDPA's [`SdpaMask`].
    pub(super) fn sdpa(self) -> Result<SdpaMask<'a>, simd_attention_status> {
        match self {
            MaskView::None => Ok(SdpaMask::None),
            MaskView::Causal => Ok(SdpaMask::Causal),
            MaskView::CausalLowerRight => Ok(SdpaMask::CausalLowerRight),
            MaskView::Keep { mask, batch, heads } => Ok(SdpaMask::Keep { mask, batch, heads }),
            MaskView::Additive { mask, batch, heads } => Ok(SdpaMask::Additive { mask, batch, heads }),
            MaskView::ValidLens(_) | MaskView::ValidLensPerQuery(_) => Err(SIMD_ATTENTION_ERROR_KIND),
        }
    }
}
