//! Scaled dot-product attention with PyTorch's semantics
//! (`torch.nn.functional.scaled_dot_product_attention`):
//!
//! `out = softmax(scale · Q Kᵀ + mask) · V` per (batch, head), with query
//! `(B, Hq, L, E)`, key `(B, Hkv, S, E)`, value `(B, Hkv, S, Ev)`, output
//! `(B, Hq, L, Ev)`.
//!
//! - `scale` defaults to `1/√E`.
//! - Masks: bool (`true` = the key takes part) or additive float, of shape
//!   `(mask_batch, mask_heads, L, S)` with `mask_batch ∈ {1, B}` and
//!   `mask_heads ∈ {1, Hq}` (broadcast as PyTorch does); or `is_causal`,
//!   aligned top-left (query `i` sees keys `0..=i`).
//! - GQA: `Hq` a multiple of `Hkv`; query head `h` reads kv head
//!   `h / (Hq/Hkv)`.
//! - A row with no key left gives an output of zeros.
//! - With `E = 0` every score is 0, the empty product left unscaled (as
//!   [`crate::gemm::gemm`] does with `k = 0`), so attention is uniform;
//!   PyTorch would form `0·∞ = NaN` from the default scale `1/√0`.
//!
//! Without weights it runs FlashAttention-style: key tiles of [`TILE_KEYS`],
//! an online softmax per query row, and no `(L, S)` matrix, so scratch is a
//! fixed [`TILE_QUERIES`]` × `[`TILE_KEYS`] tile. With weights requested it
//! forms each head's `(L, S)` weights in the caller's buffer instead.
//! Heads of at most [`STREAM_MAX_QUERIES`] rows (decoding) stream each row
//! over its keys in fixed chunks ([`crate::kernels`]' `streaming_row`),
//! which the parallel layer may split across threads (split-K) with the
//! same bits.

use super::dot::{from, from_mut};
use crate::error::{Error, checked_mul, expect_len, take};
use crate::gemm::{MatMut, MatRef, gemm};
use crate::kernels::online_softmax::OnlineSoftmaxTile;
use crate::kernels::packed_panels::{PANEL, PanelProduct, pack, packed_len};
use crate::kernels::softmax::softmax_row;
use crate::kernels::streaming_row::{CHUNK_KEYS, ChunkValues, ChunkWeights, RowStats, VALUE_BLOCK};
use crate::simd::{self, F32Vector, WithSimd};

/// Query rows per tile.
///
/// The flash tile is one shape for every backend: on AVX-512 (one Zen 4
/// core, 2026-12-01, three alternating rounds, medians in ms) 60, 72 and 96
/// query rows and 64 × 128, 32 × 256 and 96 × 128 tiles all ran within the
/// noise of 64 × 256 (sdpa-512 23.9–26.9 against 24.0–26.9, causal-2048
/// 48.1–52.8 against 48.1–51.0), so no backend has a reason to differ.
pub const TILE_QUERIES: usize = 64;
/// Keys per tile. Longer tiles rescale the running output less often and
/// give the `P·V` product a deeper loop per tile: 256 measured 12 % faster
/// than 64 on `sdpa-512` and 20 % on `sdpa-causal-2048` (medians, one core
/// of a 2-core EPYC, Zen 3, AVX2); 512 was no better, and 96 query rows no
/// better than 64.
pub const TILE_KEYS: usize = 256;
/// The flash loop's fixed scratch: a score tile and two rows of statistics.
const FLASH_SCRATCH: usize = TILE_QUERIES * TILE_KEYS + 2 * TILE_QUERIES;

/// Heads with at most this many query rows take the streaming (decode)
/// path: each row reads K and V once, straight from the caller's tensors,
/// instead of through the packed tiles. Measured for one row only
/// (`attn bench`'s `sdpa-decode`: 69 ms through the earlier GEMM tiles, 21 ms
/// streamed, on a 2-core EPYC);
/// up to 4 is a judgment: the tiles would first pack all of K and V, which
/// so few rows cannot repay.
pub const STREAM_MAX_QUERIES: usize = 4;

/// Sizes of one SDPA call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SdpaShape {
    /// `B`.
    pub batch: usize,
    /// `Hq`.
    pub q_heads: usize,
    /// `Hkv`; must divide `Hq`.
    pub kv_heads: usize,
    /// `L`, queries per head.
    pub q_len: usize,
    /// `S`, keys per head.
    pub kv_len: usize,
    /// `E`, width of queries and keys.
    pub qk_dim: usize,
    /// `Ev`, width of values and output.
    pub v_dim: usize,
}

/// Which keys each query may see.
#[derive(Clone, Copy, Debug)]
pub enum SdpaMask<'a> {
    /// Every key.
    None,
    /// `is_causal`: query `i` sees keys `0..=i`.
    Causal,
    /// Bool mask, `true` where the key takes part, shape `(batch, heads, L, S)`.
    Keep {
        /// The mask values.
        mask: &'a [bool],
        /// 1 (broadcast) or `B`.
        batch: usize,
        /// 1 (broadcast) or `Hq`.
        heads: usize,
    },
    /// Float mask added to the scaled scores, shape `(batch, heads, L, S)`.
    Additive {
        /// The mask values.
        mask: &'a [f32],
        /// 1 (broadcast) or `B`.
        batch: usize,
        /// 1 (broadcast) or `Hq`.
        heads: usize,
    },
}

/// `scaled_dot_product_attention`; `scale: None` means `1/√E`.
#[derive(Clone, Copy, Debug, Default)]
pub struct ScaledDotProductAttention {
    /// The factor on `Q Kᵀ`.
    pub scale: Option<f32>,
}

struct Sizes {
    query: usize,
    key: usize,
    value: usize,
    out: usize,
    weights: usize,
}

impl SdpaShape {
    fn sizes(&self) -> Result<Sizes, Error> {
        let m = |a, b| checked_mul("shape", a, b);
        let q_rows = m(m(self.batch, self.q_heads)?, self.q_len)?;
        let kv_rows = m(m(self.batch, self.kv_heads)?, self.kv_len)?;
        Ok(Sizes {
            query: m(q_rows, self.qk_dim)?,
            key: m(kv_rows, self.qk_dim)?,
            value: m(kv_rows, self.v_dim)?,
            out: m(q_rows, self.v_dim)?,
            weights: m(q_rows, self.kv_len)?,
        })
    }
}

impl ScaledDotProductAttention {
    /// Scratch for [`forward`](Self::forward):
    /// - nothing when the caller takes the weights;
    /// - one chunk of scores when heads stream (`L ≤ STREAM_MAX_QUERIES`, 4);
    /// - otherwise one score tile, two rows of running statistics, and one
    ///   head's `Kᵀ` and `V` packed into panels (about `S·(E + Ev)` values,
    ///   each rounded up to whole panels of 32 columns).
    pub fn workspace_len(&self, shape: &SdpaShape, with_weights: bool) -> Result<usize, Error> {
        if with_weights {
            return Ok(0);
        }
        if shape.q_len <= STREAM_MAX_QUERIES {
            return Ok(CHUNK_KEYS);
        }
        let (s, e, ev) = (shape.kv_len, shape.qk_dim, shape.v_dim);
        let packed = packed_len(e, s).zip(packed_len(s, ev)).and_then(|(k, v)| k.checked_add(v));
        packed.and_then(|p| p.checked_add(FLASH_SCRATCH)).ok_or(Error::Overflow { arg: "workspace" })
    }

    /// Writes `out` `(B, Hq, L, Ev)` and, if given, `weights` `(B, Hq, L, S)`.
    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        &self,
        shape: &SdpaShape,
        query: &[f32],
        key: &[f32],
        value: &[f32],
        mask: SdpaMask<'_>,
        out: &mut [f32],
        weights: Option<&mut [f32]>,
        workspace: &mut [f32],
    ) -> Result<(), Error> {
        self.check(shape, [query, key, value], &mask, out, weights.as_deref())?;
        if super::nothing_to_write(out, weights.as_deref()) {
            return Ok(());
        }
        let workspace = take("workspace", workspace, self.workspace_len(shape, weights.is_some())?)?;
        let (l, s) = (shape.q_len, shape.kv_len);
        let mut weights = weights;
        for b in 0..shape.batch {
            for h in 0..shape.q_heads {
                let head = (b * shape.q_heads + h) * l;
                let o = from_mut(out, head * shape.v_dim);
                let w = weights.as_deref_mut().map(|w| from_mut(w, head * s));
                self.head(shape, [query, key, value], &mask, (b, h), o, w, workspace)?;
            }
        }
        Ok(())
    }

    /// [`forward`](Self::forward) with buffers it allocates itself.
    #[cfg(feature = "alloc")]
    pub fn attend(
        &self,
        shape: &SdpaShape,
        query: &[f32],
        key: &[f32],
        value: &[f32],
        mask: SdpaMask<'_>,
        want_weights: bool,
    ) -> Result<super::Attended, Error> {
        let sizes = shape.sizes()?;
        super::attended::attended(
            sizes.out,
            sizes.weights,
            want_weights,
            self.workspace_len(shape, want_weights)?,
            |out, w, ws| self.forward(shape, query, key, value, mask, out, w, ws),
        )
    }

    /// Checks every length, the head grouping and the mask, before any work.
    pub(crate) fn check(
        &self,
        shape: &SdpaShape,
        [query, key, value]: [&[f32]; 3],
        mask: &SdpaMask<'_>,
        out: &[f32],
        weights: Option<&[f32]>,
    ) -> Result<(), Error> {
        let sizes = shape.sizes()?;
        expect_len("query", sizes.query, query.len())?;
        expect_len("key", sizes.key, key.len())?;
        expect_len("value", sizes.value, value.len())?;
        expect_len("out", sizes.out, out.len())?;
        if let Some(w) = weights {
            expect_len("weights", sizes.weights, w.len())?;
        }
        if shape.q_heads > 0 && (shape.kv_heads == 0 || !shape.q_heads.is_multiple_of(shape.kv_heads)) {
            return Err(Error::Dimension { arg: "kv_heads", expected: shape.q_heads, actual: shape.kv_heads });
        }
        check_mask(shape, mask)
    }

    /// Query rows `queries` of one head on the flash path (`L >`
    /// [`STREAM_MAX_QUERIES`], no weights): `out` holds just those rows, and
    /// `queries.start` is a multiple of [`TILE_QUERIES`]. Same bits as
    /// [`forward`](Self::forward).
    #[cfg(feature = "std")]
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn head_rows(
        &self,
        shape: &SdpaShape,
        inputs: [&[f32]; 3],
        mask: &SdpaMask<'_>,
        bh: (usize, usize),
        queries: core::ops::Range<usize>,
        out: &mut [f32],
        workspace: &mut [f32],
    ) {
        Head::new(self, shape, inputs, mask, bh).flash_rows(queries, out, workspace);
    }

    /// Computes head `h` of batch entry `b` into its output (and weights).
    /// Calls already checked by `forward` may run heads in any order or in
    /// parallel: each touches only its own slices.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn head(
        &self,
        shape: &SdpaShape,
        [query, key, value]: [&[f32]; 3],
        mask: &SdpaMask<'_>,
        (b, h): (usize, usize),
        out: &mut [f32],
        weights: Option<&mut [f32]>,
        workspace: &mut [f32],
    ) -> Result<(), Error> {
        let l = shape.q_len;
        let head = Head::new(self, shape, [query, key, value], mask, (b, h));
        match weights {
            Some(w) => head.with_weights(w, out),
            None if l <= STREAM_MAX_QUERIES => {
                head.stream(out, workspace);
                Ok(())
            }
            None => {
                head.flash(out, workspace);
                Ok(())
            }
        }
    }

    /// Whether `forward` without weights streams rows in key chunks, and
    /// how many chunks row `i` has then.
    #[cfg(feature = "std")]
    pub(crate) fn row_chunks(shape: &SdpaShape, mask: &SdpaMask<'_>, i: usize) -> Option<usize> {
        let causal = matches!(mask, SdpaMask::Causal);
        (shape.q_len <= STREAM_MAX_QUERIES).then(|| visible_keys(shape.kv_len, causal, i).div_ceil(CHUNK_KEYS))
    }

    /// Chunk `c` of row `i` of a streamed head: writes `o_c` (`Ev` values)
    /// to `partial` and returns the chunk's statistics (`None`: all masked).
    #[cfg(feature = "std")]
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn row_chunk(
        &self,
        shape: &SdpaShape,
        inputs: [&[f32]; 3],
        mask: &SdpaMask<'_>,
        bh: (usize, usize),
        (i, c): (usize, usize),
        scores: &mut [f32],
        partial: &mut [f32],
    ) -> Option<RowStats> {
        let head = Head::new(self, shape, inputs, mask, bh);
        simd::dispatch(RowChunk { head: &head, i, c, scores, partial })
    }
}

/// Keys that query row `i` may see at all.
fn visible_keys(kv_len: usize, causal: bool, i: usize) -> usize {
    if causal { kv_len.min(i + 1) } else { kv_len }
}

/// `row ← row / sum` (zeros for a row that saw no key).
pub(crate) fn normalize(row: &mut [f32], stats: RowStats) {
    let norm = stats.norm();
    for x in row {
        *x *= norm;
    }
}

fn check_mask(shape: &SdpaShape, mask: &SdpaMask<'_>) -> Result<(), Error> {
    let (len, batch, heads) = match *mask {
        SdpaMask::None | SdpaMask::Causal => return Ok(()),
        SdpaMask::Keep { mask, batch, heads } => (mask.len(), batch, heads),
        SdpaMask::Additive { mask, batch, heads } => (mask.len(), batch, heads),
    };
    if batch != 1 && batch != shape.batch {
        return Err(Error::Dimension { arg: "attn_mask.batch", expected: shape.batch, actual: batch });
    }
    if heads != 1 && heads != shape.q_heads {
        return Err(Error::Dimension { arg: "attn_mask.heads", expected: shape.q_heads, actual: heads });
    }
    let expected = [batch, heads, shape.q_len, shape.kv_len].into_iter().try_fold(1usize, |a, b| a.checked_mul(b));
    let expected = expected.ok_or(Error::Overflow { arg: "attn_mask" })?;
    expect_len("attn_mask", expected, len)
}

/// One head's `(L, S)` slice of the mask.
#[derive(Clone, Copy)]
enum HeadMask<'a> {
    None,
    Causal,
    Keep(&'a [bool]),
    Additive(&'a [f32]),
}

impl<'a> HeadMask<'a> {
    fn of(mask: &SdpaMask<'a>, b: usize, h: usize, per_head: usize) -> HeadMask<'a> {
        let offset = |batch: usize, heads: usize| {
            let (b, h) = (if batch == 1 { 0 } else { b }, if heads == 1 { 0 } else { h });
            (b * heads + h) * per_head
        };
        match *mask {
            SdpaMask::None => HeadMask::None,
            SdpaMask::Causal => HeadMask::Causal,
            SdpaMask::Keep { mask, batch, heads } => HeadMask::Keep(&mask[offset(batch, heads)..][..per_head]),
            SdpaMask::Additive { mask, batch, heads } => HeadMask::Additive(&mask[offset(batch, heads)..][..per_head]),
        }
    }

    /// Applies the mask to scores of query row `i`, keys `j0..j0 + row.len()`.
    fn apply(&self, row: &mut [f32], i: usize, j0: usize, s: usize) {
        match *self {
            HeadMask::None => {}
            HeadMask::Causal => {
                // Keys j > i are hidden: a suffix of the row, if any.
                let visible = (i + 1).saturating_sub(j0).min(row.len());
                row[visible..].fill(f32::NEG_INFINITY);
            }
            HeadMask::Keep(m) => {
                for (v, &keep) in row.iter_mut().zip(&m[i * s + j0..]) {
                    if !keep {
                        *v = f32::NEG_INFINITY;
                    }
                }
            }
            HeadMask::Additive(m) => {
                for (v, &add) in row.iter_mut().zip(&m[i * s + j0..]) {
                    *v += add;
                }
            }
        }
    }
}

/// A query tile's scratch on the flash path: its score tile and running
/// row statistics.
pub(crate) struct TileState<'w> {
    pub tile: &'w mut [f32],
    pub max: &'w mut [f32],
    pub sum: &'w mut [f32],
}

/// One (batch, query head) and its kv head.
pub(crate) struct Head<'a> {
    q: &'a [f32],
    k: &'a [f32],
    v: &'a [f32],
    mask: HeadMask<'a>,
    shape: &'a SdpaShape,
    scale: f32,
}

impl<'a> Head<'a> {
    pub(crate) fn new(
        op: &ScaledDotProductAttention,
        shape: &'a SdpaShape,
        [query, key, value]: [&'a [f32]; 3],
        mask: &SdpaMask<'a>,
        (b, h): (usize, usize),
    ) -> Head<'a> {
        let (l, s) = (shape.q_len, shape.kv_len);
        let group = shape.q_heads.checked_div(shape.kv_heads).unwrap_or(1);
        let kv = b * shape.kv_heads + h / group;
        Head {
            q: from(query, (b * shape.q_heads + h) * l * shape.qk_dim),
            k: from(key, kv * s * shape.qk_dim),
            v: from(value, kv * s * shape.v_dim),
            mask: HeadMask::of(mask, b, h, l * s),
            shape,
            scale: op.scale.unwrap_or_else(|| 1.0 / libm::sqrtf(shape.qk_dim as f32)),
        }
    }

    /// Keys of chunk `c` of row `i`.
    fn chunk(&self, i: usize, c: usize) -> core::ops::Range<usize> {
        let visible = visible_keys(self.shape.kv_len, matches!(self.mask, HeadMask::Causal), i);
        c * CHUNK_KEYS..((c + 1) * CHUNK_KEYS).min(visible)
    }

    /// Scores of row `i` against `keys`, masked, replaced by `e^{s − m_c}`.
    #[inline(always)]
    fn chunk_weights<V: F32Vector>(
        &self,
        i: usize,
        keys: core::ops::Range<usize>,
        scores: &mut [f32],
    ) -> Option<RowStats> {
        let (e, s) = (self.shape.qk_dim, self.shape.kv_len);
        let j0 = keys.start;
        ChunkWeights {
            query: &self.q[i * e..(i + 1) * e],
            keys: &self.k[keys.start * e..keys.end * e],
            scale: self.scale,
            mask: |scores: &mut [f32]| self.mask.apply(scores, i, j0, s),
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
        let ev = self.shape.v_dim;
        ChunkValues {
            weights: &weights[..keys.len()],
            values: &self.v[keys.start * ev..keys.end * ev],
            v_dim: ev,
            col,
            dst,
            merge,
        }
        .run::<V>();
    }

    /// The decode path: each query row streamed over its keys, chunk by
    /// chunk, folding each chunk's partial result into the output row, all
    /// inside one entry into the backend.
    fn stream(&self, out: &mut [f32], scores: &mut [f32]) {
        simd::dispatch(StreamRows { head: self, out, scores });
    }

    /// The whole `(L, S)` masked scores.
    fn scores(&self, dst: &mut [f32]) -> Result<(), Error> {
        let (e, l, s) = (self.shape.qk_dim, self.shape.q_len, self.shape.kv_len);
        let (rows, keys, stride) = (0..l, 0..s, s);
        gemm(
            self.scale,
            MatRef::strided(from(self.q, rows.start * e), rows.len(), e, e, 1),
            MatRef::strided(from(self.k, keys.start * e), keys.len(), e, e, 1).t(),
            0.0,
            MatMut::strided(dst, rows.len(), keys.len(), stride, 1),
        )?;
        self.mask_rows(rows, keys, dst, stride);
        Ok(())
    }

    /// Masks scores of `rows × keys` held at row stride `stride`.
    fn mask_rows(&self, rows: core::ops::Range<usize>, keys: core::ops::Range<usize>, dst: &mut [f32], stride: usize) {
        for (r, i) in rows.enumerate() {
            self.mask.apply(&mut dst[r * stride..r * stride + keys.len()], i, keys.start, self.shape.kv_len);
        }
    }

    /// Forms the whole `(L, S)` weights, then `out = weights · V`.
    fn with_weights(&self, weights: &mut [f32], out: &mut [f32]) -> Result<(), Error> {
        let (l, s, ev) = (self.shape.q_len, self.shape.kv_len, self.shape.v_dim);
        let weights = &mut weights[..l * s];
        self.scores(weights)?;
        if s > 0 {
            simd::dispatch(SoftmaxRows { weights, keys: s });
        }
        gemm(1.0, MatRef::new(weights, l, s), MatRef::new(self.v, s, ev), 0.0, MatMut::new(&mut out[..l * ev], l, ev))
    }

    /// FlashAttention: tiles over queries and keys with an online softmax.
    /// The head's `Kᵀ` and `V` are packed into panels once, so each tile
    /// product is the microkernel alone.
    fn flash(&self, out: &mut [f32], workspace: &mut [f32]) {
        self.flash_rows(0..self.shape.q_len, out, workspace);
    }

    /// [`flash`](Self::flash) for query rows `queries` only (starting on a
    /// tile boundary), into `out`, which holds just those rows. Each tile of
    /// queries is computed on its own, so splitting rows never changes a bit.
    /// The whole run of tiles is one entry into the backend.
    fn flash_rows(&self, queries: core::ops::Range<usize>, out: &mut [f32], workspace: &mut [f32]) {
        simd::dispatch(FlashRows { head: self, queries, out, workspace });
    }

    /// One FlashAttention step: query rows `rows` (one tile) meet key tile
    /// `keys` (starting on a tile boundary). `packed` holds the head's `Kᵀ`
    /// and `V` packed into panels, `V` as `packed_rows` rows; `o` holds the
    /// rows' unnormalised outputs.
    #[inline(always)]
    pub(crate) fn key_tile<V: F32Vector>(
        &self,
        rows: core::ops::Range<usize>,
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
            a: &self.q[rows.start * e..rows.end * e],
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

struct SoftmaxRows<'a> {
    weights: &'a mut [f32],
    keys: usize,
}

impl WithSimd for SoftmaxRows<'_> {
    type Output = ();

    #[inline(always)]
    fn run<V: F32Vector>(self) {
        for row in self.weights.chunks_exact_mut(self.keys) {
            softmax_row::<V>(row);
        }
    }
}

/// [`Head::stream`]'s body, for one backend.
struct StreamRows<'h, 'a> {
    head: &'h Head<'a>,
    out: &'h mut [f32],
    scores: &'h mut [f32],
}

impl WithSimd for StreamRows<'_, '_> {
    type Output = ();

    #[inline(always)]
    fn run<V: F32Vector>(self) {
        let StreamRows { head, out, scores } = self;
        let (l, ev) = (head.shape.q_len, head.shape.v_dim);
        let scores = &mut scores[..CHUNK_KEYS];
        let mut block = [0.0f32; VALUE_BLOCK];
        for (i, row) in out.chunks_exact_mut(ev.max(1)).take(l).enumerate() {
            let row = &mut row[..ev];
            row.fill(0.0);
            let mut stats = RowStats::EMPTY;
            for c in 0.. {
                let keys = head.chunk(i, c);
                if keys.is_empty() {
                    break;
                }
                let Some(chunk_stats) = head.chunk_weights::<V>(i, keys.clone(), scores) else { continue };
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

/// One chunk of one streamed row on its own (a split-K task): writes
/// `o_c` to `partial` and returns the chunk's statistics.
#[cfg(feature = "std")]
struct RowChunk<'h, 'a> {
    head: &'h Head<'a>,
    i: usize,
    c: usize,
    scores: &'h mut [f32],
    partial: &'h mut [f32],
}

#[cfg(feature = "std")]
impl WithSimd for RowChunk<'_, '_> {
    type Output = Option<RowStats>;

    #[inline(always)]
    fn run<V: F32Vector>(self) -> Option<RowStats> {
        let keys = self.head.chunk(self.i, self.c);
        let stats = self.head.chunk_weights::<V>(self.i, keys.clone(), self.scores)?;
        self.head.chunk_values::<V>(keys, self.scores, 0, self.partial, None);
        Some(stats)
    }
}

/// [`Head::flash_rows`]'s body, for one backend.
struct FlashRows<'h, 'a> {
    head: &'h Head<'a>,
    queries: core::ops::Range<usize>,
    out: &'h mut [f32],
    workspace: &'h mut [f32],
}

impl WithSimd for FlashRows<'_, '_> {
    type Output = ();

    #[inline(always)]
    fn run<V: F32Vector>(self) {
        let FlashRows { head, queries, out, workspace } = self;
        let (e, ev) = (head.shape.qk_dim, head.shape.v_dim);
        let (tile, rest) = workspace.split_at_mut(TILE_QUERIES * TILE_KEYS);
        let (max, rest) = rest.split_at_mut(TILE_QUERIES);
        let (sum, rest) = rest.split_at_mut(TILE_QUERIES);
        // Only the keys some query here may see are packed (causal rows see
        // a prefix); `forward` sized the workspace for all of them.
        let causal = matches!(head.mask, HeadMask::Causal);
        let s = if causal { head.shape.kv_len.min(queries.end) } else { head.shape.kv_len };
        let (keys_t, rest) = rest.split_at_mut(packed_len(e, s).unwrap_or(0));
        let values = &mut rest[..packed_len(s, ev).unwrap_or(0)];
        pack(head.k, e, s, 1, e, keys_t);
        pack(head.v, s, ev, ev, 1, values);
        for i0 in queries.clone().step_by(TILE_QUERIES) {
            let rows = i0..(i0 + TILE_QUERIES).min(queries.end);
            let n = rows.len();
            let o = &mut out[(i0 - queries.start) * ev..(rows.end - queries.start) * ev];
            o.fill(0.0);
            max[..n].fill(f32::NEG_INFINITY);
            sum[..n].fill(0.0);
            // A causal block never sees keys past its last query.
            let last_key = if causal { s.min(rows.end) } else { s };
            let mut state = TileState { tile: &mut *tile, max: &mut max[..n], sum: &mut sum[..n] };
            for j0 in (0..last_key).step_by(TILE_KEYS) {
                let keys = j0..(j0 + TILE_KEYS).min(last_key);
                head.key_tile::<V>(rows.clone(), keys, &mut state, (keys_t, values), s, o);
            }
            for (row, &sum) in o.chunks_exact_mut(ev.max(1)).zip(&sum[..n]) {
                normalize(row, RowStats { max: 0.0, sum });
            }
        }
    }
}
