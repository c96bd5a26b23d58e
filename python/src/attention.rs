//! d2l's attention modules over `(queries, keys, values, valid_lens)`:
//! the arguments they share, parsed once, and the parameter-light ones
//! that run through the crate's `par::batched` (`DotProductAttention`,
//! bilinear attention, `MultiHeadAttention`). Additive attention
//! (`additive.rs`) parses its arguments here too.

use crate::arrays::{Borrowed, filled, indices, new_array, shape_text};
use crate::errors::{size, to_py, value_error};
use engine::ops::{
    Attention, AttentionInputs, AttentionShape, BilinearAttention, DotProductAttention, Linear, MhaDims,
    MultiHeadAttention, ValidLens,
};
use engine::par;
use pyo3::prelude::*;

/// What every float32 argument must be.
pub const F32: &str = "a float32 array";

/// `(B, rows, features)` of a 3-dimensional array.
fn three_dims(arg: &str, shape: &[usize]) -> PyResult<[usize; 3]> {
    <[usize; 3]>::try_from(shape).map_err(|_| value_error(arg, "3 dimensions (B, rows, features)", shape_text(shape)))
}

/// The queries, keys, values and valid lengths of one call, and its shape.
pub struct Inputs<'py> {
    queries: Borrowed<'py, f32>,
    keys: Borrowed<'py, f32>,
    values: Borrowed<'py, f32>,
    /// The lengths, and whether they are per query `(B, Q)`.
    lens: Option<(Vec<usize>, bool)>,
    pub shape: AttentionShape,
}

impl<'py> Inputs<'py> {
    /// `queries (B, Q, qd)`, `keys (B, K, kd)`, `values (B, K, vd)` float32,
    /// and `valid_lens` integers `(B,)` or `(B, Q)`. The batch and key
    /// counts must agree (the operators check that, naming the argument).
    pub fn parse(
        queries: &Bound<'py, PyAny>,
        keys: &Bound<'py, PyAny>,
        values: &Bound<'py, PyAny>,
        valid_lens: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Self> {
        let q = Borrowed::<f32>::require("queries", queries, F32)?;
        let k = Borrowed::<f32>::require("keys", keys, F32)?;
        let v = Borrowed::<f32>::require("values", values, F32)?;
        let [batch, rows, query_dim] = three_dims("queries", q.shape())?;
        let [key_batch, keys_len, key_dim] = three_dims("keys", k.shape())?;
        if key_batch != batch {
            return Err(value_error("keys", format!("shape ({batch}, K, kd)"), shape_text(k.shape())));
        }
        let value_dim = match three_dims("values", v.shape())? {
            [b, n, vd] if (b, n) == (batch, keys_len) => vd,
            _ => return Err(value_error("values", format!("shape ({batch}, {keys_len}, vd)"), shape_text(v.shape()))),
        };
        let shape = AttentionShape { batch, queries: rows, keys: keys_len, query_dim, key_dim, value_dim };
        let lens = valid_lens.map(|l| lens_of(l, batch, rows)).transpose()?;
        Ok(Inputs { queries: q, keys: k, values: v, lens, shape })
    }

    /// The engine's view of them.
    pub fn view(&self) -> AttentionInputs<'_> {
        let valid_lens = match &self.lens {
            None => ValidLens::All,
            Some((l, false)) => ValidLens::PerBatch(l),
            Some((l, true)) => ValidLens::PerQuery(l),
        };
        AttentionInputs {
            queries: self.queries.values(),
            keys: self.keys.values(),
            values: self.values.values(),
            valid_lens,
        }
    }

    /// Zeroed `output (B, Q, width)` and `weights (B·sets, Q, K)` buffers
    /// (a `MemoryError` for ones larger than memory).
    pub fn outputs(&self, width: usize, sets: usize) -> PyResult<(Vec<f32>, Vec<f32>)> {
        let s = &self.shape;
        let rows = s.batch.checked_mul(s.queries);
        let len = |w: usize| rows.and_then(|r| r.checked_mul(w)).unwrap_or(usize::MAX);
        Ok((filled("output", len(width), 0.0)?, filled("weights", len(s.keys).saturating_mul(sets), 0.0)?))
    }

    /// `(output, attention_weights)` as NumPy arrays of those shapes.
    pub fn arrays(
        &self,
        py: Python<'py>,
        (out, weights): (Vec<f32>, Vec<f32>),
        width: usize,
        sets: usize,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
        let s = &self.shape;
        // `outputs` allocated `batch · sets · Q · K` floats, so this fits.
        let entries = s.batch.saturating_mul(sets);
        Ok((
            new_array(py, "output", &[s.batch, s.queries, width], out)?,
            new_array(py, "attention_weights", &[entries, s.queries, s.keys], weights)?,
        ))
    }
}

/// `obj` as a float32 array of exactly `shape`, or an error naming `arg`.
/// Parameters are checked by shape, not by element count, so a transposed
/// matrix is refused rather than read as another one.
pub fn exact<'py>(arg: &str, obj: &Bound<'py, PyAny>, shape: &[usize]) -> PyResult<Borrowed<'py, f32>> {
    let array = Borrowed::<f32>::require(arg, obj, F32)?;
    if array.shape() != shape {
        return Err(value_error(arg, format!("shape {}", shape_text(shape)), shape_text(array.shape())));
    }
    Ok(array)
}

/// `H` of a projection `obj` `(H, cols)` (an `nn.Linear`'s weight over
/// inputs of `cols` features), or an error naming `arg`.
pub fn projection_rows(arg: &str, obj: &Bound<'_, PyAny>, cols: usize) -> PyResult<usize> {
    let array = Borrowed::<f32>::require(arg, obj, F32)?;
    match *array.shape() {
        [rows, c] if c == cols => Ok(rows),
        ref other => Err(value_error(arg, format!("shape (H, {cols})"), shape_text(other))),
    }
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

/// `op` over `inputs` on every core (`par::batched`), GIL released.
fn batched<'py, A: Attention + Sync>(
    py: Python<'py>,
    op: &A,
    inputs: &Inputs<'py>,
) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
    let (width, sets) = (op.output_width(&inputs.shape), op.weight_sets());
    let (mut out, mut weights) = inputs.outputs(width, sets)?;
    let (shape, view) = (inputs.shape, inputs.view());
    py.detach(|| par::batched(op, &shape, view, &mut out, Some(&mut weights))).map_err(to_py)?;
    inputs.arrays(py, (out, weights), width, sets)
}

/// d2l's `DotProductAttention`: `softmax(Q Kᵀ / √d)` masked by
/// `valid_lens`, applied to `values`. `queries (B, Q, d)`, `keys (B, K,
/// d)`, `values (B, K, vd)` float32; `valid_lens` integers `(B,)` or `(B,
/// Q)` (a length of 0 weighs every key equally, as d2l's `masked_softmax`
/// does). Returns `output (B, Q, vd)` and `attention_weights (B, Q, K)`.
#[pyfunction]
#[pyo3(signature = (queries, keys, values, valid_lens=None))]
pub fn dot_product_attention<'py>(
    py: Python<'py>,
    queries: &Bound<'py, PyAny>,
    keys: &Bound<'py, PyAny>,
    values: &Bound<'py, PyAny>,
    valid_lens: Option<&Bound<'py, PyAny>>,
) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
    let inputs = Inputs::parse(queries, keys, values, valid_lens)?;
    let s = &inputs.shape;
    if s.key_dim != s.query_dim {
        let expected = format!("shape ({}, {}, {})", s.batch, s.keys, s.query_dim);
        return Err(value_error("keys", expected, shape_text(&[s.batch, s.keys, s.key_dim])));
    }
    batched(py, &DotProductAttention, &inputs)
}

/// Bilinear ("general", Luong) attention: scores `qᵀ W_a k` with `w_a`
/// `(qd, kd)` float32, then as `dot_product_attention` (unscaled).
/// Returns `output (B, Q, vd)` and `attention_weights (B, Q, K)`.
#[pyfunction]
#[pyo3(signature = (queries, keys, values, w_a, valid_lens=None))]
pub fn bilinear_attention<'py>(
    py: Python<'py>,
    queries: &Bound<'py, PyAny>,
    keys: &Bound<'py, PyAny>,
    values: &Bound<'py, PyAny>,
    w_a: &Bound<'py, PyAny>,
    valid_lens: Option<&Bound<'py, PyAny>>,
) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
    let inputs = Inputs::parse(queries, keys, values, valid_lens)?;
    let s = &inputs.shape;
    let w = exact("w_a", w_a, &[s.query_dim, s.key_dim])?;
    let op = BilinearAttention::new(w.values(), s.query_dim, s.key_dim).map_err(to_py)?;
    batched(py, &op, &inputs)
}

/// d2l's `MultiHeadAttention`: `queries`, `keys` and `values` projected by
/// `w_q`, `w_k`, `w_v` `(num_hiddens, in)` (an `nn.Linear`'s `weight`,
/// with `b_q`, `b_k`, `b_v` `(num_hiddens,)` where it has a bias), split
/// into `num_heads` heads of scaled dot-product attention sharing
/// `valid_lens`, then concatenated and projected by `w_o` `(num_hiddens,
/// num_hiddens)` (and `b_o`). Returns `output (B, Q, num_hiddens)` and
/// `attention_weights (B·num_heads, Q, K)`, entry `b·num_heads + h`.
#[pyfunction]
#[pyo3(signature = (queries, keys, values, num_heads, w_q, w_k, w_v, w_o, valid_lens=None, b_q=None, b_k=None, b_v=None, b_o=None))]
#[allow(clippy::too_many_arguments)] // d2l's tensors, by name
pub fn multi_head_attention<'py>(
    py: Python<'py>,
    queries: &Bound<'py, PyAny>,
    keys: &Bound<'py, PyAny>,
    values: &Bound<'py, PyAny>,
    num_heads: &Bound<'py, PyAny>,
    w_q: &Bound<'py, PyAny>,
    w_k: &Bound<'py, PyAny>,
    w_v: &Bound<'py, PyAny>,
    w_o: &Bound<'py, PyAny>,
    valid_lens: Option<&Bound<'py, PyAny>>,
    b_q: Option<&Bound<'py, PyAny>>,
    b_k: Option<&Bound<'py, PyAny>>,
    b_v: Option<&Bound<'py, PyAny>>,
    b_o: Option<&Bound<'py, PyAny>>,
) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
    let inputs = Inputs::parse(queries, keys, values, valid_lens)?;
    let heads = size("num_heads", num_heads)?;
    let s = inputs.shape;
    let hidden = projection_rows("w_q", w_q, s.query_dim)?;
    if heads == 0 || !hidden.is_multiple_of(heads) {
        return Err(value_error("num_heads", format!("a divisor of num_hiddens {hidden}"), heads));
    }
    let (wq, wk, wv, wo) = (
        exact("w_q", w_q, &[hidden, s.query_dim])?,
        exact("w_k", w_k, &[hidden, s.key_dim])?,
        exact("w_v", w_v, &[hidden, s.value_dim])?,
        exact("w_o", w_o, &[hidden, hidden])?,
    );
    let bias = |arg: &str, obj: Option<&Bound<'py, PyAny>>| obj.map(|b| exact(arg, b, &[hidden])).transpose();
    let biases = [bias("b_q", b_q)?, bias("b_k", b_k)?, bias("b_v", b_v)?, bias("b_o", b_o)?];
    let [bq, bk, bv, bo] = biases.each_ref().map(|b| b.as_ref().map(|b| b.values()));
    let dims = MhaDims { heads, hidden, query_dim: s.query_dim, key_dim: s.key_dim, value_dim: s.value_dim };
    let [lq, lk, lv, lo] =
        [(&wq, bq), (&wk, bk), (&wv, bv), (&wo, bo)].map(|(w, bias)| Linear { weight: w.values(), bias });
    let op = MultiHeadAttention::new(lq, lk, lv, lo, dims).map_err(to_py)?;
    batched(py, &op, &inputs)
}
