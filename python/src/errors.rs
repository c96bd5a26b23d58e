//! The engine's errors as Python exceptions: a tensor of the wrong element
//! type is a `TypeError` (its storage types named as NumPy names them),
//! every other refusal a `ValueError` with the engine's message.

use engine::Error;
use pyo3::exceptions::{PyOverflowError, PyTypeError, PyValueError};
use pyo3::prelude::*;

/// The exception for `error`.
pub fn to_py(error: Error) -> PyErr {
    match error {
        Error::Storage { arg, expected, actual } => {
            type_error(arg, format!("storage {}", numpy_name(expected)), numpy_name(actual))
        }
        _ => PyValueError::new_err(error.to_string()),
    }
}

/// The engine's name of a storage type as Python code spells it.
fn numpy_name(engine: &str) -> &str {
    match engine {
        "f32" => "float32",
        "bf16" => "bfloat16",
        "f16" => "float16",
        other => other,
    }
}

/// `value` (any integer Python can index with, NumPy's included) as a
/// size: a `ValueError` naming `arg` when it is negative or past `usize`
/// (PyO3's own `OverflowError` would not name it), a `TypeError` when it
/// is not an integer.
pub fn size(arg: &str, value: &Bound<'_, PyAny>) -> PyResult<usize> {
    value.extract::<usize>().map_err(|err| {
        let py = value.py();
        if err.is_instance_of::<PyOverflowError>(py) {
            value_error(arg, format!("a size of at least 0 and at most {}", usize::MAX), repr(value))
        } else if err.is_instance_of::<PyTypeError>(py) {
            type_error(arg, "an int", repr(value))
        } else {
            err // raised by the object's own `__index__`
        }
    })
}

/// `value` as a float32, or a `TypeError` naming `arg`.
pub fn float(arg: &str, value: &Bound<'_, PyAny>) -> PyResult<f32> {
    value.extract::<f32>().map_err(|_| type_error(arg, "a float", repr(value)))
}

/// `err` (from NumPy or PyO3, about the object passed as `arg`) with the
/// argument's name in front, its type kept.
pub fn named(arg: &str, err: PyErr, py: Python<'_>) -> PyErr {
    let message = format!("`{arg}`: {}", err.value(py));
    if err.is_instance_of::<PyTypeError>(py) {
        PyTypeError::new_err(message)
    } else if err.is_instance_of::<PyValueError>(py) {
        PyValueError::new_err(message)
    } else {
        err
    }
}

/// How Python prints `value`.
pub fn repr(value: &Bound<'_, PyAny>) -> String {
    value.repr().map_or_else(|_| "?".into(), |r| r.to_string())
}

/// A `ValueError` in the engine's style: "`arg`: expected …, got …".
pub fn value_error(arg: &str, expected: impl core::fmt::Display, actual: impl core::fmt::Display) -> PyErr {
    PyValueError::new_err(format!("`{arg}`: expected {expected}, got {actual}"))
}

/// A `TypeError` in the same style.
pub fn type_error(arg: &str, expected: impl core::fmt::Display, actual: impl core::fmt::Display) -> PyErr {
    PyTypeError::new_err(format!("`{arg}`: expected {expected}, got {actual}"))
}
