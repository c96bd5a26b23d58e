//! `quantize_q8`: float32 rows to the engine's q8 storage, for keys and
//! values kept quantized between calls.

use crate::arrays::{Borrowed, filled, new_array};
use crate::errors::{to_py, value_error};
use engine::storage::{q8_blocks, quantize_q8_row};
use pyo3::prelude::*;

/// Quantizes `x` (float32, `(…, n)`) row by row as the engine stores q8:
/// per block of 32 values along the last dimension, `scale = max|x| / 127`
/// and `q = round(x / scale)` (half away from zero); a block of zeros has
/// scale 0, and one holding inf or NaN scale NaN. Returns `(values,
/// scales)`: int8 `(…, n)` and float32 `(…, ceil(n / 32))`, the pair
/// `scaled_dot_product_attention` takes as a key or value.
#[pyfunction]
pub fn quantize_q8<'py>(py: Python<'py>, x: &Bound<'py, PyAny>) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
    let x = Borrowed::<f32>::require("x", x, "a float32 array")?;
    let Some((&width, rows_shape)) = x.shape().split_last() else {
        return Err(value_error("x", "at least 1 dimension", 0));
    };
    let (blocks, src) = (q8_blocks(width), x.values());
    let rows = match width {
        0 => rows_shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d)).unwrap_or(usize::MAX),
        _ => src.len() / width,
    };
    let mut values = filled("values", src.len(), 0i8)?;
    let mut scales = filled("scales", rows.saturating_mul(blocks), 0.0f32)?;
    py.detach(|| {
        for ((row, q), s) in
            src.chunks(width.max(1)).zip(values.chunks_mut(width.max(1))).zip(scales.chunks_mut(blocks.max(1)))
        {
            quantize_q8_row(row, q, s)?;
        }
        Ok(())
    })
    .map_err(to_py)?;
    let scales_shape = [rows_shape, &[blocks]].concat();
    Ok((new_array(py, "values", x.shape(), values)?, new_array(py, "scales", &scales_shape, scales)?))
}
