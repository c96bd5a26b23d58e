//! Bahdanau's additive attention over C buffers, with the key cache a
//! decoder builds once per source sequence.
//!
//! C has no lifetimes, so the C side holds every buffer itself:
//! - the parameters as a [`simd_attention_additive_params`], pointers and
//!   sizes that each call checks again (nothing of them is kept);
//! - the cache's contents in a float buffer of
//!   `simd_attention_additive_key_cache_len` values, and the values it
//!   attends over in their own buffer, both owned by the caller;
//! - a small fixed-size [`simd_attention_key_cache`] handle in caller
//!   memory (on the stack, in a static), filled by
//!   `simd_attention_additive_key_cache` with where those two buffers are
//!   and the sizes they were built for.
//!
//! The handle exists because the core's `KeyCache` can only be made by
//! computing it: it has no constructor over an already filled buffer,
//! so a cache given back as a bare buffer plus its shape would have to be
//! projected again at every step, which is what the cache is there to
//! avoid. The handle is the mbedTLS pattern (a context struct whose fields
//! are private, in memory the caller provides): no allocation, no global
//! state, and it may be copied with `memcpy`. Each use checks it: a
//! zeroed or foreign handle is refused (`SIMD_ATTENTION_ERROR_CACHE`), as
//! are parameters whose sizes differ from those the cache was built for,
//! and outputs that overlap the cache's buffers.

use super::batched::{
    checked_forward, simd_attention_inputs, simd_attention_shape, with_checked_outputs, workspace_len_of,
};
use super::buffer::{Buffer, disjoint, read_one};
use super::mask::simd_attention_mask;
use super::simd_attention_status::{self, SIMD_ATTENTION_ERROR_CACHE};
use super::{run, write_len};
use crate::ops::{AdditiveAttention, Attention, KeyCache};
use core::ffi::c_int;
use core::mem::MaybeUninit;
use core::ops::Range;

/// The parameters of d2l's `AdditiveAttention`, borrowed: `W_q.weight`
/// `(hidden, query_dim)`, `W_k.weight` `(hidden, key_dim)` and
/// `w_v.weight` `(1, hidden)`, row-major as PyTorch stores them, with
/// their lengths in floats.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct simd_attention_additive_params {
    /// `W_q`, `hidden × query_dim` floats.
    pub w_q: *const f32,
    /// Floats at `w_q`.
    pub w_q_len: usize,
    /// `W_k`, `hidden × key_dim` floats.
    pub w_k: *const f32,
    /// Floats at `w_k`.
    pub w_k_len: usize,
    /// `w_v`, `hidden` floats.
    pub w_v: *const f32,
    /// Floats at `w_v`.
    pub w_v_len: usize,
    /// `H`, the width of the projections.
    pub hidden: usize,
    /// Features per query.
    pub query_dim: usize,
    /// Features per key.
    pub key_dim: usize,
}

impl simd_attention_additive_params {
    /// The descriptor of three borrowed matrices, for Rust callers (tests,
    /// fuzz targets): pointers and lengths taken from the slices, which
    /// must outlive every call that reads the descriptor.
    pub fn over(w_q: &[f32], w_k: &[f32], w_v: &[f32], hidden: usize, query_dim: usize, key_dim: usize) -> Self {
        simd_attention_additive_params {
            w_q: w_q.as_ptr(),
            w_q_len: w_q.len(),
            w_k: w_k.as_ptr(),
            w_k_len: w_k.len(),
            w_v: w_v.as_ptr(),
            w_v_len: w_v.len(),
            hidden,
            query_dim,
            key_dim,
        }
    }
}

/// Machine words (`size_t`) in a `simd_attention_key_cache` handle.
pub const SIMD_ATTENTION_KEY_CACHE_WORDS: usize = 32;

/// A key cache handle: where a cache built by
/// `simd_attention_additive_key_cache` lives and what it was built for.
/// Its contents are private. Zero it (`simd_attention_key_cache cache =
/// {0};`) or fill it before any use; a zeroed handle is refused.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct simd_attention_key_cache {
    /// Private. The handle may be copied whole (assignment, `memcpy`).
    // Bytes rather than numbers, so that a Rust copy keeps the pointers in
    // it intact, as C's `memcpy` does.
    opaque: MaybeUninit<[usize; SIMD_ATTENTION_KEY_CACHE_WORDS]>,
}

impl Default for simd_attention_key_cache {
    /// A zeroed handle, as C's `= {0}`.
    fn default() -> Self {
        simd_attention_key_cache { opaque: MaybeUninit::zeroed() }
    }
}

impl core::fmt::Debug for simd_attention_key_cache {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("simd_attention_key_cache { .. }")
    }
}

/// What a filled handle holds; `magic` first, so a zeroed or foreign
/// handle is told apart by reading one word.
#[repr(C)]
struct CacheRecord {
    magic: usize,
    hidden: usize,
    query_dim: usize,
    key_dim: usize,
    /// Bytes of the cache buffer and of the values, which outputs must
    /// not overlap.
    buffer: Range<usize>,
    values: Range<usize>,
    /// The cache itself, borrowing the caller's buffers for as long as the
    /// caller keeps them (the safety contract of the entry points).
    cache: KeyCache<'static>,
}

/// "KCaH", fits in 32 bits.
const MAGIC: usize = 0x4B43_6148;

const _: () = assert!(size_of::<CacheRecord>() <= size_of::<simd_attention_key_cache>());
const _: () = assert!(align_of::<CacheRecord>() <= align_of::<simd_attention_key_cache>());

/// Parameters whose pointers are checked (the seq2seq decoder's
/// attention takes them too).
pub(super) struct Params {
    w_q: Buffer<f32>,
    w_k: Buffer<f32>,
    w_v: Buffer<f32>,
    hidden: usize,
    query_dim: usize,
    key_dim: usize,
}

impl Params {
    /// # Safety
    /// A non-null, aligned `params` must be valid for reading one
    /// descriptor.
    unsafe fn from_ptr(params: *const simd_attention_additive_params) -> Result<Self, simd_attention_status> {
        // SAFETY: the caller promises a readable descriptor, plain data.
        Self::new(unsafe { read_one(params)? })
    }

    /// The descriptor's pointers, checked; reads no values.
    pub(super) fn new(p: simd_attention_additive_params) -> Result<Self, simd_attention_status> {
        Ok(Params {
            w_q: Buffer::new(p.w_q, p.w_q_len)?,
            w_k: Buffer::new(p.w_k, p.w_k_len)?,
            w_v: Buffer::new(p.w_v, p.w_v_len)?,
            hidden: p.hidden,
            query_dim: p.query_dim,
            key_dim: p.key_dim,
        })
    }

    pub(super) fn bytes(&self) -> [Range<usize>; 3] {
        [self.w_q.bytes(), self.w_k.bytes(), self.w_v.bytes()]
    }

    /// The operator; its lengths are checked by `AdditiveAttention::new`.
    ///
    /// # Safety
    /// The three matrices must be valid for reads, unwritten for `'a`.
    pub(super) unsafe fn attention<'a>(&self) -> Result<AdditiveAttention<'a>, simd_attention_status> {
        // SAFETY: checked buffers; validity is the caller's promise.
        let (w_q, w_k, w_v) = unsafe { (self.w_q.as_slice(), self.w_k.as_slice(), self.w_v.as_slice()) };
        Ok(AdditiveAttention::new(w_q, w_k, w_v, self.hidden, self.query_dim, self.key_dim)?)
    }
}

/// The record in a filled handle, and the handle's bytes.
///
/// # Safety
/// A non-null, aligned `cache` must point to a handle that is zeroed or
/// was filled by `simd_attention_additive_key_cache`, whose buffers are
/// still valid and unwritten for `'a`.
unsafe fn record<'a>(
    cache: *const simd_attention_key_cache,
) -> Result<(&'a CacheRecord, Range<usize>), simd_attention_status> {
    let handle = Buffer::new(cache, 1)?;
    // SAFETY: the handle is aligned for `CacheRecord` (asserted above) and
    // initialised (the caller's promise); its first word is `magic`
    // (`repr(C)`), or any value if the handle was never filled.
    let magic = unsafe { handle.as_ptr().cast::<usize>().read() };
    if magic != MAGIC {
        return Err(SIMD_ATTENTION_ERROR_CACHE);
    }
    // SAFETY: the magic says `simd_attention_additive_key_cache` wrote a
    // `CacheRecord` here, and the caller promises its buffers are live.
    Ok((unsafe { &*handle.as_ptr().cast::<CacheRecord>() }, handle.bytes()))
}

/// The floats a key cache needs for `batch × keys` keys, an attention of
/// `hidden` features and queries of `query_dim` (`KeyCache::buffer_len`),
/// written to `*len`.
///
/// # Safety
/// `len` must be `NULL` (refused) or valid for writing one `size_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn simd_attention_additive_key_cache_len(
    batch: usize,
    keys: usize,
    hidden: usize,
    query_dim: usize,
    len: *mut usize,
) -> c_int {
    // SAFETY: `len` as the caller promises.
    run(|| unsafe { write_len(len, KeyCache::buffer_len(batch, keys, hidden, query_dim)) })
}

/// The workspace floats `simd_attention_additive_forward_cached` needs for
/// `shape` (`shape.queries` being its `num_queries`), with or without the
/// weights output, written to `*len`.
///
/// # Safety
/// `params` must be `NULL` (refused) or point to a readable descriptor
/// whose matrices are readable for their lengths; `len` must be `NULL`
/// (refused) or valid for writing one `size_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn simd_attention_additive_cached_workspace_len(
    params: *const simd_attention_additive_params,
    shape: simd_attention_shape,
    with_weights: bool,
    len: *mut usize,
) -> c_int {
    // SAFETY: `params` and `len` as the caller promises.
    unsafe {
        let operator = || Params::from_ptr(params)?.attention();
        workspace_len_of(operator, len, |a| a.cached_workspace_len(&shape.into(), with_weights))
    }
}

/// The workspace floats `simd_attention_additive_forward` needs for
/// `shape`, with or without the weights output, written to `*len`.
///
/// # Safety
/// As `simd_attention_additive_cached_workspace_len`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn simd_attention_additive_workspace_len(
    params: *const simd_attention_additive_params,
    shape: simd_attention_shape,
    with_weights: bool,
    len: *mut usize,
) -> c_int {
    // SAFETY: `params` and `len` as the caller promises.
    unsafe {
        let operator = || Params::from_ptr(params)?.attention();
        workspace_len_of(operator, len, |a| a.workspace_len(&shape.into(), with_weights))
    }
}

/// Builds the key cache of `keys` `(batch, keys, key_dim)` and `values`
/// `(batch, keys, value_dim)` in `buffer` (at least
/// `simd_attention_additive_key_cache_len` floats), and fills the handle
/// `*cache` (`shape.queries` is not used).
///
/// The cache keeps pointers to `buffer` (all `buffer_len` floats of it)
/// and `values`, and a packed copy of `W_q`: from this call until the
/// handle's last use, `buffer` and `values` must stay allocated and
/// unwritten, and the cache must be used with parameters of the same sizes
/// (and the same, unchanged `W_q`, or else queries are projected afresh).
/// The keys are not needed again.
///
/// # Safety
/// - `params` must be `NULL` (refused) or point to a readable descriptor
///   whose matrices are readable for their lengths.
/// - Each other pointer must be `NULL` (refused unless its length is 0) or
///   valid for its length: `keys` and `values` for reads, `buffer` for
///   reads and writes, `cache` for writing one handle.
/// - No buffer may be written by another thread during the call; after it,
///   the rules above apply.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn simd_attention_additive_key_cache(
    params: *const simd_attention_additive_params,
    shape: simd_attention_shape,
    keys: *const f32,
    keys_len: usize,
    values: *const f32,
    values_len: usize,
    buffer: *mut f32,
    buffer_len: usize,
    cache: *mut simd_attention_key_cache,
) -> c_int {
    run(|| {
        // SAFETY: `params` as the caller promises.
        let params = unsafe { Params::from_ptr(params)? };
        let keys = Buffer::new(keys, keys_len)?;
        let values = Buffer::new(values, values_len)?;
        let buffer = Buffer::new_mut(buffer, buffer_len)?;
        let handle = Buffer::new_mut(cache, 1)?;
        let [w_q, w_k, w_v] = params.bytes();
        disjoint(&[buffer.bytes(), handle.bytes()], &[keys.bytes(), values.bytes(), w_q, w_k, w_v])?;
        // SAFETY: the matrices as the caller promises.
        let attention = unsafe { params.attention()? };
        // SAFETY: checked buffers, valid as the caller promises; `buffer`
        // overlaps no other (`disjoint`). `'static`: the cache outlives
        // this call for as long as the caller keeps `buffer` and `values`
        // allocated and unwritten, as it promises.
        let (keys_slice, values_slice, buffer_slice): (&[f32], &'static [f32], &'static mut [f32]) =
            unsafe { (keys.as_slice(), values.as_slice(), buffer.as_mut_slice()) };
        let built = attention.key_cache(&shape.into(), keys_slice, values_slice, buffer_slice)?;
        let record = CacheRecord {
            magic: MAGIC,
            hidden: params.hidden,
            query_dim: params.query_dim,
            key_dim: params.key_dim,
            buffer: buffer.bytes(),
            values: values.bytes(),
            cache: built,
        };
        // SAFETY: `handle` is non-null, aligned for the record and large
        // enough (asserted above), and writable (the caller's promise);
        // `write` does not read or drop the old contents.
        unsafe { handle.as_mut_ptr().cast::<CacheRecord>().write(record) };
        Ok(())
    })
}

/// Additive attention of `queries` `(B, num_queries, query_dim)` over the
/// keys and values of `*cache`: writes `out` `(B, num_queries, value_dim)`
/// and, unless `weights` is `NULL`, the attention weights `(B,
/// num_queries, K)`. `valid_lens` is `NULL` (every key) or a mask of kind
/// `SIMD_ATTENTION_MASK_NONE`, `_VALID_LENS` or `_VALID_LENS_PER_QUERY`.
/// `workspace` holds `simd_attention_additive_cached_workspace_len` floats.
/// Gives the same bits as `simd_attention_additive_forward`.
///
/// # Safety
/// - `params` as for `simd_attention_additive_key_cache`, with the sizes
///   the cache was built for.
/// - `cache` must be `NULL` (refused), a zeroed handle (refused), or a
///   handle filled by `simd_attention_additive_key_cache` whose buffers
///   are still allocated and unwritten.
/// - Each other pointer must be `NULL` (refused unless its length is 0; for
///   `valid_lens` and `weights`, none) or valid for its length: `queries`
///   and the mask for reads, `out`, `weights` and `workspace` for reads and
///   writes. No buffer may be written by another thread during the call.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn simd_attention_additive_forward_cached(
    params: *const simd_attention_additive_params,
    cache: *const simd_attention_key_cache,
    num_queries: usize,
    queries: *const f32,
    queries_len: usize,
    valid_lens: *const simd_attention_mask,
    out: *mut f32,
    out_len: usize,
    weights: *mut f32,
    weights_len: usize,
    workspace: *mut f32,
    workspace_len: usize,
) -> c_int {
    run(|| {
        // SAFETY: `params` as the caller promises.
        let params = unsafe { Params::from_ptr(params)? };
        // SAFETY: `cache` as the caller promises.
        let (record, handle) = unsafe { record(cache)? };
        let sizes = (params.hidden, params.query_dim, params.key_dim);
        if sizes != (record.hidden, record.query_dim, record.key_dim) {
            return Err(SIMD_ATTENTION_ERROR_CACHE);
        }
        let queries = Buffer::new(queries, queries_len)?;
        let inputs = [queries.bytes(), record.buffer.clone(), record.values.clone(), handle];
        let outputs = [(out, out_len), (weights, weights_len), (workspace, workspace_len)];
        // SAFETY: the mask, the outputs and `queries` (a checked buffer) as
        // the caller promises.
        unsafe {
            let operator = || params.attention();
            with_checked_outputs(
                &params.bytes(),
                &inputs,
                valid_lens,
                outputs,
                operator,
                |attention, valid_lens, (out, weights, workspace)| {
                    let queries = queries.as_slice();
                    attention.forward_cached(&record.cache, num_queries, queries, valid_lens, out, weights, workspace)
                },
            )
        }
    })
}

/// Additive attention without a cache (`AdditiveAttention::forward`, which
/// builds one in the workspace): `inputs.queries` `(B, Q, query_dim)` over
/// `inputs.keys` `(B, K, key_dim)` and `inputs.values` `(B, K,
/// value_dim)`, writing `out` `(B, Q, value_dim)` and, unless `weights` is
/// `NULL`, the weights `(B, Q, K)`. The inputs come in one named struct,
/// as every other operator's do, so keys and values cannot be swapped by
/// position. `valid_lens` as for `simd_attention_additive_forward_cached`;
/// `workspace` holds `simd_attention_additive_workspace_len` floats.
///
/// # Safety
/// `params` as for `simd_attention_additive_key_cache`; each other pointer
/// (the inputs' among them) must be `NULL` (refused unless its length is
/// 0; for `valid_lens` and `weights`, none) or valid for its length:
/// inputs for reads, `out`, `weights` and `workspace` for reads and
/// writes. No buffer may be written by another thread during the call.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn simd_attention_additive_forward(
    params: *const simd_attention_additive_params,
    shape: simd_attention_shape,
    inputs: simd_attention_inputs,
    valid_lens: *const simd_attention_mask,
    out: *mut f32,
    out_len: usize,
    weights: *mut f32,
    weights_len: usize,
    workspace: *mut f32,
    workspace_len: usize,
) -> c_int {
    let outputs = [(out, out_len), (weights, weights_len), (workspace, workspace_len)];
    run(|| {
        // SAFETY: `params` as the caller promises.
        let params = unsafe { Params::from_ptr(params)? };
        // SAFETY: every pointer as the caller promises.
        unsafe { checked_forward(&params.bytes(), || params.attention(), shape, inputs, valid_lens, outputs) }
    })
}
