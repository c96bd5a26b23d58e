//! The C API's KV cache through a decoder loop carved from the bytes:
//! appends and attends in any order, with lengths one off, NULLs, storage
//! types that do not exist or do not match, sizes that overflow, a
//! descriptor whose `len` says more than its buffers hold, and outputs or
//! inputs that alias the cache.
//!
//! It checks that no call crashes; that a refused one returns a negative
//! status and changes neither the cache (its buffers and `len`) nor its
//! outputs; that an accepted `append` leaves the buffers a Rust
//! `KvCache` given the same rows holds, bit for bit; and that an accepted
//! `attend` gives the bits of the Rust view over those buffers, serial
//! and parallel.

use crate::c_buffers::{bits, buffer, storage_of, tensor, tensor_mut};
use crate::{FuzzMask, c_len, c_ptr, same_bits, size, values};
use arbitrary::Unstructured;
use simd_attention::capi::*;
use simd_attention::io::StoredTensor;
use simd_attention::ops::{CacheQuery, KvCache, KvCacheShape, KvCacheView, ScaledDotProductAttention};
use simd_attention::par;
use simd_attention::storage::q8_blocks;

/// The cache's two buffers as the C side and the Rust mirror hold them.
struct Buffers {
    key: StoredTensor,
    value: StoredTensor,
}

pub fn capi_kv_cache(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let mut shape = simd_attention_kv_cache_shape {
        batch: size(&mut u, 2),
        kv_heads: size(&mut u, 3),
        capacity: size(&mut u, 12),
        qk_dim: size(&mut u, 9),
        v_dim: size(&mut u, 9),
    };
    if u.ratio(1u8, 16).unwrap_or(false) {
        shape.capacity = usize::MAX / 2 + size(&mut u, 3);
    }
    let rows = shape.batch.saturating_mul(shape.kv_heads).saturating_mul(shape.capacity);
    // Now and then a storage type that does not exist, or values stored
    // unlike keys.
    let key_code = if u.ratio(1u8, 16).unwrap_or(false) { 4 } else { u.int_in_range(0u32..=3).unwrap_or(0) };
    let value_code = if u.ratio(1u8, 16).unwrap_or(false) { (key_code + 1) % 4 } else { key_code };
    let carve = |u: &mut Unstructured<'_>, code: simd_attention_storage, width: usize| {
        let len = c_len(u, rows.saturating_mul(width));
        let scales_len = c_len(u, rows.saturating_mul(q8_blocks(width)));
        buffer(u, storage_of(code), len, scales_len)
    };
    let mut c = Buffers { key: carve(&mut u, key_code, shape.qk_dim), value: carve(&mut u, value_code, shape.v_dim) };
    let mut mirror = Buffers { key: c.key.clone(), value: c.value.clone() };
    // Usually an empty cache; sometimes one that says it holds positions
    // already (reopened), perhaps more than its capacity.
    let mut len = if u.ratio(1u8, 8).unwrap_or(false) { size(&mut u, 14) } else { 0 };
    let reopened = KvCache::reopen(shape.into(), mirror.key.as_stored_mut(), mirror.value.as_stored_mut(), len);
    let cache_ok = key_code < 4 && reopened.is_ok();
    for _ in 0..size(&mut u, 6) {
        let mut cache = simd_attention_kv_cache {
            shape,
            key: tensor_mut(key_code, &mut c.key),
            value: tensor_mut(value_code, &mut c.value),
            len,
        };
        let before = (bits(&c.key), bits(&c.value));
        let (rc, accepted_by_rust) = if u.arbitrary().unwrap_or(false) {
            append(&mut u, &mut cache, &mut mirror, len, cache_ok)
        } else {
            attend(&mut u, &cache, &mirror, len, cache_ok)
        };
        let refused = crate::refused(rc);
        if let Some(ok) = accepted_by_rust {
            assert_eq!(!refused, ok, "C status {rc}, Rust {}", if ok { "accepted" } else { "refused" });
        }
        if refused {
            assert_eq!(cache.len, len, "a refused call (status {rc}) moved len");
            assert!(before == (bits(&c.key), bits(&c.value)), "a refused call (status {rc}) wrote to the cache");
        }
        len = cache.len;
        // What the C side holds is what the Rust cache holds.
        assert!(bits(&c.key) == bits(&mirror.key) && bits(&c.value) == bits(&mirror.value), "C and Rust caches differ");
    }
}

/// One `simd_attention_kv_cache_append`, and the same rows appended to the
/// Rust mirror where the C call's arguments are well formed. Returns the
/// C status and, where the mirror ran, whether it accepted.
fn append(
    u: &mut Unstructured<'_>,
    cache: &mut simd_attention_kv_cache,
    mirror: &mut Buffers,
    len: usize,
    cache_ok: bool,
) -> (i32, Option<bool>) {
    let s = cache.shape;
    let new = if u.ratio(1u8, 16).unwrap_or(false) { usize::MAX / 4 } else { size(u, 4) };
    let rows = s.batch.saturating_mul(s.kv_heads).saturating_mul(new);
    let (key_len, value_len) = (c_len(u, rows.saturating_mul(s.qk_dim)), c_len(u, rows.saturating_mul(s.v_dim)));
    let (key, value) = (values(u, key_len, false), values(u, value_len, false));
    let (mut key_ptr, value_ptr) = (c_ptr(u, &key), c_ptr(u, &value));
    let mut key_len = key.len();
    // Now and then keys read from the cache's own buffer, or from its
    // descriptor, which append writes: refused as aliasing.
    let alias = match size(u, 16) {
        0 if cache.key.len > 0 => {
            (key_ptr, key_len) = (cache.key.data.cast_const().cast(), 1);
            true
        }
        1 => {
            (key_ptr, key_len) = ((&raw const cache.len).cast(), 1);
            true
        }
        _ => false,
    };
    // SAFETY: the descriptor's buffers are as long as it says; each input
    // pointer is NULL or reads as many floats as its length.
    let rc = unsafe { simd_attention_kv_cache_append(cache, new, key_ptr, key_len, value_ptr, value.len()) };
    if alias {
        assert!(rc < 0, "an append reading the cache it writes was accepted");
    }
    let well_formed = !alias && (!key_ptr.is_null() || key.is_empty()) && (!value_ptr.is_null() || value.is_empty());
    if !(cache_ok && well_formed) {
        return (rc, None);
    }
    let shape = KvCacheShape::from(s);
    let mut rust = KvCache::reopen(shape, mirror.key.as_stored_mut(), mirror.value.as_stored_mut(), len).unwrap();
    let ok = rust.append(new, &key, &value).is_ok();
    assert_eq!(rust.len(), if ok { len + new } else { len }, "the Rust cache's len");
    (rc, Some(ok))
}

/// One `simd_attention_kv_cache_attend`, and the Rust view over the
/// mirror where the C call's arguments are well formed (its output then
/// has the view's bits, serial and parallel). Returns as [`append`] does.
fn attend(
    u: &mut Unstructured<'_>,
    cache: &simd_attention_kv_cache,
    mirror: &Buffers,
    len: usize,
    cache_ok: bool,
) -> (i32, Option<bool>) {
    let s = cache.shape;
    let q_heads = if u.ratio(1u8, 8).unwrap_or(false) { size(u, 7) } else { s.kv_heads * (1 + size(u, 2)) };
    let q_len = size(u, 4);
    let q_rows = s.batch.saturating_mul(q_heads).saturating_mul(q_len);
    // The query as f32, bf16 or f16; now and then q8 or no type at all,
    // both refused.
    let code = match size(u, 16) {
        0 => SIMD_ATTENTION_STORAGE_Q8,
        1 => 5,
        _ => u.int_in_range(0u32..=2).unwrap_or(0),
    };
    let q_len_c = c_len(u, q_rows.saturating_mul(s.qk_dim));
    let mut q = buffer(u, storage_of(code), q_len_c, 0);
    let query = tensor(u, code, &mut q);
    let mask = FuzzMask::carve(u, s.batch, q_heads, q_len, len);
    let scale = crate::moderate(u);
    let scale_ptr: *const f32 = if u.ratio(1u8, 2).unwrap_or(false) { &scale } else { core::ptr::null() };
    let mut ws_len = 0usize;
    // SAFETY: a valid `size_t` to write.
    let sized = unsafe { simd_attention_kv_cache_workspace_len(s, q_heads, q_len, &mut ws_len) };
    let ws_len = if sized == 0 { c_len(u, ws_len.min(1 << 20)) } else { size(u, 64) };
    let out_len = c_len(u, q_rows.saturating_mul(s.v_dim));
    let (mut out, mut ws) = (vec![7.0f32; out_len], vec![0.0f32; ws_len]);
    // Now and then the output written over the cache's values: refused.
    let alias = u.ratio(1u8, 16).unwrap_or(false) && cache.value.len > 0 && out_len > 0;
    let out_ptr = if alias { cache.value.data.cast() } else { out.as_mut_ptr() };
    let out_len_c = if alias { 1 } else { out_len };
    let c_mask = mask.c();
    // SAFETY: every pointer is NULL or reads or writes as many elements as
    // its length says; the cache's buffers are as long as it says.
    let rc = unsafe {
        simd_attention_kv_cache_attend(
            cache,
            q_heads,
            q_len,
            &query,
            mask.c_ptr(&c_mask),
            scale_ptr,
            out_ptr,
            out_len_c,
            ws.as_mut_ptr(),
            ws_len,
        )
    };
    if alias {
        assert!(rc < 0, "an attend writing over the cache was accepted");
        return (rc, None);
    }
    if rc != 0 {
        assert!(out.iter().all(|&v| v == 7.0), "a refused attend (status {rc}) wrote");
    }
    let well_formed = !query.data.is_null() || query.len == 0;
    if !(cache_ok && well_formed && code <= SIMD_ATTENTION_STORAGE_F16 && mask.well_formed()) {
        return (rc, None);
    }
    let shape = KvCacheShape::from(s);
    let view = KvCacheView::new(shape, mirror.key.as_stored(), mirror.value.as_stored(), len).unwrap();
    let op = ScaledDotProductAttention { scale: (!scale_ptr.is_null()).then_some(scale) };
    let cache_query = || CacheQuery { query: q.as_stored(), q_heads, q_len, mask: mask.rust() };
    let mut want = vec![0.0; out_len];
    let ok = view.attend(&op, cache_query(), &mut want, &mut vec![0.0; ws_len]).is_ok();
    if ok && rc == 0 {
        assert!(same_bits(&out, &want), "C and the Rust view differ");
        let mut parallel = vec![0.0; out_len];
        par::sdpa_cached(&op, view, cache_query(), &mut parallel).unwrap();
        assert!(same_bits(&parallel, &want), "parallel differs");
    }
    (rc, Some(ok))
}
