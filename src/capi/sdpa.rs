//! Scaled dot-product attention over C buffers
//! (`ops::ScaledDotProductAttention`), PyTorch's semantics:
//! `out = softmax(scale · Q Kᵀ + mask) · V` per (batch, head), with K and V
//! in f32, bf16, f16 or q8 and the query in f32, bf16 or f16.

use super::buffer::{Buffer, Outputs, disjoint};
use super::mask::{CheckedMask, MaskFor, simd_attention_mask};
use super::tensor::{CheckedTensor, simd_attention_tensor};
use super::{run, write_len};
use crate::ops::{ScaledDotProductAttention, SdpaInputs, SdpaShape};
use core::ffi::c_int;

/// Sizes of one SDPA call: query `(batch, q_heads, q_len, qk_dim)`, key
/// `(batch, kv_heads, kv_len, qk_dim)`, value `(batch, kv_heads, kv_len,
/// v_dim)`, output `(batch, q_heads, q_len, v_dim)`, weights `(batch,
/// q_heads, q_len, kv_len)`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct simd_attention_sdpa_shape {
    /// `B`.
    pub batch: usize,
    /// `Hq`.
    pub q_heads: usize,
    /// `Hkv`; must divide `Hq` (grouped-query attention when smaller).
    pub kv_heads: usize,
    /// `L`, queries per head.
    pub q_len: usize,
    /// `S`, keys per head.
    pub kv_len: usize,
    /// `E`, width of queries and keys.
    pub qk_dim: usize,
    /// `Ev`, width of values and output.
    pub v_dim: usize,
}

impl From<simd_attention_sdpa_shape> for SdpaShape {
    fn from(s: simd_attention_sdpa_shape) -> Self {
        SdpaShape {
            batch: s.batch,
            q_heads: s.q_heads,
            kv_heads: s.kv_heads,
            q_len: s.q_len,
            kv_len: s.kv_len,
            qk_dim: s.qk_dim,
            v_dim: s.v_dim,
        }
    }
}

/// The workspace floats `simd_attention_sdpa` needs for `shape`, with or
/// without the weights output (the same for every storage type), written
/// to `*len`.
///
/// # Safety
/// `len` must be `NULL` (refused) or valid for writing one `size_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn simd_attention_sdpa_workspace_len(
    shape: simd_attention_sdpa_shape,
    with_weights: bool,
    len: *mut usize,
) -> c_int {
    let needed = ScaledDotProductAttention::default().workspace_len(&shape.into(), with_weights);
    // SAFETY: `len` as the caller promises.
    run(|| unsafe { write_len(len, needed) })
}

/// `torch.nn.functional.scaled_dot_product_attention`: writes `out`
/// `(B, Hq, L, Ev)` and, unless `weights` is `NULL`, the weights `(B, Hq,
/// L, S)`.
///
/// - `query` is f32, bf16 or f16; `key` and `value` share one storage
///   type, any of the four.
/// - `mask` is `NULL` (every key) or of kind `SIMD_ATTENTION_MASK_NONE`,
///   `_CAUSAL` (top-left, as `is_causal`), `_CAUSAL_LOWER_RIGHT`, `_KEEP`
///   or `_ADDITIVE` (`(batch, heads, L, S)`, `batch` 1 or `B`, `heads` 1
///   or `Hq`). A row with no key left gives an output of zeros.
/// - `scale` is `NULL` for PyTorch's default `1/sqrt(E)`, or points to the
///   factor on `Q Kᵀ`.
/// - `workspace` holds `simd_attention_sdpa_workspace_len` floats.
///
/// # Safety
/// `query`, `key` and `value` must be `NULL` (refused) or point to
/// readable descriptors whose data and scales are readable for their
/// lengths; `mask` and `scale` must be `NULL` or readable (a mask's data
/// for its `len`); `out`, `weights` and `workspace` must be `NULL` (refused
/// unless their length is 0; for `weights`, none) or valid for reads and
/// writes of their lengths. No buffer may be written by another thread
/// during the call.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn simd_attention_sdpa(
    shape: simd_attention_sdpa_shape,
    query: *const simd_attention_tensor,
    key: *const simd_attention_tensor,
    value: *const simd_attention_tensor,
    mask: *const simd_attention_mask,
    scale: *const f32,
    out: *mut f32,
    out_len: usize,
    weights: *mut f32,
    weights_len: usize,
    workspace: *mut f32,
    workspace_len: usize,
) -> c_int {
    run(|| {
        // SAFETY: the descriptors as the caller promises.
        let (query, key, value, mask) = unsafe {
            (
                CheckedTensor::from_ptr(query)?,
                CheckedTensor::from_ptr(key)?,
                CheckedTensor::from_ptr(value)?,
                CheckedMask::from_ptr(mask, MaskFor::Sdpa)?,
            )
        };
        let scale = Buffer::optional(scale, usize::from(!scale.is_null()))?;
        let outputs = Outputs::new([(out, out_len), (weights, weights_len), (workspace, workspace_len)])?;
        let [q, q_scales] = query.bytes();
        let [k, k_scales] = key.bytes();
        let [v, v_scales] = value.bytes();
        let scale_bytes = scale.map_or(0..0, |s| s.bytes());
        disjoint(&outputs.bytes(), &[q, q_scales, k, k_scales, v, v_scales, mask.bytes(), scale_bytes])?;
        // SAFETY: the mask's data as the caller promises.
        let mask = unsafe { mask.view()? }.sdpa()?;
        // SAFETY: a checked, non-null, aligned pointer to one float that
        // the caller lends for reading.
        let scale = scale.map(|s| unsafe { s.as_ptr().read() });
        // SAFETY: checked buffers, valid as the caller promises; the
        // outputs overlap nothing else (`disjoint`).
        let (inputs, (out, weights, workspace)) = unsafe {
            let inputs = SdpaInputs { query: query.stored(), key: key.stored(), value: value.stored(), mask };
            (inputs, outputs.as_mut_slices())
        };
        ScaledDotProductAttention { scale }.forward(&shape.into(), inputs, out, weights, workspace)?;
        Ok(())
    })
}
