//! Tensors of every storage type carved from the fuzzer's bytes, and the C
//! API's descriptors of them, for the targets that call through C
//! (`capi`, `capi_kv_cache`).

use crate::values;
use arbitrary::Unstructured;
use core::ffi::c_void;
use simd_attention::capi::{
    SIMD_ATTENTION_STORAGE_BF16, SIMD_ATTENTION_STORAGE_F16, SIMD_ATTENTION_STORAGE_Q8, simd_attention_storage,
    simd_attention_tensor, simd_attention_tensor_mut,
};
use simd_attention::io::StoredTensor;
use simd_attention::storage::{Storage, bf16, f16};

/// The storage a C code names; codes past the four defined ones (which
/// the API refuses) keep f32 buffers.
pub(crate) fn storage_of(code: simd_attention_storage) -> Storage {
    match code {
        SIMD_ATTENTION_STORAGE_BF16 => Storage::Bf16,
        SIMD_ATTENTION_STORAGE_F16 => Storage::F16,
        SIMD_ATTENTION_STORAGE_Q8 => Storage::Q8,
        _ => Storage::F32,
    }
}

/// `len` values of `storage` (and `scales_len` scales for q8), carved.
pub(crate) fn buffer(u: &mut Unstructured<'_>, storage: Storage, len: usize, scales_len: usize) -> StoredTensor {
    let x = values(u, len, false);
    match storage {
        Storage::F32 => StoredTensor::F32(x),
        Storage::Bf16 => StoredTensor::Bf16(x.iter().map(|&v| bf16::from_f32(v)).collect()),
        Storage::F16 => StoredTensor::F16(x.iter().map(|&v| f16::from_f32(v)).collect()),
        Storage::Q8 => {
            StoredTensor::Q8 { values: x.iter().map(|&v| v as i8).collect(), scales: values(u, scales_len, true) }
        }
    }
}

/// Every bit of a buffer, values then scales, for comparisons that NaN
/// cannot fool.
pub(crate) fn bits(t: &StoredTensor) -> Vec<u32> {
    match t {
        StoredTensor::F32(x) => x.iter().map(|v| v.to_bits()).collect(),
        StoredTensor::Bf16(x) => x.iter().map(|v| u32::from(v.to_bits())).collect(),
        StoredTensor::F16(x) => x.iter().map(|v| u32::from(v.to_bits())).collect(),
        StoredTensor::Q8 { values, scales } => {
            values.iter().map(|&v| v as u8 as u32).chain(scales.iter().map(|v| v.to_bits())).collect()
        }
    }
}

/// A C view of `t`, labelled `code` (which may disagree with `t`).
pub(crate) fn tensor_mut(code: simd_attention_storage, t: &mut StoredTensor) -> simd_attention_tensor_mut {
    let (data, len, scales, scales_len): (*mut c_void, usize, *mut f32, usize) = match t {
        StoredTensor::F32(x) => (x.as_mut_ptr().cast(), x.len(), core::ptr::null_mut(), 0),
        StoredTensor::Bf16(x) => (x.as_mut_ptr().cast(), x.len(), core::ptr::null_mut(), 0),
        StoredTensor::F16(x) => (x.as_mut_ptr().cast(), x.len(), core::ptr::null_mut(), 0),
        StoredTensor::Q8 { values, scales } => {
            (values.as_mut_ptr().cast(), values.len(), scales.as_mut_ptr(), scales.len())
        }
    };
    simd_attention_tensor_mut { storage: code, data, len, scales, scales_len }
}

/// A read-only C view of `t`, labelled `code`, its data now and then
/// `NULL` (which the API refuses unless the length is 0).
pub(crate) fn tensor(
    u: &mut Unstructured<'_>,
    code: simd_attention_storage,
    t: &mut StoredTensor,
) -> simd_attention_tensor {
    let view = tensor_mut(code, t);
    let data: *const c_void = view.data.cast_const();
    simd_attention_tensor {
        storage: code,
        data: if u.ratio(1u8, 64).unwrap_or(false) { core::ptr::null() } else { data },
        len: view.len,
        scales: view.scales.cast_const(),
        scales_len: view.scales_len,
    }
}
