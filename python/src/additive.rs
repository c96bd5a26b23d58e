//! `additive_attention`: d2l's `AdditiveAttention` (Bahdanau) over the
//! crate's `par::additive`.

use crate::arrays::{Borrowed, shape_text};
use crate::attention::{F32, Inputs, exact, projection_rows};
use crate::errors::{to_py, value_error};
use engine::ops::AdditiveAttention;
use engine::par;
use pyo3::prelude::*;

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
    let inputs = Inputs::parse(queries, keys, values, valid_lens)?;
    let s = inputs.shape;
    let hidden = projection_rows("w_q", w_q, s.query_dim)?;
    let (wq, wk) = (exact("w_q", w_q, &[hidden, s.query_dim])?, exact("w_k", w_k, &[hidden, s.key_dim])?);
    let wv = Borrowed::<f32>::require("w_v", w_v, F32)?;
    if !matches!(*wv.shape(), [h] | [1, h] if h == hidden) {
        return Err(value_error("w_v", format!("shape (1, {hidden}) or ({hidden},)"), shape_text(wv.shape())));
    }
    let attn =
        AdditiveAttention::new(wq.values(), wk.values(), wv.values(), hidden, s.query_dim, s.key_dim).map_err(to_py)?;
    let (mut out, mut weights) = inputs.outputs(s.value_dim, 1)?;
    let view = inputs.view();
    py.detach(|| par::additive(&attn, &s, view, &mut out, Some(&mut weights))).map_err(to_py)?;
    inputs.arrays(py, (out, weights), s.value_dim, 1)
}
