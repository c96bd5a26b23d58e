//! The calling convention the batched d2l operators share in C
//! (additive, dot-product, bilinear and multi-head attention): one
//! [`simd_attention_shape`], the inputs, a `valid_lens` mask, and the
//! outputs `out`, `weights` (optional) and `workspace`, each checked and
//! refused before anything is written. Written once here, so each
//! operator's file only says how its parameters become an operator.

use super::buffer::{Buffer, OutputSlices, Outputs, disjoint};
use super::mask::{CheckedMask, MaskFor, simd_attention_mask};
use super::{Status, run, simd_attention_status, write_len};
use crate::Error;
use crate::ops::{Attention, AttentionInputs, AttentionShape, ValidLens};
use core::ffi::c_int;
use core::ops::Range;

/// Sizes of one batched attention call: queries `(batch, queries,
/// query_dim)`, keys `(batch, keys, key_dim)`, values `(batch, keys,
/// value_dim)`, output `(batch, queries, value_dim)` (multi-head:
/// `num_hiddens` wide), weights `(batch, queries, keys)` (multi-head:
/// `(batch · num_heads, queries, keys)`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct simd_attention_shape {
    /// `B`.
    pub batch: usize,
    /// `Q`, queries per batch entry.
    pub queries: usize,
    /// `K`, keys (and values) per batch entry.
    pub keys: usize,
    /// Features per query.
    pub query_dim: usize,
    /// Features per key.
    pub key_dim: usize,
    /// Features per value.
    pub value_dim: usize,
}

impl From<simd_attention_shape> for AttentionShape {
    fn from(s: simd_attention_shape) -> Self {
        AttentionShape {
            batch: s.batch,
            queries: s.queries,
            keys: s.keys,
            query_dim: s.query_dim,
            key_dim: s.key_dim,
            value_dim: s.value_dim,
        }
    }
}

/// The three inputs of a batched call, by name, so that C code that swaps
/// keys and values says so (`.keys = values`) rather than passing two
/// same-typed pointers in the wrong order. Lengths count floats.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct simd_attention_inputs {
    /// `(B, Q, query_dim)`.
    pub queries: *const f32,
    /// Floats at `queries`.
    pub queries_len: usize,
    /// `(B, K, key_dim)`.
    pub keys: *const f32,
    /// Floats at `keys`.
    pub keys_len: usize,
    /// `(B, K, value_dim)`.
    pub values: *const f32,
    /// Floats at `values`.
    pub values_len: usize,
}

/// [`simd_attention_inputs`] with its pointers checked.
#[derive(Clone, Copy)]
pub(super) struct CheckedInputs {
    queries: Buffer<f32>,
    keys: Buffer<f32>,
    values: Buffer<f32>,
}

impl CheckedInputs {
    pub(super) fn new(i: simd_attention_inputs) -> Result<Self, simd_attention_status> {
        Ok(CheckedInputs {
            queries: Buffer::new(i.queries, i.queries_len)?,
            keys: Buffer::new(i.keys, i.keys_len)?,
            values: Buffer::new(i.values, i.values_len)?,
        })
    }

    pub(super) fn bytes(&self) -> [Range<usize>; 3] {
        [self.queries.bytes(), self.keys.bytes(), self.values.bytes()]
    }

    /// Queries, keys and values, borrowed.
    ///
    /// # Safety
    /// Each must be valid for reads and unwritten for `'a`.
    pub(super) unsafe fn as_slices<'a>(self) -> (&'a [f32], &'a [f32], &'a [f32]) {
        // SAFETY: checked buffers, valid as the caller promises.
        unsafe { (self.queries.as_slice(), self.keys.as_slice(), self.values.as_slice()) }
    }
}

/// What every batched forward does once its own inputs are checked:
/// checks the mask `valid_lens` (none, `(B,)` or `(B, Q)` lengths) and the
/// outputs, refuses outputs that overlap each other, the inputs, the mask
/// or the parameters, then builds the operator and runs `forward` with the
/// valid lengths and the outputs borrowed.
///
/// # Safety
/// `valid_lens` and the outputs as the entry points' callers promise;
/// everything `operator` and `forward` read must stay unwritten for `'a`.
pub(super) unsafe fn with_checked_outputs<'a, A>(
    params: &[Range<usize>],
    inputs: &[Range<usize>],
    valid_lens: *const simd_attention_mask,
    outputs: [(*mut f32, usize); 3],
    operator: impl FnOnce() -> Result<A, simd_attention_status>,
    forward: impl FnOnce(A, ValidLens<'a>, OutputSlices<'a>) -> Result<(), Error>,
) -> Status {
    // SAFETY: `valid_lens` as the caller promises.
    let mask = unsafe { CheckedMask::from_ptr(valid_lens, MaskFor::ValidLens)? };
    let outputs = Outputs::new(outputs)?;
    disjoint(&outputs.bytes(), inputs)?;
    disjoint(&outputs.bytes(), params)?;
    disjoint(&outputs.bytes(), &[mask.bytes()])?;
    // SAFETY: the mask's data as the caller promises.
    let valid_lens = unsafe { mask.view()? }.valid_lens()?;
    let operator = operator()?;
    // SAFETY: checked buffers, valid as the caller promises; the outputs
    // overlap nothing else (`disjoint`).
    let outputs = unsafe { outputs.as_mut_slices() };
    Ok(forward(operator, valid_lens, outputs)?)
}

/// The whole forward of an [`Attention`] operator: `inputs` and the
/// outputs checked, then `operator` built and run over them.
///
/// # Safety
/// As the forwards' callers promise, for `params` (the bytes of the
/// parameters `operator` reads), `inputs`, `valid_lens` and the outputs.
pub(super) unsafe fn checked_forward<A: Attention>(
    params: &[Range<usize>],
    operator: impl FnOnce() -> Result<A, simd_attention_status>,
    shape: simd_attention_shape,
    inputs: simd_attention_inputs,
    valid_lens: *const simd_attention_mask,
    outputs: [(*mut f32, usize); 3],
) -> Status {
    let inputs = CheckedInputs::new(inputs)?;
    // SAFETY: as the caller promises.
    unsafe {
        with_checked_outputs(params, &inputs.bytes(), valid_lens, outputs, operator, |attention, valid_lens, outs| {
            let (queries, keys, values) = inputs.as_slices();
            let inputs = AttentionInputs { queries, keys, values, valid_lens };
            let (out, weights, workspace) = outs;
            attention.forward(&shape.into(), inputs, out, weights, workspace)
        })
    }
}

/// The body of every operator's workspace-length query: `needed` of the
/// operator `operator` builds (checking its parameters as the forward
/// does), written to `*len`.
///
/// # Safety
/// `len` must be `NULL` (refused) or valid for writing one `size_t`, and
/// whatever `operator` reads valid as its entry point's caller promises.
pub(super) unsafe fn workspace_len_of<A>(
    operator: impl FnOnce() -> Result<A, simd_attention_status>,
    len: *mut usize,
    needed: impl FnOnce(&A) -> Result<usize, Error>,
) -> c_int {
    run(|| {
        let operator = operator()?;
        // SAFETY: `len` as the caller promises.
        unsafe { write_len(len, needed(&operator)) }
    })
}
