//! Attention of one query row streamed over its keys: the decode path
//! (`L = 1`) of SDPA, which is bound by memory bandwidth, not FLOPs.
//!
//! A `1 × S` row gains nothing from a matmul: packing K and V for the
//! microkernel would read them twice. Here each key and value row is read
//! once, straight from the caller's tensors.
//!
//! Keys go in fixed chunks of [`CHUNK_KEYS`]. Each chunk gives a partial
//! result: its own maximum score `m_c`, `l_c = Σ e^{s − m_c}` and
//! `o_c = Σ e^{s − m_c} v`. Partials are folded left to right by
//! [`RowStats::merge`] and [`merge_values`]. The chunk boundaries depend only
//! on `S`, so a split-K parallel run, which computes chunks on different
//! threads and folds them in the same order, gives the same bits as a
//! serial one.

use crate::math::reduce;
use crate::simd::vector::{load_partial, store_partial};
use crate::simd::{F32Vector, WithSimd};

/// Keys per chunk: the unit of split-K work and of merging. On `attn bench`
/// `sdpa-decode`, 128 was slower (per-chunk overhead) and 2048 no faster.
pub(crate) const CHUNK_KEYS: usize = 512;

/// Output columns per block of a chunk's weighted sum: the stack buffer a
/// serial run folds through, so any `Ev` needs no heap.
pub(crate) const VALUE_BLOCK: usize = 256;

/// The running softmax statistics of one row.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct RowStats {
    /// Largest score so far (`-inf` before any key).
    pub max: f32,
    /// `Σ e^{s − max}`.
    pub sum: f32,
}

impl RowStats {
    /// No key seen yet.
    pub const EMPTY: RowStats = RowStats { max: f32::NEG_INFINITY, sum: 0.0 };

    /// Folds a chunk's statistics in and returns the factors `(a, b)` for
    /// `o ← a·o + b·o_c`.
    pub fn merge(&mut self, chunk: RowStats) -> (f32, f32) {
        let max = if chunk.max > self.max || chunk.max.is_nan() { chunk.max } else { self.max };
        let (a, b) = (libm::expf(self.max - max), libm::expf(chunk.max - max));
        // Before any key, `o` and `sum` are 0 and stay so: skip `0 · e^{-inf}`.
        let a = if self.max == f32::NEG_INFINITY { 0.0 } else { a };
        self.sum = self.sum * a + chunk.sum * b;
        self.max = max;
        (a, b)
    }

    /// `1 / sum`, or 0 for a row that saw no key (PyTorch gives zeros).
    pub fn norm(&self) -> f32 {
        if self.sum > 0.0 || self.sum.is_nan() { 1.0 / self.sum } else { 0.0 }
    }
}

/// `scores[j] = scale · q·k_j` for a chunk of keys, then the masked scores
/// replaced by `p = e^{s − m_c}`. Returns the chunk's statistics, or `None`
/// when every key of the chunk is masked.
pub(crate) struct ChunkWeights<'a, M: Fn(&mut [f32])> {
    /// The query row, `E` values.
    pub query: &'a [f32],
    /// The chunk's keys, `n × E` row-major.
    pub keys: &'a [f32],
    pub scale: f32,
    /// Applies the mask to the chunk's scores (`-inf` where masked).
    pub mask: M,
    /// `n` values.
    pub scores: &'a mut [f32],
}

impl<M: Fn(&mut [f32])> WithSimd for ChunkWeights<'_, M> {
    type Output = Option<RowStats>;

    #[inline(always)]
    fn run<V: F32Vector>(self) -> Option<RowStats> {
        dot_rows::<V>(self.query, self.keys, self.scale, self.scores);
        (self.mask)(self.scores);
        let max = reduce::max::<V>(self.scores);
        if max == f32::NEG_INFINITY {
            return None;
        }
        let sum = reduce::exp_shifted_sum::<V>(self.scores, max);
        Some(RowStats { max, sum })
    }
}

/// `dst = Σ_j p_j · v_j[cols]`, and with `merge = Some((out, a, b))` also
/// `out ← a·out + b·dst` (the serial path's fold).
pub(crate) struct ChunkValues<'a> {
    /// The chunk's weights, `n` values.
    pub weights: &'a [f32],
    /// The chunk's values, `n × v_dim` row-major.
    pub values: &'a [f32],
    pub v_dim: usize,
    /// First column of the block; `dst.len()` columns are computed.
    pub col: usize,
    pub dst: &'a mut [f32],
    pub merge: Option<(&'a mut [f32], f32, f32)>,
}

impl WithSimd for ChunkValues<'_> {
    type Output = ();

    #[inline(always)]
    fn run<V: F32Vector>(self) {
        weighted_rows::<V>(self.weights, self.values, self.v_dim, self.col, self.dst);
        if let Some((out, a, b)) = self.merge {
            merge_values::<V>(out, self.dst, a, b);
        }
    }
}

/// `out ← a·out + b·partial`, for the parallel path's fold.
pub(crate) struct MergeValues<'a> {
    pub out: &'a mut [f32],
    pub partial: &'a [f32],
    pub a: f32,
    pub b: f32,
}

impl WithSimd for MergeValues<'_> {
    type Output = ();

    #[inline(always)]
    fn run<V: F32Vector>(self) {
        merge_values::<V>(self.out, self.partial, self.a, self.b);
    }
}

/// Independent accumulators per dot product: enough to hide the latency
/// of the fused multiply-add.
const DOT_ACCUMULATORS: usize = 4;

/// `scores[j] = scale · query·keys[j]`. Each key row is read front to back
/// (the order the prefetchers follow best), and its score never depends on
/// its neighbours.
#[inline(always)]
fn dot_rows<V: F32Vector>(query: &[f32], keys: &[f32], scale: f32, scores: &mut [f32]) {
    let e = query.len();
    if e == 0 {
        // An empty product is 0, unscaled, as in `gemm` (with E = 0 the
        // default scale 1/√E is infinite).
        scores.fill(0.0);
        return;
    }
    for (j, score) in scores.iter_mut().enumerate() {
        *score = scale * dot::<V>(query, &keys[j * e..(j + 1) * e]);
    }
}

/// `a·b` over [`DOT_ACCUMULATORS`] vector accumulators, summed pairwise.
#[inline(always)]
fn dot<V: F32Vector>(a: &[f32], b: &[f32]) -> f32 {
    let e = a.len().min(b.len());
    let step = DOT_ACCUMULATORS * V::LANES;
    let mut acc = [V::splat(0.0); DOT_ACCUMULATORS];
    let mut p = 0;
    while p + step <= e {
        for (r, acc) in acc.iter_mut().enumerate() {
            // SAFETY: p + (r + 1)·LANES <= p + step <= e.
            unsafe {
                let at = p + r * V::LANES;
                *acc = V::load(a.as_ptr().add(at)).mul_add(V::load(b.as_ptr().add(at)), *acc);
            }
        }
        p += step;
    }
    // Fewer than `step` values remain: at most one (partial) vector each.
    for acc in &mut acc {
        if p >= e {
            break;
        }
        let n = (e - p).min(V::LANES);
        // SAFETY: n values remain from p in both slices.
        unsafe {
            *acc = load_partial::<V>(a.as_ptr().add(p), n, 0.0)
                .mul_add(load_partial::<V>(b.as_ptr().add(p), n, 0.0), *acc);
        }
        p += n;
    }
    let [a0, a1, a2, a3] = acc;
    a0.add(a1).add(a2.add(a3)).reduce_add()
}

/// `dst[c] = Σ_j weights[j] · values[j][col + c]`, summed in key order per
/// column (one fused multiply-add per key), so the blocking never changes a
/// bit. Keys go outermost so each value row is read once, front to back,
/// while `dst` stays in L1.
#[inline(always)]
fn weighted_rows<V: F32Vector>(weights: &[f32], values: &[f32], v_dim: usize, col: usize, dst: &mut [f32]) {
    let width = dst.len();
    dst.fill(0.0);
    for (j, &w) in weights.iter().enumerate() {
        let row = &values[j * v_dim + col..j * v_dim + col + width];
        axpy_rows::<V, VALUE_ROWS_PER_STEP>([V::splat(w)], [row], dst);
    }
}

/// Value rows folded per pass over `dst`.
const VALUE_ROWS_PER_STEP: usize = 1;

/// `dst += Σ_r w_r · rows_r`, applied row after row to each lane.
#[inline(always)]
fn axpy_rows<V: F32Vector, const R: usize>(w: [V; R], rows: [&[f32]; R], dst: &mut [f32]) {
    let width = dst.len();
    let full = width - width % V::LANES;
    let mut c = 0;
    while c < full {
        // SAFETY: c + LANES <= full <= width, the length of dst and of each row.
        unsafe {
            let mut d = V::load(dst.as_ptr().add(c));
            for (w, row) in w.iter().zip(&rows) {
                d = w.mul_add(V::load(row.as_ptr().add(c)), d);
            }
            d.store(dst.as_mut_ptr().add(c));
        }
        c += V::LANES;
    }
    if c < width {
        let n = width - c;
        // SAFETY: n < LANES values remain in dst and in each row.
        unsafe {
            let mut d = load_partial::<V>(dst.as_ptr().add(c), n, 0.0);
            for (w, row) in w.iter().zip(&rows) {
                d = w.mul_add(load_partial::<V>(row.as_ptr().add(c), n, 0.0), d);
            }
            store_partial(d, dst.as_mut_ptr().add(c), n);
        }
    }
}

/// `out[c] ← a·out[c] + b·partial[c]`.
#[inline(always)]
fn merge_values<V: F32Vector>(out: &mut [f32], partial: &[f32], a: f32, b: f32) {
    let (a, b) = (V::splat(a), V::splat(b));
    for (o, p) in out.chunks_mut(V::LANES).zip(partial.chunks(V::LANES)) {
        let n = o.len();
        // SAFETY: both chunks hold n <= LANES values.
        unsafe {
            let merged = load_partial::<V>(p.as_ptr(), n, 0.0).mul_add(b, load_partial::<V>(o.as_ptr(), n, 0.0).mul(a));
            store_partial(merged, o.as_mut_ptr(), n);
        }
    }
}
