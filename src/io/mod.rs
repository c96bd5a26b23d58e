//! Loading tensors from safetensors files under PyTorch/d2l state-dict
//! names (`std` feature).
//!
//! [`TensorFile`] owns a file's bytes and hands out tensors by name as
//! `f32` (converting F64, F16 and BF16), `i64` or `bool`, or at their
//! stored precision ([`StoredTensor`]: K and V of the reduced-precision
//! SDPA cases). [`params`] turns
//! them into operator parameters, checking every shape; [`case`] runs a
//! whole golden-format case, as `attn run` does. Every error names the
//! tensor and what was expected and found.

pub mod case;
pub mod params;
pub mod seq2seq;
mod stored;

pub use stored::StoredTensor;

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;
use safetensors::{Dtype, SafeTensors};

/// Why a file, tensor or case could not be used. Fields name the file or
/// tensor at fault, the value expected and the value found.
#[derive(Debug)]
#[non_exhaustive]
#[allow(missing_docs)]
pub enum LoadError {
    /// Reading or writing a file failed.
    Io { path: String, message: String },
    /// The bytes are not a valid safetensors file.
    Format(String),
    /// A tensor the operator needs is absent.
    Missing { tensor: String },
    /// A metadata entry is absent or unreadable.
    Metadata { key: String, problem: String },
    /// A tensor has a dtype this use does not accept.
    Dtype { tensor: String, expected: &'static str, found: String },
    /// A tensor's shape does not fit the operator.
    Shape { tensor: String, expected: String, found: Vec<usize> },
    /// A value is out of range (a negative length, say).
    Value { tensor: String, problem: String },
    /// A seq2seq source the model cannot read (an unknown token, too many
    /// tokens).
    Source(String),
    /// The operator refused the call.
    Op(crate::Error),
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Io { path, message } => write!(f, "{path}: {message}"),
            LoadError::Format(m) => write!(f, "not a valid safetensors file: {m}"),
            LoadError::Missing { tensor } => write!(f, "missing tensor `{tensor}`"),
            LoadError::Metadata { key, problem } => write!(f, "metadata `{key}`: {problem}"),
            LoadError::Dtype { tensor, expected, found } => {
                write!(f, "tensor `{tensor}`: expected dtype {expected}, found {found}")
            }
            LoadError::Shape { tensor, expected, found } => {
                write!(f, "tensor `{tensor}`: expected shape {expected}, found {found:?}")
            }
            LoadError::Value { tensor, problem } => write!(f, "tensor `{tensor}`: {problem}"),
            LoadError::Source(problem) => write!(f, "`source`: {problem}"),
            LoadError::Op(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for LoadError {}

impl From<crate::Error> for LoadError {
    fn from(e: crate::Error) -> Self {
        LoadError::Op(e)
    }
}

/// A tensor read as `T`, with its shape.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor<T> {
    /// Dimensions, outermost first.
    pub shape: Vec<usize>,
    /// Row-major values.
    pub data: Vec<T>,
}

impl<T> Tensor<T> {
    /// Checks the shape: `expected` entries of `None` match any size.
    pub fn expect_shape(&self, name: &str, expected: &[Option<usize>]) -> Result<(), LoadError> {
        let fits = self.shape.len() == expected.len()
            && self.shape.iter().zip(expected).all(|(&d, e)| e.is_none_or(|e| e == d));
        if fits {
            return Ok(());
        }
        let dims: Vec<String> = expected.iter().map(|e| e.map_or("_".to_string(), |d| d.to_string())).collect();
        Err(LoadError::Shape {
            tensor: name.to_string(),
            expected: alloc::format!("({})", dims.join(", ")),
            found: self.shape.clone(),
        })
    }
}

/// A safetensors file held in memory, validated on open.
pub struct TensorFile {
    bytes: Vec<u8>,
}

impl TensorFile {
    /// Reads and validates `path`.
    pub fn read(path: &std::path::Path) -> Result<TensorFile, LoadError> {
        let bytes = std::fs::read(path)
            .map_err(|e| LoadError::Io { path: path.display().to_string(), message: e.to_string() })?;
        TensorFile::from_bytes(bytes)
    }

    /// Validates `bytes` as a safetensors file (header, offsets, sizes).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<TensorFile, LoadError> {
        SafeTensors::deserialize(&bytes).map_err(|e| LoadError::Format(e.to_string()))?;
        Ok(TensorFile { bytes })
    }

    fn view(&self) -> SafeTensors<'_> {
        // Validated in `from_bytes`, and the bytes never change.
        SafeTensors::deserialize(&self.bytes).expect("validated on open")
    }

    /// Whether a tensor of that name exists.
    pub fn contains(&self, name: &str) -> bool {
        self.view().tensor(name).is_ok()
    }

    /// A `__metadata__` entry.
    pub fn metadata(&self, key: &str) -> Option<String> {
        let (_, meta) = SafeTensors::read_metadata(&self.bytes).ok()?;
        meta.metadata().as_ref()?.get(key).cloned()
    }

    /// A required `__metadata__` entry.
    pub fn require_metadata(&self, key: &str) -> Result<String, LoadError> {
        self.metadata(key).ok_or_else(|| LoadError::Metadata { key: key.to_string(), problem: "missing".to_string() })
    }

    fn raw(&self, name: &str) -> Result<(Dtype, Vec<usize>, &[u8]), LoadError> {
        let st = self.view();
        let t = st.tensor(name).map_err(|_| LoadError::Missing { tensor: name.to_string() })?;
        let (dtype, shape) = (t.dtype(), t.shape().to_vec());
        let range = t.data().as_ptr() as usize - self.bytes.as_ptr() as usize;
        Ok((dtype, shape, &self.bytes[range..range + t.data().len()]))
    }

    /// A floating-point tensor as `f32`: F32 as is; F64, F16 and BF16 converted.
    pub fn f32s(&self, name: &str) -> Result<Tensor<f32>, LoadError> {
        let (dtype, shape, bytes) = self.raw(name)?;
        let data = match dtype {
            Dtype::F32 => bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
            Dtype::F64 => {
                bytes.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32).collect()
            }
            Dtype::F16 => bytes.chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
            Dtype::BF16 => bytes.chunks_exact(2).map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
            other => return Err(dtype_error(name, "F32, F64, F16 or BF16", other)),
        };
        Ok(Tensor { shape, data })
    }

    /// An integer tensor (I64, I32) as `i64`.
    pub fn i64s(&self, name: &str) -> Result<Tensor<i64>, LoadError> {
        let (dtype, shape, bytes) = self.raw(name)?;
        let data = match dtype {
            Dtype::I64 => bytes.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes"))).collect(),
            Dtype::I32 => bytes.chunks_exact(4).map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i64).collect(),
            other => return Err(dtype_error(name, "I64 or I32", other)),
        };
        Ok(Tensor { shape, data })
    }

    /// Non-negative integer lengths (d2l `valid_lens`).
    pub fn lengths(&self, name: &str) -> Result<Tensor<usize>, LoadError> {
        let t = self.i64s(name)?;
        let data = t
            .data
            .iter()
            .map(|&v| usize::try_from(v))
            .collect::<Result<Vec<usize>, _>>()
            .map_err(|_| LoadError::Value { tensor: name.to_string(), problem: "negative length".to_string() })?;
        Ok(Tensor { shape: t.shape, data })
    }

    /// A boolean mask (BOOL or U8, nonzero = true).
    pub fn bools(&self, name: &str) -> Result<Tensor<bool>, LoadError> {
        let (dtype, shape, bytes) = self.raw(name)?;
        match dtype {
            Dtype::BOOL | Dtype::U8 => Ok(Tensor { shape, data: bytes.iter().map(|&b| b != 0).collect() }),
            other => Err(dtype_error(name, "BOOL or U8", other)),
        }
    }

    /// The dtype of a tensor, if present.
    pub fn dtype(&self, name: &str) -> Option<Dtype> {
        self.view().tensor(name).ok().map(|t| t.dtype())
    }
}

fn dtype_error(name: &str, expected: &'static str, found: Dtype) -> LoadError {
    LoadError::Dtype { tensor: name.to_string(), expected, found: alloc::format!("{found:?}") }
}
