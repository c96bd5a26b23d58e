//! The FlashAttention strategy for heads longer than a decode step, without
//! weights: the head's `Kᵀ` and `V` are packed (and widened to f32) once
//! into panels, then each tile of [`TILE_QUERIES`] query rows meets key
//! tiles of [`TILE_KEYS`] with an online softmax, so each tile product is
//! the microkernel alone and no `(L, S)` matrix exists.
//!
//! bf16 heads are widened while they are packed and multiplied by the f32
//! microkernel, except `Q·Kᵀ` of bf16 queries and keys on AMD cores with
//! AVX-512 BF16, where `kernels::bf16_pair_tile` multiplies the stored
//! values with `vdpbf16ps` (its docs give the rounding). That instruction does
//! twice an FMA's multiply-adds, but on the 2-core Xeon of 2026-12-03 it
//! issued at under a quarter of the FMA's instruction rate: 82–84 GFLOP/s
//! against the FMA's 171–175 (`taskset -c 0 cargo bench --bench
//! bf16_dot_rate`, 24 chains each), so a bf16 tile would run `Q·Kᵀ` at
//! about 0.48× the f32 one there. On a Zen 4 core (2026-12-04, the same
//! bench) it ran at 210–230 GFLOP/s against the FMA's 105–115, 1.92–2.18×.
//! `P·V` keeps the f32 microkernel everywhere: its weights must stay f32
//! (or be split into two bf16 halves) to meet the golden tolerance.

use super::{AnyHead, HeadQuery, TILE_KEYS, TILE_QUERIES};
#[cfg(simd_attention_x86_backends)]
use crate::kernels::bf16_pair_tile;
use crate::kernels::online_softmax::OnlineSoftmaxTile;
use crate::kernels::packed_panels::{PANEL, PanelProduct, packed_len};
use crate::kernels::streaming_row::RowStats;
use crate::simd::{self, F32Vector, WithSimd};

/// The flash loop's scores are `log2 e` times the natural ones, so that its
/// online softmax takes `2^{s − m}` ([`crate::math::exp::exp2_nonpositive`],
/// with no `ln 2` to split) for `e^{s − m}`: the
/// factor rides on the score product's `α` and on an additive mask. Against
/// `e^x` (and without the causal row groups of `key_tile`), on one Zen 4
/// core (2026-12-04, `benches/alternate.sh -r 5`, medians of medians):
/// `sdpa-512` 1.028×, `sdpa-causal-2048` 1.035×, `sdpa-512-bf16` 1.018×.
const SCORE_UNITS: f32 = core::f32::consts::LOG2_E;

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
    /// them) meet key tile `keys` (starting on a tile boundary). `packed`
    /// holds the head's `Kᵀ` and `V` packed into panels (f32 whatever the
    /// storage, or `Kᵀ` as bf16 pairs for [`TileQueries::Bf16Pairs`]), `V`
    /// as `packed_rows` rows; `o` holds the rows' unnormalised outputs.
    #[inline(always)]
    pub(crate) fn key_tile<V: F32Vector>(
        &self,
        (rows, q): (core::ops::Range<usize>, TileQueries<'_>),
        keys: core::ops::Range<usize>,
        state: &mut TileState<'_>,
        (keys_t, values): (&[f32], &[f32]),
        packed_rows: usize,
        o: &mut [f32],
    ) {
        let (e, ev) = (self.shape.qk_dim, self.shape.v_dim);
        let (n, cols, j0) = (rows.len(), keys.len(), keys.start);
        match q {
            // TILE_KEYS is a multiple of PANEL, so key j0 starts a panel.
            // The rows carry the scale: α = 1.
            TileQueries::F32(q) => PanelProduct {
                m: n,
                n: cols,
                kc: e,
                alpha: 1.0,
                a: q,
                a_strides: (e, 1),
                packed: &keys_t[j0 / PANEL * e * PANEL..],
                packed_rows: e,
                k0: 0,
                beta: 0.0,
                c: state.tile,
                c_row_stride: TILE_KEYS,
            }
            .run::<V>(),
            #[cfg(simd_attention_x86_backends)]
            TileQueries::Bf16Pairs(q) => {
                let scale = self.scale * SCORE_UNITS;
                bf16_pair_tile::scores((q, n), (keys_t, e, j0, cols), scale, (state.tile, TILE_KEYS))
            }
        }
        self.mask_rows((rows.clone(), keys.clone()), state.tile, TILE_KEYS, SCORE_UNITS);
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
        // `o += P·V`. Where a causal mask cuts the tile, the microkernel's
        // row groups each take only the keys their last row sees: the rest
        // weigh exactly 0, and skipping them spares about half of the
        // diagonal block's product, 1.4 % of `sdpa-causal-2048`'s work. For
        // finite values the running sums keep their bits; an inf or NaN
        // value under a masked key now reaches only the rows of groups whose
        // last row sees it. Measured together with the base-2 softmax
        // ([`SCORE_UNITS`]); alone (`benches/alternate.sh -r 7`, a noisy
        // hour) its median was 1.00×, no gain the noise could resolve. The
        // same row groups for `Q·Kᵀ`, each with a tile only as many vectors
        // wide as its keys need, ran 0.995× (2026-12-05, `-r 5`), so the
        // score product stays whole.
        let whole = self.visible(rows.start) >= keys.end;
        let group = if whole { n.max(1) } else { V::TILE_ROWS };
        for g0 in (0..n).step_by(group) {
            let g1 = (g0 + group).min(n);
            let seen = if whole { cols } else { self.visible(rows.start + g1 - 1).min(keys.end).saturating_sub(j0) };
            PanelProduct {
                m: g1 - g0,
                n: ev,
                kc: seen,
                alpha: 1.0,
                a: &state.tile[g0 * TILE_KEYS..],
                a_strides: (TILE_KEYS, 1),
                packed: values,
                packed_rows,
                k0: j0,
                beta: 1.0,
                c: &mut o[g0 * ev..],
                c_row_stride: ev,
            }
            .run::<V>();
        }
    }
}

impl HeadQuery<'_> {
    /// Query rows `rows` as the f32 score product takes them, times the
    /// scale in [`SCORE_UNITS`] ([`TileQueries::F32`]), made in `scratch`.
    pub(crate) fn f32_tile_queries<'s>(
        &self,
        rows: core::ops::Range<usize>,
        scratch: &'s mut [f32],
    ) -> TileQueries<'s> {
        let e = self.shape.qk_dim;
        let dst = &mut scratch[..rows.len() * e];
        self.query.widen_into(self.q_start + rows.start * e, dst);
        let factor = self.scale * SCORE_UNITS;
        for x in dst.iter_mut() {
            *x *= factor;
        }
        TileQueries::F32(dst)
    }
}

/// A query tile as the score product takes it.
#[derive(Clone, Copy)]
pub(crate) enum TileQueries<'q> {
    /// Rows of f32 values times the scale (in [`SCORE_UNITS`]), for the f32
    /// microkernel: `(s·q)·k`, where the product's `α` took `s·(q·k)`. A
    /// copy of the tile's rows scaled once spares the product's epilogue a
    /// multiply per score: `perf record -e cpu-clock` of `sdpa-512` on one
    /// Zen 4 core (2026-12-05) put those multiplies at 3.3 % of the flash
    /// loop's samples. The two round differently, by an ulp or so of the
    /// score. Only queries past `f32::MAX / s` (for the default scale,
    /// `s = log2 e / √E`, none but `E ≤ 2`) overflow where `s·(q·k)` might
    /// not.
    F32(&'q [f32]),
    /// Rows of bf16 pairs (`kernels::bf16_pair_tile`), made only where
    /// `bf16_pair_tile::pays` said yes.
    #[cfg(simd_attention_x86_backends)]
    Bf16Pairs(&'q [f32]),
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
        // bf16 queries and keys on a core where `vdpbf16ps` pays: `Kᵀ` as
        // pairs. Not for E = 0, whose scores are the empty sum, 0, whatever
        // the scale (1/√0 unless given): the f32 product writes them so.
        #[cfg(simd_attention_x86_backends)]
        let pairs = V::BF16_DOT && e > 0 && any.bf16_queries_and_keys() && bf16_pair_tile::pays();
        #[cfg(simd_attention_x86_backends)]
        if pairs {
            bf16_pair_tile::pairs_in_place(keys_t, e, s);
        }
        for i0 in queries.clone().step_by(TILE_QUERIES) {
            let rows = i0..(i0 + TILE_QUERIES).min(queries.end);
            let n = rows.len();
            let o = &mut out[(i0 - queries.start) * ev..(rows.end - queries.start) * ev];
            o.fill(0.0);
            max[..n].fill(f32::NEG_INFINITY);
            sum[..n].fill(0.0);
            #[cfg(simd_attention_x86_backends)]
            let q = if pairs {
                TileQueries::Bf16Pairs(head.query_pairs(rows.clone(), q_tile))
            } else {
                head.f32_tile_queries(rows.clone(), q_tile)
            };
            #[cfg(not(simd_attention_x86_backends))]
            let q = head.f32_tile_queries(rows.clone(), q_tile);
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
