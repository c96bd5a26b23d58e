//! A KV cache for decoder loops over C buffers (`ops::KvCache`): the caller
//! owns a [`simd_attention_kv_cache`], a plain struct of its shape, its two
//! buffers and how many positions are filled, and keeps it between steps.
//! `append` converts each step's f32 rows into the cache's storage type
//! and advances `len`; `attend` runs SDPA over the filled prefix, reading
//! it where it lies, and only reads the struct, so several threads may
//! attend to one cache at once.

use super::buffer::{Buffer, Outputs, disjoint, read_one};
use super::mask::{CheckedMask, MaskFor, simd_attention_mask};
use super::tensor::{CheckedTensor, simd_attention_tensor, simd_attention_tensor_mut};
use super::{Status, run, write_len};
use crate::ops::{CacheQuery, KvCache, KvCacheShape, KvCacheView, ScaledDotProductAttention, SdpaShape};
use core::ffi::c_int;
use core::ops::Range;

/// Sizes of a KV cache: keys `(batch, kv_heads, capacity, qk_dim)` and
/// values `(batch, kv_heads, capacity, v_dim)`, each (batch, kv head)'s
/// rows contiguous.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct simd_attention_kv_cache_shape {
    /// `B`.
    pub batch: usize,
    /// `Hkv`.
    pub kv_heads: usize,
    /// Positions each (batch, kv head) can hold.
    pub capacity: usize,
    /// `E`, the width of keys (and queries).
    pub qk_dim: usize,
    /// `Ev`, the width of values.
    pub v_dim: usize,
}

impl From<simd_attention_kv_cache_shape> for KvCacheShape {
    fn from(s: simd_attention_kv_cache_shape) -> Self {
        KvCacheShape { batch: s.batch, kv_heads: s.kv_heads, capacity: s.capacity, qk_dim: s.qk_dim, v_dim: s.v_dim }
    }
}

/// A KV cache in the caller's memory. Fill `shape`, `key` and `value`
/// (one storage type; `B·Hkv·capacity` rows each, and for q8
/// `ceil(width / 32)` scales a row) and set `len` to 0; then only
/// `simd_attention_kv_cache_append` changes `len`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct simd_attention_kv_cache {
    /// Its sizes.
    pub shape: simd_attention_kv_cache_shape,
    /// The keys' buffer.
    pub key: simd_attention_tensor_mut,
    /// The values' buffer.
    pub value: simd_attention_tensor_mut,
    /// Positions filled, the same for every (batch, kv head).
    pub len: usize,
}

/// A cache descriptor read and its buffers checked.
struct CheckedCache {
    shape: KvCacheShape,
    key: CheckedTensor,
    value: CheckedTensor,
    len: usize,
}

impl CheckedCache {
    /// # Safety
    /// A non-null, aligned `cache` must be valid for reading one descriptor.
    unsafe fn from_ptr(cache: *const simd_attention_kv_cache) -> Result<Self, super::simd_attention_status> {
        // SAFETY: the caller promises a readable descriptor, plain data.
        let c = unsafe { read_one(cache)? };
        let (key, value) = (CheckedTensor::new(c.key.into())?, CheckedTensor::new(c.value.into())?);
        Ok(CheckedCache { shape: c.shape.into(), key, value, len: c.len })
    }

    /// The bytes of the keys, their scales, the values and their scales.
    fn bytes(&self) -> [Range<usize>; 4] {
        let ([k, ks], [v, vs]) = (self.key.bytes(), self.value.bytes());
        [k, ks, v, vs]
    }
}

/// The workspace floats `simd_attention_kv_cache_attend` needs for
/// `q_heads` heads of `q_len` queries against a full cache of `shape` (so
/// one buffer serves a whole decoder loop), written to `*len`.
///
/// # Safety
/// `len` must be `NULL` (refused) or valid for writing one `size_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn simd_attention_kv_cache_workspace_len(
    shape: simd_attention_kv_cache_shape,
    q_heads: usize,
    q_len: usize,
    len: *mut usize,
) -> c_int {
    let s = shape;
    let full = SdpaShape {
        batch: s.batch,
        q_heads,
        kv_heads: s.kv_heads,
        q_len,
        kv_len: s.capacity,
        qk_dim: s.qk_dim,
        v_dim: s.v_dim,
    };
    let needed = ScaledDotProductAttention::default().workspace_len(&full, false);
    // SAFETY: `len` as the caller promises.
    run(|| unsafe { write_len(len, needed) })
}

/// Appends `new_positions` positions: `key` `(B, Hkv, new_positions, E)`
/// and `value` `(B, Hkv, new_positions, Ev)` in f32, converted to the
/// cache's storage type (bf16 and f16 round to nearest even, q8 quantizes
/// each row), after the `len` filled ones; then `cache->len` grows by
/// `new_positions`. Past the capacity it returns
/// `SIMD_ATTENTION_ERROR_CAPACITY`, and like every refusal writes nothing.
///
/// # Safety
/// `cache` must be `NULL` (refused) or point to a readable and writable
/// descriptor whose buffers are valid for reads and writes of their
/// lengths; `key` and `value` must be `NULL` (refused unless their length
/// is 0) or readable for their lengths. No buffer may be used by another
/// thread during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn simd_attention_kv_cache_append(
    cache: *mut simd_attention_kv_cache,
    new_positions: usize,
    key: *const f32,
    key_len: usize,
    value: *const f32,
    value_len: usize,
) -> c_int {
    run(|| {
        // SAFETY: the descriptor as the caller promises.
        let c = unsafe { CheckedCache::from_ptr(cache)? };
        let descriptor = Buffer::new_mut(cache, 1)?;
        let (key, value) = (Buffer::new(key, key_len)?, Buffer::new(value, value_len)?);
        let [k, ks, v, vs] = c.bytes();
        disjoint(&[k, ks, v, vs, descriptor.bytes()], &[key.bytes(), value.bytes()])?;
        // SAFETY: checked buffers, valid as the caller promises; the cache's
        // buffers and descriptor overlap each other and the inputs nowhere.
        let (stored_key, stored_value, key, value) =
            unsafe { (c.key.stored_mut(), c.value.stored_mut(), key.as_slice(), value.as_slice()) };
        let mut filled = KvCache::reopen(c.shape, stored_key, stored_value, c.len)?;
        filled.append(new_positions, key, value)?;
        // SAFETY: a checked, non-null, aligned descriptor the caller lends
        // for writing; no slice covers it.
        unsafe { (&raw mut (*descriptor.as_mut_ptr()).len).write(filled.len()) };
        Ok(())
    })
}

/// SDPA of `query` `(B, q_heads, q_len, E)` (f32, bf16 or f16) against the
/// cache's `len` filled positions: writes `out` `(B, q_heads, q_len, Ev)`.
/// `q_heads` is a multiple of `Hkv`. The queries are the last `q_len`
/// positions: the mask kind `SIMD_ATTENTION_MASK_CAUSAL` lets query `i`
/// see positions `0..=len − q_len + i` (as `_CAUSAL_LOWER_RIGHT` does), and
/// `_KEEP` / `_ADDITIVE` masks are `(batch, heads, q_len, len)`. `scale` is
/// `NULL` for `1/sqrt(E)`. `workspace` holds
/// `simd_attention_kv_cache_workspace_len` floats. The same bits as
/// `simd_attention_sdpa` over the filled rows as plain tensors.
///
/// # Safety
/// `cache` and `query` must be `NULL` (refused) or point to readable
/// descriptors whose buffers are readable for their lengths; `mask` and
/// `scale` must be `NULL` or readable; `out` and `workspace` must be `NULL`
/// (refused unless their length is 0) or valid for reads and writes of
/// their lengths. No buffer may be written by another thread during the
/// call.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn simd_attention_kv_cache_attend(
    cache: *const simd_attention_kv_cache,
    q_heads: usize,
    q_len: usize,
    query: *const simd_attention_tensor,
    mask: *const simd_attention_mask,
    scale: *const f32,
    out: *mut f32,
    out_len: usize,
    workspace: *mut f32,
    workspace_len: usize,
) -> c_int {
    run(|| {
        // SAFETY: the descriptors as the caller promises.
        let (c, query, mask) = unsafe {
            (
                CheckedCache::from_ptr(cache)?,
                CheckedTensor::from_ptr(query)?,
                CheckedMask::from_ptr(mask, MaskFor::Sdpa)?,
            )
        };
        let scale = Buffer::optional(scale, usize::from(!scale.is_null()))?;
        let outputs = Outputs::new([(out, out_len), (core::ptr::null_mut(), 0), (workspace, workspace_len)])?;
        let [k, ks, v, vs] = c.bytes();
        let [q, qs] = query.bytes();
        let scale_bytes = scale.map_or(0..0, |s| s.bytes());
        disjoint(&outputs.bytes(), &[k, ks, v, vs, q, qs, mask.bytes(), scale_bytes])?;
        attend(c, query, mask, scale, outputs, q_heads, q_len)
    })
}

/// The body of [`simd_attention_kv_cache_attend`], its buffers checked.
fn attend(
    c: CheckedCache,
    query: CheckedTensor,
    mask: CheckedMask,
    scale: Option<Buffer<f32>>,
    outputs: Outputs,
    q_heads: usize,
    q_len: usize,
) -> Status {
    // SAFETY: the mask's data as the caller promises.
    let mask = unsafe { mask.view()? }.sdpa()?;
    // SAFETY: a checked, non-null, aligned pointer to one float that the
    // caller lends for reading.
    let scale = scale.map(|s| unsafe { s.as_ptr().read() });
    // SAFETY: checked buffers, valid as the caller promises; the outputs
    // overlap nothing else (`disjoint`).
    let (view, query, (out, _, workspace)) = unsafe {
        let view = KvCacheView::new(c.shape, c.key.stored(), c.value.stored(), c.len)?;
        (view, CacheQuery { query: query.stored(), q_heads, q_len, mask }, outputs.as_mut_slices())
    };
    view.attend(&ScaledDotProductAttention { scale }, query, out, workspace)?;
    Ok(())
}
