//! Single kernels with a safe entry point each, so the criterion benches can
//! time a microkernel on its own, as XNNPACK benchmarks each of its kernels.
//! Hidden and outside the semver promise: applications call the operators.

use crate::error::{Error, checked_mul, expect_len};
use crate::kernels::additive_score::{
    ProjectedQuery, ScoreWeights, fold_query, fold_weights, row_magnitude, score_keys,
};
use crate::kernels::packed_panels::{pack_rows, pack_transposed, packed_len};
use crate::ops::sdpa::{Head, TileQueries, TileState};
use crate::ops::{ScaledDotProductAttention, SdpaInputs, SdpaMask, SdpaShape, TILE_KEYS, TILE_QUERIES};
use crate::simd::{self, F32Vector, WithSimd};
use crate::storage::Rows;
use alloc::vec;
use alloc::vec::Vec;

/// One FlashAttention step of the SDPA path: a full query tile
/// ([`TILE_QUERIES`] rows) against one full key tile ([`TILE_KEYS`] keys),
/// `Q·Kᵀ`, the online softmax and `P·V`, with `Kᵀ` and `V` packed once by
/// [`new`](Self::new) as the operator packs them once per head.
pub struct SdpaTile {
    shape: SdpaShape,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    packed: (Vec<f32>, Vec<f32>),
    scratch: Vec<f32>,
    q_tile: Vec<f32>,
    out: Vec<f32>,
}

impl SdpaTile {
    /// `q` is `TILE_QUERIES × e`, `k` is `TILE_KEYS × e`, `v` is `TILE_KEYS × ev`.
    pub fn new(q: &[f32], k: &[f32], v: &[f32], e: usize, ev: usize) -> Result<SdpaTile, Error> {
        expect_len("q", checked_mul("q", TILE_QUERIES, e)?, q.len())?;
        expect_len("k", checked_mul("k", TILE_KEYS, e)?, k.len())?;
        expect_len("v", checked_mul("v", TILE_KEYS, ev)?, v.len())?;
        let shape = SdpaShape {
            batch: 1,
            q_heads: 1,
            kv_heads: 1,
            q_len: TILE_QUERIES,
            kv_len: TILE_KEYS,
            qk_dim: e,
            v_dim: ev,
        };
        let packed_k = packed_len(e, TILE_KEYS).ok_or(Error::Overflow { arg: "k" })?;
        let packed_v = packed_len(TILE_KEYS, ev).ok_or(Error::Overflow { arg: "v" })?;
        let mut packed = (vec![0.0; packed_k], vec![0.0; packed_v]);
        pack_transposed(&Rows::new(k, &[], e), TILE_KEYS, &mut packed.0);
        pack_rows(&Rows::new(v, &[], ev), TILE_KEYS, &mut packed.1);
        Ok(SdpaTile {
            shape,
            q: q.to_vec(),
            k: k.to_vec(),
            v: v.to_vec(),
            packed,
            scratch: vec![0.0; TILE_QUERIES * TILE_KEYS + 2 * TILE_QUERIES],
            q_tile: vec![0.0; TILE_QUERIES * e],
            out: vec![0.0; TILE_QUERIES * ev],
        })
    }

    /// Runs the step from a fresh query tile and returns its unnormalised
    /// output rows (`TILE_QUERIES × ev`) and each row's `Σ e^{s − max}`:
    /// row `i` over its sum is SDPA's output row.
    pub fn run(&mut self) -> (&[f32], &[f32]) {
        let op = ScaledDotProductAttention::default();
        let inputs = SdpaInputs::f32(&self.q, &self.k, &self.v, SdpaMask::None);
        let (k, v) = (Rows::new(&self.k[..], &[], self.shape.qk_dim), Rows::new(&self.v[..], &[], self.shape.v_dim));
        let head = Head::new(&op, &self.shape, &inputs, ((0, 0), TILE_KEYS), k, v);
        let (tile, stats) = self.scratch.split_at_mut(TILE_QUERIES * TILE_KEYS);
        let (max, sum) = stats.split_at_mut(TILE_QUERIES);
        max.fill(f32::NEG_INFINITY);
        sum.fill(0.0);
        self.out.fill(0.0);
        let state = TileState { tile, max, sum };
        let packed = (&self.packed.0[..], &self.packed.1[..]);
        let q = head.f32_tile_queries(0..TILE_QUERIES, &mut self.q_tile);
        simd::dispatch(KeyTileStep { head: &head, q, state, packed, out: &mut self.out });
        (&self.out, &self.scratch[TILE_QUERIES * TILE_KEYS + TILE_QUERIES..])
    }
}

/// One full query tile against one full key tile, on one backend.
struct KeyTileStep<'h, 'a> {
    head: &'h Head<'a, f32>,
    q: TileQueries<'h>,
    state: TileState<'h>,
    packed: (&'h [f32], &'h [f32]),
    out: &'h mut [f32],
}

impl WithSimd for KeyTileStep<'_, '_> {
    type Output = ();

    #[inline(always)]
    fn run<V: F32Vector>(mut self) {
        let (rows, keys) = (0..TILE_QUERIES, 0..TILE_KEYS);
        self.head.key_tile::<V>((rows, self.q), keys, &mut self.state, self.packed, TILE_KEYS, self.out);
    }
}

/// The fused additive score of `queries` projected queries against `keys`
/// cached keys (taken as inside the folded form's range, the common case;
/// the weights' reciprocals and each query's fold are part of the call):
/// `out[i·keys + j] = Σ_h w_h·tanh(a_ih + b_jh)`, from `a`, `A = e^{2a}`
/// (`queries × H`), `b`, `B = e^{2b}` (`keys × H`) and `w` (`H`).
pub fn additive_score_tile(
    [a, exp_2a]: [&[f32]; 2],
    [b, exp_2b]: [&[f32]; 2],
    w: &[f32],
    out: &mut [f32],
) -> Result<(), Error> {
    let h = w.len();
    let queries = a.len().checked_div(h).unwrap_or(0);
    let keys = b.len().checked_div(h).unwrap_or(0);
    expect_len("a", checked_mul("a", queries, h)?, a.len())?;
    expect_len("exp_2a", a.len(), exp_2a.len())?;
    expect_len("b", checked_mul("b", keys, h)?, b.len())?;
    expect_len("exp_2b", b.len(), exp_2b.len())?;
    expect_len("out", checked_mul("out", queries, keys)?, out.len())?;
    let magnitude = vec![0.0; keys];
    simd::dispatch(ScoreTile { a, exp_2a, b, exp_2b, magnitude: &magnitude, w, keys, out });
    Ok(())
}

struct ScoreTile<'a> {
    a: &'a [f32],
    exp_2a: &'a [f32],
    b: &'a [f32],
    exp_2b: &'a [f32],
    magnitude: &'a [f32],
    w: &'a [f32],
    keys: usize,
    out: &'a mut [f32],
}

impl WithSimd for ScoreTile<'_> {
    type Output = ();

    #[inline(always)]
    fn run<V: F32Vector>(self) {
        let h = self.w.len();
        let mut reciprocal = vec![0.0; h];
        let limit = fold_weights(self.w, &mut reciprocal);
        let w = ScoreWeights { w: self.w, sum: self.w.iter().sum(), reciprocal: &reciprocal, limit };
        let mut folded = vec![0.0; h];
        for (i, row) in self.out.chunks_exact_mut(self.keys.max(1)).enumerate() {
            let a = &self.a[i * h..(i + 1) * h];
            folded.copy_from_slice(&self.exp_2a[i * h..(i + 1) * h]);
            fold_query::<V>(&mut folded, &reciprocal);
            // A vector pass, as the operator takes the magnitude alongside
            // its exponentials: a scalar scan here had taken about 10 % of
            // the bench's time (`perf record`, one Zen 4 core, 2026-12-05).
            let in_range = row_magnitude::<V>(a) <= limit;
            score_keys::<V>(
                ProjectedQuery { a, folded: &folded, in_range },
                self.b,
                self.exp_2b,
                self.magnitude,
                w,
                row,
            );
        }
    }
}
