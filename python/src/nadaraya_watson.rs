//! `nadaraya_watson`: d2l's `NWKernelRegression` over the crate's
//! `ops::NadarayaWatson`.

use crate::arrays::{Borrowed, filled, new_array, shape_text};
use crate::attention::F32;
use crate::errors::{float, to_py, value_error};
use engine::ops::NadarayaWatson;
use pyo3::prelude::*;

/// Nadaraya–Watson kernel regression with a Gaussian kernel of width
/// parameter `w` (d2l's `NWKernelRegression`): `attention_weights[i, j] =
/// softmax_j(−((queries[i] − keys[i, j])·w)² / 2)` and `output[i] = Σ_j
/// attention_weights[i, j] · values[i, j]`. `queries (n,)`, `keys` and
/// `values (n, m)` float32: each query has its own `m` points, as in d2l's
/// training loop. Returns `output (n,)` and `attention_weights (n, m)`.
#[pyfunction]
pub fn nadaraya_watson<'py>(
    py: Python<'py>,
    queries: &Bound<'py, PyAny>,
    keys: &Bound<'py, PyAny>,
    values: &Bound<'py, PyAny>,
    w: &Bound<'py, PyAny>,
) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
    let q = Borrowed::<f32>::require("queries", queries, F32)?;
    let k = Borrowed::<f32>::require("keys", keys, F32)?;
    let v = Borrowed::<f32>::require("values", values, F32)?;
    let [n] = *q.shape() else {
        return Err(value_error("queries", "1 dimension (n,)", shape_text(q.shape())));
    };
    let m = match *k.shape() {
        [rows, m] if rows == n => m,
        ref other => return Err(value_error("keys", format!("shape ({n}, m)"), shape_text(other))),
    };
    if v.shape() != [n, m] {
        return Err(value_error("values", format!("shape ({n}, {m})"), shape_text(v.shape())));
    }
    let (mut out, mut weights) = (filled("output", n, 0.0)?, filled("weights", n.saturating_mul(m), 0.0)?);
    let op = NadarayaWatson { w: float("w", w)? };
    let (qs, ks, vs) = (q.values(), k.values(), v.values());
    py.detach(|| op.forward(qs, ks, vs, &mut out, &mut weights)).map_err(to_py)?;
    Ok((new_array(py, "output", &[n], out)?, new_array(py, "attention_weights", &[n, m], weights)?))
}
