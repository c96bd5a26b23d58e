//! Key and value tensors read at their stored precision: F32 (F64
//! narrowed), BF16, F16, or I8 with a scale tensor beside it (q8), as the
//! golden format's reduced-precision `sdpa` cases hold them. Nothing is
//! widened here; the kernels widen as they load.

use super::{LoadError, Tensor, TensorFile, dtype_error};
use crate::storage::{Q8_BLOCK, Storage, Stored, StoredMut, bf16, f16, q8_blocks};
use alloc::string::ToString;
use alloc::vec;
use alloc::vec::Vec;
use safetensors::Dtype;

/// An owned tensor in one of the storage types.
#[derive(Clone, Debug, PartialEq)]
pub enum StoredTensor {
    /// F32 values (F64 files are narrowed to these).
    F32(Vec<f32>),
    /// BF16 values.
    Bf16(Vec<bf16>),
    /// F16 values.
    F16(Vec<f16>),
    /// I8 values and one scale per [`Q8_BLOCK`] of each row.
    Q8 {
        /// The int8 values.
        values: Vec<i8>,
        /// The scales, `ceil(width / 32)` per row.
        scales: Vec<f32>,
    },
}

impl StoredTensor {
    /// `values` (whole rows of `width`) converted to `storage` as a
    /// [`crate::ops::KvCache`] stores them: bf16 and f16 round to nearest
    /// even, q8 quantizes each row ([`crate::storage::quantize_q8_row`]).
    /// Refused, naming `values`, when they are not whole rows.
    pub fn from_f32(values: &[f32], width: usize, storage: Storage) -> Result<StoredTensor, crate::Error> {
        let rows = values.len().checked_div(width).unwrap_or(0);
        crate::error::expect_len("values", rows * width, values.len())?;
        let mut tensor = match storage {
            Storage::F32 => StoredTensor::F32(vec![0.0; values.len()]),
            Storage::Bf16 => StoredTensor::Bf16(vec![bf16::ZERO; values.len()]),
            Storage::F16 => StoredTensor::F16(vec![f16::ZERO; values.len()]),
            Storage::Q8 => {
                StoredTensor::Q8 { values: vec![0; values.len()], scales: vec![0.0; rows * q8_blocks(width)] }
            }
        };
        tensor.as_stored_mut().store_rows(0, width, values);
        Ok(tensor)
    }

    /// Borrowed mutably, as a [`crate::ops::KvCache`] takes its buffers.
    pub fn as_stored_mut(&mut self) -> StoredMut<'_> {
        match self {
            StoredTensor::F32(v) => StoredMut::F32(v),
            StoredTensor::Bf16(v) => StoredMut::Bf16(v),
            StoredTensor::F16(v) => StoredMut::F16(v),
            StoredTensor::Q8 { values, scales } => StoredMut::Q8 { values, scales },
        }
    }

    /// The values as f32, exactly as the kernels widen them (rows of
    /// `width`; q8 as `q · scale`).
    pub fn widened(&self, width: usize) -> Vec<f32> {
        match self {
            StoredTensor::F32(v) => v.clone(),
            StoredTensor::Bf16(v) => v.iter().map(|x| x.to_f32()).collect(),
            StoredTensor::F16(v) => v.iter().map(|x| x.to_f32()).collect(),
            StoredTensor::Q8 { values, scales } => {
                let blocks = q8_blocks(width);
                let at = |i: usize| scales[i / width.max(1) * blocks + i % width.max(1) / Q8_BLOCK];
                values.iter().enumerate().map(|(i, &q)| f32::from(q) * at(i)).collect()
            }
        }
    }

    /// Borrowed, as the operators take it.
    pub fn as_stored(&self) -> Stored<'_> {
        match self {
            StoredTensor::F32(v) => Stored::F32(v),
            StoredTensor::Bf16(v) => Stored::Bf16(v),
            StoredTensor::F16(v) => Stored::F16(v),
            StoredTensor::Q8 { values, scales } => Stored::Q8 { values, scales },
        }
    }
}

impl TensorFile {
    /// Tensor `name` at its stored precision, with its shape.
    ///
    /// An I8 tensor is q8: it needs a tensor `{name}_scale` of F32 scales of
    /// shape `(dims[..-1], ceil(dims[-1] / block))`, all finite, and the
    /// metadata `block` must be 32 (the one block size the kernels have).
    /// `allow_q8 = false` refuses I8 (queries are never quantized).
    pub fn stored(&self, name: &str, allow_q8: bool) -> Result<(Vec<usize>, StoredTensor), LoadError> {
        let (dtype, shape, bytes) = self.raw(name)?;
        let halves = || bytes.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]]));
        let data = match dtype {
            Dtype::F32 | Dtype::F64 => StoredTensor::F32(self.f32s(name)?.data),
            Dtype::BF16 => StoredTensor::Bf16(halves().map(bf16::from_bits).collect()),
            Dtype::F16 => StoredTensor::F16(halves().map(f16::from_bits).collect()),
            Dtype::I8 if allow_q8 => {
                let values = bytes.iter().map(|&b| b as i8).collect();
                StoredTensor::Q8 { values, scales: self.q8_scales(name, &shape)? }
            }
            other => {
                let expected = if allow_q8 { "F32, F64, BF16, F16 or I8" } else { "F32, F64, BF16 or F16" };
                return Err(dtype_error(name, expected, other));
            }
        };
        Ok((shape, data))
    }

    /// The scales of q8 tensor `name` of shape `shape`, checked.
    fn q8_scales(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>, LoadError> {
        let block = self.require_metadata("block")?;
        if block.trim() != Q8_BLOCK.to_string() {
            let problem = alloc::format!("expected {Q8_BLOCK} (the q8 block size), found `{block}`");
            return Err(LoadError::Metadata { key: "block".to_string(), problem });
        }
        let scale_name = alloc::format!("{name}_scale");
        if self.dtype(&scale_name) != Some(Dtype::F32) && self.contains(&scale_name) {
            return Err(dtype_error(&scale_name, "F32", self.dtype(&scale_name).expect("present")));
        }
        let scales = self.f32s(&scale_name)?;
        let Some((&width, outer)) = shape.split_last() else {
            return Err(LoadError::Shape {
                tensor: name.to_string(),
                expected: "at least one dimension".to_string(),
                found: shape.to_vec(),
            });
        };
        let expected: Vec<Option<usize>> = outer.iter().map(|&d| Some(d)).chain([Some(q8_blocks(width))]).collect();
        Tensor::<()> { shape: scales.shape.clone(), data: Vec::new() }.expect_shape(&scale_name, &expected)?;
        if let Some(i) = scales.data.iter().position(|s| !s.is_finite()) {
            let problem = alloc::format!("scale {i} is {}, not finite", scales.data[i]);
            return Err(LoadError::Value { tensor: scale_name, problem });
        }
        Ok(scales.data)
    }
}
