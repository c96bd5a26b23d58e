//! `additive_attention`: d2l's `AdditiveAttention` (Bahdanau) over the
//! crate's `par::additive`.

use crate::arrays::{Borrowed, filled, indices, new_array, shape_text};
use crate::errors::{to_py, value_error};
use engine::ops::{AdditiveAttention, AttentionInputs, AttentionShape, ValidLens};
use engine::par;
use pyo3::prelude::*;

const F32: &str = "a float32 array";

/// `(rows, …)` of a 3-dimensional `(B, rows, features)` array.
fn three_dims(arg: &str, shape: &[usize]) -> PyResult<[usize; 3]> {
    <[usize; 3]>::try_from(shape).map_err(|_| value_error(arg, "3 dimensions (B, rows, features)", shape_text(shape)))
}

/// d2l's additive attention, `w_v · tanh(W_q q + W_k k)` scored for every
/// query and key, masked by `valid_lens`, softmaxed over the keys, and
/// applied to `values`. Returns `(output, attention_weights)`.
///
/// Shapes: `queries (B, Q, qd)`, `keys (B, K, kd)`, `values (B, K, vd)`,
/// the weights of d2l's `W_q (H, qd)`, `W_k (H, kd)` and `w_v (1, H)` (or
/// `(H,)`), all float32, as a PyTorch `state_dict` holds them. `valid_lens`:
/// integers `(B,)` or `(B, Q)`; a row keeps keys below its length, and a
/// length of 0 weighs every key equally, as d2l's `masked_softmax` does.
/// Returns `output (B, Q, vd)` and `attention_weights (B, Q, K)`.
#[pyfunction]
#[pyo3(signature = (queries, keys, values, w_q, w_k, w_v, valid_lens=None))]
#[allow(clippy::too_many_arguments)] // d2l's tensors, by name
pub fn additive_attention<'py>(
    py: Python<'py>,
    queries: &Bound<'py, PyAny>,
    keys: &Bound<'py, PyAny>,
    values: &Bound<'py, PyAny>,
    w_q: &Bound<'py, PyAny>,
    w_k: &Bound<'py, PyAny>,
    w_v: &Bound<'py, PyAny>,
    valid_lens: Option<&Bound<'py, PyAny>>,
) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
    let q = Borrowed::<f32>::require("queries", queries, F32)?;
    let k = Borrowed::<f32>::require("keys", keys, F32)?;
    let v = Borrowed::<f32>::require("values", values, F32)?;
    let (wq, wk, wv) = (
        Borrowed::<f32>::require("w_q", w_q, F32)?,
        Borrowed::<f32>::require("w_k", w_k, F32)?,
        Borrowed::<f32>::require("w_v", w_v, F32)?,
    );
    let [batch, rows, query_dim] = three_dims("queries", q.shape())?;
    let [_, keys_len, key_dim] = three_dims("keys", k.shape())?;
    let [.., value_dim] = three_dims("values", v.shape())?;
    let [hidden, _] = <[usize; 2]>::try_from(wq.shape())
        .map_err(|_| value_error("w_q", "2 dimensions (H, qd)", shape_text(wq.shape())))?;
    if wk.shape().len() != 2 {
        return Err(value_error("w_k", "2 dimensions (H, kd)", shape_text(wk.shape())));
    }
    if !matches!(wv.shape(), [_] | [1, _]) {
        return Err(value_error("w_v", "shape (1, H) or (H,)", shape_text(wv.shape())));
    }
    let shape = AttentionShape { batch, queries: rows, keys: keys_len, query_dim, key_dim, value_dim };
    let lens = valid_lens.map(|l| lens_of(l, batch, rows)).transpose()?;
    let lens_view = match &lens {
        None => ValidLens::All,
        Some((l, false)) => ValidLens::PerBatch(l),
        Some((l, true)) => ValidLens::PerQuery(l),
    };
    let attn =
        AdditiveAttention::new(wq.values(), wk.values(), wv.values(), hidden, query_dim, key_dim).map_err(to_py)?;
    let inputs = AttentionInputs { queries: q.values(), keys: k.values(), values: v.values(), valid_lens: lens_view };
    let rows_total = batch.checked_mul(rows);
    let size = |width: usize| rows_total.and_then(|r| r.checked_mul(width)).unwrap_or(usize::MAX);
    let (mut out, mut weights) =
        (filled("output", size(value_dim), 0.0f32)?, filled("weights", size(keys_len), 0.0f32)?);
    py.detach(|| par::additive(&attn, &shape, inputs, &mut out, Some(&mut weights))).map_err(to_py)?;
    Ok((new_array(py, &[batch, rows, value_dim], out)?, new_array(py, &[batch, rows, keys_len], weights)?))
}

/// `valid_lens` as lengths, and whether they are per query `(B, Q)`.
fn lens_of(obj: &Bound<'_, PyAny>, batch: usize, rows: usize) -> PyResult<(Vec<usize>, bool)> {
    let (lens, shape) = indices("valid_lens", obj)?;
    let per_query = match shape[..] {
        [b] if b == batch => false,
        [b, q] if (b, q) == (batch, rows) => true,
        ref other => {
            return Err(value_error("valid_lens", format!("shape ({batch},) or ({batch}, {rows})"), shape_text(other)));
        }
    };
    Ok((lens, per_query))
}
