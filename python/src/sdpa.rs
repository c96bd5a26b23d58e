//! `scaled_dot_product_attention`, with `torch.nn.functional`'s argument
//! names and semantics, over the crate's `par::sdpa`.

use crate::arrays::{Borrowed, Floats, as_array, dtype_of, filled, new_array, shape_text};
use crate::errors::{to_py, type_error, value_error};
use engine::ops::{ScaledDotProductAttention, SdpaInputs, SdpaMask, SdpaShape};
use engine::par;
use pyo3::prelude::*;
use std::borrow::Cow;

/// `(B, H, rows, width)` of a 2- to 4-dimensional array: missing leading
/// dimensions are 1, as `(L, E)` is one head of one batch entry.
fn four_dims(arg: &str, shape: &[usize]) -> PyResult<[usize; 4]> {
    if !(2..=4).contains(&shape.len()) {
        return Err(value_error(arg, "2 to 4 dimensions (..., rows, features)", shape.len()));
    }
    let mut dims = [1; 4];
    dims[4 - shape.len()..].copy_from_slice(shape);
    Ok(dims)
}

/// A mask as the engine takes it: `(1 or B, 1 or Hq, L, S)`, its rows and
/// columns broadcast here (a key-padding mask `(B, 1, 1, S)` is common).
enum Mask<'py> {
    Keep(Borrowed<'py, bool>),
    Additive(Borrowed<'py, f32>),
}

/// `values`, `(mb, mh, ml, ms)`, with `ml` and `ms` broadcast to `l` and `s`.
fn broadcast_rows<T: Copy>(values: &[T], [mb, mh, ml, ms]: [usize; 4], l: usize, s: usize) -> PyResult<Cow<'_, [T]>> {
    let Some(&first) = values.first().filter(|_| (ml, ms) != (l, s) && l * s != 0) else {
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

/// Attention of `query` over `key` and `value`, as PyTorch's
/// `torch.nn.functional.scaled_dot_product_attention` computes it.
///
/// Shapes: `query (B, Hq, L, E)`, `key (B, Hkv, S, E)`, `value (B, Hkv, S, Ev)`,
/// returning `(B, Hq, L, Ev)` float32; the leading `B` or `B, H` may be
/// left out of all three. `float32` and `float16` arrays are read at their
/// stored precision, without a widened copy, and computed in float32.
/// `attn_mask`: bool (True takes part) or float32 (added to the scores),
/// broadcastable to `(B, Hq, L, S)`. `is_causal`: query `i` sees keys
/// `0..=i`. `scale`: default `1/sqrt(E)`. `Hq != Hkv` needs `enable_gqa`.
/// `dropout_p` exists for PyTorch's signature and must be 0.
#[pyfunction]
#[pyo3(signature = (query, key, value, attn_mask=None, dropout_p=0.0, is_causal=false, scale=None, enable_gqa=false))]
#[allow(clippy::too_many_arguments)] // PyTorch's signature, by name
pub fn scaled_dot_product_attention<'py>(
    py: Python<'py>,
    query: &Bound<'py, PyAny>,
    key: &Bound<'py, PyAny>,
    value: &Bound<'py, PyAny>,
    attn_mask: Option<&Bound<'py, PyAny>>,
    dropout_p: f64,
    is_causal: bool,
    scale: Option<f64>,
    enable_gqa: bool,
) -> PyResult<Bound<'py, PyAny>> {
    if dropout_p != 0.0 {
        return Err(value_error("dropout_p", "0.0 (this engine computes inference only)", dropout_p));
    }
    let (q, k, v) = (Floats::require("query", query)?, Floats::require("key", key)?, Floats::require("value", value)?);
    let [batch, q_heads, q_len, qk_dim] = four_dims("query", q.shape())?;
    if k.shape().len() != q.shape().len() || v.shape().len() != q.shape().len() {
        let actual = format!("{} and {}", shape_text(k.shape()), shape_text(v.shape()));
        return Err(value_error(
            "key, value",
            format!("as many dimensions as query {}", shape_text(q.shape())),
            actual,
        ));
    }
    let [_, kv_heads, kv_len, _] = four_dims("key", k.shape())?;
    let [.., v_dim] = four_dims("value", v.shape())?;
    if q_heads != kv_heads && !enable_gqa {
        return Err(value_error(
            "enable_gqa",
            format!("True for {q_heads} query heads over {kv_heads} key heads"),
            "False",
        ));
    }
    let shape = SdpaShape { batch, q_heads, kv_heads, q_len, kv_len, qk_dim, v_dim };
    let mask = match attn_mask {
        Some(_) if is_causal => return Err(value_error("attn_mask", "None when is_causal is True", "a mask")),
        Some(m) => Some(mask_of(m)?),
        None => None,
    };
    let (keep, added) = match &mask {
        Some(Mask::Keep(m)) => (Some(broadcast(m, &shape)?), None),
        Some(Mask::Additive(m)) => (None, Some(broadcast(m, &shape)?)),
        None => (None, None),
    };
    let mask = match (&keep, &added) {
        (Some((m, [b, h, ..])), _) => SdpaMask::Keep { mask: m, batch: *b, heads: *h },
        (_, Some((m, [b, h, ..]))) => SdpaMask::Additive { mask: m, batch: *b, heads: *h },
        _ if is_causal => SdpaMask::Causal,
        _ => SdpaMask::None,
    };
    let inputs = SdpaInputs { query: q.stored(), key: k.stored(), value: v.stored(), mask };
    let len = [batch, q_heads, q_len, v_dim].iter().try_fold(1usize, |n, &d| n.checked_mul(d));
    let mut out = filled("output", len.unwrap_or(usize::MAX), 0.0f32)?;
    let op = ScaledDotProductAttention { scale: scale.map(|s| s as f32) };
    py.detach(|| par::sdpa(&op, &shape, inputs, &mut out, None)).map_err(to_py)?;
    let mut out_shape = q.shape().to_vec();
    if let Some(last) = out_shape.last_mut() {
        *last = v_dim;
    }
    new_array(py, &out_shape, out)
}

/// `attn_mask` as bool or float32, or a `TypeError`.
fn mask_of<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Mask<'py>> {
    let array = as_array(obj)?;
    if let Some(m) = Borrowed::extract(&array) {
        return Ok(Mask::Keep(m));
    }
    if let Some(m) = Borrowed::extract(&array) {
        return Ok(Mask::Additive(m));
    }
    Err(type_error("attn_mask", "a bool or float32 array", dtype_of(&array)))
}

/// `mask` checked against `shape`, its rows and columns broadcast, with
/// its `(batch, heads, rows, columns)` as given.
fn broadcast<'a, T: numpy::Element + Copy>(
    mask: &'a Borrowed<'_, T>,
    shape: &SdpaShape,
) -> PyResult<(Cow<'a, [T]>, [usize; 4])> {
    let dims = mask_dims(mask.shape(), shape)?;
    Ok((broadcast_rows(mask.values(), dims, shape.q_len, shape.kv_len)?, dims))
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
