//! Queries, keys and values in the engine's storage types, as Python holds
//! them:
//! - `float32` and `float16` NumPy arrays;
//! - `bfloat16` arrays of `ml_dtypes` (the type JAX and TensorFlow give
//!   NumPy; NumPy has none of its own);
//! - q8 keys and values as a pair `(values, scales)`: `int8` values `(…,
//!   S, E)` and `float32` scales `(…, S, ceil(E / 32))`, one per block of
//!   32 values along each row, as [`quantize_q8`](crate::q8::quantize_q8)
//!   writes them and the golden files store them. A query is never q8.
//!
//! Each is read as stored: nothing is widened or rounded here.

use crate::arrays::{Borrowed, as_array, dtype_of, shape_text};
use crate::errors::{type_error, value_error};
use engine::storage::{Stored, bf16, f16, q8_blocks};
use numpy::{PyArrayDescrMethods, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::PyTuple;

const FLOATS: &str = "a float32, float16 or bfloat16 array";

/// One tensor as the engine stores it.
pub enum StoredArray<'py> {
    F32(Borrowed<'py, f32>),
    F16(Borrowed<'py, f16>),
    Bf16(Borrowed<'py, bf16>),
    Q8 { values: Borrowed<'py, i8>, scales: Borrowed<'py, f32> },
}

impl<'py> StoredArray<'py> {
    /// A query: one of the float types, or a `TypeError` naming `arg`.
    pub fn query(arg: &str, obj: &Bound<'py, PyAny>) -> PyResult<Self> {
        if obj.is_instance_of::<PyTuple>() {
            return Err(type_error(arg, FLOATS, "a tuple (q8 is for keys and values)"));
        }
        Self::floats(arg, obj)
    }

    /// A key or value: a float array, or q8's `(values, scales)` pair.
    pub fn key_or_value(arg: &str, obj: &Bound<'py, PyAny>) -> PyResult<Self> {
        let Ok(pair) = obj.cast::<PyTuple>() else { return Self::floats(arg, obj) };
        if pair.len() != 2 {
            return Err(type_error(
                arg,
                "an array, or a (values, scales) pair for q8",
                format!("a tuple of {}", pair.len()),
            ));
        }
        let values = Borrowed::<i8>::require(&format!("{arg}[0]"), &pair.get_item(0)?, "an int8 array")?;
        let scales = Borrowed::<f32>::require(&format!("{arg}[1]"), &pair.get_item(1)?, "a float32 array")?;
        let (shape, got) = (values.shape(), scales.shape());
        let want: Option<Vec<usize>> = shape.split_last().map(|(&width, rows)| [rows, &[q8_blocks(width)]].concat());
        if want.as_deref() != Some(got) {
            let expected = want
                .map_or("scales of a 1-dimensional or larger array".into(), |w| format!("shape {}", shape_text(&w)));
            return Err(value_error(&format!("{arg}[1]"), expected, shape_text(got)));
        }
        Ok(StoredArray::Q8 { values, scales })
    }

    /// `obj` as `float32`, `float16` or `bfloat16`.
    fn floats(arg: &str, obj: &Bound<'py, PyAny>) -> PyResult<Self> {
        let array = as_array(obj)?;
        if let Some(a) = Borrowed::extract(&array)? {
            return Ok(StoredArray::F32(a));
        }
        if let Some(a) = Borrowed::extract(&array)? {
            return Ok(StoredArray::F16(a));
        }
        // numpy's `bf16` element looks its dtype up by name, so it is asked
        // only for arrays whose dtype has that name (the lookup would fail
        // where no package has registered one).
        if is_bfloat16(&array)
            && let Some(a) = Borrowed::extract(&array)?
        {
            return Ok(StoredArray::Bf16(a));
        }
        Err(type_error(arg, FLOATS, dtype_of(&array)))
    }

    /// The values as the engine takes them.
    pub fn stored(&self) -> Stored<'_> {
        match self {
            StoredArray::F32(a) => Stored::F32(a.values()),
            StoredArray::F16(a) => Stored::F16(a.values()),
            StoredArray::Bf16(a) => Stored::Bf16(a.values()),
            StoredArray::Q8 { values, scales } => Stored::Q8 { values: values.values(), scales: scales.values() },
        }
    }

    /// The shape of the values.
    pub fn shape(&self) -> &[usize] {
        match self {
            StoredArray::F32(a) => a.shape(),
            StoredArray::F16(a) => a.shape(),
            StoredArray::Bf16(a) => a.shape(),
            StoredArray::Q8 { values, .. } => values.shape(),
        }
    }
}

/// Whether `array` is a NumPy array of the `bfloat16` dtype some package
/// (`ml_dtypes`) has registered: its dtype has that name and 2 bytes, and
/// `numpy.dtype("bfloat16")`, the lookup numpy's `bf16` element makes,
/// resolves to it.
fn is_bfloat16(array: &Bound<'_, PyAny>) -> bool {
    let Ok(a) = array.cast::<PyUntypedArray>() else { return false };
    let dtype = a.dtype();
    let name = dtype.getattr("name").and_then(|n| n.extract::<String>());
    if dtype.itemsize() != 2 || !name.is_ok_and(|n| n == "bfloat16") {
        return false;
    }
    let registered = array.py().import("numpy").and_then(|np| np.call_method1("dtype", ("bfloat16",)));
    registered.and_then(|r| r.eq(&dtype)).unwrap_or(false)
}
