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

#[cfg(simd_attention_x86_backends)]
use crate::kernels::q8_key_pass;
use crate::math::reduce;
use crate::simd::prefetch::hints_help;
use crate::simd::vector::{load_partial, store_partial};
use crate::simd::{F32Vector, WithSimd};
use crate::storage::{Element, Q8_BLOCK, Row, Rows};

/// Keys per chunk: the unit of split-K work and of merging, and the
/// scores a streamed row keeps in its workspace.
///
/// A chunk is read as `V::DECODE_STREAMS` runs, so its length sets how long
/// each run of rows is, and longer runs let the hardware prefetchers run
/// further ahead. On one Xeon core (avx512, 2026-12-03, `sdpa-decode*` at
/// S = 4096, `benches/alternate.sh -r 7` against 512 keys), 4096 keys ran
/// f32 1.05×, bf16 1.09×, f16 1.18× and q8 1.24× faster, and 2048 keys
/// 0.95×, 0.97×, 1.01× and 1.10× (a 9-round run had q8 1.08× at 1024 and
/// 1.20× at 2048). On Zen 3 (avx2, 2026-12-03, `-r 5`) 512 keys ran the
/// four at 1.02×, 0.96×, 0.92× and 0.92× the speed of 4096; earlier, there,
/// 128 was slower than 512 and 2048 no faster. With 512 keys q8 had read
/// faster in 4 runs than in 8 (1.05–1.11× in three runs); with 4096, 8
/// runs were 1.04× faster than 4 (9 rounds),
/// so every type takes the backend's runs. The price: split-K only splits
/// rows of more than 4096 keys, and a streamed row's workspace holds 4096
/// scores (16 KiB). On 32-bit targets (microcontrollers: no prefetcher,
/// little RAM) a chunk stays 512 keys.
pub(crate) const CHUNK_KEYS: usize = if cfg!(target_pointer_width = "64") { 4096 } else { 512 };

/// Output columns per block of a chunk's weighted sum: the stack buffer a
/// serial run folds through, so any `Ev` needs no heap. A multiple of
/// [`crate::storage::Q8_BLOCK`], so every block's vector loads start on a
/// multiple of the vector width and stay within one q8 block.
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
pub(crate) struct ChunkWeights<'a, T, M: Fn(&mut [f32])> {
    /// The query row, `E` values.
    pub query: &'a [f32],
    /// The chunk's `n` keys, as stored.
    pub keys: Rows<'a, T>,
    pub scale: f32,
    /// Applies the mask to the chunk's scores (`-inf` where masked).
    pub mask: M,
    /// `n` values.
    pub scores: &'a mut [f32],
}

impl<T: Element, M: Fn(&mut [f32])> WithSimd for ChunkWeights<'_, T, M> {
    type Output = Option<RowStats>;

    #[inline(always)]
    fn run<V: F32Vector>(self) -> Option<RowStats> {
        dot_rows::<V, T>(self.query, &self.keys, self.scale, self.scores);
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
pub(crate) struct ChunkValues<'a, T> {
    /// The chunk's weights, `n` values.
    pub weights: &'a [f32],
    /// The chunk's `n` value rows, as stored.
    pub values: Rows<'a, T>,
    /// First column of the block; `dst.len()` columns are computed.
    pub col: usize,
    pub dst: &'a mut [f32],
    pub merge: Option<(&'a mut [f32], f32, f32)>,
}

impl<T: Element> WithSimd for ChunkValues<'_, T> {
    type Output = ();

    #[inline(always)]
    fn run<V: F32Vector>(self) {
        weighted_rows::<V, T>(self.weights, &self.values, self.col, self.dst);
        if let Some((out, a, b)) = self.merge {
            merge_values::<V>(out, self.dst, a, b);
        }
    }
}

/// `out ← a·out + b·partial`, for the parallel path's fold.
#[cfg(feature = "std")]
pub(crate) struct MergeValues<'a> {
    pub out: &'a mut [f32],
    pub partial: &'a [f32],
    pub a: f32,
    pub b: f32,
}

#[cfg(feature = "std")]
impl WithSimd for MergeValues<'_> {
    type Output = ();

    #[inline(always)]
    fn run<V: F32Vector>(self) {
        merge_values::<V>(self.out, self.partial, self.a, self.b);
    }
}

/// Independent accumulators per dot product (a power of two, at least 2:
/// the dot loop reads vectors in pairs). With several
/// rows in lockstep, 2 per row already hide the fused multiply-add's
/// latency, and leave AVX-512 registers for 8 rows: on one Xeon core
/// 4 runs of 2 ran `sdpa-decode` within 1 % of 4 runs of 4 (and AVX2's
/// 4 runs of 2 within 3 %; `benches/alternate.sh -r 3`, 2026-12-01).
const DOT_ACCUMULATORS: usize = 2;

/// How far ahead of each run its rows are hinted into cache
/// ([`prefetch_read`](crate::simd::prefetch::prefetch_read)), in bytes: 4
/// rows of f32, 8 of bf16 or f16 at E = 128. On one Xeon core (avx512,
/// 2026-12-02), against no hints, three runs of `benches/alternate.sh`
/// (7, 7 and 11 rounds) gave `sdpa-decode` 1.01×, 1.05×, 1.11×,
/// `sdpa-decode-f16` 1.20×, 1.05×, 1.04× and `sdpa-decode-bf16` 1.07×,
/// 0.97× (noise of ±15 % per round on this VM); 4 KiB was no better. q8,
/// bound by its instructions rather than by memory, ran 5 % slower with
/// hints and takes none; on 2026-12-03 (`benches/alternate.sh -r 9`)
/// hints 1, 2 and 4 KiB ahead ran `sdpa-decode-q8` at 0.75×, 0.78× and
/// 0.77× the speed without. On Zen 3 (avx2, 2026-12-03, `-r 5`, against no
/// hints) f32, bf16 and f16 ran 0.91×, 1.04× and 1.10× (within that VM's
/// noise: one build run twice differed by 23 % that hour), and q8 with
/// hints 0.87× and 0.84× (9 rounds). On Zen 1 (2026-12-03, `-r 7`) hints
/// made f32, f16 and bf16 slower (no hints ran them 1.28×, 1.06× and
/// 1.07× faster), and on Zen 4 (avx512, 2026-12-04, `-r 5`) no hints ran
/// f32 1.90×, bf16 1.56× and f16 1.54× faster. So the kernel hints on
/// Intel cores only ([`hints_help`]), whatever the backend. Hinting only
/// the first two lines of each run's next 4 KiB page (where hardware
/// prefetchers stop) was slower on Zen 4 too (2026-12-05, `-r 5`): f32
/// 0.96×, bf16 0.85×, q8 0.91×.
const PREFETCH_AHEAD: usize = 2048;

/// Rows of `width` values of `T` that make [`PREFETCH_AHEAD`] bytes, or
/// `None` for q8, on cores the hints slow down ([`hints_help`]) and on
/// targets without the hint.
#[inline(always)]
fn rows_ahead<T: Element>(width: usize) -> Option<usize> {
    let row = width * core::mem::size_of::<T>();
    (!T::SCALED && row > 0 && hints_help()).then(|| PREFETCH_AHEAD.div_ceil(row))
}

/// `scores[j] = scale · query·keys[j]`.
///
/// The chunk's keys are cut into `V::DECODE_STREAMS` runs of consecutive
/// rows, and one row of each run is read per step: several streams keep
/// more cache lines in flight than one, which is what decoding, bound by
/// the read bandwidth, needs. Each score gets the same operations whether
/// its row is read with others or alone.
///
/// q8 keys of 64, 128, 192 or 256 values go to `kernels::q8_key_pass`
/// instead on the AVX-512 backend of an AMD core with AVX-512 VNNI, which
/// multiplies their bytes in int32 against the query in 21-bit fixed point
/// (its docs give the rounding and the figures).
#[inline(always)]
fn dot_rows<V: F32Vector, T: Element>(query: &[f32], keys: &Rows<'_, T>, scale: f32, scores: &mut [f32]) {
    let e = query.len();
    if e == 0 {
        // An empty product is 0, unscaled, as in `gemm` (with E = 0 the
        // default scale 1/√E is infinite).
        scores.fill(0.0);
        return;
    }
    #[cfg(simd_attention_x86_backends)]
    if V::I8_DOT
        && let Some(keys) = keys.q8_parts()
        && q8_key_pass::scores(query, keys, scale, scores)
    {
        return;
    }
    match V::DECODE_STREAMS {
        8.. => streamed_dots::<V, T, 8>(query, keys, scale, scores),
        4..8 => streamed_dots::<V, T, 4>(query, keys, scale, scores),
        2..4 => streamed_dots::<V, T, 2>(query, keys, scale, scores),
        _ => streamed_dots::<V, T, 1>(query, keys, scale, scores),
    }
}

/// `Σ acc`, added in pairs (`(a0 + a1) + (a2 + a3)` for four).
#[inline(always)]
fn pairwise_sum<V: F32Vector>(acc: &[V; DOT_ACCUMULATORS]) -> V {
    let mut acc = *acc;
    let mut n = DOT_ACCUMULATORS;
    while n > 1 {
        n /= 2;
        for k in 0..n {
            acc[k] = acc[2 * k].add(acc[2 * k + 1]);
        }
    }
    acc[0]
}

/// [`dot_rows`] with `R` runs read in lockstep; the rows past the last
/// whole step go one at a time.
#[inline(always)]
fn streamed_dots<V: F32Vector, T: Element, const R: usize>(
    query: &[f32],
    keys: &Rows<'_, T>,
    scale: f32,
    scores: &mut [f32],
) {
    let run = scores.len() / R;
    let ahead = rows_ahead::<T>(keys.width());
    for t in 0..run {
        if let Some(ahead) = ahead {
            for r in 0..R {
                keys.row(r * run + t).prefetch_ahead(ahead);
            }
        }
        let dots = dots::<V, T, R>(query, step_rows(keys, run, t));
        for (r, d) in dots.into_iter().enumerate() {
            scores[r * run + t] = scale * d;
        }
    }
    for (j, score) in scores.iter_mut().enumerate().skip(R * run) {
        *score = scale * dots::<V, T, 1>(query, [keys.row(j)])[0];
    }
}

/// Row `t` of each of the `R` runs of `run` rows: the rows one lockstep
/// step reads. A plain loop: `array::from_fn` here was left out of line,
/// without the backend's instructions, in a one-codegen-unit build.
#[inline(always)]
fn step_rows<'a, T: Element, const R: usize>(rows: &Rows<'a, T>, run: usize, t: usize) -> [Row<'a, T>; R] {
    let mut step = [rows.row(t); R];
    for (r, row) in step.iter_mut().enumerate().skip(1) {
        *row = rows.row(r * run + t);
    }
    step
}

/// `a·b_r` for `R` rows at once, each over [`DOT_ACCUMULATORS`] vector
/// accumulators summed pairwise: a row gets the same operations whatever `R` is.
#[inline(always)]
fn dots<V: F32Vector, T: Element, const R: usize>(a: &[f32], b: [Row<'_, T>; R]) -> [f32; R] {
    let e = b.iter().fold(a.len(), |e, row| e.min(row.len()));
    let step = DOT_ACCUMULATORS * V::LANES;
    let mut acc = [[V::splat(0.0); DOT_ACCUMULATORS]; R];
    let mut p = 0;
    while p + step <= e {
        // Two vectors at a time: a q8 row looks its block scale up once.
        for k in (0..DOT_ACCUMULATORS).step_by(2) {
            let at = p + k * V::LANES;
            // SAFETY: at + 2·LANES <= p + step <= e, within a and every row.
            let (a0, a1) = unsafe { (V::load(a.as_ptr().add(at)), V::load(a.as_ptr().add(at + V::LANES))) };
            for (acc, row) in acc.iter_mut().zip(&b) {
                if T::SCALED {
                    // q8: the pair lies in one block, so its scale multiplies
                    // the pair's partial sum once: three operations for the
                    // two vectors where widening each would take four. With
                    // the same for V (`axpy_rows`): 1.15× on sdpa-decode-q8,
                    // one Xeon core, `benches/alternate.sh -r 7`, 2026-12-02.
                    // SAFETY: as above.
                    let (x0, x1) = unsafe { row.load_pair_unscaled::<V>(at) };
                    let partial = a1.mul_add(x1, a0.mul(x0));
                    acc[k] = V::splat(row.scale(at)).mul_add(partial, acc[k]);
                } else {
                    // SAFETY: as above.
                    let (x0, x1) = unsafe { row.load_pair::<V>(at) };
                    acc[k] = a0.mul_add(x0, acc[k]);
                    acc[k + 1] = a1.mul_add(x1, acc[k + 1]);
                }
            }
        }
        p += step;
    }
    // Fewer than `step` values remain: at most one (partial) vector each.
    for k in 0..DOT_ACCUMULATORS {
        if p >= e {
            break;
        }
        let n = (e - p).min(V::LANES);
        // SAFETY: n values remain from p in a and in every row.
        let a_k = unsafe { load_partial::<V>(a.as_ptr().add(p), n, 0.0) };
        for (acc, row) in acc.iter_mut().zip(&b) {
            acc[k] = a_k.mul_add(row.load_partial::<V>(p, n), acc[k]);
        }
        p += n;
    }
    // A plain loop: `array::map` with a closure leaves the intrinsics out of
    // line, outside the backend's target features.
    let mut sums = [0.0f32; R];
    for (sum, acc) in sums.iter_mut().zip(&acc) {
        *sum = pairwise_sum(acc).reduce_add();
    }
    sums
}

/// `dst[c] = Σ_j weights[j] · values[j][col + c]`, the chunk's value rows
/// read as `V::DECODE_STREAMS` runs in lockstep, as [`dot_rows`] reads the
/// keys. Each column is summed in a fixed order (one fused multiply-add per
/// key) that depends only on the chunk's length, so the column blocking
/// never changes a bit. `dst` stays in L1 while the rows stream past.
///
/// Summing the columns in registers instead (passes of 8 vectors over the
/// chunk's rows, no load and store of `dst` a step) read each step's rows
/// one whole row after another rather than vector by vector across the
/// runs: on one Zen 4 core (2026-12-05, `benches/alternate.sh -r 5`)
/// `sdpa-decode` ran 0.79×, bf16 0.97×, f16 0.92× and q8 1.01× (and
/// `decode_in_cache/q8` 1.04×), so `dst` stays in memory.
///
/// Nor did q8 gain from integer sums (2026-12-05, one Zen 4 core): AVX-512
/// VNNI's `vpdpbusd` over each step's 4 rows, their bytes transposed so a
/// lane held one column's 4 values, with the coefficients `w·s` in 24-bit
/// fixed point as three byte limbs (exact int32 sums; 4.7e-8 from the f64
/// reference at S = 4096, E = 128, where this pass is at 2.5e-7).
/// `decode_in_cache/q8` ran 12.96 µs against 12.73, and `sdpa-decode-q8`
/// in memory 0.77× (`benches/alternate.sh -r 5`); reading both 64-column
/// halves of a row each step, 15.4 µs and 0.72×. The unpacks that
/// transpose the rows and the `vpdpbusd` themselves cost about what the
/// sign extensions, conversions and FMAs do here.
#[inline(always)]
fn weighted_rows<V: F32Vector, T: Element>(weights: &[f32], values: &Rows<'_, T>, col: usize, dst: &mut [f32]) {
    assert!(col + dst.len() <= values.width(), "weighted_rows: columns past the rows");
    dst.fill(0.0);
    // Blocks of at most VALUE_BLOCK columns, the width `axpy_rows` takes
    // (the parallel path asks for a whole row at once).
    for (b, dst) in dst.chunks_mut(VALUE_BLOCK).enumerate() {
        let col = col + b * VALUE_BLOCK;
        match V::DECODE_STREAMS {
            8.. => streamed_axpys::<V, T, 8>(weights, values, col, dst),
            4..8 => streamed_axpys::<V, T, 4>(weights, values, col, dst),
            2..4 => streamed_axpys::<V, T, 2>(weights, values, col, dst),
            _ => streamed_axpys::<V, T, 1>(weights, values, col, dst),
        }
    }
}

/// [`weighted_rows`] with `R` runs in lockstep; the rows past the last
/// whole step go one at a time.
#[inline(always)]
fn streamed_axpys<V: F32Vector, T: Element, const R: usize>(
    weights: &[f32],
    values: &Rows<'_, T>,
    col: usize,
    dst: &mut [f32],
) {
    let run = weights.len() / R;
    let ahead = rows_ahead::<T>(values.width());
    for t in 0..run {
        let rows = step_rows::<T, R>(values, run, t);
        let mut w = [0.0; R];
        for (r, w) in w.iter_mut().enumerate() {
            *w = weights[r * run + t];
        }
        if let Some(ahead) = ahead {
            for row in &rows {
                row.prefetch_ahead(ahead);
            }
        }
        axpy_rows::<V, T, R>(w, rows, col, dst);
    }
    for (j, &w) in weights.iter().enumerate().skip(R * run) {
        axpy_rows::<V, T, 1>([w], [values.row(j)], col, dst);
    }
}

/// `dst += Σ_r w_r · rows_r[col..col + dst.len()]`, applied row after row
/// to each lane. A q8 row's weight is multiplied by its block's scale once
/// per block, and its values load unscaled: `(w·s)·q`, where widening
/// each vector (`w·(q·s)`) took one more multiply per vector. The two
/// round differently, both well inside the golden tolerance; the float
/// types' scale is 1, so their weights stay exact.
#[inline(always)]
fn axpy_rows<V: F32Vector, T: Element, const R: usize>(
    w: [f32; R],
    rows: [Row<'_, T>; R],
    col: usize,
    dst: &mut [f32],
) {
    let width = dst.len();
    let full = width - width % V::LANES;
    // Columns that share one scale per row: a q8 block (`col` starts one),
    // or the whole width for the float types.
    let block = if T::SCALED { Q8_BLOCK } else { width.max(1) };
    let mut c = 0;
    while c < full {
        let weights = block_weights::<V, T, R>(&w, &rows, col + c);
        let end = (c + block).min(full);
        while c < end {
            // SAFETY: c + LANES <= full <= width, the length of dst, and
            // weighted_rows checked col + width <= each row's length.
            unsafe {
                let mut d = V::load(dst.as_ptr().add(c));
                for (w, row) in weights.iter().zip(&rows) {
                    d = w.mul_add(row.load_unscaled::<V>(col + c), d);
                }
                d.store(dst.as_mut_ptr().add(c));
            }
            c += V::LANES;
        }
    }
    if c < width {
        let n = width - c;
        let weights = block_weights::<V, T, R>(&w, &rows, col + c);
        // SAFETY: n < LANES values remain in dst.
        unsafe {
            let mut d = load_partial::<V>(dst.as_ptr().add(c), n, 0.0);
            for (w, row) in weights.iter().zip(&rows) {
                d = w.mul_add(row.load_partial_unscaled::<V>(col + c, n), d);
            }
            store_partial(d, dst.as_mut_ptr().add(c), n);
        }
    }
}

/// Each row's weight times its scale at column `c`, as vectors (a plain
/// loop: a closure and `array::from_fn` were left out of line, without the
/// backend's instructions, in a one-codegen-unit build, where
/// `decode_in_cache/q8` ran 1.5× slower).
#[inline(always)]
fn block_weights<V: F32Vector, T: Element, const R: usize>(w: &[f32; R], rows: &[Row<'_, T>; R], c: usize) -> [V; R] {
    let mut weights = [V::splat(0.0); R];
    for ((weight, &w), row) in weights.iter_mut().zip(w).zip(rows) {
        *weight = V::splat(w * row.scale(c));
    }
    weights
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
