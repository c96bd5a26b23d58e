//! Split-K for decoding: when a streamed SDPA call has fewer query rows
//! than threads (a small batch decoding one token), the rows' key chunks
//! become the tasks. Each task writes one chunk's partial result; the
//! partials are then folded per row in key order, exactly as the serial
//! stream folds them, so the bits match the serial run.

use super::with_backend;
use crate::Error;
use crate::kernels::streaming_row::{CHUNK_KEYS, MergeValues, RowStats};
use crate::ops::sdpa::SdpaCall;
use crate::ops::sdpa::normalize;
use crate::ops::{ScaledDotProductAttention, SdpaShape};
use crate::simd;
use alloc::vec;
use alloc::vec::Vec;
use rayon::prelude::*;

/// Whether split-K pays: the call streams its rows and has fewer of them
/// than twice the threads, while some row has more than one chunk.
pub(super) fn worth_it(shape: &SdpaShape, with_weights: bool) -> bool {
    let rows = shape.batch.saturating_mul(shape.q_heads).saturating_mul(shape.q_len);
    !with_weights
        && shape.q_len <= crate::ops::sdpa::STREAM_MAX_QUERIES
        && rows < 2 * rayon::current_num_threads()
        && shape.kv_len > CHUNK_KEYS
}

/// [`ScaledDotProductAttention::forward`] (no weights, already checked)
/// with one task per (row, key chunk).
pub(super) fn sdpa(op: &ScaledDotProductAttention, call: &SdpaCall<'_>, out: &mut [f32]) -> Result<(), Error> {
    let shape = call.shape;
    let (l, ev) = (shape.q_len, shape.v_dim);
    let rows = shape.batch * shape.q_heads * l;
    let tasks: Vec<(usize, usize)> = (0..rows)
        .flat_map(|r| {
            let chunks = ScaledDotProductAttention::row_chunks(shape, &call.inputs.mask, r % l).unwrap_or(0);
            (0..chunks).map(move |c| (r, c))
        })
        .collect();
    let backend = simd::active();
    let partials: Vec<(usize, Option<RowStats>, Vec<f32>)> = tasks
        .into_par_iter()
        .map(|(r, c)| {
            let mut scratch = vec![0.0; ScaledDotProductAttention::row_chunk_scratch(shape)];
            let mut partial = vec![0.0; ev];
            let head = r / l;
            let bh = (head / shape.q_heads, head % shape.q_heads);
            let stats = with_backend(backend, || op.row_chunk(call, bh, (r % l, c), &mut scratch, &mut partial))??;
            Ok((r, stats, partial))
        })
        .collect::<Result<_, Error>>()?;
    // Partials arrive grouped by row, chunks in order: fold them serially.
    let mut stats = vec![RowStats::EMPTY; rows];
    out.fill(0.0);
    with_backend(backend, || {
        for (r, chunk, partial) in &partials {
            let Some(chunk) = *chunk else { continue };
            let (a, b) = stats[*r].merge(chunk);
            simd::dispatch(MergeValues { out: &mut out[r * ev..(r + 1) * ev], partial, a, b });
        }
        for (row, stats) in out.chunks_exact_mut(ev.max(1)).zip(&stats) {
            normalize(row, *stats);
        }
    })
}
