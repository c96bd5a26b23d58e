//! The C API (feature `capi`) called from Rust: every entry point gives the
//! same bits as the Rust operator it wraps, on every backend, and every
//! refusal (each `NULL` argument, short buffers, bad shapes, overflowing
//! sizes, unknown kinds, misalignment, aliasing, stale key caches) gives its
//! own code and writes nothing. `tests/c/run.sh` runs the golden cases
//! through the same functions from C.
//!
//! Each entry point's arguments are a `*Call` struct whose `call` passes
//! them on: a test builds the valid call once, and each bad-argument case
//! is that call with one field changed (`Call { field: bad, ..ok }`).
#![cfg(feature = "capi")]

mod common;
use common::{Rng, backends};
use core::ffi::{CStr, c_int};
use core::ptr::{null, null_mut};
use simd_attention::Error;
use simd_attention::capi::simd_attention_status::{self, *};
use simd_attention::capi::*;
use simd_attention::io::StoredTensor;
use simd_attention::kernels::{Mask, ScoreShape, masked_softmax};
use simd_attention::ops::{
    AdditiveAttention, Attention, AttentionInputs, AttentionShape, BilinearAttention, DotProductAttention, KeyCache,
    Linear, MhaDims, MultiHeadAttention, NadarayaWatson, ScaledDotProductAttention, SdpaInputs, SdpaMask, SdpaShape,
    ValidLens,
};
use simd_attention::simd::with_backend;
use simd_attention::storage::Storage;

/// A NaN that no kernel produces: a buffer still full of it was not written.
const SENTINEL: u32 = 0x7fa5_a5a5;

fn sentinel(n: usize) -> Vec<f32> {
    vec![f32::from_bits(SENTINEL); n]
}

fn untouched(v: &[f32]) -> bool {
    v.iter().all(|x| x.to_bits() == SENTINEL)
}

fn random(rng: &mut Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| 2.0 * rng.unit()).collect()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// `rc` is `want`, and every buffer in `outputs` still holds the sentinel.
#[track_caller]
fn refused(what: &str, rc: c_int, want: simd_attention_status, outputs: &[&[f32]]) {
    assert_eq!(rc, want.code(), "{what}: got {rc}, want {want:?}");
    for (i, o) in outputs.iter().enumerate() {
        assert!(untouched(o), "{what}: output {i} was written by a refused call");
    }
}

/// A buffer argument as C passes it: a pointer and a length in elements.
type In = (*const f32, usize);
/// A buffer the call may write.
type Out = (*mut f32, usize);

fn input(v: &[f32]) -> In {
    (v.as_ptr(), v.len())
}

fn output(v: &mut [f32]) -> Out {
    (v.as_mut_ptr(), v.len())
}

/// The optional weights output: `v` when requested, else `NULL` with
/// length 0.
fn weights_output(requested: bool, v: &mut [f32]) -> Out {
    if requested { output(v) } else { (null_mut(), 0) }
}

/// A pointer to the value, or `NULL` for `None`.
fn ptr_or_null<T>(value: &Option<T>) -> *const T {
    value.as_ref().map_or(null(), |v| v)
}

/// A mask of `kind` with no data.
fn mask(kind: simd_attention_mask_kind) -> simd_attention_mask {
    simd_attention_mask { kind, valid_lens: null(), keep: null(), additive: null(), len: 0, batch: 0, heads: 0 }
}

fn lens_mask(kind: simd_attention_mask_kind, lens: &[usize]) -> simd_attention_mask {
    simd_attention_mask { valid_lens: lens.as_ptr(), len: lens.len(), ..mask(kind) }
}

fn keep_mask(keep: &[u8], batch: usize, heads: usize) -> simd_attention_mask {
    simd_attention_mask { keep: keep.as_ptr(), len: keep.len(), batch, heads, ..mask(SIMD_ATTENTION_MASK_KEEP) }
}

fn additive_mask(values: &[f32], batch: usize, heads: usize) -> simd_attention_mask {
    let m = mask(SIMD_ATTENTION_MASK_ADDITIVE);
    simd_attention_mask { additive: values.as_ptr(), len: values.len(), batch, heads, ..m }
}

/// One entry point's arguments.
trait Call: Copy {
    /// Calls the entry point with them.
    ///
    /// # Safety
    /// Each pointer is valid for its length, or is exactly what the call
    /// must refuse before reading.
    unsafe fn call(self) -> c_int;
}

/// Each row's call gives the row's code and leaves `outputs` (the
/// sentinel-filled buffers the calls point into) unwritten.
///
/// # Safety
/// As [`Call::call`], for every row.
#[track_caller]
unsafe fn expect_codes<C: Call>(rows: &[(&str, C, simd_attention_status)], outputs: &[&[f32]]) {
    for &(what, args, want) in rows {
        // SAFETY: as the caller promises.
        refused(what, unsafe { args.call() }, want, outputs);
    }
}

#[test]
fn every_status_has_its_own_code_and_message() {
    // The ABI: each code's number, as include/simd_attention.h states it.
    let codes = [
        (SIMD_ATTENTION_OK, 0),
        (SIMD_ATTENTION_ERROR_NULL, -1),
        (SIMD_ATTENTION_ERROR_LENGTH, -2),
        (SIMD_ATTENTION_ERROR_DIMENSION, -3),
        (SIMD_ATTENTION_ERROR_OVERFLOW, -4),
        (SIMD_ATTENTION_ERROR_OUT_OF_BOUNDS, -5),
        (SIMD_ATTENTION_ERROR_OVERLAPPING, -6),
        (SIMD_ATTENTION_ERROR_VALUE, -7),
        (SIMD_ATTENTION_ERROR_BACKEND_UNAVAILABLE, -8),
        (SIMD_ATTENTION_ERROR_CAPACITY, -9),
        (SIMD_ATTENTION_ERROR_STORAGE, -10),
        (SIMD_ATTENTION_ERROR_ALIGNMENT, -11),
        (SIMD_ATTENTION_ERROR_ALIASING, -12),
        (SIMD_ATTENTION_ERROR_KIND, -13),
        (SIMD_ATTENTION_ERROR_CACHE, -14),
    ];
    let message = |code: c_int| {
        // SAFETY: the function returns a static NUL-terminated string.
        unsafe { CStr::from_ptr(simd_attention_status_message(code)) }.to_str().unwrap().to_owned()
    };
    let mut seen = Vec::new();
    for (status, code) in codes {
        assert_eq!(status.code(), code, "{status:?}");
        let m = message(code);
        assert!(!m.is_empty() && m != "unknown status code" && !seen.contains(&m), "{status:?}: {m}");
        seen.push(m);
    }
    for unknown in [1, -15, c_int::MIN] {
        assert_eq!(message(unknown), "unknown status code", "{unknown}");
    }

    // Each `Error` variant to its own code.
    let errors = [
        (Error::Length { arg: "a", expected: 1, actual: 2 }, SIMD_ATTENTION_ERROR_LENGTH),
        (Error::Dimension { arg: "a", expected: 1, actual: 2 }, SIMD_ATTENTION_ERROR_DIMENSION),
        (Error::Overflow { arg: "a" }, SIMD_ATTENTION_ERROR_OVERFLOW),
        (Error::OutOfBounds { arg: "a", needed: 1, len: 0 }, SIMD_ATTENTION_ERROR_OUT_OF_BOUNDS),
        (Error::Overlapping { arg: "a" }, SIMD_ATTENTION_ERROR_OVERLAPPING),
        (Error::Value { arg: "a", index: 0 }, SIMD_ATTENTION_ERROR_VALUE),
        (Error::BackendUnavailable { backend: "avx512" }, SIMD_ATTENTION_ERROR_BACKEND_UNAVAILABLE),
        (Error::Capacity { arg: "a", capacity: 1, needed: 2 }, SIMD_ATTENTION_ERROR_CAPACITY),
        (Error::Storage { arg: "a", expected: "f32", actual: "q8" }, SIMD_ATTENTION_ERROR_STORAGE),
    ];
    for (error, want) in errors {
        assert_eq!(simd_attention_status::from(error.clone()), want, "{error:?}");
    }

    // SAFETY: a static NUL-terminated string.
    let backend = unsafe { CStr::from_ptr(simd_attention_backend_name()) }.to_str().unwrap();
    assert_eq!(backend, simd_attention::backend().name());
}

// ---- masked softmax ------------------------------------------------------

#[derive(Clone, Copy)]
struct SoftmaxCall {
    scores: Out,
    shape: simd_attention_score_shape,
    mask: *const simd_attention_mask,
}

impl Call for SoftmaxCall {
    unsafe fn call(self) -> c_int {
        // SAFETY: as the caller promises.
        unsafe { simd_attention_masked_softmax(self.scores.0, self.scores.1, self.shape, self.mask) }
    }
}

#[test]
fn softmax_gives_the_rust_bits_for_every_mask_on_every_backend() {
    let mut rng = Rng(7);
    let c_shape = simd_attention_score_shape { batch: 3, queries: 5, keys: 37 };
    let shape = ScoreShape::from(c_shape);
    let scores = random(&mut rng, 3 * 5 * 37);
    let lens = [0usize, 5, 100];
    let per_query: Vec<usize> = (0..15).map(|r| r * 3 % 40).collect();
    let keep: Vec<bool> = (0..5 * 37).map(|i| i % 3 != 1).collect();
    let keep_bytes: Vec<u8> = keep.iter().map(|&k| k as u8).collect();
    let additive = random(&mut rng, scores.len());
    let cases = [
        (Mask::None, None),
        (Mask::None, Some(mask(SIMD_ATTENTION_MASK_NONE))),
        (Mask::ValidLens(&lens), Some(lens_mask(SIMD_ATTENTION_MASK_VALID_LENS, &lens))),
        (Mask::ValidLensPerQuery(&per_query), Some(lens_mask(SIMD_ATTENTION_MASK_VALID_LENS_PER_QUERY, &per_query))),
        (Mask::Keep(&keep), Some(keep_mask(&keep_bytes, 0, 0))),
        (Mask::Additive(&additive), Some(additive_mask(&additive, 0, 0))),
        (Mask::Causal, Some(mask(SIMD_ATTENTION_MASK_CAUSAL))),
    ];
    for backend in backends() {
        with_backend(backend, || {
            for (i, (m, c)) in cases.iter().enumerate() {
                let mut want = scores.clone();
                masked_softmax(&mut want, shape, *m).unwrap();
                let mut got = scores.clone();
                let args = SoftmaxCall { scores: output(&mut got), shape: c_shape, mask: ptr_or_null(c) };
                // SAFETY: every pointer is valid for its length.
                assert_eq!(unsafe { args.call() }, 0, "{backend}, case {i}");
                assert_eq!(bits(&got), bits(&want), "{backend}, case {i}");
            }
        })
        .unwrap();
    }
}

#[test]
fn softmax_refuses_bad_arguments_and_writes_nothing() {
    let shape = simd_attention_score_shape { batch: 2, queries: 2, keys: 3 };
    let mut s = sentinel(12);
    let lens = [1usize, 2];
    let bytes = [1u8, 0, 2, 1, 1, 1];
    let null_lens = simd_attention_mask { len: 2, ..mask(SIMD_ATTENTION_MASK_VALID_LENS) };
    let short_lens = lens_mask(SIMD_ATTENTION_MASK_VALID_LENS, &lens[..1]);
    let null_keep = simd_attention_mask { len: 6, ..mask(SIMD_ATTENTION_MASK_KEEP) };
    let byte_2 = keep_mask(&bytes, 1, 1);
    let null_additive = simd_attention_mask { len: 6, ..mask(SIMD_ATTENTION_MASK_ADDITIVE) };
    let in_scores = simd_attention_mask { additive: s.as_ptr().wrapping_add(6), ..null_additive };
    let misaligned = (&raw const lens).cast::<u8>().wrapping_add(1).cast::<simd_attention_mask>();
    let other_kinds = [SIMD_ATTENTION_MASK_CAUSAL_LOWER_RIGHT, 7, u32::MAX].map(mask);
    let ok = SoftmaxCall { scores: output(&mut s), shape, mask: null() };
    let empty = simd_attention_score_shape { batch: 0, ..shape };
    let huge = simd_attention_score_shape { batch: usize::MAX, ..shape };
    type C = SoftmaxCall;
    let mut rows = vec![
        ("scores NULL", C { scores: (null_mut(), 12), ..ok }, SIMD_ATTENTION_ERROR_NULL),
        ("NULL with length 0 is empty", C { scores: (null_mut(), 0), shape: empty, ..ok }, SIMD_ATTENTION_OK),
        ("scores short", C { scores: (ok.scores.0, 11), ..ok }, SIMD_ATTENTION_ERROR_LENGTH),
        ("shape overflows", C { shape: huge, ..ok }, SIMD_ATTENTION_ERROR_OVERFLOW),
        ("byte size overflows", C { scores: (ok.scores.0, usize::MAX / 2), ..ok }, SIMD_ATTENTION_ERROR_OVERFLOW),
        ("valid_lens NULL", C { mask: &null_lens, ..ok }, SIMD_ATTENTION_ERROR_NULL),
        ("valid_lens short", C { mask: &short_lens, ..ok }, SIMD_ATTENTION_ERROR_LENGTH),
        ("keep NULL", C { mask: &null_keep, ..ok }, SIMD_ATTENTION_ERROR_NULL),
        ("keep byte 2", C { mask: &byte_2, ..ok }, SIMD_ATTENTION_ERROR_VALUE),
        ("additive NULL", C { mask: &null_additive, ..ok }, SIMD_ATTENTION_ERROR_NULL),
        ("additive mask inside the scores", C { mask: &in_scores, ..ok }, SIMD_ATTENTION_ERROR_ALIASING),
        ("mask descriptor misaligned", C { mask: misaligned, ..ok }, SIMD_ATTENTION_ERROR_ALIGNMENT),
    ];
    let kind = "kind the softmax does not take";
    rows.extend(other_kinds.iter().map(|m| (kind, C { mask: m, ..ok }, SIMD_ATTENTION_ERROR_KIND)));
    // SAFETY: the pointers are valid for their lengths, or are exactly what
    // the call must refuse before reading.
    unsafe { expect_codes(&rows, &[&s]) };
}

// ---- additive attention --------------------------------------------------

#[derive(Clone, Copy)]
struct KeyCacheCall {
    params: *const simd_attention_additive_params,
    shape: simd_attention_shape,
    keys: In,
    values: In,
    buffer: Out,
    cache: *mut simd_attention_key_cache,
}

impl Call for KeyCacheCall {
    unsafe fn call(self) -> c_int {
        let Self { params, shape, keys: (k, kl), values: (v, vl), buffer: (b, bl), cache } = self;
        // SAFETY: as the caller promises.
        unsafe { simd_attention_additive_key_cache(params, shape, k, kl, v, vl, b, bl, cache) }
    }
}

#[derive(Clone, Copy)]
struct ForwardCachedCall {
    params: *const simd_attention_additive_params,
    cache: *const simd_attention_key_cache,
    num_queries: usize,
    queries: In,
    valid_lens: *const simd_attention_mask,
    out: Out,
    weights: Out,
    workspace: Out,
}

impl Call for ForwardCachedCall {
    unsafe fn call(self) -> c_int {
        let Self { params, cache, num_queries: nq, queries: (q, ql), valid_lens, out: (o, ol), .. } = self;
        let ((w, wl), (ws, wsl)) = (self.weights, self.workspace);
        // SAFETY: as the caller promises.
        unsafe { simd_attention_additive_forward_cached(params, cache, nq, q, ql, valid_lens, o, ol, w, wl, ws, wsl) }
    }
}

#[derive(Clone, Copy)]
struct ForwardCall {
    params: *const simd_attention_additive_params,
    shape: simd_attention_shape,
    queries: In,
    keys: In,
    values: In,
    valid_lens: *const simd_attention_mask,
    out: Out,
    weights: Out,
    workspace: Out,
}

impl Call for ForwardCall {
    unsafe fn call(self) -> c_int {
        let Self { params, shape, queries: (q, ql), keys: (k, kl), values: (v, vl), valid_lens, .. } = self;
        let ((o, ol), (w, wl), (ws, wsl)) = (self.out, self.weights, self.workspace);
        // SAFETY: as the caller promises.
        unsafe {
            let inputs =
                simd_attention_inputs { queries: q, queries_len: ql, keys: k, keys_len: kl, values: v, values_len: vl };
            simd_attention_additive_forward(params, shape, inputs, valid_lens, o, ol, w, wl, ws, wsl)
        }
    }
}

/// Weights and inputs of one additive attention, with the C parameters
/// over them; builds the calls of the entry points on them.
struct Additive {
    w_q: Vec<f32>,
    w_k: Vec<f32>,
    w_v: Vec<f32>,
    queries: Vec<f32>,
    keys: Vec<f32>,
    values: Vec<f32>,
    shape: simd_attention_shape,
    /// Over the three matrices (whose heap buffers do not move).
    params: simd_attention_additive_params,
}

impl Additive {
    fn new(seed: u64) -> Additive {
        let mut rng = Rng(seed);
        let hidden = 8;
        let shape = simd_attention_shape { batch: 2, queries: 3, keys: 13, query_dim: 5, key_dim: 6, value_dim: 4 };
        let (b, qd, kd) = (shape.batch, shape.query_dim, shape.key_dim);
        let (w_q, w_k, w_v) = (random(&mut rng, hidden * qd), random(&mut rng, hidden * kd), random(&mut rng, hidden));
        let params = simd_attention_additive_params::over(&w_q, &w_k, &w_v, hidden, qd, kd);
        Additive {
            queries: random(&mut rng, b * shape.queries * qd),
            keys: random(&mut rng, b * shape.keys * kd),
            values: random(&mut rng, b * shape.keys * shape.value_dim),
            w_q,
            w_k,
            w_v,
            shape,
            params,
        }
    }

    fn rust_shape(&self) -> AttentionShape {
        self.shape.into()
    }

    fn hidden(&self) -> usize {
        self.params.hidden
    }

    fn out_len(&self) -> usize {
        self.shape.batch * self.shape.queries * self.shape.value_dim
    }

    fn weights_len(&self) -> usize {
        self.shape.batch * self.shape.queries * self.shape.keys
    }

    fn cache_len(&self) -> usize {
        let s = self.shape;
        KeyCache::buffer_len(s.batch, s.keys, self.hidden(), s.query_dim).unwrap()
    }

    fn attention(&self) -> AdditiveAttention<'_> {
        let (h, qd, kd) = (self.hidden(), self.shape.query_dim, self.shape.key_dim);
        AdditiveAttention::new(&self.w_q, &self.w_k, &self.w_v, h, qd, kd).unwrap()
    }

    /// Builds the key cache in `buffer`, filling `*cache`.
    fn key_cache_call(&self, buffer: Out, cache: *mut simd_attention_key_cache) -> KeyCacheCall {
        let (params, shape) = (&self.params, self.shape);
        KeyCacheCall { params, shape, keys: input(&self.keys), values: input(&self.values), buffer, cache }
    }

    /// The cached forward of all the queries over `*cache`.
    fn forward_cached_call(
        &self,
        cache: *const simd_attention_key_cache,
        valid_lens: *const simd_attention_mask,
        [out, weights, workspace]: [Out; 3],
    ) -> ForwardCachedCall {
        let (params, num_queries, queries) = (&self.params, self.shape.queries, input(&self.queries));
        ForwardCachedCall { params, cache, num_queries, queries, valid_lens, out, weights, workspace }
    }

    /// The uncached forward.
    fn forward_call(&self, valid_lens: *const simd_attention_mask, [out, weights, workspace]: [Out; 3]) -> ForwardCall {
        let (queries, keys, values) = (input(&self.queries), input(&self.keys), input(&self.values));
        let (params, shape) = (&self.params, self.shape);
        ForwardCall { params, shape, queries, keys, values, valid_lens, out, weights, workspace }
    }

    /// A filled handle over `buffer`.
    fn cache(&self, buffer: &mut [f32]) -> simd_attention_key_cache {
        let mut cache = simd_attention_key_cache::default();
        // SAFETY: every pointer is valid for its length; `buffer` and the
        // values outlive every use of the handle in these tests.
        assert_eq!(unsafe { self.key_cache_call(output(buffer), &mut cache).call() }, 0);
        cache
    }
}

#[test]
fn additive_gives_the_rust_bits_cached_and_not_on_every_backend() {
    let a = Additive::new(11);
    let s = a.rust_shape();
    let per_query: Vec<usize> = (0..s.batch * s.queries).map(|r| r * 4 % 15).collect();
    let per_batch = [0usize, 9];
    let masks = [
        (ValidLens::All, None),
        (ValidLens::PerBatch(&per_batch), Some(lens_mask(SIMD_ATTENTION_MASK_VALID_LENS, &per_batch))),
        (ValidLens::PerQuery(&per_query), Some(lens_mask(SIMD_ATTENTION_MASK_VALID_LENS_PER_QUERY, &per_query))),
    ];
    let attention = a.attention();
    let mut cache_len = 0;
    // SAFETY: `cache_len` is a valid out-parameter.
    let rc = unsafe { simd_attention_additive_key_cache_len(s.batch, s.keys, a.hidden(), s.query_dim, &mut cache_len) };
    assert_eq!((rc, cache_len), (0, a.cache_len()));
    for backend in backends() {
        with_backend(backend, || {
            let mut buffer = sentinel(cache_len);
            let cache = a.cache(&mut buffer);
            for (i, (lens, c)) in masks.iter().enumerate() {
                let c_ptr = ptr_or_null(c);
                let inputs =
                    AttentionInputs { queries: &a.queries, keys: &a.keys, values: &a.values, valid_lens: *lens };
                let (mut want, mut want_w) = (vec![0.0; a.out_len()], vec![0.0; a.weights_len()]);
                let mut ws = vec![0.0; attention.workspace_len(&s, true).unwrap()];
                attention.forward(&s, inputs, &mut want, Some(&mut want_w), &mut ws).unwrap();

                for with_weights in [true, false] {
                    let (mut len, mut full_len) = (0, 0);
                    // SAFETY: valid descriptor and out-parameters.
                    let rc = unsafe {
                        simd_attention_additive_cached_workspace_len(&a.params, a.shape, with_weights, &mut len)
                            | simd_attention_additive_workspace_len(&a.params, a.shape, with_weights, &mut full_len)
                    };
                    assert_eq!(rc, 0);
                    assert_eq!(len, attention.cached_workspace_len(&s, with_weights).unwrap());
                    assert_eq!(full_len, attention.workspace_len(&s, with_weights).unwrap());
                    let (mut out, mut w, mut ws) =
                        (sentinel(a.out_len()), sentinel(a.weights_len()), sentinel(full_len));
                    let weights = weights_output(with_weights, &mut w);
                    let cached =
                        a.forward_cached_call(&cache, c_ptr, [output(&mut out), weights, (ws.as_mut_ptr(), len)]);
                    // SAFETY: every pointer is valid for its length.
                    assert_eq!(unsafe { cached.call() }, 0, "{backend}, mask {i}");
                    assert_eq!(bits(&out), bits(&want), "{backend}, mask {i}, cached");
                    if with_weights {
                        assert_eq!(bits(&w), bits(&want_w), "{backend}, mask {i}, cached weights");
                    } else {
                        assert!(untouched(&w));
                    }
                    let mut out2 = sentinel(a.out_len());
                    let uncached = a.forward_call(c_ptr, [output(&mut out2), weights, output(&mut ws)]);
                    // SAFETY: every pointer is valid for its length.
                    assert_eq!(unsafe { uncached.call() }, 0, "{backend}, mask {i}");
                    assert_eq!(bits(&out2), bits(&want), "{backend}, mask {i}, uncached");
                }
            }
        })
        .unwrap();
    }
}

#[test]
fn additive_key_cache_refuses_bad_arguments_and_writes_nothing() {
    let a = Additive::new(12);
    let mut buffer = sentinel(a.cache_len());
    let mut handle = simd_attention_key_cache::default();
    let p = a.params;
    let bad_params = [
        ("W_q NULL", simd_attention_additive_params { w_q: null(), ..p }, SIMD_ATTENTION_ERROR_NULL),
        ("W_k NULL", simd_attention_additive_params { w_k: null(), ..p }, SIMD_ATTENTION_ERROR_NULL),
        ("w_v NULL", simd_attention_additive_params { w_v: null(), ..p }, SIMD_ATTENTION_ERROR_NULL),
        ("W_q short", simd_attention_additive_params { w_q_len: p.w_q_len - 1, ..p }, SIMD_ATTENTION_ERROR_LENGTH),
        ("W_k short", simd_attention_additive_params { w_k_len: p.w_k_len - 1, ..p }, SIMD_ATTENTION_ERROR_LENGTH),
        ("w_v short", simd_attention_additive_params { w_v_len: p.w_v_len - 1, ..p }, SIMD_ATTENTION_ERROR_LENGTH),
    ];
    let ok = a.key_cache_call(output(&mut buffer), &mut handle);
    let ((k, kl), (v, vl), (b, bl)) = (ok.keys, ok.values, ok.buffer);
    let other_key_dim = simd_attention_shape { key_dim: a.shape.key_dim + 1, ..a.shape };
    let huge = simd_attention_shape { batch: usize::MAX, ..a.shape };
    let mut rows = vec![("params NULL", KeyCacheCall { params: null(), ..ok }, SIMD_ATTENTION_ERROR_NULL)];
    rows.extend(bad_params.iter().map(|(what, params, want)| (*what, KeyCacheCall { params, ..ok }, *want)));
    rows.extend([
        ("keys NULL", KeyCacheCall { keys: (null(), kl), ..ok }, SIMD_ATTENTION_ERROR_NULL),
        ("values NULL", KeyCacheCall { values: (null(), vl), ..ok }, SIMD_ATTENTION_ERROR_NULL),
        ("buffer NULL", KeyCacheCall { buffer: (null_mut(), bl), ..ok }, SIMD_ATTENTION_ERROR_NULL),
        ("handle NULL", KeyCacheCall { cache: null_mut(), ..ok }, SIMD_ATTENTION_ERROR_NULL),
        ("keys short", KeyCacheCall { keys: (k, kl - 1), ..ok }, SIMD_ATTENTION_ERROR_LENGTH),
        ("values short", KeyCacheCall { values: (v, vl - 1), ..ok }, SIMD_ATTENTION_ERROR_LENGTH),
        ("buffer short", KeyCacheCall { buffer: (b, bl - 1), ..ok }, SIMD_ATTENTION_ERROR_LENGTH),
        ("key_dim other than W_k's", KeyCacheCall { shape: other_key_dim, ..ok }, SIMD_ATTENTION_ERROR_DIMENSION),
        ("batch overflows", KeyCacheCall { shape: huge, ..ok }, SIMD_ATTENTION_ERROR_OVERFLOW),
        (
            "keys byte size overflows",
            KeyCacheCall { keys: (k, usize::MAX / 4 + 1), ..ok },
            SIMD_ATTENTION_ERROR_OVERFLOW,
        ),
        ("buffer over the keys", KeyCacheCall { keys: (b, kl), ..ok }, SIMD_ATTENTION_ERROR_ALIASING),
    ]);
    let zeroed = simd_attention_key_cache::default();
    let size = size_of::<simd_attention_key_cache>();
    for &(what, args, want) in &rows {
        // SAFETY: the pointers are valid for their lengths, or are exactly
        // what the call must refuse before reading.
        refused(what, unsafe { args.call() }, want, &[&buffer]);
        // SAFETY: both are plain words; compared as bytes.
        let same = unsafe {
            core::slice::from_raw_parts((&raw const handle).cast::<u8>(), size)
                == core::slice::from_raw_parts((&raw const zeroed).cast::<u8>(), size)
        };
        assert!(same, "{what}: the handle was written by a refused call");
    }
}

#[test]
fn additive_forward_refuses_bad_arguments_and_writes_nothing() {
    let a = Additive::new(13);
    let s = a.rust_shape();
    let mut buffer = sentinel(a.cache_len());
    let cache = a.cache(&mut buffer);
    let ws_len = a.attention().cached_workspace_len(&s, true).unwrap();
    let (mut out, mut w, mut ws) = (sentinel(a.out_len()), sentinel(a.weights_len()), sentinel(ws_len));
    let p = a.params;
    let lens = [1usize];
    let short_lens = lens_mask(SIMD_ATTENTION_MASK_VALID_LENS, &lens);
    let causal = simd_attention_mask { kind: SIMD_ATTENTION_MASK_CAUSAL, ..short_lens };
    let null_lens = simd_attention_mask { valid_lens: null(), ..short_lens };
    let zeroed = simd_attention_key_cache::default();
    let mut other_w_q = a.w_q.clone();
    other_w_q.truncate(a.hidden() * (s.query_dim - 1));
    let other = simd_attention_additive_params {
        w_q: other_w_q.as_ptr(),
        w_q_len: other_w_q.len(),
        query_dim: s.query_dim - 1,
        ..p
    };
    let ok = a.forward_cached_call(&cache, null(), [output(&mut out), output(&mut w), output(&mut ws)]);
    let ((q, ql), (o, ol), (wp, wl), (wsp, _)) = (ok.queries, ok.out, ok.weights, ok.workspace);
    let values = a.values.as_ptr().cast_mut();
    type C = ForwardCachedCall;
    let rows = [
        ("params NULL", C { params: null(), ..ok }, SIMD_ATTENTION_ERROR_NULL),
        ("cache NULL", C { cache: null(), ..ok }, SIMD_ATTENTION_ERROR_NULL),
        ("zeroed cache", C { cache: &zeroed, ..ok }, SIMD_ATTENTION_ERROR_CACHE),
        ("params of another query_dim", C { params: &other, ..ok }, SIMD_ATTENTION_ERROR_CACHE),
        ("queries NULL", C { queries: (null(), ql), ..ok }, SIMD_ATTENTION_ERROR_NULL),
        ("out NULL", C { out: (null_mut(), ol), ..ok }, SIMD_ATTENTION_ERROR_NULL),
        ("weights NULL with a length", C { weights: (null_mut(), wl), ..ok }, SIMD_ATTENTION_ERROR_NULL),
        ("workspace NULL", C { workspace: (null_mut(), ws_len), ..ok }, SIMD_ATTENTION_ERROR_NULL),
        ("valid_lens NULL", C { valid_lens: &null_lens, ..ok }, SIMD_ATTENTION_ERROR_NULL),
        ("queries short", C { queries: (q, ql - 1), ..ok }, SIMD_ATTENTION_ERROR_LENGTH),
        ("out short", C { out: (o, ol - 1), ..ok }, SIMD_ATTENTION_ERROR_LENGTH),
        ("weights short", C { weights: (wp, wl - 1), ..ok }, SIMD_ATTENTION_ERROR_LENGTH),
        ("workspace short", C { workspace: (wsp, ws_len - 1), ..ok }, SIMD_ATTENTION_ERROR_LENGTH),
        ("valid_lens short", C { valid_lens: &short_lens, ..ok }, SIMD_ATTENTION_ERROR_LENGTH),
        ("causal mask", C { valid_lens: &causal, ..ok }, SIMD_ATTENTION_ERROR_KIND),
        ("num_queries overflows", C { num_queries: usize::MAX, ..ok }, SIMD_ATTENTION_ERROR_OVERFLOW),
        ("out byte size overflows", C { out: (o, usize::MAX / 2), ..ok }, SIMD_ATTENTION_ERROR_OVERFLOW),
        ("out over the weights", C { out: (wp, ol), ..ok }, SIMD_ATTENTION_ERROR_ALIASING),
        (
            "workspace inside the cache",
            C { workspace: (buffer.as_mut_ptr(), ws_len), ..ok },
            SIMD_ATTENTION_ERROR_ALIASING,
        ),
        ("out over the values", C { out: (values, ol), ..ok }, SIMD_ATTENTION_ERROR_ALIASING),
    ];
    // SAFETY: the pointers are valid for their lengths, or are exactly what
    // the call must refuse before reading.
    unsafe { expect_codes(&rows, &[&out, &w]) };

    // The length queries.
    let mut len = 99;
    let len_ptr = &raw mut len;
    let huge = simd_attention_shape { queries: usize::MAX, ..a.shape };
    // SAFETY: valid or NULL out-parameters and descriptors.
    let queries = unsafe {
        [
            (
                "cache len NULL",
                simd_attention_additive_key_cache_len(1, 2, 3, 4, null_mut()),
                SIMD_ATTENTION_ERROR_NULL,
            ),
            (
                "cache len overflows",
                simd_attention_additive_key_cache_len(usize::MAX, 2, 3, 4, len_ptr),
                SIMD_ATTENTION_ERROR_OVERFLOW,
            ),
            (
                "workspace len, params NULL",
                simd_attention_additive_cached_workspace_len(null(), a.shape, true, len_ptr),
                SIMD_ATTENTION_ERROR_NULL,
            ),
            (
                "workspace len, len NULL",
                simd_attention_additive_workspace_len(&p, a.shape, true, null_mut()),
                SIMD_ATTENTION_ERROR_NULL,
            ),
            (
                "workspace len overflows",
                simd_attention_additive_workspace_len(&p, huge, false, len_ptr),
                SIMD_ATTENTION_ERROR_OVERFLOW,
            ),
        ]
    };
    for (what, rc, want) in queries {
        refused(what, rc, want, &[]);
    }
    assert_eq!(len, 99, "refused length queries leave *len alone");
}

// ---- dot-product, bilinear and multi-head attention ----------------------

/// The three operators of `simd_attention_{dot,bilinear,mha}_forward`.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Op {
    Dot,
    Bilinear,
    Mha,
}

const HEADS: usize = 2;
const HIDDEN: usize = 6;

/// Inputs and parameters of one batched call, with the C descriptors
/// over them (whose heap buffers do not move).
struct Batched {
    queries: Vec<f32>,
    keys: Vec<f32>,
    values: Vec<f32>,
    w_a: Vec<f32>,
    /// `W_q`, `W_k`, `W_v`, `W_o`, each with its bias or none (`W_q` and
    /// `W_v` have one, `W_k` and `W_o` not).
    linears: [(Vec<f32>, Option<Vec<f32>>); 4],
    shape: simd_attention_shape,
    mha: simd_attention_mha_params,
}

impl Batched {
    fn new(seed: u64) -> Batched {
        let mut rng = Rng(seed);
        let shape = simd_attention_shape { batch: 2, queries: 3, keys: 19, query_dim: 5, key_dim: 7, value_dim: 9 };
        let (b, q, k) = (shape.batch, shape.queries, shape.keys);
        let inputs = [shape.query_dim, shape.key_dim, shape.value_dim, HIDDEN];
        let mut i = 0;
        let linears = inputs.map(|d| {
            i += 1;
            (random(&mut rng, HIDDEN * d), (i % 2 == 1).then(|| random(&mut rng, HIDDEN)))
        });
        let c = |(w, bias): &(Vec<f32>, Option<Vec<f32>>)| simd_attention_linear {
            weight: w.as_ptr(),
            weight_len: w.len(),
            bias: bias.as_ref().map_or(null(), |b| b.as_ptr()),
            bias_len: bias.as_ref().map_or(0, Vec::len),
        };
        let mha = simd_attention_mha_params {
            w_q: c(&linears[0]),
            w_k: c(&linears[1]),
            w_v: c(&linears[2]),
            w_o: c(&linears[3]),
            num_heads: HEADS,
            num_hiddens: HIDDEN,
        };
        Batched {
            queries: random(&mut rng, b * q * shape.query_dim),
            keys: random(&mut rng, b * k * shape.key_dim),
            values: random(&mut rng, b * k * shape.value_dim),
            w_a: random(&mut rng, shape.query_dim * shape.key_dim),
            linears,
            shape,
            mha,
        }
    }

    /// Dot-product attention needs `query_dim == key_dim`.
    fn shape_for(&self, op: Op) -> simd_attention_shape {
        let key_dim = if op == Op::Dot { self.shape.query_dim } else { self.shape.key_dim };
        simd_attention_shape { key_dim, ..self.shape }
    }

    fn keys_for(&self, op: Op) -> &[f32] {
        let s = self.shape_for(op);
        &self.keys[..s.batch * s.keys * s.key_dim]
    }

    fn out_len(&self, op: Op) -> usize {
        let width = if op == Op::Mha { HIDDEN } else { self.shape.value_dim };
        self.shape.batch * self.shape.queries * width
    }

    fn weights_len(&self, op: Op) -> usize {
        let sets = if op == Op::Mha { HEADS } else { 1 };
        sets * self.shape.batch * self.shape.queries * self.shape.keys
    }

    /// The Rust operator's output and weights.
    fn rust(&self, op: Op, valid_lens: ValidLens<'_>) -> (Vec<f32>, Vec<f32>) {
        let s = AttentionShape::from(self.shape_for(op));
        let inputs =
            AttentionInputs { queries: &self.queries, keys: self.keys_for(op), values: &self.values, valid_lens };
        let (mut out, mut w) = (vec![0.0; self.out_len(op)], vec![0.0; self.weights_len(op)]);
        let run = |a: &dyn Attention, out: &mut [f32], w: &mut [f32]| {
            let mut ws = vec![0.0; a.workspace_len(&s, true).unwrap()];
            a.forward(&s, inputs, out, Some(w), &mut ws).unwrap();
        };
        match op {
            Op::Dot => run(&DotProductAttention, &mut out, &mut w),
            Op::Bilinear => run(&BilinearAttention::new(&self.w_a, s.query_dim, s.key_dim).unwrap(), &mut out, &mut w),
            Op::Mha => {
                let [q, k, v, o] = self.linears.each_ref().map(|(w, b)| Linear { weight: w, bias: b.as_deref() });
                let dims = MhaDims {
                    heads: HEADS,
                    hidden: HIDDEN,
                    query_dim: s.query_dim,
                    key_dim: s.key_dim,
                    value_dim: s.value_dim,
                };
                run(&MultiHeadAttention::new(q, k, v, o, dims).unwrap(), &mut out, &mut w)
            }
        }
        (out, w)
    }

    /// The call of `op`'s forward on these inputs.
    fn call(&self, op: Op, valid_lens: *const simd_attention_mask, outputs: [Out; 3]) -> BatchedCall {
        let keys = self.keys_for(op);
        let inputs = simd_attention_inputs {
            queries: self.queries.as_ptr(),
            queries_len: self.queries.len(),
            keys: keys.as_ptr(),
            keys_len: keys.len(),
            values: self.values.as_ptr(),
            values_len: self.values.len(),
        };
        let [out, weights, workspace] = outputs;
        let (w_a, mha) = (input(&self.w_a), &raw const self.mha);
        BatchedCall { op, w_a, mha, shape: self.shape_for(op), inputs, valid_lens, out, weights, workspace }
    }
}

#[derive(Clone, Copy)]
struct BatchedCall {
    op: Op,
    /// Bilinear's parameter.
    w_a: In,
    /// Multi-head's parameters.
    mha: *const simd_attention_mha_params,
    shape: simd_attention_shape,
    inputs: simd_attention_inputs,
    valid_lens: *const simd_attention_mask,
    out: Out,
    weights: Out,
    workspace: Out,
}

impl BatchedCall {
    /// The workspace length `op` asks for, and the query's status.
    fn workspace_len(self, with_weights: bool) -> (c_int, usize) {
        let Self { op, w_a: (a, al), mha, shape, .. } = self;
        let mut len = usize::MAX;
        // SAFETY: valid descriptors and out-parameter (as `call`'s caller promises).
        let rc = unsafe {
            match op {
                Op::Dot => simd_attention_dot_workspace_len(shape, with_weights, &mut len),
                Op::Bilinear => simd_attention_bilinear_workspace_len(a, al, shape, with_weights, &mut len),
                Op::Mha => simd_attention_mha_workspace_len(mha, shape, with_weights, &mut len),
            }
        };
        (rc, len)
    }
}

impl Call for BatchedCall {
    unsafe fn call(self) -> c_int {
        let Self { op, w_a: (a, al), mha, shape, inputs, valid_lens, .. } = self;
        let ((o, ol), (w, wl), (ws, wsl)) = (self.out, self.weights, self.workspace);
        // SAFETY: as the caller promises.
        unsafe {
            match op {
                Op::Dot => simd_attention_dot_forward(shape, inputs, valid_lens, o, ol, w, wl, ws, wsl),
                Op::Bilinear => {
                    simd_attention_bilinear_forward(a, al, shape, inputs, valid_lens, o, ol, w, wl, ws, wsl)
                }
                Op::Mha => simd_attention_mha_forward(mha, shape, inputs, valid_lens, o, ol, w, wl, ws, wsl),
            }
        }
    }
}

const OPS: [Op; 3] = [Op::Dot, Op::Bilinear, Op::Mha];

#[test]
fn dot_bilinear_and_mha_give_the_rust_bits_for_every_mask_on_every_backend() {
    let a = Batched::new(21);
    let s = a.shape;
    let per_query: Vec<usize> = (0..s.batch * s.queries).map(|r| r * 5 % 23).collect();
    let per_batch = [0usize, 11];
    let masks = [
        (ValidLens::All, None),
        (ValidLens::All, Some(mask(SIMD_ATTENTION_MASK_NONE))),
        (ValidLens::PerBatch(&per_batch), Some(lens_mask(SIMD_ATTENTION_MASK_VALID_LENS, &per_batch))),
        (ValidLens::PerQuery(&per_query), Some(lens_mask(SIMD_ATTENTION_MASK_VALID_LENS_PER_QUERY, &per_query))),
    ];
    for backend in backends() {
        with_backend(backend, || {
            for op in OPS {
                for (i, (lens, c)) in masks.iter().enumerate() {
                    let (want, want_w) = a.rust(op, *lens);
                    for with_weights in [true, false] {
                        let (mut out, mut w) = (sentinel(a.out_len(op)), sentinel(a.weights_len(op)));
                        let probe = a.call(op, ptr_or_null(c), [(null_mut(), 0); 3]);
                        let (rc, len) = probe.workspace_len(with_weights);
                        assert_eq!(rc, 0, "{op:?}");
                        let mut ws = sentinel(len);
                        let weights = weights_output(with_weights, &mut w);
                        let args = a.call(op, ptr_or_null(c), [output(&mut out), weights, output(&mut ws)]);
                        // SAFETY: every pointer is valid for its length.
                        assert_eq!(unsafe { args.call() }, 0, "{backend}, {op:?}, mask {i}");
                        assert_eq!(bits(&out), bits(&want), "{backend}, {op:?}, mask {i}");
                        if with_weights {
                            assert_eq!(bits(&w), bits(&want_w), "{backend}, {op:?}, mask {i}, weights");
                        }
                    }
                }
            }
        })
        .unwrap();
    }
}

#[test]
fn dot_bilinear_and_mha_refuse_bad_arguments_and_write_nothing() {
    let a = Batched::new(22);
    let lens = [1usize];
    let short_lens = lens_mask(SIMD_ATTENTION_MASK_VALID_LENS, &lens);
    let causal = mask(SIMD_ATTENTION_MASK_CAUSAL);
    let p = a.mha;
    let mha_rows = [
        (
            "W_q NULL",
            simd_attention_mha_params { w_q: simd_attention_linear { weight: null(), ..p.w_q }, ..p },
            SIMD_ATTENTION_ERROR_NULL,
        ),
        (
            "W_k short",
            simd_attention_mha_params { w_k: simd_attention_linear { weight_len: p.w_k.weight_len - 1, ..p.w_k }, ..p },
            SIMD_ATTENTION_ERROR_LENGTH,
        ),
        (
            "W_v bias short",
            simd_attention_mha_params { w_v: simd_attention_linear { bias_len: HIDDEN - 1, ..p.w_v }, ..p },
            SIMD_ATTENTION_ERROR_LENGTH,
        ),
        (
            "W_o bias NULL with a length",
            simd_attention_mha_params { w_o: simd_attention_linear { bias: null(), bias_len: HIDDEN, ..p.w_o }, ..p },
            SIMD_ATTENTION_ERROR_NULL,
        ),
        (
            "W_k bias of length 0, not NULL",
            simd_attention_mha_params { w_k: simd_attention_linear { bias: p.w_q.bias, bias_len: 0, ..p.w_k }, ..p },
            SIMD_ATTENTION_ERROR_LENGTH,
        ),
        (
            "num_heads not dividing num_hiddens",
            simd_attention_mha_params { num_heads: 4, ..p },
            SIMD_ATTENTION_ERROR_DIMENSION,
        ),
        ("no heads", simd_attention_mha_params { num_heads: 0, ..p }, SIMD_ATTENTION_ERROR_DIMENSION),
    ];
    for op in OPS {
        let probe = a.call(op, null(), [(null_mut(), 0); 3]);
        let ws_len = probe.workspace_len(true).1;
        let (mut out, mut w, mut ws) = (sentinel(a.out_len(op)), sentinel(a.weights_len(op)), sentinel(ws_len));
        let ok = a.call(op, null(), [output(&mut out), output(&mut w), output(&mut ws)]);
        // SAFETY: every pointer is valid for its length.
        assert_eq!(unsafe { ok.call() }, 0, "{op:?}");
        // `W_a` and `W_q`'s bias at the front of buffers that the outputs
        // also fit in, so that a call failing to refuse writes nothing out
        // of bounds.
        let mut w_a_room = sentinel(a.w_a.len().max(out.len()).max(ws_len));
        let mut bias_room = sentinel(HIDDEN.max(w.len()));
        bias_room[..HIDDEN].copy_from_slice(a.linears[0].1.as_deref().unwrap());
        let bias_over_weights =
            simd_attention_mha_params { w_q: simd_attention_linear { bias: bias_room.as_ptr(), ..p.w_q }, ..p };
        for written in [&mut out, &mut w, &mut ws] {
            written.fill(f32::from_bits(SENTINEL));
        }
        let (i, (o, ol), (wp, wl), (wsp, _)) = (ok.inputs, ok.out, ok.weights, ok.workspace);
        let huge = simd_attention_shape { batch: usize::MAX, ..ok.shape };
        let ws_len_nonzero = ws_len.max(1);
        let keys_as_out = (i.keys.cast_mut(), ol);
        type C = BatchedCall;
        let mut rows = vec![
            (
                "queries NULL",
                C { inputs: simd_attention_inputs { queries: null(), ..i }, ..ok },
                SIMD_ATTENTION_ERROR_NULL,
            ),
            (
                "keys short",
                C { inputs: simd_attention_inputs { keys_len: i.keys_len - 1, ..i }, ..ok },
                SIMD_ATTENTION_ERROR_LENGTH,
            ),
            (
                "values short",
                C { inputs: simd_attention_inputs { values_len: i.values_len - 1, ..i }, ..ok },
                SIMD_ATTENTION_ERROR_LENGTH,
            ),
            ("out NULL", C { out: (null_mut(), ol), ..ok }, SIMD_ATTENTION_ERROR_NULL),
            ("out short", C { out: (o, ol - 1), ..ok }, SIMD_ATTENTION_ERROR_LENGTH),
            ("weights short", C { weights: (wp, wl - 1), ..ok }, SIMD_ATTENTION_ERROR_LENGTH),
            ("workspace short", C { workspace: (wsp, ws_len_nonzero - 1), ..ok }, SIMD_ATTENTION_ERROR_LENGTH),
            ("valid_lens short", C { valid_lens: &short_lens, ..ok }, SIMD_ATTENTION_ERROR_LENGTH),
            ("causal mask", C { valid_lens: &causal, ..ok }, SIMD_ATTENTION_ERROR_KIND),
            ("batch overflows", C { shape: huge, ..ok }, SIMD_ATTENTION_ERROR_OVERFLOW),
            ("out over the keys", C { out: keys_as_out, ..ok }, SIMD_ATTENTION_ERROR_ALIASING),
            ("out over the weights", C { out: (wp, ol), ..ok }, SIMD_ATTENTION_ERROR_ALIASING),
        ];
        match op {
            Op::Dot => {
                let other = simd_attention_shape { key_dim: ok.shape.key_dim + 1, ..ok.shape };
                rows.push(("key_dim other than query_dim", C { shape: other, ..ok }, SIMD_ATTENTION_ERROR_DIMENSION));
            }
            Op::Bilinear => {
                let (wa, wal) = ok.w_a;
                // `W_a` at the start of a buffer that `out` also fits in, so
                // that a call failing to refuse writes nothing out of bounds.
                let room = w_a_room.as_mut_ptr();
                // SAFETY: `w_a_room` holds at least `wal` floats.
                unsafe { room.copy_from(wa, wal) };
                let ws_room = (room, ws_len_nonzero);
                rows.extend([
                    (
                        "workspace over W_a",
                        C { w_a: (room, wal), workspace: ws_room, ..ok },
                        SIMD_ATTENTION_ERROR_ALIASING,
                    ),
                    ("W_a NULL", C { w_a: (null(), wal), ..ok }, SIMD_ATTENTION_ERROR_NULL),
                    ("W_a short", C { w_a: (wa, wal - 1), ..ok }, SIMD_ATTENTION_ERROR_LENGTH),
                    ("out over W_a", C { w_a: (room, wal), out: (room, ol), ..ok }, SIMD_ATTENTION_ERROR_ALIASING),
                ]);
            }
            Op::Mha => {
                rows.push(("params NULL", C { mha: null(), ..ok }, SIMD_ATTENTION_ERROR_NULL));
                rows.extend(mha_rows.iter().map(|(what, params, want)| (*what, C { mha: params, ..ok }, *want)));
                let w_o = (p.w_o.weight.cast_mut(), ol);
                rows.push(("out over W_o", C { out: w_o, ..ok }, SIMD_ATTENTION_ERROR_ALIASING));
                let weights = (bias_room.as_mut_ptr(), wl);
                let row = C { mha: &bias_over_weights, weights, ..ok };
                rows.push(("weights over W_q's bias", row, SIMD_ATTENTION_ERROR_ALIASING));
            }
        }
        if ws_len == 0 {
            rows.retain(|(what, ..)| *what != "workspace short");
        }
        // An empty batch with every buffer NULL is a call with nothing to do.
        let empty = simd_attention_shape { batch: 0, ..ok.shape };
        let nothing = simd_attention_inputs {
            queries: null(),
            queries_len: 0,
            keys: null(),
            keys_len: 0,
            values: null(),
            values_len: 0,
        };
        let none = (null_mut(), 0);
        let row = C { shape: empty, inputs: nothing, out: none, weights: none, workspace: none, ..ok };
        rows.push(("an empty batch, every buffer NULL", row, SIMD_ATTENTION_OK));
        // SAFETY: the pointers are valid for their lengths, or are exactly
        // what the call must refuse before reading.
        unsafe { expect_codes(&rows, &[&out, &w, &ws]) };
        // SAFETY: valid descriptors; the NULL `len` is refused unwritten.
        let null_len = unsafe {
            match op {
                Op::Dot => simd_attention_dot_workspace_len(ok.shape, true, null_mut()),
                Op::Bilinear => simd_attention_bilinear_workspace_len(ok.w_a.0, ok.w_a.1, ok.shape, true, null_mut()),
                Op::Mha => simd_attention_mha_workspace_len(ok.mha, ok.shape, true, null_mut()),
            }
        };
        assert_eq!(null_len, SIMD_ATTENTION_ERROR_NULL.code(), "{op:?}: workspace query, len NULL");
        // The workspace query checks the parameters and the shape as the
        // forward does.
        for (what, args, want) in rows {
            let about_parameters = what.starts_with("W_") || what.starts_with("num_heads") || what == "no heads";
            let about_shape = what == "batch overflows" || what == "key_dim other than query_dim";
            if about_parameters || what == "params NULL" || about_shape {
                let (rc, len) = args.workspace_len(true);
                assert_eq!((rc, len), (want.code(), usize::MAX), "{op:?}, workspace query, {what}");
            }
        }
    }
}

#[test]
fn nadaraya_watson_gives_the_rust_bits_and_refuses_bad_arguments() {
    let mut rng = Rng(23);
    let (n, m) = (7, 13);
    let (queries, keys, values) = (random(&mut rng, n), random(&mut rng, n * m), random(&mut rng, n * m));
    let nw = NadarayaWatson { w: 1.7 };
    let inputs = simd_attention_inputs {
        queries: queries.as_ptr(),
        queries_len: n,
        keys: keys.as_ptr(),
        keys_len: n * m,
        values: values.as_ptr(),
        values_len: n * m,
    };
    for backend in backends() {
        with_backend(backend, || {
            let (mut want, mut want_w) = (vec![0.0; n], vec![0.0; n * m]);
            nw.forward(&queries, &keys, &values, &mut want, &mut want_w).unwrap();
            let (mut out, mut w) = (sentinel(n), sentinel(n * m));
            let (o, wp) = (out.as_mut_ptr(), w.as_mut_ptr());
            // SAFETY: every pointer is valid for its length.
            let rc = unsafe { simd_attention_nadaraya_watson(nw.w, n, m, inputs, o, n, wp, n * m) };
            assert_eq!(rc, 0, "{backend}");
            assert_eq!((bits(&out), bits(&w)), (bits(&want), bits(&want_w)), "{backend}");
        })
        .unwrap();
    }
    let (mut out, mut w) = (sentinel(n), sentinel(n * m));
    let (o, wp) = (out.as_mut_ptr(), w.as_mut_ptr());
    let i = inputs;
    let keys_out = i.keys.cast_mut();
    let none = simd_attention_inputs { queries: null(), queries_len: 0, keys: null(), keys_len: 0, ..i };
    let empty = simd_attention_inputs { values: null(), values_len: 0, ..none };
    type Row<'a> = (&'a str, (usize, usize), simd_attention_inputs, Out, Out, simd_attention_status);
    let rows: [Row<'_>; 12] = [
        (
            "queries NULL",
            (n, m),
            simd_attention_inputs { queries: null(), ..i },
            (o, n),
            (wp, n * m),
            SIMD_ATTENTION_ERROR_NULL,
        ),
        (
            "keys short",
            (n, m),
            simd_attention_inputs { keys_len: n * m - 1, ..i },
            (o, n),
            (wp, n * m),
            SIMD_ATTENTION_ERROR_LENGTH,
        ),
        (
            "values short",
            (n, m),
            simd_attention_inputs { values_len: n * m - 1, ..i },
            (o, n),
            (wp, n * m),
            SIMD_ATTENTION_ERROR_LENGTH,
        ),
        ("out short", (n, m), i, (o, n - 1), (wp, n * m), SIMD_ATTENTION_ERROR_LENGTH),
        ("weights NULL (required)", (n, m), i, (o, n), (null_mut(), 0), SIMD_ATTENTION_ERROR_LENGTH),
        ("weights NULL with a length", (n, m), i, (o, n), (null_mut(), n * m), SIMD_ATTENTION_ERROR_NULL),
        ("out over the weights", (n, m), i, (wp, n), (wp, n * m), SIMD_ATTENTION_ERROR_ALIASING),
        ("weights over the keys", (n, m), i, (o, n), (keys_out, n * m), SIMD_ATTENTION_ERROR_ALIASING),
        // The same 91 points read as 13 queries of 7 would be another
        // regression: the shape says which one the caller means.
        ("shape (13, 7) for 7 queries", (m, n), i, (o, n), (wp, n * m), SIMD_ATTENTION_ERROR_LENGTH),
        ("points overflow", (n, usize::MAX), i, (o, n), (wp, n * m), SIMD_ATTENTION_ERROR_OVERFLOW),
        ("no queries, every buffer NULL", (0, m), empty, (null_mut(), 0), (null_mut(), 0), SIMD_ATTENTION_OK),
        (
            "no points: every output 0",
            (n, 0),
            simd_attention_inputs { queries: i.queries, queries_len: n, ..empty },
            (o, n),
            (null_mut(), 0),
            SIMD_ATTENTION_OK,
        ),
    ];
    for (what, (nq, np), inputs, (o, ol), (w_ptr, wl), want) in rows {
        if want == SIMD_ATTENTION_OK {
            // SAFETY: every pointer is valid for its length.
            let rc = unsafe { simd_attention_nadaraya_watson(1.0, nq, np, inputs, o, ol, w_ptr, wl) };
            assert_eq!(rc, 0, "{what}");
            continue;
        }
        // SAFETY: the pointers are valid for their lengths, or are exactly
        // what the call must refuse before reading.
        let rc = unsafe { simd_attention_nadaraya_watson(1.0, nq, np, inputs, o, ol, w_ptr, wl) };
        refused(what, rc, want, &[&out, &w]);
    }
    assert!(out.iter().all(|&x| x == 0.0), "no points: every output 0");
}

// ---- SDPA ----------------------------------------------------------------

const STORAGES: [Storage; 4] = [Storage::F32, Storage::Bf16, Storage::F16, Storage::Q8];

/// The C descriptor over `t`.
fn c_tensor(t: &StoredTensor) -> simd_attention_tensor {
    let (storage, data, len, scales): (_, *const core::ffi::c_void, _, Option<&[f32]>) = match t {
        StoredTensor::F32(v) => (SIMD_ATTENTION_STORAGE_F32, v.as_ptr().cast(), v.len(), None),
        StoredTensor::Bf16(v) => (SIMD_ATTENTION_STORAGE_BF16, v.as_ptr().cast(), v.len(), None),
        StoredTensor::F16(v) => (SIMD_ATTENTION_STORAGE_F16, v.as_ptr().cast(), v.len(), None),
        StoredTensor::Q8 { values, scales } => {
            (SIMD_ATTENTION_STORAGE_Q8, values.as_ptr().cast(), values.len(), Some(scales))
        }
    };
    let (scales, scales_len) = scales.map_or((null(), 0), |s| (s.as_ptr(), s.len()));
    simd_attention_tensor { storage, data, len, scales, scales_len }
}

#[derive(Clone, Copy)]
struct SdpaCall {
    shape: simd_attention_sdpa_shape,
    query: *const simd_attention_tensor,
    key: *const simd_attention_tensor,
    value: *const simd_attention_tensor,
    mask: *const simd_attention_mask,
    scale: *const f32,
    out: Out,
    weights: Out,
    workspace: Out,
}

impl Call for SdpaCall {
    unsafe fn call(self) -> c_int {
        let Self { shape, query: q, key: k, value: v, mask: m, scale, .. } = self;
        let ((o, ol), (w, wl), (ws, wsl)) = (self.out, self.weights, self.workspace);
        // SAFETY: as the caller promises.
        unsafe { simd_attention_sdpa(shape, q, k, v, m, scale, o, ol, w, wl, ws, wsl) }
    }
}

#[test]
fn sdpa_gives_the_rust_bits_for_every_storage_and_mask_on_every_backend() {
    let mut rng = Rng(21);
    // L = 3 streams (decode path); L = 70 takes the flash tiles.
    for q_len in [3usize, 70] {
        let c_shape =
            simd_attention_sdpa_shape { batch: 2, q_heads: 4, kv_heads: 2, q_len, kv_len: 41, qk_dim: 36, v_dim: 20 };
        let shape = SdpaShape::from(c_shape);
        let query = StoredTensor::F32(random(&mut rng, 2 * 4 * q_len * 36));
        let (k, v) = (random(&mut rng, 2 * 2 * 41 * 36), random(&mut rng, 2 * 2 * 41 * 20));
        let keep: Vec<bool> = (0..2 * q_len * 41).map(|i| i % 5 != 2).collect();
        let keep_bytes: Vec<u8> = keep.iter().map(|&b| b as u8).collect();
        let additive = random(&mut rng, 4 * q_len * 41);
        let masks = [
            (SdpaMask::None, None),
            (SdpaMask::Causal, Some(mask(SIMD_ATTENTION_MASK_CAUSAL))),
            (SdpaMask::CausalLowerRight, Some(mask(SIMD_ATTENTION_MASK_CAUSAL_LOWER_RIGHT))),
            (SdpaMask::Keep { mask: &keep, batch: 2, heads: 1 }, Some(keep_mask(&keep_bytes, 2, 1))),
            (SdpaMask::Additive { mask: &additive, batch: 1, heads: 4 }, Some(additive_mask(&additive, 1, 4))),
        ];
        let out_len = 2 * 4 * q_len * 20;
        let w_len = 2 * 4 * q_len * 41;
        for backend in backends() {
            with_backend(backend, || {
                for storage in STORAGES {
                    let key = StoredTensor::from_f32(&k, 36, storage).unwrap();
                    let value = StoredTensor::from_f32(&v, 20, storage).unwrap();
                    let (c_query, c_key, c_value) = (c_tensor(&query), c_tensor(&key), c_tensor(&value));
                    for (i, (m, c_mask)) in masks.iter().enumerate() {
                        for (scale, with_weights) in [(None, false), (Some(0.3f32), true)] {
                            let op = ScaledDotProductAttention { scale };
                            let inputs = SdpaInputs {
                                query: query.as_stored(),
                                key: key.as_stored(),
                                value: value.as_stored(),
                                mask: *m,
                            };
                            let (mut want, mut want_w) = (vec![0.0; out_len], vec![0.0; w_len]);
                            let mut ws = vec![0.0; op.workspace_len(&shape, with_weights).unwrap()];
                            let want_w_opt = with_weights.then_some(&mut want_w[..]);
                            op.forward(&shape, inputs, &mut want, want_w_opt, &mut ws).unwrap();

                            let mut ws_len = 0;
                            // SAFETY: a valid out-parameter.
                            let rc = unsafe { simd_attention_sdpa_workspace_len(c_shape, with_weights, &mut ws_len) };
                            assert_eq!((rc, ws_len), (0, ws.len()));
                            let (mut out, mut w, mut ws) = (sentinel(out_len), sentinel(w_len), sentinel(ws_len));
                            let args = SdpaCall {
                                shape: c_shape,
                                query: &c_query,
                                key: &c_key,
                                value: &c_value,
                                mask: ptr_or_null(c_mask),
                                scale: ptr_or_null(&scale),
                                out: output(&mut out),
                                weights: weights_output(with_weights, &mut w),
                                workspace: output(&mut ws),
                            };
                            let what =
                                format!("{backend}, L {q_len}, storage {storage:?}, mask {i}, weights {with_weights}");
                            // SAFETY: every pointer is valid for its length.
                            assert_eq!(unsafe { args.call() }, 0, "{what}");
                            assert_eq!(bits(&out), bits(&want), "{what}");
                            if with_weights {
                                assert_eq!(bits(&w), bits(&want_w), "{what}");
                            } else {
                                assert!(untouched(&w), "{what}");
                            }
                        }
                    }
                }
            })
            .unwrap();
        }
    }
}

#[test]
fn sdpa_refuses_bad_arguments_and_writes_nothing() {
    let c_shape =
        simd_attention_sdpa_shape { batch: 1, q_heads: 2, kv_heads: 1, q_len: 2, kv_len: 3, qk_dim: 4, v_dim: 2 };
    let mut rng = Rng(5);
    let (q, k, v) = (random(&mut rng, 16), random(&mut rng, 12), random(&mut rng, 6));
    let (q, k, v) = (StoredTensor::F32(q), StoredTensor::F32(k), StoredTensor::F32(v));
    let (cq, ck, cv) = (c_tensor(&q), c_tensor(&k), c_tensor(&v));
    let ws_len = ScaledDotProductAttention::default().workspace_len(&c_shape.into(), true).unwrap();
    // `out` has room for the GQA case's 12 floats; the others use 8.
    let (mut out, mut w, mut ws) = (sentinel(12), sentinel(12), sentinel(ws_len));
    let keep = [1u8; 12];
    let bad_batch = keep_mask(&keep, 2, 1);
    let lens_kind = simd_attention_mask { kind: SIMD_ATTENTION_MASK_VALID_LENS, ..keep_mask(&keep, 1, 1) };
    let unknown_kind = simd_attention_mask { kind: 99, ..keep_mask(&keep, 1, 1) };
    let null_keep = simd_attention_mask { keep: null(), ..keep_mask(&keep, 1, 1) };
    let q_null = simd_attention_tensor { data: null(), ..cq };
    let q_short = simd_attention_tensor { len: cq.len - 1, ..cq };
    let q_q8 =
        simd_attention_tensor { storage: SIMD_ATTENTION_STORAGE_Q8, scales: ck.data.cast(), scales_len: 2, ..cq };
    let q_unknown = simd_attention_tensor { storage: 4, ..cq };
    let k_bf16 = c_tensor(&StoredTensor::from_f32(&random(&mut rng, 12), 4, Storage::Bf16).unwrap());
    let k_odd = simd_attention_tensor { data: k_bf16.data.cast::<u8>().wrapping_add(1).cast(), ..k_bf16 };
    let v_q8_no_scales = simd_attention_tensor { storage: SIMD_ATTENTION_STORAGE_Q8, scales_len: 6, ..cv };
    let huge = simd_attention_sdpa_shape { batch: usize::MAX, ..c_shape };
    let bad_heads = simd_attention_sdpa_shape { kv_heads: 3, ..c_shape };
    let gqa = simd_attention_sdpa_shape { q_heads: 3, kv_heads: 2, ..c_shape };
    let gqa_data = [vec![0.0; 24], vec![0.0; 24], vec![0.0; 12]].map(StoredTensor::F32);
    let [q3, k3, v3] = gqa_data.each_ref().map(c_tensor);
    let scale = 0.5f32;
    let misaligned_scale = (&raw const scale).cast::<u8>().wrapping_add(1).cast::<f32>();
    let (o, wp, wsp) = (out.as_mut_ptr(), w.as_mut_ptr(), ws.as_mut_ptr());
    let ok = SdpaCall {
        shape: c_shape,
        query: &cq,
        key: &ck,
        value: &cv,
        mask: null(),
        scale: null(),
        out: (o, 8),
        weights: (wp, 12),
        workspace: (wsp, ws_len),
    };
    let key_data = ck.data.cast::<f32>().cast_mut();
    let gqa_call =
        SdpaCall { shape: gqa, query: &q3, key: &k3, value: &v3, out: (o, 12), weights: (null_mut(), 0), ..ok };
    type C = SdpaCall;
    let rows = [
        ("query NULL", C { query: null(), ..ok }, SIMD_ATTENTION_ERROR_NULL),
        ("key NULL", C { key: null(), ..ok }, SIMD_ATTENTION_ERROR_NULL),
        ("value NULL", C { value: null(), ..ok }, SIMD_ATTENTION_ERROR_NULL),
        ("query data NULL", C { query: &q_null, ..ok }, SIMD_ATTENTION_ERROR_NULL),
        ("q8 scales NULL", C { value: &v_q8_no_scales, ..ok }, SIMD_ATTENTION_ERROR_NULL),
        ("keep NULL", C { mask: &null_keep, ..ok }, SIMD_ATTENTION_ERROR_NULL),
        ("out NULL", C { out: (null_mut(), 8), ..ok }, SIMD_ATTENTION_ERROR_NULL),
        ("weights NULL with a length", C { weights: (null_mut(), 12), ..ok }, SIMD_ATTENTION_ERROR_NULL),
        ("workspace NULL", C { workspace: (null_mut(), ws_len), ..ok }, SIMD_ATTENTION_ERROR_NULL),
        ("query short", C { query: &q_short, ..ok }, SIMD_ATTENTION_ERROR_LENGTH),
        ("out short", C { out: (o, 7), ..ok }, SIMD_ATTENTION_ERROR_LENGTH),
        ("weights short", C { weights: (wp, 11), ..ok }, SIMD_ATTENTION_ERROR_LENGTH),
        ("workspace short", C { scale: &scale, workspace: (wsp, ws_len - 1), ..ok }, SIMD_ATTENTION_ERROR_LENGTH),
        ("batch overflows", C { shape: huge, ..ok }, SIMD_ATTENTION_ERROR_OVERFLOW),
        ("out byte size overflows", C { out: (o, usize::MAX / 2), ..ok }, SIMD_ATTENTION_ERROR_OVERFLOW),
        ("kv_heads 3 for 2 query heads", C { shape: bad_heads, ..ok }, SIMD_ATTENTION_ERROR_LENGTH),
        ("q_heads 3 not a multiple of kv_heads 2", gqa_call, SIMD_ATTENTION_ERROR_DIMENSION),
        ("mask batch 2 for B = 1", C { mask: &bad_batch, ..ok }, SIMD_ATTENTION_ERROR_DIMENSION),
        ("valid_lens mask", C { mask: &lens_kind, ..ok }, SIMD_ATTENTION_ERROR_KIND),
        ("mask kind 99", C { mask: &unknown_kind, ..ok }, SIMD_ATTENTION_ERROR_KIND),
        ("storage 4", C { query: &q_unknown, ..ok }, SIMD_ATTENTION_ERROR_KIND),
        ("q8 query", C { query: &q_q8, ..ok }, SIMD_ATTENTION_ERROR_STORAGE),
        ("bf16 key, f32 value", C { key: &k_bf16, ..ok }, SIMD_ATTENTION_ERROR_STORAGE),
        ("bf16 key at an odd address", C { key: &k_odd, ..ok }, SIMD_ATTENTION_ERROR_ALIGNMENT),
        ("scale misaligned", C { scale: misaligned_scale, ..ok }, SIMD_ATTENTION_ERROR_ALIGNMENT),
        ("workspace over the key", C { workspace: (key_data, ws_len), ..ok }, SIMD_ATTENTION_ERROR_ALIASING),
        ("weights over the workspace", C { weights: (wsp, 12), ..ok }, SIMD_ATTENTION_ERROR_ALIASING),
    ];
    // SAFETY: the pointers are valid for their lengths, or are exactly what
    // the call must refuse before reading.
    unsafe { expect_codes(&rows, &[&out, &w]) };

    let mut len = 5;
    let huge = simd_attention_sdpa_shape { qk_dim: usize::MAX, ..c_shape };
    // SAFETY: valid or NULL out-parameters.
    let queries = unsafe {
        [
            (
                "workspace len NULL",
                simd_attention_sdpa_workspace_len(c_shape, true, null_mut()),
                SIMD_ATTENTION_ERROR_NULL,
            ),
            (
                "workspace len overflows",
                simd_attention_sdpa_workspace_len(huge, true, &mut len),
                SIMD_ATTENTION_ERROR_OVERFLOW,
            ),
        ]
    };
    for (what, rc, want) in queries {
        refused(what, rc, want, &[]);
    }
    assert_eq!(len, 5);
}

/// The C descriptor over `t`, to write.
fn c_tensor_mut(t: &mut StoredTensor) -> simd_attention_tensor_mut {
    let (storage, data, len, scales): (_, *mut core::ffi::c_void, _, Option<&mut [f32]>) = match t {
        StoredTensor::F32(v) => (SIMD_ATTENTION_STORAGE_F32, v.as_mut_ptr().cast(), v.len(), None),
        StoredTensor::Bf16(v) => (SIMD_ATTENTION_STORAGE_BF16, v.as_mut_ptr().cast(), v.len(), None),
        StoredTensor::F16(v) => (SIMD_ATTENTION_STORAGE_F16, v.as_mut_ptr().cast(), v.len(), None),
        StoredTensor::Q8 { values, scales } => {
            (SIMD_ATTENTION_STORAGE_Q8, values.as_mut_ptr().cast(), values.len(), Some(scales))
        }
    };
    let (scales, scales_len) = scales.map_or((null_mut(), 0), |s| (s.as_mut_ptr(), s.len()));
    simd_attention_tensor_mut { storage, data, len, scales, scales_len }
}

/// Rows `0..len` of each head of a `(heads, capacity, width)` tensor.
fn filled_rows(all: &[f32], capacity: usize, len: usize, width: usize) -> Vec<f32> {
    all.chunks(capacity * width).flat_map(|head| head[..len * width].iter().copied()).collect()
}

#[test]
fn kv_cache_gives_the_bits_of_sdpa_over_its_filled_rows_on_every_backend() {
    let shape = simd_attention_kv_cache_shape { batch: 2, kv_heads: 2, capacity: 9, qk_dim: 36, v_dim: 20 };
    let (heads, q_heads) = (4, 4);
    let mut rng = Rng(31);
    let (k, v) = (random(&mut rng, heads * 9 * 36), random(&mut rng, heads * 9 * 20));
    for backend in backends() {
        with_backend(backend, || {
            for storage in STORAGES {
                let zeros = |width| StoredTensor::from_f32(&vec![0.0; heads * 9 * width], width, storage).unwrap();
                let (mut key_buf, mut value_buf) = (zeros(36), zeros(20));
                let mut cache = simd_attention_kv_cache {
                    shape,
                    key: c_tensor_mut(&mut key_buf),
                    value: c_tensor_mut(&mut value_buf),
                    len: 0,
                };
                let mut ws_len = 0;
                // SAFETY: a valid out-parameter.
                let rc = unsafe { simd_attention_kv_cache_workspace_len(shape, q_heads, 3, &mut ws_len) };
                assert_eq!(rc, 0);
                for new in [3usize, 1, 2, 1] {
                    let at = cache.len;
                    let rows = |all: &[f32], w| -> Vec<f32> {
                        all.chunks(9 * w).flat_map(|h| h[at * w..(at + new) * w].iter().copied()).collect()
                    };
                    let (new_k, new_v) = (rows(&k, 36), rows(&v, 20));
                    // SAFETY: the cache's buffers and the rows are valid for their lengths.
                    let rc = unsafe {
                        simd_attention_kv_cache_append(
                            &mut cache,
                            new,
                            new_k.as_ptr(),
                            new_k.len(),
                            new_v.as_ptr(),
                            new_v.len(),
                        )
                    };
                    assert_eq!((rc, cache.len), (0, at + new), "{backend} {storage:?}");
                    let len = cache.len;
                    let plain_key = StoredTensor::from_f32(&filled_rows(&k, 9, len, 36), 36, storage).unwrap();
                    let plain_value = StoredTensor::from_f32(&filled_rows(&v, 9, len, 20), 20, storage).unwrap();
                    let query = StoredTensor::F32(random(&mut rng, 2 * q_heads * new * 36));
                    let sdpa_shape = simd_attention_sdpa_shape {
                        batch: 2,
                        q_heads,
                        kv_heads: 2,
                        q_len: new,
                        kv_len: len,
                        qk_dim: 36,
                        v_dim: 20,
                    };
                    for (cache_mask, plain_mask) in [
                        (None, None),
                        (Some(mask(SIMD_ATTENTION_MASK_CAUSAL)), Some(mask(SIMD_ATTENTION_MASK_CAUSAL_LOWER_RIGHT))),
                    ] {
                        let (mut want, mut got) = (sentinel(2 * q_heads * new * 20), sentinel(2 * q_heads * new * 20));
                        let mut ws = sentinel(ws_len);
                        let (cq, ck, cv) = (c_tensor(&query), c_tensor(&plain_key), c_tensor(&plain_value));
                        let plain = SdpaCall {
                            shape: sdpa_shape,
                            query: &cq,
                            key: &ck,
                            value: &cv,
                            mask: ptr_or_null(&plain_mask),
                            scale: null(),
                            out: output(&mut want),
                            weights: (null_mut(), 0),
                            workspace: output(&mut ws),
                        };
                        // SAFETY: every pointer is valid for its length.
                        assert_eq!(unsafe { plain.call() }, 0);
                        // SAFETY: as above; the cache's workspace is sized for a full cache.
                        let rc = unsafe {
                            simd_attention_kv_cache_attend(
                                &cache,
                                q_heads,
                                new,
                                &cq,
                                ptr_or_null(&cache_mask),
                                null(),
                                got.as_mut_ptr(),
                                got.len(),
                                ws.as_mut_ptr(),
                                ws_len,
                            )
                        };
                        let what = format!("{backend} {storage:?} at {at} causal {}", cache_mask.is_some());
                        assert_eq!(rc, 0, "{what}");
                        assert_eq!(bits(&got), bits(&want), "{what}");
                    }
                }
            }
        })
        .unwrap();
    }
}

#[test]
fn kv_cache_refuses_bad_arguments_and_writes_nothing() {
    let shape = simd_attention_kv_cache_shape { batch: 1, kv_heads: 2, capacity: 3, qk_dim: 4, v_dim: 2 };
    let (mut key_buf, mut value_buf) = (StoredTensor::F32(sentinel(24)), StoredTensor::F32(sentinel(12)));
    let mut half_buf = StoredTensor::from_f32(&[0.0; 12], 2, Storage::F16).unwrap();
    let (ck, cv, ch) = (c_tensor_mut(&mut key_buf), c_tensor_mut(&mut value_buf), c_tensor_mut(&mut half_buf));
    let mut cache = simd_attention_kv_cache { shape, key: ck, value: cv, len: 0 };
    let (k2, v2) = ([1.0f32; 16], [1.0f32; 8]);
    // SAFETY: valid buffers.
    assert_eq!(unsafe { simd_attention_kv_cache_append(&mut cache, 2, k2.as_ptr(), 16, v2.as_ptr(), 8) }, 0);
    // The cache's own buffers and the length a descriptor says, whatever else it says.
    let snapshot = |c: &simd_attention_kv_cache| {
        // SAFETY: the cache's buffers, valid for their lengths and not written meanwhile.
        let read =
            |t: simd_attention_tensor_mut| unsafe { core::slice::from_raw_parts(t.data.cast::<u32>(), t.len) }.to_vec();
        (read(ck), read(cv), c.len)
    };
    let before = snapshot(&cache);
    let append = |c: &mut simd_attention_kv_cache, new: usize, k: &[f32], v: &[f32]| {
        // SAFETY: valid buffers, or what the call must refuse before reading.
        unsafe { simd_attention_kv_cache_append(c, new, k.as_ptr(), k.len(), v.as_ptr(), v.len()) }
    };
    let key_in_cache = ck.data.cast::<f32>().cast_const();
    let cases: [(&str, simd_attention_kv_cache, usize, simd_attention_status); 5] = [
        ("past the capacity", cache, 2, SIMD_ATTENTION_ERROR_CAPACITY),
        ("len past the capacity", simd_attention_kv_cache { len: 4, ..cache }, 0, SIMD_ATTENTION_ERROR_CAPACITY),
        ("two storage types", simd_attention_kv_cache { value: ch, ..cache }, 1, SIMD_ATTENTION_ERROR_STORAGE),
        (
            "unknown storage",
            simd_attention_kv_cache { key: simd_attention_tensor_mut { storage: 9, ..ck }, ..cache },
            1,
            SIMD_ATTENTION_ERROR_KIND,
        ),
        (
            "key buffer short",
            simd_attention_kv_cache { key: simd_attention_tensor_mut { len: 23, ..ck }, ..cache },
            1,
            SIMD_ATTENTION_ERROR_LENGTH,
        ),
    ];
    for (what, mut c, new, want) in cases {
        let rc = append(&mut c, new, &k2[..new * 8], &v2[..new * 4]);
        assert_eq!(rc, want.code(), "{what}");
        assert_eq!(snapshot(&c).0, before.0, "{what}: the keys were written");
        assert_eq!(c.len, if what == "len past the capacity" { 4 } else { 2 }, "{what}: len changed");
    }
    assert_eq!(append(&mut cache, 1, &k2[..7], &v2[..4]), SIMD_ATTENTION_ERROR_LENGTH.code());
    // SAFETY: NULL is refused before anything is read.
    assert_eq!(
        unsafe { simd_attention_kv_cache_append(null_mut(), 1, k2.as_ptr(), 8, v2.as_ptr(), 4) },
        SIMD_ATTENTION_ERROR_NULL.code()
    );
    // New rows read from the cache's own buffer, and the descriptor inside it.
    // SAFETY: valid for reading 8 floats; refused as aliasing before any write.
    let rc = unsafe { simd_attention_kv_cache_append(&mut cache, 1, key_in_cache, 8, v2.as_ptr(), 4) };
    assert_eq!(rc, SIMD_ATTENTION_ERROR_ALIASING.code());
    assert_eq!(snapshot(&cache), before);

    // attend: the output over the cache, a short output, a q8 query, a valid-lens mask.
    let q = StoredTensor::F32(vec![1.0; 8]);
    let cq = c_tensor(&q);
    let q8 = StoredTensor::from_f32(&[1.0; 8], 4, Storage::Q8).unwrap();
    let cq8 = c_tensor(&q8);
    let lens = [1usize];
    let lens_kind = lens_mask(SIMD_ATTENTION_MASK_VALID_LENS, &lens);
    let mut ws_len = 0;
    // SAFETY: a valid out-parameter.
    assert_eq!(unsafe { simd_attention_kv_cache_workspace_len(shape, 2, 1, &mut ws_len) }, 0);
    let (mut out, mut ws) = (sentinel(4), sentinel(ws_len));
    let attend = |query: &simd_attention_tensor, m: *const simd_attention_mask, out: Out, ws: Out| {
        // SAFETY: valid buffers, or what the call must refuse before writing.
        unsafe { simd_attention_kv_cache_attend(&cache, 2, 1, query, m, null(), out.0, out.1, ws.0, ws.1) }
    };
    let (o, w) = (output(&mut out), output(&mut ws));
    let rows = [
        ("out over the cache's values", attend(&cq, null(), (cv.data.cast(), 4), w), SIMD_ATTENTION_ERROR_ALIASING),
        ("out short", attend(&cq, null(), (o.0, 3), w), SIMD_ATTENTION_ERROR_LENGTH),
        ("q8 query", attend(&cq8, null(), o, w), SIMD_ATTENTION_ERROR_STORAGE),
        ("valid-lens mask", attend(&cq, &lens_kind, o, w), SIMD_ATTENTION_ERROR_KIND),
        ("workspace NULL", attend(&cq, null(), o, (null_mut(), ws_len)), SIMD_ATTENTION_ERROR_NULL),
    ];
    for (what, rc, want) in rows {
        refused(what, rc, want, &[&out, &ws]);
    }
    assert_eq!(snapshot(&cache), before);
    assert_eq!(attend(&cq, null(), o, w), 0);
    assert!(!untouched(&out));
}
