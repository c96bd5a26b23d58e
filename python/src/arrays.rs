//! NumPy arrays as the engine reads them: row-major slices with a shape.
//!
//! A C-contiguous, aligned array is borrowed in place. Any other layout
//! (Fortran order, strided or broadcast views, a misaligned buffer) is
//! copied once by `numpy.require` into one that is, so NumPy's own
//! iteration handles every layout and a copy too large for memory is its
//! `MemoryError`. Objects that are not NumPy arrays (lists, PyTorch CPU
//! tensors) go through `numpy.asarray` first, and nothing is ever
//! converted between element types: a `float64` array is refused, not
//! rounded, so the caller sees what precision the engine ran at.

use crate::errors::{named, type_error, value_error};
use numpy::{Element, PyArrayMethods, PyReadonlyArrayDyn, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::exceptions::PyMemoryError;
use pyo3::prelude::*;

/// One array of `T`, C-contiguous and aligned.
pub struct Borrowed<'py, T: Element> {
    array: PyReadonlyArrayDyn<'py, T>,
}

impl<'py, T: Element + Copy> Borrowed<'py, T> {
    /// `obj` as an array of `T`, or `None` if its element type differs.
    pub fn extract(obj: &Bound<'py, PyAny>) -> PyResult<Option<Self>> {
        let Ok(array) = obj.extract::<PyReadonlyArrayDyn<'py, T>>() else { return Ok(None) };
        let aligned = (array.data() as usize).is_multiple_of(align_of::<T>());
        if array.is_c_contiguous() && aligned {
            return Ok(Some(Borrowed { array }));
        }
        drop(array);
        let copy = obj.py().import("numpy")?.call_method1("require", (obj, obj.getattr("dtype")?, "CA"))?;
        Ok(copy.extract::<PyReadonlyArrayDyn<'py, T>>().ok().map(|array| Borrowed { array }))
    }

    /// `obj` as an array of `T`, or a `TypeError` naming `arg`.
    pub fn require(arg: &str, obj: &Bound<'py, PyAny>, expected: &str) -> PyResult<Self> {
        let array = as_array(obj).map_err(|e| named(arg, e, obj.py()))?;
        Self::extract(&array)?.ok_or_else(|| type_error(arg, expected, dtype_of(&array)))
    }

    /// The values in row-major order.
    pub fn values(&self) -> &[T] {
        // Never empty by mistake: `extract` made the array C-contiguous.
        self.array.as_slice().unwrap_or_default()
    }

    /// The array's shape.
    pub fn shape(&self) -> &[usize] {
        self.array.shape()
    }
}

/// `obj` itself if it is a NumPy array, else `numpy.asarray(obj)`.
pub fn as_array<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    if obj.is_instance_of::<PyUntypedArray>() {
        return Ok(obj.clone());
    }
    obj.py().import("numpy")?.call_method1("asarray", (obj,))
}

/// The element type of an array, as NumPy names it.
pub fn dtype_of(array: &Bound<'_, PyAny>) -> String {
    match array.extract::<Bound<'_, PyUntypedArray>>() {
        Ok(a) => format!("dtype {}", a.dtype().str().map(|s| s.to_string()).unwrap_or_default()),
        Err(_) => array.get_type().name().map(|n| n.to_string()).unwrap_or_default(),
    }
}

/// A shape as Python prints it: `(2, 3)`.
pub fn shape_text(shape: &[usize]) -> String {
    match shape {
        [one] => format!("({one},)"),
        _ => format!("({})", shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")),
    }
}

/// `len` copies of `value`, or a `MemoryError` naming `arg`: shapes that are
/// each valid can still ask for more memory than there is (a long query
/// against wide values), and Rust's allocator would abort the interpreter.
pub fn filled<T: Clone>(arg: &str, len: usize, value: T) -> PyResult<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(len).map_err(|_| PyMemoryError::new_err(format!("`{arg}`: cannot allocate {len} values")))?;
    v.resize(len, value);
    Ok(v)
}

/// `values` (row-major, `shape`) as a new NumPy array, the result named
/// `arg`. NumPy refuses a shape whose nonzero dimensions span more than
/// `isize::MAX` bytes even when another dimension is 0, and the engine
/// accepts such an empty problem (a batch of 0 over 2⁴⁰ keys has no
/// weights to write, though `(0, 2⁴⁰, 2⁴⁰)` is their shape). NumPy's own
/// `ValueError` names no argument, so it is raised here naming `arg`.
pub fn new_array<'py, T: Element>(
    py: Python<'py>,
    arg: &str,
    shape: &[usize],
    values: Vec<T>,
) -> PyResult<Bound<'py, PyAny>> {
    let bytes = shape.iter().filter(|&&d| d != 0).try_fold(core::mem::size_of::<T>(), |bytes, &d| bytes.checked_mul(d));
    if bytes.is_none_or(|b| isize::try_from(b).is_err()) {
        let expected = format!("a shape NumPy can hold (at most {} bytes, zero dimensions aside)", isize::MAX);
        return Err(value_error(arg, expected, shape_text(shape)));
    }
    let flat = numpy::PyArray1::from_vec(py, values);
    let array = numpy::PyArrayMethods::reshape(&flat, shape.to_vec()).map_err(|err| named(arg, err, py))?;
    Ok(array.into_any())
}

/// `obj` as an array of integers (any NumPy integer type): its values as
/// sizes, row-major, and its shape (an empty array of any element type is
/// taken too). A `TypeError` naming `arg` for another element type, a
/// `ValueError` naming it and the value for a negative one.
pub fn indices(arg: &str, obj: &Bound<'_, PyAny>) -> PyResult<(Vec<usize>, Vec<usize>)> {
    let array = as_array(obj).map_err(|e| named(arg, e, obj.py()))?;
    let kind: String = array.getattr("dtype")?.getattr("kind")?.extract()?;
    // `[]` is a float64 array to NumPy; an empty array holds no wrong value.
    let kind = if array.getattr("size")?.extract::<usize>()? == 0 { "i".to_string() } else { kind };
    let wide = |dtype: &str| array.call_method1("astype", (dtype,));
    match kind.as_str() {
        "u" => {
            let values = Borrowed::<u64>::require(arg, &wide("uint64")?, "uint64")?;
            let sizes = values.values().iter().map(|&v| usize::try_from(v).unwrap_or(usize::MAX)).collect();
            Ok((sizes, values.shape().to_vec()))
        }
        "i" => {
            let values = Borrowed::<i64>::require(arg, &wide("int64")?, "int64")?;
            let sizes = values.values().iter().map(|&v| usize::try_from(v)).collect::<Result<_, _>>();
            let negative = || values.values().iter().copied().find(|&v| v < 0).unwrap_or(-1);
            let sizes = sizes.map_err(|_| value_error(arg, "values of at least 0", negative()))?;
            Ok((sizes, values.shape().to_vec()))
        }
        _ => Err(type_error(arg, "an integer array", dtype_of(&array))),
    }
}
