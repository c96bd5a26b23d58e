//! The engine's errors as Python exceptions: a tensor of the wrong element
//! type is a `TypeError`, every other refusal a `ValueError`; both carry
//! the engine's message.

use engine::Error;
use pyo3::PyErr;
use pyo3::exceptions::{PyTypeError, PyValueError};

/// The exception for `error`.
pub fn to_py(error: Error) -> PyErr {
    match error {
        Error::Storage { .. } => PyTypeError::new_err(error.to_string()),
        _ => PyValueError::new_err(error.to_string()),
    }
}

/// A `ValueError` in the engine's style: "`arg`: expected …, got …".
pub fn value_error(arg: &str, expected: impl core::fmt::Display, actual: impl core::fmt::Display) -> PyErr {
    PyValueError::new_err(format!("`{arg}`: expected {expected}, got {actual}"))
}

/// A `TypeError` in the same style.
pub fn type_error(arg: &str, expected: impl core::fmt::Display, actual: impl core::fmt::Display) -> PyErr {
    PyTypeError::new_err(format!("`{arg}`: expected {expected}, got {actual}"))
}
