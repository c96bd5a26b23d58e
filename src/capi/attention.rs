//! d2l's other attention modules over C buffers: dot-product
//! (`DotProductAttention`), bilinear (`BilinearAttention`) and multi-head
//! attention (`MultiHeadAttention`), each a workspace-length query and a
//! forward in the batched convention (`batched.rs`), and Nadaraya–Watson
//! kernel regression (`NadarayaWatson`), which needs no workspace.
//!
//! Their parameters take their sizes from the call's
//! [`simd_attention_shape`] (`query_dim`, `key_dim`, `value_dim`), so a
//! parameter's length is checked against the shape it is used with, and
//! no size is given twice.

use super::batched::{CheckedInputs, checked_forward, simd_attention_inputs, simd_attention_shape, workspace_len_of};
use super::buffer::{Buffer, disjoint, read_one};
use super::mask::simd_attention_mask;
use super::run;
use super::simd_attention_status;
use crate::error::{checked_mul, expect_len};
use crate::ops::{
    Attention, BilinearAttention, DotProductAttention, Linear, MhaDims, MultiHeadAttention, NadarayaWatson,
};
use core::ffi::c_int;
use core::ops::Range;

/// One `nn.Linear` of a multi-head attention: `weight` `(out_features,
/// in_features)`, row-major as PyTorch stores it, and `bias`
/// `(out_features,)`. `bias = NULL` with `bias_len = 0` is `bias=False`;
/// a non-`NULL` bias is a bias, so one of length 0 is refused
/// (`SIMD_ATTENTION_ERROR_LENGTH`) unless `out_features` is 0.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct simd_attention_linear {
    /// `out_features × in_features` floats.
    pub weight: *const f32,
    /// Floats at `weight`.
    pub weight_len: usize,
    /// `out_features` floats, or `NULL` for no bias.
    pub bias: *const f32,
    /// Floats at `bias` (0 when it is `NULL`).
    pub bias_len: usize,
}

/// The parameters of d2l's `MultiHeadAttention`, borrowed: `W_q`
/// `(num_hiddens, query_dim)`, `W_k` `(num_hiddens, key_dim)`, `W_v`
/// `(num_hiddens, value_dim)` and `W_o` `(num_hiddens, num_hiddens)`, the
/// input widths being the call's shape's.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct simd_attention_mha_params {
    /// Projects the queries.
    pub w_q: simd_attention_linear,
    /// Projects the keys.
    pub w_k: simd_attention_linear,
    /// Projects the values.
    pub w_v: simd_attention_linear,
    /// Projects the concatenated heads.
    pub w_o: simd_attention_linear,
    /// Heads; must divide `num_hiddens`.
    pub num_heads: usize,
    /// The projected width of all heads together, and of the output.
    pub num_hiddens: usize,
}

/// A [`simd_attention_linear`] with its pointers checked.
#[derive(Clone, Copy)]
struct CheckedLinear {
    weight: Buffer<f32>,
    bias: Option<Buffer<f32>>,
}

impl CheckedLinear {
    fn new(l: simd_attention_linear) -> Result<Self, simd_attention_status> {
        Ok(CheckedLinear { weight: Buffer::new(l.weight, l.weight_len)?, bias: Buffer::optional(l.bias, l.bias_len)? })
    }

    fn bytes(&self) -> [Range<usize>; 2] {
        [self.weight.bytes(), Buffer::bytes_or_none(self.bias)]
    }

    /// # Safety
    /// Both buffers must be valid for reads and unwritten for `'a`.
    unsafe fn linear<'a>(self) -> Linear<'a> {
        // SAFETY: checked buffers, valid as the caller promises.
        unsafe { Linear { weight: self.weight.as_slice(), bias: self.bias.map(|b| b.as_slice()) } }
    }
}

/// [`simd_attention_mha_params`] with its pointers checked.
struct MhaParams {
    linears: [CheckedLinear; 4],
    num_heads: usize,
    num_hiddens: usize,
}

impl MhaParams {
    /// # Safety
    /// A non-null, aligned `params` must be valid for reading one
    /// descriptor.
    unsafe fn from_ptr(params: *const simd_attention_mha_params) -> Result<Self, simd_attention_status> {
        // SAFETY: the caller promises a readable descriptor, plain data.
        let p = unsafe { read_one(params)? };
        let linears = [
            CheckedLinear::new(p.w_q)?,
            CheckedLinear::new(p.w_k)?,
            CheckedLinear::new(p.w_v)?,
            CheckedLinear::new(p.w_o)?,
        ];
        Ok(MhaParams { linears, num_heads: p.num_heads, num_hiddens: p.num_hiddens })
    }

    fn bytes(&self) -> [Range<usize>; 8] {
        let [[q, qb], [k, kb], [v, vb], [o, ob]] = self.linears.map(|l| l.bytes());
        [q, qb, k, kb, v, vb, o, ob]
    }

    /// The operator for inputs of `shape`'s widths; its lengths are checked
    /// by `MultiHeadAttention::new`.
    ///
    /// # Safety
    /// The matrices and biases must be valid for reads, unwritten for `'a`.
    unsafe fn attention<'a>(
        &self,
        shape: &simd_attention_shape,
    ) -> Result<MultiHeadAttention<'a>, simd_attention_status> {
        // SAFETY: checked buffers; validity is the caller's promise.
        let [w_q, w_k, w_v, w_o] = self.linears.map(|l| unsafe { l.linear() });
        let dims = MhaDims {
            heads: self.num_heads,
            hidden: self.num_hiddens,
            query_dim: shape.query_dim,
            key_dim: shape.key_dim,
            value_dim: shape.value_dim,
        };
        Ok(MultiHeadAttention::new(w_q, w_k, w_v, w_o, dims)?)
    }
}

/// `W_a` of a bilinear attention, checked: `query_dim × key_dim` floats.
///
/// # Safety
/// `w_a` must be valid for reads of `w_a_len` floats, unwritten for `'a`.
unsafe fn bilinear_operator<'a>(
    w_a: Buffer<f32>,
    shape: &simd_attention_shape,
) -> Result<BilinearAttention<'a>, simd_attention_status> {
    // SAFETY: a checked buffer, valid as the caller promises.
    Ok(BilinearAttention::new(unsafe { w_a.as_slice() }, shape.query_dim, shape.key_dim)?)
}

/// The workspace floats `simd_attention_dot_forward` needs for `shape`,
/// with or without the weights output, written to `*len`.
///
/// # Safety
/// `len` must be `NULL` (refused) or valid for writing one `size_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn simd_attention_dot_workspace_len(
    shape: simd_attention_shape,
    with_weights: bool,
    len: *mut usize,
) -> c_int {
    // SAFETY: `len` as the caller promises.
    unsafe { workspace_len_of(|| Ok(DotProductAttention), len, |a| a.workspace_len(&shape.into(), with_weights)) }
}

/// d2l's `DotProductAttention`: `softmax(Q Kᵀ / √query_dim)` masked by
/// `valid_lens`, times `V`. `shape.key_dim` must equal `shape.query_dim`
/// (else `SIMD_ATTENTION_ERROR_DIMENSION`, from the workspace query too).
/// Writes `out` `(B, Q, value_dim)` and, unless `weights` is `NULL`, the
/// weights `(B, Q, K)`. `valid_lens` is `NULL` (every key) or a mask of
/// kind `SIMD_ATTENTION_MASK_NONE`, `_VALID_LENS` or
/// `_VALID_LENS_PER_QUERY`; `workspace` holds
/// `simd_attention_dot_workspace_len` floats.
///
/// # Safety
/// - Each buffer (the inputs', `out`, `weights`, `workspace`) must be
///   `NULL` with length 0 (an empty buffer; for `weights`, not requested),
///   or valid for its length: the inputs for reads, the outputs for reads
///   and writes. `NULL` with another length is refused.
/// - `valid_lens` must be `NULL` (no mask) or point to a readable mask
///   descriptor whose data is readable for its length.
/// - No buffer may be written by another thread during the call.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn simd_attention_dot_forward(
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
    // SAFETY: every pointer as the caller promises.
    run(|| unsafe { checked_forward(&[], || Ok(DotProductAttention), shape, inputs, valid_lens, outputs) })
}

/// The workspace floats `simd_attention_bilinear_forward` needs for
/// `shape`, with or without the weights output, written to `*len`.
/// `w_a` is checked as the forward checks it.
///
/// # Safety
/// `w_a` must be `NULL` (refused unless `w_a_len` is 0) or readable for
/// `w_a_len` floats; `len` `NULL` (refused) or valid for writing one
/// `size_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn simd_attention_bilinear_workspace_len(
    w_a: *const f32,
    w_a_len: usize,
    shape: simd_attention_shape,
    with_weights: bool,
    len: *mut usize,
) -> c_int {
    // SAFETY: `w_a` and `len` as the caller promises.
    unsafe {
        let operator = || bilinear_operator(Buffer::new(w_a, w_a_len)?, &shape);
        workspace_len_of(operator, len, |a| a.workspace_len(&shape.into(), with_weights))
    }
}

/// Bilinear ("general", Luong) attention: `score(q, k) = qᵀ W_a k` with
/// `W_a` `(query_dim, key_dim)` row-major (`nn.Linear(key_dim, query_dim,
/// bias=False).weight`), then as `simd_attention_dot_forward` (unscaled
/// scores). `workspace` holds `simd_attention_bilinear_workspace_len`
/// floats.
///
/// # Safety
/// As `simd_attention_dot_forward`, and `w_a` readable for `w_a_len`
/// floats.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn simd_attention_bilinear_forward(
    w_a: *const f32,
    w_a_len: usize,
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
        let w_a = Buffer::new(w_a, w_a_len)?;
        // SAFETY: every pointer as the caller promises.
        unsafe {
            checked_forward(&[w_a.bytes()], || bilinear_operator(w_a, &shape), shape, inputs, valid_lens, outputs)
        }
    })
}

/// The workspace floats `simd_attention_mha_forward` needs for `shape`,
/// with or without the weights output, written to `*len`. The parameters
/// are checked as the forward checks them.
///
/// # Safety
/// `params` must be `NULL` (refused) or point to a readable descriptor
/// whose buffers are readable for their lengths; `len` `NULL` (refused)
/// or valid for writing one `size_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn simd_attention_mha_workspace_len(
    params: *const simd_attention_mha_params,
    shape: simd_attention_shape,
    with_weights: bool,
    len: *mut usize,
) -> c_int {
    // SAFETY: `params` and `len` as the caller promises.
    unsafe {
        let operator = || MhaParams::from_ptr(params)?.attention(&shape);
        workspace_len_of(operator, len, |a| a.workspace_len(&shape.into(), with_weights))
    }
}

/// d2l's `MultiHeadAttention`: queries, keys and values projected by
/// `W_q`, `W_k` and `W_v` (biases optional), `num_heads` heads of scaled
/// dot-product attention with `valid_lens` repeated per head, the heads
/// side by side projected by `W_o`. Writes `out` `(B, Q, num_hiddens)`
/// and, unless `weights` is `NULL`, the weights `(B · num_heads, Q, K)`,
/// entry `b · num_heads + h` (d2l's `attention_weights`). `valid_lens`
/// as for `simd_attention_dot_forward`; `workspace` holds
/// `simd_attention_mha_workspace_len` floats.
///
/// # Safety
/// As `simd_attention_dot_forward`, and `params` as for
/// `simd_attention_mha_workspace_len`.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn simd_attention_mha_forward(
    params: *const simd_attention_mha_params,
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
        let params = unsafe { MhaParams::from_ptr(params)? };
        // SAFETY: every pointer as the caller promises.
        unsafe { checked_forward(&params.bytes(), || params.attention(&shape), shape, inputs, valid_lens, outputs) }
    })
}

/// d2l's `NWKernelRegression`: `weights[i, j] = softmax_j(−((q_i −
/// k_ij)·w)² / 2)` and `out[i] = Σ_j weights[i, j] · v_ij`. The shape is
/// `n = queries` queries `(n,)`, each with its own `m = points` training
/// points: keys and values `(n, m)`. Every length is checked against it.
/// Writes `out` `(n,)` and `weights` `(n, m)`, which are required: they
/// are the softmax's scratch. Needs no workspace.
///
/// # Safety
/// Each buffer must be `NULL` with length 0 (empty) or valid for its
/// length: inputs for reads, `out` and `weights` for reads and writes;
/// `NULL` with another length is refused. No buffer may be written by
/// another thread during the call.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn simd_attention_nadaraya_watson(
    w: f32,
    queries: usize,
    points: usize,
    inputs: simd_attention_inputs,
    out: *mut f32,
    out_len: usize,
    weights: *mut f32,
    weights_len: usize,
) -> c_int {
    run(|| {
        let checked = CheckedInputs::new(inputs)?;
        let out = Buffer::new_mut(out, out_len)?;
        let weights = Buffer::new_mut(weights, weights_len)?;
        disjoint(&[out.bytes(), weights.bytes()], &checked.bytes())?;
        let all = checked_mul("shape", queries, points)?;
        expect_len("queries", queries, inputs.queries_len)?;
        expect_len("keys", all, inputs.keys_len)?;
        expect_len("values", all, inputs.values_len)?;
        expect_len("out", queries, out_len)?;
        expect_len("weights", all, weights_len)?;
        // SAFETY: checked buffers, valid as the caller promises; the outputs
        // overlap each other and the inputs nowhere (`disjoint`).
        let ((q, k, v), out, weights) = unsafe { (checked.as_slices(), out.as_mut_slice(), weights.as_mut_slice()) };
        Ok(NadarayaWatson { w }.forward(q, k, v, out, weights)?)
    })
}
