//! The C API (feature `capi`): `extern "C"` entry points over the no-alloc
//! core, declared for C in `include/simd_attention.h` (generated from this
//! module by `cbindgen`; `include/check.sh` checks that it is current).
//!
//! The conventions follow XNNPACK's `xnnpack.h` and CMSIS-NN's
//! `arm_nnfunctions.h`: flat functions over caller buffers, one status code
//! per call, and one `*_workspace_len` query per operator.
//!
//! - **Status.** Every entry point returns an `int`: `SIMD_ATTENTION_OK`
//!   (0) on success, a negative [`simd_attention_status`] otherwise, and
//!   [`simd_attention_status_message`] says what each code means. Each
//!   variant of the Rust [`Error`] has its own code; `SIMD_ATTENTION_ERROR_NULL`
//!   and the codes from `SIMD_ATTENTION_ERROR_ALIGNMENT` on are the C API's
//!   own checks.
//! - **Nothing is written on error.** Every pointer, length and shape is
//!   checked before any write, and before any slice is formed from a
//!   pointer: null, alignment, sizes with checked arithmetic (a buffer's
//!   byte size must fit in `isize`), and overlap of each output with every
//!   other buffer of the call (`SIMD_ATTENTION_ERROR_ALIASING`), since Rust
//!   may not hold a `&mut` that aliases anything.
//! - **Buffers** are a pointer and a length counted in elements, not bytes.
//!   A pointer may be `NULL` only with a length of 0: a required buffer is
//!   then empty, an optional one (the attention weights) is not requested.
//!   `NULL` with a non-zero length is `SIMD_ATTENTION_ERROR_NULL` (so a
//!   failed `malloc` cannot pass for "no weights"). A zero-length buffer's
//!   pointer is never read.
//! - **Shapes** are small `#[repr(C)]` structs passed by value.
//! - **Kinds** (a mask's kind, a tensor's storage type) are `uint32_t` with
//!   `#define`d values, not C enums: the size of a C enum is the compiler's
//!   choice (`-fshort-enums` is the default of several ARM toolchains), and
//!   Rust must never receive an enum value it does not define. An unknown
//!   kind is `SIMD_ATTENTION_ERROR_KIND`. The status codes, which only flow
//!   out, are a C enum of `int32_t`.
//! - **No panics.** The core does not panic on any input, and this module
//!   uses no indexing, `unwrap` or unchecked arithmetic that could. Were a
//!   panic to happen anyway, Rust aborts rather than unwinding through an
//!   `extern "C"` frame, so it can never be undefined behaviour; on
//!   bare-metal targets `capi` brings a `#[panic_handler]` that parks the
//!   core (see `panic_handler.rs`).
//! - **Threads.** The functions keep no state: calls on disjoint outputs
//!   may run concurrently, and one key cache may serve several threads, as
//!   may one KV cache between appends.
//!
//! One file per operator: [`softmax`](simd_attention_masked_softmax),
//! additive attention with its key cache
//! ([`simd_attention_additive_key_cache`]), d2l's dot-product, bilinear and
//! multi-head attention and Nadaraya–Watson regression
//! ([`simd_attention_dot_forward`], [`simd_attention_bilinear_forward`],
//! [`simd_attention_mha_forward`], [`simd_attention_nadaraya_watson`]),
//! SDPA ([`simd_attention_sdpa`]), and SDPA's KV cache for decoder loops
//! ([`simd_attention_kv_cache_append`], [`simd_attention_kv_cache_attend`]);
//! d2l's Bahdanau seq2seq decoded greedily
//! ([`simd_attention_seq2seq_greedy_decode`]);
//! the batched operators' shared convention (`batched.rs`), and the buffer
//! checks, masks and tensor descriptors they all share, have a file each.

// The items keep their C names (as rustls-ffi's do), so that the header,
// the docs and the Rust tests all say `simd_attention_mask`.
#![allow(non_camel_case_types)]

mod additive;
mod attention;
mod batched;
mod buffer;
mod kv_cache;
mod mask;
#[cfg(all(not(feature = "std"), target_os = "none"))]
mod panic_handler;
mod sdpa;
mod seq2seq;
mod softmax;
mod tensor;

pub use additive::{
    SIMD_ATTENTION_KEY_CACHE_WORDS, simd_attention_additive_cached_workspace_len, simd_attention_additive_forward,
    simd_attention_additive_forward_cached, simd_attention_additive_key_cache, simd_attention_additive_key_cache_len,
    simd_attention_additive_params, simd_attention_additive_workspace_len, simd_attention_key_cache,
};
pub use attention::{
    simd_attention_bilinear_forward, simd_attention_bilinear_workspace_len, simd_attention_dot_forward,
    simd_attention_dot_workspace_len, simd_attention_linear, simd_attention_mha_forward, simd_attention_mha_params,
    simd_attention_mha_workspace_len, simd_attention_nadaraya_watson,
};
pub use batched::{simd_attention_inputs, simd_attention_shape};
pub use kv_cache::{
    simd_attention_kv_cache, simd_attention_kv_cache_append, simd_attention_kv_cache_attend,
    simd_attention_kv_cache_shape, simd_attention_kv_cache_workspace_len,
};
pub use mask::{
    SIMD_ATTENTION_MASK_ADDITIVE, SIMD_ATTENTION_MASK_CAUSAL, SIMD_ATTENTION_MASK_CAUSAL_LOWER_RIGHT,
    SIMD_ATTENTION_MASK_KEEP, SIMD_ATTENTION_MASK_NONE, SIMD_ATTENTION_MASK_VALID_LENS,
    SIMD_ATTENTION_MASK_VALID_LENS_PER_QUERY, simd_attention_mask, simd_attention_mask_kind,
};
pub use sdpa::{simd_attention_sdpa, simd_attention_sdpa_shape, simd_attention_sdpa_workspace_len};
pub use seq2seq::{
    SIMD_ATTENTION_LAYOUT_COLUMNS, SIMD_ATTENTION_LAYOUT_ROWS, SIMD_ATTENTION_SEQ2SEQ_MAX_LAYERS,
    simd_attention_decode_options, simd_attention_gru_layer, simd_attention_layout,
    simd_attention_seq2seq_greedy_decode, simd_attention_seq2seq_params, simd_attention_seq2seq_workspace_len,
    simd_attention_sources, simd_attention_weight,
};
pub use softmax::{simd_attention_masked_softmax, simd_attention_score_shape};
pub use tensor::{
    SIMD_ATTENTION_STORAGE_BF16, SIMD_ATTENTION_STORAGE_F16, SIMD_ATTENTION_STORAGE_F32, SIMD_ATTENTION_STORAGE_Q8,
    simd_attention_storage, simd_attention_tensor, simd_attention_tensor_mut,
};

use crate::{Backend, Error};
use core::ffi::{c_char, c_int};

/// The status codes every entry point returns (as an `int`): 0 on success,
/// negative on a refused call, after which no output has been written.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum simd_attention_status {
    /// The call succeeded.
    SIMD_ATTENTION_OK = 0,
    /// A pointer is `NULL` where the call needs data (or a `NULL` buffer
    /// comes with a non-zero length).
    SIMD_ATTENTION_ERROR_NULL = -1,
    /// A buffer's length is not what the shape requires.
    SIMD_ATTENTION_ERROR_LENGTH = -2,
    /// A dimension does not match the one it must equal.
    SIMD_ATTENTION_ERROR_DIMENSION = -3,
    /// A shape's element count or a buffer's byte size overflows.
    SIMD_ATTENTION_ERROR_OVERFLOW = -4,
    /// A strided view reaches past the end of its buffer.
    SIMD_ATTENTION_ERROR_OUT_OF_BOUNDS = -5,
    /// A writable strided view maps two elements to one place.
    SIMD_ATTENTION_ERROR_OVERLAPPING = -6,
    /// A value is outside the range its argument allows (for example a
    /// bool mask byte other than 0 or 1).
    SIMD_ATTENTION_ERROR_VALUE = -7,
    /// The requested SIMD backend cannot run on this CPU.
    SIMD_ATTENTION_ERROR_BACKEND_UNAVAILABLE = -8,
    /// More rows than a cache has room for.
    SIMD_ATTENTION_ERROR_CAPACITY = -9,
    /// A tensor's storage type is not one the argument accepts.
    SIMD_ATTENTION_ERROR_STORAGE = -10,
    /// A pointer is not aligned for its element type.
    SIMD_ATTENTION_ERROR_ALIGNMENT = -11,
    /// An output buffer overlaps another buffer of the same call.
    SIMD_ATTENTION_ERROR_ALIASING = -12,
    /// A mask kind or storage type is unknown, or not one this operator
    /// takes.
    SIMD_ATTENTION_ERROR_KIND = -13,
    /// A key cache handle was not filled by
    /// `simd_attention_additive_key_cache`, or was filled for weights of
    /// other sizes.
    SIMD_ATTENTION_ERROR_CACHE = -14,
}

use simd_attention_status::*;

impl simd_attention_status {
    /// Every code, in order.
    const ALL: [simd_attention_status; 15] = [
        SIMD_ATTENTION_OK,
        SIMD_ATTENTION_ERROR_NULL,
        SIMD_ATTENTION_ERROR_LENGTH,
        SIMD_ATTENTION_ERROR_DIMENSION,
        SIMD_ATTENTION_ERROR_OVERFLOW,
        SIMD_ATTENTION_ERROR_OUT_OF_BOUNDS,
        SIMD_ATTENTION_ERROR_OVERLAPPING,
        SIMD_ATTENTION_ERROR_VALUE,
        SIMD_ATTENTION_ERROR_BACKEND_UNAVAILABLE,
        SIMD_ATTENTION_ERROR_CAPACITY,
        SIMD_ATTENTION_ERROR_STORAGE,
        SIMD_ATTENTION_ERROR_ALIGNMENT,
        SIMD_ATTENTION_ERROR_ALIASING,
        SIMD_ATTENTION_ERROR_KIND,
        SIMD_ATTENTION_ERROR_CACHE,
    ];

    /// The `int` an entry point returns.
    pub const fn code(self) -> c_int {
        self as i32 as c_int
    }

    /// The code's message, NUL-terminated.
    const fn message(self) -> &'static core::ffi::CStr {
        match self {
            SIMD_ATTENTION_OK => c"success",
            SIMD_ATTENTION_ERROR_NULL => c"a pointer is NULL where the call needs data",
            SIMD_ATTENTION_ERROR_LENGTH => c"a buffer's length is not what the shape requires",
            SIMD_ATTENTION_ERROR_DIMENSION => c"a dimension does not match the one it must equal",
            SIMD_ATTENTION_ERROR_OVERFLOW => c"a shape's element count or a buffer's byte size overflows",
            SIMD_ATTENTION_ERROR_OUT_OF_BOUNDS => c"a strided view reaches past the end of its buffer",
            SIMD_ATTENTION_ERROR_OVERLAPPING => c"a writable strided view maps two elements to one place",
            SIMD_ATTENTION_ERROR_VALUE => c"a value is outside the range its argument allows",
            SIMD_ATTENTION_ERROR_BACKEND_UNAVAILABLE => c"the requested SIMD backend cannot run on this CPU",
            SIMD_ATTENTION_ERROR_CAPACITY => c"more rows than a cache has room for",
            SIMD_ATTENTION_ERROR_STORAGE => c"a tensor's storage type is not one the argument accepts",
            SIMD_ATTENTION_ERROR_ALIGNMENT => c"a pointer is not aligned for its element type",
            SIMD_ATTENTION_ERROR_ALIASING => c"an output buffer overlaps another buffer of the call",
            SIMD_ATTENTION_ERROR_KIND => c"a mask kind or storage type is unknown or not taken by this operator",
            SIMD_ATTENTION_ERROR_CACHE => {
                c"the key cache was not built by simd_attention_additive_key_cache for these weights"
            }
        }
    }
}

impl From<Error> for simd_attention_status {
    /// Each variant of [`Error`] to its own code.
    fn from(error: Error) -> Self {
        match error {
            Error::Length { .. } => SIMD_ATTENTION_ERROR_LENGTH,
            Error::Dimension { .. } => SIMD_ATTENTION_ERROR_DIMENSION,
            Error::Overflow { .. } => SIMD_ATTENTION_ERROR_OVERFLOW,
            Error::OutOfBounds { .. } => SIMD_ATTENTION_ERROR_OUT_OF_BOUNDS,
            Error::Overlapping { .. } => SIMD_ATTENTION_ERROR_OVERLAPPING,
            Error::Value { .. } => SIMD_ATTENTION_ERROR_VALUE,
            Error::BackendUnavailable { .. } => SIMD_ATTENTION_ERROR_BACKEND_UNAVAILABLE,
            Error::Capacity { .. } => SIMD_ATTENTION_ERROR_CAPACITY,
            Error::Storage { .. } => SIMD_ATTENTION_ERROR_STORAGE,
        }
    }
}

/// What an entry point's body returns: `Err` carries the refusal's code.
type Status = Result<(), simd_attention_status>;

/// Runs an entry point's body and gives the `int` it returns.
fn run(body: impl FnOnce() -> Status) -> c_int {
    match body() {
        Ok(()) => SIMD_ATTENTION_OK.code(),
        Err(refused) => refused.code(),
    }
}

/// Writes `value` to a caller's `size_t` out-parameter, after checking it.
///
/// # Safety
/// A non-null, aligned `len` must be valid for one write.
unsafe fn write_len(len: *mut usize, value: Result<usize, Error>) -> Status {
    let out = buffer::Buffer::new_mut(len, 1)?;
    let value = value?;
    // SAFETY: `out` is a checked, non-null, aligned pointer to one `size_t`
    // that the caller lends us for writing.
    unsafe { out.as_mut_ptr().write(value) };
    Ok(())
}

/// The message of a status code: a static, NUL-terminated English string,
/// never `NULL`. An unknown code gives `"unknown status code"`.
#[unsafe(no_mangle)]
pub extern "C" fn simd_attention_status_message(status: c_int) -> *const c_char {
    let known = simd_attention_status::ALL.into_iter().find(|s| s.code() == status);
    known.map_or(c"unknown status code", simd_attention_status::message).as_ptr()
}

/// The SIMD backend the kernels run on in the calling thread (`"avx512"`,
/// `"avx2"`, `"portable"` or `"scalar"`): a static, NUL-terminated string.
#[unsafe(no_mangle)]
pub extern "C" fn simd_attention_backend_name() -> *const c_char {
    let name = match crate::backend() {
        Backend::Avx512 => c"avx512",
        Backend::Avx2 => c"avx2",
        Backend::Portable => c"portable",
        Backend::Scalar => c"scalar",
    };
    name.as_ptr()
}
