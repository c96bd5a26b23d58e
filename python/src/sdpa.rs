//! `scaled_dot_product_attention`, with `torch.nn.functional`'s argument
//! names and semantics, over the crate's `par::sdpa`.

use crate::arrays::{filled, new_array, shape_text};
use crate::errors::{to_py, value_error};
use crate::mask::{Mask, sdpa_mask};
use crate::stored::StoredArray;
use engine::ops::{ScaledDotProductAttention, SdpaInputs, SdpaShape};
use engine::par;
use pyo3::prelude::*;

/// `(B, H, rows, width)` of a 2- to 4-dimensional array: missing leading
/// dimensions are 1, as `(L, E)` is one head of one batch entry.
pub fn four_dims(arg: &str, shape: &[usize]) -> PyResult<[usize; 4]> {
    if !(2..=4).contains(&shape.len()) {
        return Err(value_error(arg, "2 to 4 dimensions (..., rows, features)", shape.len()));
    }
    let mut dims = [1; 4];
    dims[4 - shape.len()..].copy_from_slice(shape);
    Ok(dims)
}

/// Refuses `Hq != Hkv` unless asked for, as PyTorch does, and key heads
/// that do not divide the query's.
pub fn check_gqa(q_heads: usize, kv_heads: usize, enable_gqa: bool) -> PyResult<()> {
    if q_heads != kv_heads && !enable_gqa {
        return Err(value_error(
            "enable_gqa",
            format!("True for {q_heads} query heads over {kv_heads} key heads"),
            "False",
        ));
    }
    if q_heads.checked_rem(kv_heads).is_some_and(|r| r != 0) {
        return Err(value_error("key", format!("a number of heads dividing query's {q_heads}"), kv_heads));
    }
    Ok(())
}

/// Refuses `given` (the shape of `arg`, `dims` its 4-D form) unless each
/// dimension `want` names is that size.
fn expect_dims(arg: &str, given: &[usize], dims: [usize; 4], want: [Option<usize>; 4]) -> PyResult<()> {
    let expected: [usize; 4] = core::array::from_fn(|i| want[i].unwrap_or(dims[i]));
    if expected != dims {
        let shown = &expected[4 - given.len().min(4)..];
        return Err(value_error(arg, format!("shape {}", shape_text(shown)), shape_text(given)));
    }
    Ok(())
}

/// A zeroed output of `dims` values, or a `MemoryError`.
pub fn output(dims: [usize; 4]) -> PyResult<Vec<f32>> {
    let len = dims.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
    filled("output", len.unwrap_or(usize::MAX), 0.0f32)
}

/// `shape` with its last dimension replaced by `width`.
pub fn with_width(shape: &[usize], width: usize) -> Vec<usize> {
    let mut out = shape.to_vec();
    if let Some(last) = out.last_mut() {
        *last = width;
    }
    out
}

/// Attention of `query` over `key` and `value`, as PyTorch's
/// `torch.nn.functional.scaled_dot_product_attention` computes it.
///
/// Shapes: `query (B, Hq, L, E)`, `key (B, Hkv, S, E)`, `value (B, Hkv, S, Ev)`,
/// returning `(B, Hq, L, Ev)` float32; the leading `B` or `B, H` may be
/// left out of all three. `float32`, `float16` and `ml_dtypes.bfloat16`
/// arrays are read at their stored precision, without a widened copy, and
/// computed in float32; `key` and `value` may also be q8 `(int8 values,
/// float32 scales)` pairs (see `quantize_q8`), and share one storage type.
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
    let q = StoredArray::query("query", query)?;
    let (k, v) = (StoredArray::key_or_value("key", key)?, StoredArray::key_or_value("value", value)?);
    let [batch, q_heads, q_len, qk_dim] = four_dims("query", q.shape())?;
    if k.shape().len() != q.shape().len() || v.shape().len() != q.shape().len() {
        let actual = format!("{} and {}", shape_text(k.shape()), shape_text(v.shape()));
        return Err(value_error(
            "key, value",
            format!("as many dimensions as query {}", shape_text(q.shape())),
            actual,
        ));
    }
    let key_dims @ [_, kv_heads, kv_len, _] = four_dims("key", k.shape())?;
    let value_dims @ [.., v_dim] = four_dims("value", v.shape())?;
    expect_dims("key", k.shape(), key_dims, [Some(batch), None, None, Some(qk_dim)])?;
    expect_dims("value", v.shape(), value_dims, [Some(batch), Some(kv_heads), Some(kv_len), None])?;
    check_gqa(q_heads, kv_heads, enable_gqa)?;
    let shape = SdpaShape { batch, q_heads, kv_heads, q_len, kv_len, qk_dim, v_dim };
    let mask = Mask::parse(attn_mask, is_causal)?;
    let mask = mask.as_ref().map(|m| m.broadcast(&shape)).transpose()?;
    let inputs =
        SdpaInputs { query: q.stored(), key: k.stored(), value: v.stored(), mask: sdpa_mask(mask.as_ref(), is_causal) };
    let mut out = output([batch, q_heads, q_len, v_dim])?;
    let op = ScaledDotProductAttention { scale: scale.map(|s| s as f32) };
    py.detach(|| par::sdpa(&op, &shape, inputs, &mut out, None)).map_err(to_py)?;
    new_array(py, "output", &with_width(q.shape(), v_dim), out)
}
