//! `attn_mask` as PyTorch takes it (bool: True takes part; float32: added
//! to the scaled scores), broadcast to the rows and columns the engine
//! reads: `(1 or B, 1 or Hq, L, S)`. A key-padding mask `(B, 1, 1, S)` is
//! common, and the engine broadcasts batch and heads itself.

use crate::arrays::{Borrowed, as_array, dtype_of, filled, shape_text};
use crate::errors::{type_error, value_error};
use engine::ops::{SdpaMask, SdpaShape};
use pyo3::prelude::*;
use std::borrow::Cow;

/// The mask as given.
pub enum Mask<'py> {
    Keep(Borrowed<'py, bool>),
    Additive(Borrowed<'py, f32>),
}

/// The mask with its rows and columns broadcast, and its `(batch, heads)`.
pub enum Broadcast<'a> {
    Keep(Cow<'a, [bool]>, [usize; 2]),
    Additive(Cow<'a, [f32]>, [usize; 2]),
}

impl<'py> Mask<'py> {
    /// `attn_mask` read, or `None`; refused beside `is_causal`, as PyTorch does.
    pub fn parse(attn_mask: Option<&Bound<'py, PyAny>>, is_causal: bool) -> PyResult<Option<Self>> {
        let Some(obj) = attn_mask else { return Ok(None) };
        if is_causal {
            return Err(value_error("attn_mask", "None when is_causal is True", "a mask"));
        }
        let array = as_array(obj)?;
        if let Some(m) = Borrowed::extract(&array)? {
            return Ok(Some(Mask::Keep(m)));
        }
        if let Some(m) = Borrowed::extract(&array)? {
            return Ok(Some(Mask::Additive(m)));
        }
        Err(type_error("attn_mask", "a bool or float32 array", dtype_of(&array)))
    }

    /// Checked against `shape`, its rows and columns broadcast.
    pub fn broadcast(&self, shape: &SdpaShape) -> PyResult<Broadcast<'_>> {
        Ok(match self {
            Mask::Keep(m) => {
                let dims = mask_dims(m.shape(), shape)?;
                Broadcast::Keep(broadcast_rows(m.values(), dims, shape)?, [dims[0], dims[1]])
            }
            Mask::Additive(m) => {
                let dims = mask_dims(m.shape(), shape)?;
                Broadcast::Additive(broadcast_rows(m.values(), dims, shape)?, [dims[0], dims[1]])
            }
        })
    }
}

/// The engine's mask for an optional broadcast mask and `is_causal`.
pub fn sdpa_mask<'a>(mask: Option<&'a Broadcast<'_>>, is_causal: bool) -> SdpaMask<'a> {
    match mask {
        Some(Broadcast::Keep(m, [batch, heads])) => SdpaMask::Keep { mask: m, batch: *batch, heads: *heads },
        Some(Broadcast::Additive(m, [batch, heads])) => SdpaMask::Additive { mask: m, batch: *batch, heads: *heads },
        None if is_causal => SdpaMask::Causal,
        None => SdpaMask::None,
    }
}

/// `values`, `(mb, mh, ml, ms)`, with `ml` and `ms` broadcast to `L` and `S`.
fn broadcast_rows<'a, T: Copy>(
    values: &'a [T],
    [mb, mh, ml, ms]: [usize; 4],
    shape: &SdpaShape,
) -> PyResult<Cow<'a, [T]>> {
    let (l, s) = (shape.q_len, shape.kv_len);
    if l == 0 || s == 0 {
        return Ok(Cow::Owned(Vec::new())); // no score to mask
    }
    let Some(&first) = values.first().filter(|_| (ml, ms) != (l, s)) else {
        return Ok(Cow::Borrowed(values));
    };
    let len = [mb, mh, l, s].iter().try_fold(1usize, |n, &d| n.checked_mul(d)).unwrap_or(usize::MAX);
    let mut out = filled("attn_mask", len, first)?;
    for (plane, out) in values.chunks(ml * ms).zip(out.chunks_mut(l * s)) {
        for (i, row) in out.chunks_mut(s).enumerate() {
            let from = &plane[(i % ml) * ms..][..ms];
            row.iter_mut().enumerate().for_each(|(j, x)| *x = from[j % ms]);
        }
    }
    Ok(Cow::Owned(out))
}

/// The mask's `(batch, heads, rows, columns)`, each 1 or the call's own.
fn mask_dims(mask: &[usize], shape: &SdpaShape) -> PyResult<[usize; 4]> {
    let want = [shape.batch, shape.q_heads, shape.q_len, shape.kv_len];
    let expected = || format!("a shape broadcastable to {}", shape_text(&want));
    if mask.len() > 4 {
        return Err(value_error("attn_mask", expected(), shape_text(mask)));
    }
    let mut dims = [1; 4];
    dims[4 - mask.len()..].copy_from_slice(mask);
    if dims.iter().zip(&want).any(|(&d, &w)| d != 1 && d != w) {
        return Err(value_error("attn_mask", expected(), shape_text(mask)));
    }
    Ok(dims)
}
