//! The engine's errors as Python exceptions: a tensor of the wrong element
//! type is a `TypeError` (its storage types named as NumPy names them),
//! every other refusal a `ValueError` with the engine's message.

use engine::Error;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::{PyErr, PyResult};

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

/// `value` as a size, or a `ValueError` naming `arg` when it is negative.
pub fn size(arg: &str, value: isize) -> PyResult<usize> {
    usize::try_from(value).map_err(|_| value_error(arg, "a size of at least 0", value))
}

/// A `ValueError` in the engine's style: "`arg`: expected …, got …".
pub fn value_error(arg: &str, expected: impl core::fmt::Display, actual: impl core::fmt::Display) -> PyErr {
    PyValueError::new_err(format!("`{arg}`: expected {expected}, got {actual}"))
}

/// A `TypeError` in the same style.
pub fn type_error(arg: &str, expected: impl core::fmt::Display, actual: impl core::fmt::Display) -> PyErr {
    PyTypeError::new_err(format!("`{arg}`: expected {expected}, got {actual}"))
}
