//! A tensor as C passes it to SDPA: a storage type, a data pointer and a
//! length in values, and for q8 its scales.
//!
//! bf16 and f16 values come as their 16-bit patterns (`uint16_t`); every
//! pattern is a valid value of the `half` types, which are
//! `repr(transparent)` over `u16`, so no value needs checking.

use super::buffer::{Buffer, read_one};
use super::simd_attention_status::{self, SIMD_ATTENTION_ERROR_KIND};
use crate::storage::{Stored, StoredMut, bf16, f16};
use core::ffi::c_void;
use core::ops::Range;

/// A tensor's storage type: one of the `SIMD_ATTENTION_STORAGE_*` values.
pub type simd_attention_storage = u32;

/// `float` values.
pub const SIMD_ATTENTION_STORAGE_F32: simd_attention_storage = 0;
/// bfloat16 values, as `uint16_t` bit patterns.
pub const SIMD_ATTENTION_STORAGE_BF16: simd_attention_storage = 1;
/// IEEE half-precision values, as `uint16_t` bit patterns.
pub const SIMD_ATTENTION_STORAGE_F16: simd_attention_storage = 2;
/// `int8_t` values in blocks of 32 along each row, each block with one
/// `float` scale in `scales` (`ceil(width / 32)` per row): value `x` of
/// block `b` of a row is `x · scales[b]`.
pub const SIMD_ATTENTION_STORAGE_Q8: simd_attention_storage = 3;

/// A row-major tensor, borrowed. `{ .data = p, .len = n }` is `n` floats.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct simd_attention_tensor {
    /// A `SIMD_ATTENTION_STORAGE_*` value.
    pub storage: simd_attention_storage,
    /// The values: `const float *`, `const uint16_t *` (bf16, f16) or
    /// `const int8_t *` (q8), aligned for that type.
    pub data: *const c_void,
    /// Values at `data` (not bytes).
    pub len: usize,
    /// q8 only: the scales, row-major.
    pub scales: *const f32,
    /// q8 only: floats at `scales`.
    pub scales_len: usize,
}

/// A row-major tensor the call may write: a KV cache's keys or values.
/// The fields mean what they mean in [`simd_attention_tensor`].
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct simd_attention_tensor_mut {
    /// A `SIMD_ATTENTION_STORAGE_*` value.
    pub storage: simd_attention_storage,
    /// The values: `float *`, `uint16_t *` (bf16, f16) or `int8_t *` (q8).
    pub data: *mut c_void,
    /// Values at `data` (not bytes).
    pub len: usize,
    /// q8 only: the scales, row-major.
    pub scales: *mut f32,
    /// q8 only: floats at `scales`.
    pub scales_len: usize,
}

impl From<simd_attention_tensor_mut> for simd_attention_tensor {
    fn from(t: simd_attention_tensor_mut) -> Self {
        let (storage, len, scales_len) = (t.storage, t.len, t.scales_len);
        simd_attention_tensor { storage, data: t.data.cast_const(), len, scales: t.scales.cast_const(), scales_len }
    }
}

/// A tensor whose pointers are checked (not yet slices).
#[derive(Clone, Copy)]
pub(super) enum CheckedTensor {
    F32(Buffer<f32>),
    Bf16(Buffer<bf16>),
    F16(Buffer<f16>),
    Q8 { values: Buffer<i8>, scales: Buffer<f32> },
}

impl CheckedTensor {
    /// The tensor at `tensor`, checked; reads no values.
    ///
    /// # Safety
    /// A non-null, aligned `tensor` must be valid for reading one
    /// descriptor.
    pub(super) unsafe fn from_ptr(tensor: *const simd_attention_tensor) -> Result<Self, simd_attention_status> {
        // SAFETY: the caller promises a readable descriptor, plain data.
        Self::new(unsafe { read_one(tensor)? })
    }

    /// The tensor `t` describes, checked; reads no values.
    pub(super) fn new(t: simd_attention_tensor) -> Result<Self, simd_attention_status> {
        Ok(match t.storage {
            SIMD_ATTENTION_STORAGE_F32 => CheckedTensor::F32(Buffer::new(t.data.cast(), t.len)?),
            SIMD_ATTENTION_STORAGE_BF16 => CheckedTensor::Bf16(Buffer::new(t.data.cast(), t.len)?),
            SIMD_ATTENTION_STORAGE_F16 => CheckedTensor::F16(Buffer::new(t.data.cast(), t.len)?),
            SIMD_ATTENTION_STORAGE_Q8 => CheckedTensor::Q8 {
                values: Buffer::new(t.data.cast(), t.len)?,
                scales: Buffer::new(t.scales, t.scales_len)?,
            },
            _ => return Err(SIMD_ATTENTION_ERROR_KIND),
        })
    }

    /// The tensor as a KV cache takes its buffers, to write.
    ///
    /// # Safety
    /// The data (and scales) must be valid for reads and writes of their
    /// lengths, and no other reference to them may be used for `'a`
    /// ([`super::buffer::disjoint`] checks the call's other buffers).
    pub(super) unsafe fn stored_mut<'a>(self) -> StoredMut<'a> {
        // SAFETY (each arm): checked buffers, valid and exclusive as the
        // caller promises.
        match self {
            CheckedTensor::F32(v) => StoredMut::F32(unsafe { v.as_mut_slice() }),
            CheckedTensor::Bf16(v) => StoredMut::Bf16(unsafe { v.as_mut_slice() }),
            CheckedTensor::F16(v) => StoredMut::F16(unsafe { v.as_mut_slice() }),
            CheckedTensor::Q8 { values, scales } => {
                StoredMut::Q8 { values: unsafe { values.as_mut_slice() }, scales: unsafe { scales.as_mut_slice() } }
            }
        }
    }

    /// The bytes of its values and of its scales (empty but for q8).
    pub(super) fn bytes(&self) -> [Range<usize>; 2] {
        match self {
            CheckedTensor::F32(v) => [v.bytes(), 0..0],
            CheckedTensor::Bf16(v) => [v.bytes(), 0..0],
            CheckedTensor::F16(v) => [v.bytes(), 0..0],
            CheckedTensor::Q8 { values, scales } => [values.bytes(), scales.bytes()],
        }
    }

    /// The tensor as the core takes it.
    ///
    /// # Safety
    /// The data (and scales) must be valid for reads of their lengths,
    /// unwritten for `'a`.
    pub(super) unsafe fn stored<'a>(self) -> Stored<'a> {
        // SAFETY (each arm): checked buffers, valid as the caller promises.
        match self {
            CheckedTensor::F32(v) => Stored::F32(unsafe { v.as_slice() }),
            CheckedTensor::Bf16(v) => Stored::Bf16(unsafe { v.as_slice() }),
            CheckedTensor::F16(v) => Stored::F16(unsafe { v.as_slice() }),
            CheckedTensor::Q8 { values, scales } => {
                Stored::Q8 { values: unsafe { values.as_slice() }, scales: unsafe { scales.as_slice() } }
            }
        }
    }
}
