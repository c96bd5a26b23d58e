//! The decode strategy: each query row of a short head streamed over its
//! keys in chunks of [`CHUNK_KEYS`], K and V read once, straight from the
//! caller's tensors and widened as they stream
//! ([`crate::kernels::streaming_row`]).

use super::Head;
use crate::kernels::streaming_row::{CHUNK_KEYS, ChunkValues, ChunkWeights, RowStats, VALUE_BLOCK};
use crate::simd::{self, F32Vector, WithSimd};
use crate::storage::Element;

/// `row ← row / sum` (zeros for a row that saw no key).
pub(crate) fn normalize(row: &mut [f32], stats: RowStats) {
    let norm = stats.norm();
    for x in row {
        *x *= norm;
    }
}

impl<T: Element> Head<'_, T> {
    /// Keys of chunk `c` of row `i`.
    fn chunk(&self, i: usize, c: usize) -> core::ops::Range<usize> {
        c * CHUNK_KEYS..((c + 1) * CHUNK_KEYS).min(self.visible(i))
    }

    /// Scores of `query` (row `i`) against `keys`, masked, replaced by
    /// `e^{s − m_c}`.
    #[inline(always)]
    fn chunk_weights<V: F32Vector>(
        &self,
        query: &[f32],
        i: usize,
        keys: core::ops::Range<usize>,
        scores: &mut [f32],
    ) -> Option<RowStats> {
        let j0 = keys.start;
        ChunkWeights {
            query,
            keys: self.k.sub(keys.start, keys.len()),
            scale: self.scale,
            mask: |scores: &mut [f32]| self.mask.apply(scores, (i, j0), self.shape, 1.0),
            scores: &mut scores[..keys.len()],
        }
        .run::<V>()
    }

    /// `dst = Σ p_j v_j[col..col + dst.len()]` over `keys`, folded into
    /// `merge` when given.
    #[inline(always)]
    fn chunk_values<V: F32Vector>(
        &self,
        keys: core::ops::Range<usize>,
        weights: &[f32],
        col: usize,
        dst: &mut [f32],
        merge: Option<(&mut [f32], f32, f32)>,
    ) {
        ChunkValues { weights: &weights[..keys.len()], values: self.v.sub(keys.start, keys.len()), col, dst, merge }
            .run::<V>();
    }

    /// The decode path: each query row streamed over its keys, chunk by
    /// chunk, folding each chunk's partial result into the output row, all
    /// inside one entry into the backend. `workspace` holds a chunk of
    /// scores and the head's query rows widened.
    pub(super) fn stream(&self, out: &mut [f32], workspace: &mut [f32]) {
        simd::dispatch(StreamRows { head: self, out, workspace });
    }

    /// One chunk of one streamed row on its own (a split-K task): writes
    /// `o_c` to `partial` and returns the chunk's statistics.
    #[cfg(feature = "std")]
    pub(super) fn row_chunk(&self, i: usize, c: usize, scratch: &mut [f32], partial: &mut [f32]) -> Option<RowStats> {
        simd::dispatch(RowChunk { head: self, i, c, scratch, partial })
    }
}

/// [`Head::stream`]'s body, for one backend.
struct StreamRows<'h, 'a, T> {
    head: &'h Head<'a, T>,
    out: &'h mut [f32],
    workspace: &'h mut [f32],
}

impl<T: Element> WithSimd for StreamRows<'_, '_, T> {
    type Output = ();

    #[inline(always)]
    fn run<V: F32Vector>(self) {
        let StreamRows { head, out, workspace } = self;
        let (l, e, ev) = (head.shape.q_len, head.shape.qk_dim, head.shape.v_dim);
        let (scores, query) = workspace.split_at_mut(CHUNK_KEYS);
        let query = head.query_rows(0..l, query);
        let mut block = [0.0f32; VALUE_BLOCK];
        for (i, row) in out.chunks_exact_mut(ev.max(1)).take(l).enumerate() {
            let row = &mut row[..ev];
            row.fill(0.0);
            let q = &query[i * e..(i + 1) * e];
            let mut stats = RowStats::EMPTY;
            for c in 0.. {
                let keys = head.chunk(i, c);
                if keys.is_empty() {
                    break;
                }
                let Some(chunk_stats) = head.chunk_weights::<V>(q, i, keys.clone(), scores) else { continue };
                let (a, b) = stats.merge(chunk_stats);
                for (col, out_block) in (0..ev).step_by(VALUE_BLOCK).zip(row.chunks_mut(VALUE_BLOCK)) {
                    let dst = &mut block[..out_block.len()];
                    head.chunk_values::<V>(keys.clone(), scores, col, dst, Some((out_block, a, b)));
                }
            }
            normalize(row, stats);
        }
    }
}

/// [`Head::row_chunk`]'s body, for one backend.
#[cfg(feature = "std")]
struct RowChunk<'h, 'a, T> {
    head: &'h Head<'a, T>,
    i: usize,
    c: usize,
    scratch: &'h mut [f32],
    partial: &'h mut [f32],
}

#[cfg(feature = "std")]
impl<T: Element> WithSimd for RowChunk<'_, '_, T> {
    type Output = Option<RowStats>;

    #[inline(always)]
    fn run<V: F32Vector>(self) -> Option<RowStats> {
        let RowChunk { head, i, c, scratch, partial } = self;
        let keys = head.chunk(i, c);
        let (scores, query) = scratch.split_at_mut(CHUNK_KEYS);
        let q = head.query_rows(i..i + 1, query);
        let stats = head.chunk_weights::<V>(q, i, keys.clone(), scores)?;
        head.chunk_values::<V>(keys, scores, 0, partial, None);
        Some(stats)
    }
}
