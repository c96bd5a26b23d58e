//! Scaled dot-product attention with PyTorch's semantics
//! (`torch.nn.functional.scaled_dot_product_attention`):
//!
//! `out = softmax(scale · Q Kᵀ + mask) · V` per (batch, head), with query
//! `(B, Hq, L, E)`, key `(B, Hkv, S, E)`, value `(B, Hkv, S, Ev)`, output
//! `(B, Hq, L, Ev)`, all named in one [`SdpaInputs`].
//!
//! - `scale` defaults to `1/√E`.
//! - Storage: K and V in f32, bf16, f16 or q8 ([`crate::storage`]), both
//!   the same type; the query in f32, bf16 or f16. Everything is computed
//!   in f32 on the values exactly as stored (q8 as `q · scale`), widened in
//!   registers: K and V are never copied whole. A bf16/f16 query is widened
//!   a tile of rows at a time into the workspace.
//! - Masks: see [`SdpaMask`].
//! - GQA: `Hq` a multiple of `Hkv`; query head `h` reads kv head
//!   `h / (Hq/Hkv)`.
//! - A row with no key left gives an output of zeros.
//! - With `E = 0` every score is 0, the empty product left unscaled (as
//!   [`crate::gemm::gemm`] does with `k = 0`), so attention is uniform;
//!   PyTorch would form `0·∞ = NaN` from the default scale `1/√0`.
//!
//! Three strategies, one file each:
//! - [`stream`]: heads of at most [`STREAM_MAX_QUERIES`] rows (decoding)
//!   stream each row over its keys in fixed chunks, which the parallel
//!   layer may split across threads (split-K) with the same bits.
//! - [`flash`]: longer heads without weights run FlashAttention-style over
//!   K and V packed (and widened) once into panels: key tiles of
//!   [`TILE_KEYS`], an online softmax per query row, no `(L, S)` matrix.
//! - [`weights`]: with weights requested, each head's `(L, S)` weights are
//!   formed in the caller's buffer, through the same packed panels.

mod flash;
mod mask;
mod stream;
mod weights;

#[cfg(feature = "std")]
pub(crate) use flash::{TileQueries, TileState};
use mask::{HeadMask, check_mask};
pub(crate) use stream::normalize;

use crate::error::{Error, checked_mul, take};
use crate::kernels::packed_panels::{pack_rows, pack_transposed, packed_len};
use crate::kernels::streaming_row::CHUNK_KEYS;
#[cfg(feature = "std")]
use crate::kernels::streaming_row::RowStats;
use crate::storage::{Element, Rows, Storage, Stored, bf16, f16};

/// Query rows per tile.
///
/// The flash tile is one shape for every backend: on AVX-512 (one Zen 4
/// core, 2026-12-01, three alternating rounds, medians in ms) 60, 72 and 96
/// query rows and 64 × 128, 32 × 256 and 96 × 128 tiles all ran within the
/// noise of 64 × 256 (sdpa-512 23.9–26.9 against 24.0–26.9, causal-2048
/// 48.1–52.8 against 48.1–51.0), so no backend has a reason to differ.
/// On a two-port Xeon with the 6 × 4 AVX-512 tile (2026-12-03,
/// `benches/alternate.sh -r 7`, medians of medians against 64 × 256),
/// 72 and 48 rows ran sdpa-512 at 0.97× and 0.83×, causal-2048 at 0.97×
/// and 1.01×, and 64 × 128 at 0.82× and 0.88×: none was faster.
pub const TILE_QUERIES: usize = 64;
/// Keys per tile. Longer tiles rescale the running output less often and
/// give the `P·V` product a deeper loop per tile: 256 measured 12 % faster
/// than 64 on `sdpa-512` and 20 % on `sdpa-causal-2048` (medians, one core
/// of a 2-core EPYC, Zen 3, AVX2); 512 was no better, and 96 query rows no
/// better than 64.
pub const TILE_KEYS: usize = 256;
// Each key tile starts a packed panel (the flash step relies on it).
const _: () = assert!(TILE_KEYS.is_multiple_of(crate::kernels::packed_panels::PANEL));

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
    /// `is_causal`, aligned top-left as PyTorch's flag is: query `i` sees
    /// keys `0..=i`.
    Causal,
    /// Causal aligned bottom-right (PyTorch's `causal_lower_right`): query
    /// `i` sees keys `0..=i + S − L`, so the last query sees every key. This
    /// is a decoder's alignment of `L` new queries against a cache of `S`
    /// keys that ends with theirs; with `S < L` the first `L − S` rows see
    /// nothing and give zeros.
    CausalLowerRight,
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

/// The tensors of one call, by name, so that swapping keys and values is
/// visible at the call site. K and V carry their storage type.
#[derive(Clone, Copy, Debug)]
pub struct SdpaInputs<'a> {
    /// `(B, Hq, L, E)`: f32, bf16 or f16.
    pub query: Stored<'a>,
    /// `(B, Hkv, S, E)`, in any storage type.
    pub key: Stored<'a>,
    /// `(B, Hkv, S, Ev)`, in the storage type of `key`.
    pub value: Stored<'a>,
    /// Which keys each query sees.
    pub mask: SdpaMask<'a>,
}

impl<'a> SdpaInputs<'a> {
    /// All-f32 inputs.
    pub fn f32(query: &'a [f32], key: &'a [f32], value: &'a [f32], mask: SdpaMask<'a>) -> Self {
        SdpaInputs { query: Stored::F32(query), key: Stored::F32(key), value: Stored::F32(value), mask }
    }
}

/// One call as the strategies see it: its shape, its inputs, and how many
/// rows apart the kv heads lie in K and V (`S` for plain tensors; a
/// [`KvCache`]'s capacity, of which the first `S` rows are filled).
#[derive(Clone, Copy, Debug)]
pub(crate) struct SdpaCall<'a> {
    pub shape: &'a SdpaShape,
    pub inputs: SdpaInputs<'a>,
    pub kv_stride: usize,
}

/// `scaled_dot_product_attention`; `scale: None` means `1/√E`.
#[derive(Clone, Copy, Debug, Default)]
pub struct ScaledDotProductAttention {
    /// The factor on `Q Kᵀ`.
    pub scale: Option<f32>,
}

impl SdpaShape {
    fn rows(&self) -> Result<(usize, usize), Error> {
        let m = |a, b| checked_mul("shape", a, b);
        Ok((m(m(self.batch, self.q_heads)?, self.q_len)?, m(m(self.batch, self.kv_heads)?, self.kv_len)?))
    }

    /// Values in the output and in the weights.
    fn result_lens(&self) -> Result<(usize, usize), Error> {
        let (q_rows, _) = self.rows()?;
        Ok((checked_mul("shape", q_rows, self.v_dim)?, checked_mul("shape", q_rows, self.kv_len)?))
    }
}

impl ScaledDotProductAttention {
    /// Scratch for [`forward`](Self::forward), the same for every storage
    /// type:
    /// - heads that stream (`L ≤ STREAM_MAX_QUERIES`, 4, no weights): one
    ///   chunk of scores and the head's query rows widened (`L·E`);
    /// - otherwise one head's `Kᵀ` and `V` packed into panels (about
    ///   `S·(E + Ev)` values, each rounded up to whole panels of 32 columns)
    ///   and one tile of query rows widened (`64·E`); without weights also
    ///   a `64 × 256` score tile and two rows of running statistics.
    pub fn workspace_len(&self, shape: &SdpaShape, with_weights: bool) -> Result<usize, Error> {
        let overflow = Error::Overflow { arg: "workspace" };
        let (s, e, ev) = (shape.kv_len, shape.qk_dim, shape.v_dim);
        if !with_weights && shape.q_len <= STREAM_MAX_QUERIES {
            return shape.q_len.checked_mul(e).and_then(|q| q.checked_add(CHUNK_KEYS)).ok_or(overflow);
        }
        let packed = packed_len(e, s).zip(packed_len(s, ev)).and_then(|(k, v)| k.checked_add(v));
        let query = TILE_QUERIES.checked_mul(e);
        let tile = if with_weights { 0 } else { flash::SCRATCH };
        packed.zip(query).and_then(|(p, q)| p.checked_add(q)?.checked_add(tile)).ok_or(overflow)
    }

    /// Writes `out` `(B, Hq, L, Ev)` and, if given, `weights` `(B, Hq, L, S)`.
    pub fn forward(
        &self,
        shape: &SdpaShape,
        inputs: SdpaInputs<'_>,
        out: &mut [f32],
        weights: Option<&mut [f32]>,
        workspace: &mut [f32],
    ) -> Result<(), Error> {
        self.run(&SdpaCall { shape, inputs, kv_stride: shape.kv_len }, out, weights, workspace)
    }

    /// [`forward`](Self::forward) of any call (a cache's K and V lie
    /// `kv_stride` rows apart).
    pub(crate) fn run(
        &self,
        call: &SdpaCall<'_>,
        out: &mut [f32],
        weights: Option<&mut [f32]>,
        workspace: &mut [f32],
    ) -> Result<(), Error> {
        self.check(call, out, weights.as_deref())?;
        if super::nothing_to_write(out, weights.as_deref()) {
            return Ok(());
        }
        let shape = call.shape;
        let workspace = take("workspace", workspace, self.workspace_len(shape, weights.is_some())?)?;
        let (l, s) = (shape.q_len, shape.kv_len);
        let mut weights = weights;
        for b in 0..shape.batch {
            for h in 0..shape.q_heads {
                let head = (b * shape.q_heads + h) * l;
                let o = &mut out[head * shape.v_dim..];
                let w = weights.as_deref_mut().map(|w| &mut w[head * s..]);
                self.head(call, (b, h), o, w, workspace)?;
            }
        }
        Ok(())
    }

    /// [`forward`](Self::forward) with buffers it allocates itself.
    #[cfg(feature = "alloc")]
    pub fn attend(
        &self,
        shape: &SdpaShape,
        inputs: SdpaInputs<'_>,
        want_weights: bool,
    ) -> Result<super::Attended, Error> {
        let (out, weights) = shape.result_lens()?;
        super::attended::attended(out, weights, want_weights, self.workspace_len(shape, want_weights)?, |out, w, ws| {
            self.forward(shape, inputs, out, w, ws)
        })
    }

    /// Checks every length, the storage types, the head grouping and the
    /// mask, before any work.
    pub(crate) fn check(&self, call: &SdpaCall<'_>, out: &[f32], weights: Option<&[f32]>) -> Result<(), Error> {
        let (shape, inputs) = (call.shape, &call.inputs);
        let (q_rows, _) = shape.rows()?;
        if call.kv_stride < shape.kv_len {
            return Err(Error::Dimension { arg: "kv_len", expected: call.kv_stride, actual: shape.kv_len });
        }
        let kv_rows = checked_mul("shape", checked_mul("shape", shape.batch, shape.kv_heads)?, call.kv_stride)?;
        let (out_len, weights_len) = shape.result_lens()?;
        if inputs.query.storage() == Storage::Q8 {
            return Err(Error::Storage { arg: "query", expected: "f32, bf16 or f16", actual: "q8" });
        }
        inputs.query.expect("query", "query.scales", q_rows, shape.qk_dim)?;
        inputs.key.expect("key", "key.scales", kv_rows, shape.qk_dim)?;
        inputs.value.expect("value", "value.scales", kv_rows, shape.v_dim)?;
        let (k, v) = (inputs.key.storage(), inputs.value.storage());
        if k != v {
            return Err(Error::Storage { arg: "value", expected: k.name(), actual: v.name() });
        }
        crate::error::expect_len("out", out_len, out.len())?;
        if let Some(w) = weights {
            crate::error::expect_len("weights", weights_len, w.len())?;
        }
        if shape.q_heads > 0 && (shape.kv_heads == 0 || !shape.q_heads.is_multiple_of(shape.kv_heads)) {
            return Err(Error::Dimension { arg: "kv_heads", expected: shape.q_heads, actual: shape.kv_heads });
        }
        check_mask(shape, &inputs.mask)
    }

    /// Query rows `queries` of one head on the flash path (`L >`
    /// [`STREAM_MAX_QUERIES`], no weights): `out` holds just those rows, and
    /// `queries.start` is a multiple of [`TILE_QUERIES`]. Same bits as
    /// [`forward`](Self::forward).
    #[cfg(feature = "std")]
    pub(crate) fn head_rows(
        &self,
        call: &SdpaCall<'_>,
        bh: (usize, usize),
        queries: core::ops::Range<usize>,
        out: &mut [f32],
        workspace: &mut [f32],
    ) -> Result<(), Error> {
        AnyHead::new(self, call, bh)?.flash_rows(queries, out, workspace);
        Ok(())
    }

    /// Computes head `h` of batch entry `b` into its output (and weights).
    /// Calls already checked by `forward` may run heads in any order or in
    /// parallel: each touches only its own slices.
    pub(crate) fn head(
        &self,
        call: &SdpaCall<'_>,
        bh: (usize, usize),
        out: &mut [f32],
        weights: Option<&mut [f32]>,
        workspace: &mut [f32],
    ) -> Result<(), Error> {
        let (shape, head) = (call.shape, AnyHead::new(self, call, bh)?);
        match weights {
            Some(w) => head.with_weights(w, out, workspace),
            None if shape.q_len <= STREAM_MAX_QUERIES => on_head!(head, h => h.stream(out, workspace)),
            None => head.flash_rows(0..shape.q_len, out, workspace),
        }
        Ok(())
    }

    /// Whether `forward` without weights streams rows in key chunks, and
    /// how many chunks row `i` has then.
    #[cfg(feature = "std")]
    pub(crate) fn row_chunks(shape: &SdpaShape, mask: &SdpaMask<'_>, i: usize) -> Option<usize> {
        (shape.q_len <= STREAM_MAX_QUERIES).then(|| mask::visible_keys(mask, shape, i).div_ceil(CHUNK_KEYS))
    }

    /// Scratch that [`row_chunk`](Self::row_chunk) needs.
    #[cfg(feature = "std")]
    pub(crate) fn row_chunk_scratch(shape: &SdpaShape) -> usize {
        CHUNK_KEYS + shape.qk_dim
    }

    /// Chunk `c` of row `i` of a streamed head: writes `o_c` (`Ev` values)
    /// to `partial` and returns the chunk's statistics (`None`: all masked).
    /// `scratch` holds [`row_chunk_scratch`](Self::row_chunk_scratch) values.
    #[cfg(feature = "std")]
    pub(crate) fn row_chunk(
        &self,
        call: &SdpaCall<'_>,
        bh: (usize, usize),
        (i, c): (usize, usize),
        scratch: &mut [f32],
        partial: &mut [f32],
    ) -> Result<Option<RowStats>, Error> {
        let head = AnyHead::new(self, call, bh)?;
        Ok(on_head!(head, h => h.row_chunk(i, c, scratch, partial)))
    }
}

/// What one (batch, query head) is apart from its keys and values: its
/// query rows, mask and scale. The tile loops after packing (flash and
/// with-weights) read only this and f32 panels, so they are compiled once
/// per backend, not once per storage type.
pub(crate) struct HeadQuery<'a> {
    /// The whole query tensor; this head's rows start at `q_start`.
    query: Stored<'a>,
    q_start: usize,
    mask: HeadMask<'a>,
    shape: &'a SdpaShape,
    scale: f32,
}

/// One (batch, query head) and its kv head, K and V as stored in `T`.
pub(crate) struct Head<'a, T> {
    q: HeadQuery<'a>,
    /// The kv head's `S` key and value rows.
    k: Rows<'a, T>,
    v: Rows<'a, T>,
}

impl<'a, T> core::ops::Deref for Head<'a, T> {
    type Target = HeadQuery<'a>;

    fn deref(&self) -> &HeadQuery<'a> {
        &self.q
    }
}

/// A [`Head`] of whichever storage type the call has.
pub(crate) enum AnyHead<'a> {
    F32(Head<'a, f32>),
    Bf16(Head<'a, bf16>),
    F16(Head<'a, f16>),
    Q8(Head<'a, i8>),
}

/// Runs `$body` with `$h` bound to the typed head inside `$any`: the one
/// place the storage type becomes a type parameter.
macro_rules! on_head {
    ($any:expr, $h:ident => $body:expr) => {
        match $any {
            AnyHead::F32($h) => $body,
            AnyHead::Bf16($h) => $body,
            AnyHead::F16($h) => $body,
            AnyHead::Q8($h) => $body,
        }
    };
}
use on_head;

impl<'a> AnyHead<'a> {
    /// The head's query rows, mask and scale.
    pub(crate) fn query(&self) -> &HeadQuery<'a> {
        on_head!(self, h => &h.q)
    }

    /// Whether the query and the keys are both bf16, so that `Q·Kᵀ` may be
    /// multiplied as stored (`kernels::bf16_pair_tile`).
    #[cfg(simd_attention_x86_backends)]
    pub(crate) fn bf16_queries_and_keys(&self) -> bool {
        matches!(self, AnyHead::Bf16(h) if matches!(h.query, Stored::Bf16(_)))
    }

    /// Packs the first `s` keys, transposed, and values into panels,
    /// widened to f32 ([`packed_len`] each): the one step of the flash and
    /// with-weights paths that reads the storage type.
    #[inline(always)]
    pub(crate) fn pack(&self, s: usize, keys_t: &mut [f32], values: &mut [f32]) {
        on_head!(self, h => {
            pack_transposed(&h.k, s, keys_t);
            pack_rows(&h.v, s, values);
        })
    }

    /// Head `(b, h)` of a call that [`check`](ScaledDotProductAttention::check)
    /// accepted (a K/V storage mismatch is refused again here).
    pub(crate) fn new(
        op: &ScaledDotProductAttention,
        call: &SdpaCall<'a>,
        bh: (usize, usize),
    ) -> Result<AnyHead<'a>, Error> {
        let (e, ev) = (call.shape.qk_dim, call.shape.v_dim);
        let (shape, inputs) = (call.shape, &call.inputs);
        // One typed head per storage type; K and V of one call share it.
        macro_rules! typed {
            ($variant:ident, $k:expr, $ks:expr, $v:expr, $vs:expr) => {
                AnyHead::$variant(Head::new(
                    op,
                    shape,
                    inputs,
                    (bh, call.kv_stride),
                    Rows::new($k, $ks, e),
                    Rows::new($v, $vs, ev),
                ))
            };
        }
        Ok(match (inputs.key, inputs.value) {
            (Stored::F32(k), Stored::F32(v)) => typed!(F32, k, &[], v, &[]),
            (Stored::Bf16(k), Stored::Bf16(v)) => typed!(Bf16, k, &[], v, &[]),
            (Stored::F16(k), Stored::F16(v)) => typed!(F16, k, &[], v, &[]),
            (Stored::Q8 { values: k, scales: ks }, Stored::Q8 { values: v, scales: vs }) => typed!(Q8, k, ks, v, vs),
            (k, v) => {
                return Err(Error::Storage { arg: "value", expected: k.storage().name(), actual: v.storage().name() });
            }
        })
    }
}

impl<'a, T: Element> Head<'a, T> {
    /// Head `(b, h)` of a checked call whose whole key and value tensors,
    /// typed, are `key` and `value`, kv heads `kv_stride` rows apart.
    pub(crate) fn new(
        op: &ScaledDotProductAttention,
        shape: &'a SdpaShape,
        inputs: &SdpaInputs<'a>,
        ((b, h), kv_stride): ((usize, usize), usize),
        key: Rows<'a, T>,
        value: Rows<'a, T>,
    ) -> Head<'a, T> {
        let (l, s, e) = (shape.q_len, shape.kv_len, shape.qk_dim);
        let group = shape.q_heads.checked_div(shape.kv_heads).unwrap_or(1);
        let kv = b * shape.kv_heads + h / group;
        Head {
            q: HeadQuery {
                query: inputs.query,
                q_start: (b * shape.q_heads + h) * l * e,
                mask: HeadMask::of(&inputs.mask, shape, b, h),
                shape,
                scale: op.scale.unwrap_or_else(|| 1.0 / libm::sqrtf(e as f32)),
            },
            k: key.sub(kv * kv_stride, s),
            v: value.sub(kv * kv_stride, s),
        }
    }
}

impl HeadQuery<'_> {
    /// Query rows `rows` of this head as f32: borrowed when the query is
    /// f32, else widened into `scratch`.
    fn query_rows<'s>(&'s self, rows: core::ops::Range<usize>, scratch: &'s mut [f32]) -> &'s [f32] {
        let e = self.shape.qk_dim;
        let (start, n) = (self.q_start + rows.start * e, rows.len() * e);
        match self.query {
            Stored::F32(q) => &q[start..start + n],
            query => {
                let dst = &mut scratch[..n];
                query.widen_into(start, dst);
                dst
            }
        }
    }

    /// Query rows `rows` of a bf16 query as bf16 pairs
    /// (`kernels::bf16_pair_tile`), made in `scratch`.
    #[cfg(simd_attention_x86_backends)]
    fn query_pairs<'s>(&self, rows: core::ops::Range<usize>, scratch: &'s mut [f32]) -> &'s [f32] {
        let e = self.shape.qk_dim;
        let n = rows.len();
        let dst = &mut scratch[..n * e];
        self.query.widen_into(self.q_start + rows.start * e, dst);
        crate::kernels::bf16_pair_tile::row_pairs_in_place(dst, n, e);
        &scratch[..n * e.div_ceil(2)]
    }

    /// Keys that query row `i` may see at all (a prefix).
    fn visible(&self, i: usize) -> usize {
        self.mask.visible(i, self.shape)
    }

    /// Masks scores of `rows × keys` held at row stride `stride`, in
    /// `units` of the natural scores ([`HeadMask::apply`]).
    fn mask_rows(
        &self,
        (rows, keys): (core::ops::Range<usize>, core::ops::Range<usize>),
        dst: &mut [f32],
        stride: usize,
        units: f32,
    ) {
        for (r, i) in rows.enumerate() {
            self.mask.apply(&mut dst[r * stride..r * stride + keys.len()], (i, keys.start), self.shape, units);
        }
    }
}
