//! The FlashAttention strategy for heads longer than a decode step, without
//! weights: the head's `Kᵀ` and `V` are packed (and widened to f32) once
//! into panels, then each tile of [`TILE_QUERIES`] query rows meets key
//! tiles of [`TILE_KEYS`] with an online softmax, so each tile product is
//! the microkernel alone and no `(L, S)` matrix exists.
//!
//! bf16 heads are widened while they are packed and multiplied by the f32
//! microkernel, not by AVX-512 BF16's `vdpbf16ps`. That instruction does
//! twice an FMA's multiply-adds, but on the 2-core Xeon of 2026-12-03 it
//! issued at under a quarter of the FMA's instruction rate: 82–84 GFLOP/s
//! against the FMA's 171–175 (`taskset -c 0 cargo bench --bench
//! bf16_dot_rate`, 24 chains each), so a bf16 tile would run `Q·Kᵀ` at
//! about 0.48× the f32 one. On a Zen 4 core (2026-12-04, the same bench)
//! it ran at 210–230 GFLOP/s against the FMA's 105–115, 1.92–2.18×: there
//! a `vdpbf16ps` `Q·Kᵀ` tile for bf16 queries and keys would halve that
//! product's time (about a third of `sdpa-512-bf16`'s, by an estimate not
//! yet measured), if chosen per vendor as the decode hints are
//! (`simd::prefetch::hints_help`). Not built yet. `P·V` would gain nothing
//! in any case: its weights must stay f32 (or be split into two bf16
//! halves) to meet the golden tolerance.

use super::{AnyHead, HeadQuery, TILE_KEYS, TILE_QUERIES};
use crate::kernels::online_softmax::OnlineSoftmaxTile;
use crate::kernels::packed_panels::{PANEL, PanelProduct, packed_len};
use crate::kernels::streaming_row::RowStats;
use crate::simd::{self, F32Vector, WithSimd};

/// The flash loop's fixed scratch: a score tile and two rows of statistics.
pub(super) const SCRATCH: usize = TILE_QUERIES * TILE_KEYS + 2 * TILE_QUERIES;

/// A query tile's scratch on the flash path: its score tile and running
/// row statistics.
pub(crate) struct TileState<'w> {
    pub tile: &'w mut [f32],
    pub max: &'w mut [f32],
    pub sum: &'w mut [f32],
}

impl AnyHead<'_> {
    /// Query rows `queries` (starting on a tile boundary) into `out`, which
    /// holds just those rows. Each tile of queries is computed on its own,
    /// so splitting rows never changes a bit. The whole run of tiles is one
    /// entry into the backend.
    pub(super) fn flash_rows(&self, queries: core::ops::Range<usize>, out: &mut [f32], workspace: &mut [f32]) {
        simd::dispatch(FlashRows { head: self, queries, out, workspace });
    }
}

impl HeadQuery<'_> {
    /// One FlashAttention step: query rows `rows` (one tile, `q` holding
    /// them as f32) meet key tile `keys` (starting on a tile boundary).
    /// `packed` holds the head's `Kᵀ` and `V` packed into panels (f32
    /// whatever the storage), `V` as `packed_rows` rows; `o` holds the
    /// rows' unnormalised outputs.
    #[inline(always)]
    pub(crate) fn key_tile<V: F32Vector>(
        &self,
        (rows, q): (core::ops::Range<usize>, &[f32]),
        keys: core::ops::Range<usize>,
        state: &mut TileState<'_>,
        (keys_t, values): (&[f32], &[f32]),
        packed_rows: usize,
        o: &mut [f32],
    ) {
        let (e, ev) = (self.shape.qk_dim, self.shape.v_dim);
        let (n, cols, j0) = (rows.len(), keys.len(), keys.start);
        // TILE_KEYS is a multiple of PANEL, so key j0 starts a panel.
        PanelProduct {
            m: n,
            n: cols,
            kc: e,
            alpha: self.scale,
            a: q,
            a_strides: (e, 1),
            packed: &keys_t[j0 / PANEL * e * PANEL..],
            packed_rows: e,
            k0: 0,
            beta: 0.0,
            c: state.tile,
            c_row_stride: TILE_KEYS,
        }
        .run::<V>();
        self.mask_rows(rows, keys, state.tile, TILE_KEYS);
        OnlineSoftmaxTile {
            scores: &mut state.tile[..n * TILE_KEYS],
            stride: TILE_KEYS,
            cols,
            max: state.max,
            sum: state.sum,
            out: &mut *o,
            out_stride: ev,
            out_cols: ev,
        }
        .run::<V>();
        PanelProduct {
            m: n,
            n: ev,
            kc: cols,
            alpha: 1.0,
            a: state.tile,
            a_strides: (TILE_KEYS, 1),
            packed: values,
            packed_rows,
            k0: j0,
            beta: 1.0,
            c: o,
            c_row_stride: ev,
        }
        .run::<V>();
    }
}

/// [`AnyHead::flash_rows`]'s body, for one backend: the storage type
/// matters only to the packing, so the tile loop is compiled once.
struct FlashRows<'h, 'a> {
    head: &'h AnyHead<'a>,
    queries: core::ops::Range<usize>,
    out: &'h mut [f32],
    workspace: &'h mut [f32],
}

impl WithSimd for FlashRows<'_, '_> {
    type Output = ();

    #[inline(always)]
    fn run<V: F32Vector>(self) {
        let FlashRows { head: any, queries, out, workspace } = self;
        let head = any.query();
        let (e, ev) = (head.shape.qk_dim, head.shape.v_dim);
        let (tile, rest) = workspace.split_at_mut(TILE_QUERIES * TILE_KEYS);
        let (max, rest) = rest.split_at_mut(TILE_QUERIES);
        let (sum, rest) = rest.split_at_mut(TILE_QUERIES);
        let (q_tile, rest) = rest.split_at_mut(TILE_QUERIES * e);
        // Only the keys some query here may see are packed (causal rows see
        // a prefix); `forward` sized the workspace for all of them.
        let s = if queries.is_empty() { 0 } else { head.visible(queries.end - 1) };
        let (keys_t, rest) = rest.split_at_mut(packed_len(e, s).unwrap_or(0));
        let values = &mut rest[..packed_len(s, ev).unwrap_or(0)];
        any.pack(s, keys_t, values);
        for i0 in queries.clone().step_by(TILE_QUERIES) {
            let rows = i0..(i0 + TILE_QUERIES).min(queries.end);
            let n = rows.len();
            let o = &mut out[(i0 - queries.start) * ev..(rows.end - queries.start) * ev];
            o.fill(0.0);
            max[..n].fill(f32::NEG_INFINITY);
            sum[..n].fill(0.0);
            let q = head.query_rows(rows.clone(), q_tile);
            // A causal block never sees keys past its last query's prefix.
            let last_key = head.visible(rows.end - 1);
            let mut state = TileState { tile: &mut *tile, max: &mut max[..n], sum: &mut sum[..n] };
            for j0 in (0..last_key).step_by(TILE_KEYS) {
                let keys = j0..(j0 + TILE_KEYS).min(last_key);
                head.key_tile::<V>((rows.clone(), q), keys, &mut state, (keys_t, values), s, o);
            }
            for (row, &sum) in o.chunks_exact_mut(ev.max(1)).zip(&sum[..n]) {
                super::normalize(row, RowStats { max: 0.0, sum });
            }
        }
    }
}
