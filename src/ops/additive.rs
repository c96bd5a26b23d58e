//! Bahdanau's additive attention, as d2l's `AdditiveAttention`:
//!
//! `score(q, k) = w_v · tanh(W_q q + W_k k)`, weights = masked softmax of
//! the scores over keys, output = weights · values.
//!
//! Queries and keys are projected once each with a GEMM; the score kernel
//! ([`crate::kernels`]' `additive_score`) then works on the projections
//! without forming the `(B, Q, K, H)` features. Keys past a row's valid
//! length are never scored. A [`KeyCache`] holds everything that depends on
//! the keys alone, so a decoder that attends to the same keys at every step
//! pays for their projection once; [`AdditiveAttention::forward`] builds one
//! in its workspace, so cached and uncached calls give identical bits.

use super::{Attention, AttentionInputs, AttentionShape, ValidLens};
use crate::error::{Error, checked_mul, expect_len, take};
use crate::gemm::{MatMut, MatRef, RowRuns, gemm_own, gemm_own_rows};
use crate::kernels::additive_score::{
    ProjectedQuery, ScoreWeights, exp_of_double_row, fold_query, fold_weights, score_keys,
};
use crate::kernels::packed_panels::{PanelProduct, pack_transposed, packed_len};
use crate::kernels::softmax::softmax_row;
use crate::simd::{self, F32Vector, WithSimd};
use crate::storage::Rows;

/// A run of key rows of a [`KeyCache`] under construction: `n` rows of
/// keys in, their `n × H` projections, exponentials and `n` magnitudes out.
pub(crate) struct CacheRows<'k> {
    pub keys: &'k [f32],
    pub b: &'k mut [f32],
    pub exp_2b: &'k mut [f32],
    pub magnitude: &'k mut [f32],
    /// `None`: every row is filled. `Some`: the rows are whole batch
    /// entries, and only the keys their query rows score are filled.
    pub scored: Option<ScoredKeys<'k>>,
    /// `W_kᵀ` packed into panels, when the cache had room for them
    /// ([`AdditiveAttention::key_cache_with`]).
    pub w_k_panels: Option<&'k [f32]>,
}

/// The keys a call with known valid lengths scores, in each batch entry of
/// `keys` rows: its leading [`ValidLens::scored`]. A cache built for that
/// call alone (inside [`AdditiveAttention::forward`]) leaves the others
/// unfilled, since no row reads them; d2l's masked softmax gives them
/// weight exactly 0 whatever their projection. `add-batch` (a padded
/// batch: 32 entries of 64 keys, 48.5 valid on average) skips 24 % of its
/// key projection.
#[derive(Clone, Copy)]
pub(crate) struct ScoredKeys<'l> {
    pub keys: usize,
    pub queries: usize,
    pub lens: ValidLens<'l>,
}

/// The rows of a [`CacheRows`] to fill, as runs for the projection.
#[derive(Clone, Copy)]
struct FilledRows<'l> {
    rows: usize,
    scored: Option<ScoredKeys<'l>>,
}

impl RowRuns for FilledRows<'_> {
    fn count(&self) -> usize {
        match self.scored {
            None => 1,
            Some(s) => self.rows.checked_div(s.keys).unwrap_or(0),
        }
    }
    fn run(&self, r: usize) -> core::ops::Range<usize> {
        match self.scored {
            None => 0..self.rows,
            Some(s) => r * s.keys..r * s.keys + s.lens.scored(r, s.queries, s.keys),
        }
    }
}

/// The parameters of d2l's `AdditiveAttention`, borrowed: `W_q.weight`
/// `(H, query_dim)`, `W_k.weight` `(H, key_dim)`, `w_v.weight` `(1, H)`, no
/// biases (as in d2l).
#[derive(Clone, Copy, Debug)]
pub struct AdditiveAttention<'p> {
    w_q: &'p [f32],
    w_k: &'p [f32],
    w_v: &'p [f32],
    w_v_sum: f32,
    hidden: usize,
    query_dim: usize,
    key_dim: usize,
}

/// Everything prepared once per source sequence: the keys' projections
/// `b = W_k k`, `e^{2b}`, each key's `max_h |b_h|`, the values, and `W_qᵀ`
/// packed into panels so that each decoding step's query projection is the
/// microkernel alone.
///
/// The cache borrows the `W_q` it packed, so that it cannot change under
/// the panels while the cache lives:
///
/// ```compile_fail
/// use simd_attention::ops::{AdditiveAttention, AttentionShape, KeyCache};
/// let (mut w_q, w_k, w_v) = (vec![0.1f32; 4], vec![0.2f32; 4], vec![0.3f32; 2]);
/// let attn = AdditiveAttention::new(&w_q, &w_k, &w_v, 2, 2, 2).unwrap();
/// let shape = AttentionShape { batch: 1, queries: 1, keys: 1, query_dim: 2, key_dim: 2, value_dim: 1 };
/// let (keys, values) = (vec![0.5f32; 2], vec![1.0f32; 1]);
/// let mut buffer = vec![0.0; KeyCache::buffer_len(1, 1, 2, 2).unwrap()];
/// let cache = attn.key_cache(&shape, &keys, &values, &mut buffer).unwrap();
/// drop(attn);
/// w_q[0] = 9.0; // refused: `cache` still borrows `w_q`
/// drop(cache);
/// ```
#[derive(Debug)]
pub struct KeyCache<'a> {
    batch: usize,
    keys: usize,
    hidden: usize,
    key_dim: usize,
    value_dim: usize,
    b: &'a [f32],
    exp_2b: &'a [f32],
    magnitude: &'a [f32],
    values: &'a [f32],
    /// `W_qᵀ` `(query_dim, H)` in panels, and the `W_q` it was packed from,
    /// borrowed, so that it cannot change while the cache lives. An
    /// attention with another `W_q` (another slice, or the same memory
    /// under another `query_dim`) has its queries projected afresh.
    w_q_panels: &'a [f32],
    w_q: &'a [f32],
}

impl<'p> AdditiveAttention<'p> {
    /// Wraps the three weight matrices, checking their lengths.
    pub fn new(
        w_q: &'p [f32],
        w_k: &'p [f32],
        w_v: &'p [f32],
        hidden: usize,
        query_dim: usize,
        key_dim: usize,
    ) -> Result<Self, Error> {
        expect_len("W_q", checked_mul("W_q", hidden, query_dim)?, w_q.len())?;
        expect_len("W_k", checked_mul("W_k", hidden, key_dim)?, w_k.len())?;
        expect_len("w_v", hidden, w_v.len())?;
        let w_v_sum = w_v.iter().sum();
        Ok(AdditiveAttention { w_q, w_k, w_v, w_v_sum, hidden, query_dim, key_dim })
    }

    /// `H`, the width of the projections.
    pub fn hidden(&self) -> usize {
        self.hidden
    }

    /// The width of the queries.
    pub fn query_dim(&self) -> usize {
        self.query_dim
    }

    /// Scratch needed by [`forward_cached`](Self::forward_cached).
    pub fn cached_workspace_len(&self, shape: &AttentionShape, with_weights: bool) -> Result<usize, Error> {
        let sizes = shape.sizes()?;
        let projections = checked_mul("workspace", 2, checked_mul("workspace", sizes.query_rows, self.hidden)?)?;
        let scores = if with_weights { 0 } else { sizes.weights };
        // The projections, the weights' reciprocals, the scores.
        projections
            .checked_add(self.hidden)
            .and_then(|n| n.checked_add(scores))
            .ok_or(Error::Overflow { arg: "workspace" })
    }

    /// Projects `keys` `(B, K, key_dim)` and keeps `values` `(B, K,
    /// value_dim)` in a cache laid out in `buffer` (at least
    /// [`KeyCache::buffer_len`] values).
    pub fn key_cache<'a>(
        &self,
        shape: &AttentionShape,
        keys: &[f32],
        values: &'a [f32],
        buffer: &'a mut [f32],
    ) -> Result<KeyCache<'a>, Error>
    where
        'p: 'a,
    {
        self.key_cache_with(shape, keys, values, buffer, None, |rows| self.fill_cache_rows(rows))
    }

    /// [`key_cache`](Self::key_cache) with the rows filled by `fill`, which
    /// may split them (the parallel layer does): each row's cache entries
    /// depend on that row alone. With `scored_by` (already checked against
    /// the shape), only the keys those lengths score are filled, for a
    /// cache that serves one call.
    ///
    /// While the rows are filled, the room for `W_qᵀ`'s panels holds
    /// `W_kᵀ`'s when they fit (`key_dim ≤ query_dim`, as in d2l's models
    /// and the `add-*` workloads): the key projection is then one product
    /// over the whole depth, where the blocked GEMM's 64-deep blocks wrote
    /// C once per block. On one Zen 4 core (2026-12-05,
    /// `benches/alternate.sh -r 5` and `-r 7`) `add-batch` ran 1.033× and
    /// 1.037× faster, the other `add-*` and `seq2seq-*` within noise. Whether
    /// they fit depends on the dimensions alone, so every cache of a model
    /// (cached calls, uncached ones, parallel ones) gets the same bits.
    pub(crate) fn key_cache_with<'a>(
        &self,
        shape: &AttentionShape,
        keys: &[f32],
        values: &'a [f32],
        buffer: &'a mut [f32],
        scored_by: Option<ValidLens<'_>>,
        fill: impl FnOnce(CacheRows<'_>) -> Result<(), Error>,
    ) -> Result<KeyCache<'a>, Error>
    where
        'p: 'a,
    {
        self.check_dims(shape)?;
        let sizes = shape.sizes()?;
        expect_len("keys", sizes.keys, keys.len())?;
        expect_len("values", sizes.values, values.len())?;
        let needed = KeyCache::buffer_len(shape.batch, shape.keys, self.hidden, self.query_dim)?;
        let buffer = take("workspace", buffer, needed)?;
        let projected = sizes.key_rows * self.hidden;
        let (b, rest) = buffer.split_at_mut(projected);
        let (exp_2b, rest) = rest.split_at_mut(projected);
        let (magnitude, w_q_panels) = rest.split_at_mut(sizes.key_rows);
        let scored = scored_by.map(|lens| ScoredKeys { keys: shape.keys, queries: shape.queries, lens });
        let w_k_len = packed_len(self.key_dim, self.hidden).ok_or(Error::Overflow { arg: "W_k" })?;
        let w_k_panels = if w_k_len <= w_q_panels.len() {
            pack_transposed(&Rows::new(self.w_k, &[], self.key_dim), self.hidden, &mut w_q_panels[..w_k_len]);
            Some(&w_q_panels[..w_k_len])
        } else {
            None
        };
        fill(CacheRows { keys, b: &mut *b, exp_2b: &mut *exp_2b, magnitude: &mut *magnitude, scored, w_k_panels })?;
        // W_q is `hidden × query_dim`; the product wants `W_qᵀ` panels.
        pack_transposed(&Rows::new(self.w_q, &[], self.query_dim), self.hidden, w_q_panels);
        Ok(KeyCache {
            batch: shape.batch,
            keys: shape.keys,
            hidden: self.hidden,
            key_dim: self.key_dim,
            value_dim: shape.value_dim,
            b,
            exp_2b,
            magnitude,
            values,
            w_q_panels,
            w_q: self.w_q,
        })
    }

    /// Fills the cache entries of a run of key rows: `W_k k`, `e^{2 W_k k}`
    /// and the largest `|W_k k|` of each row (of each scored row, with
    /// [`CacheRows::scored`]).
    pub(crate) fn fill_cache_rows(&self, rows: CacheRows<'_>) -> Result<(), Error> {
        let runs = FilledRows { rows: rows.magnitude.len(), scored: rows.scored };
        let (x, n, h) = (rows.keys, runs.rows, self.hidden);
        if let Some(panels) = rows.w_k_panels {
            expect_len("keys", checked_mul("keys", n, self.key_dim)?, x.len())?;
            simd::dispatch(ProjectRuns { x, panels, key_dim: self.key_dim, hidden: h, runs, out: &mut *rows.b });
        } else {
            let (a, w) = (MatRef::new(x, n, self.key_dim), MatRef::new(self.w_k, h, self.key_dim).t());
            gemm_own_rows(1.0, a, w, 0.0, MatMut::new(rows.b, n, h), runs)?;
        }
        simd::dispatch(KeyExpProducts { b: rows.b, exp_2b: rows.exp_2b, magnitude: rows.magnitude, hidden: h, runs });
        Ok(())
    }

    /// `W_k`'s shape, `(H, key_dim)`.
    #[cfg(feature = "std")]
    pub(crate) fn key_projection_dims(&self) -> (usize, usize) {
        (self.hidden, self.key_dim)
    }

    /// Additive attention of `queries` `(B, Q, query_dim)` over the keys and
    /// values of `cache`. Gives the same bits as [`forward`](Self::forward).
    #[allow(clippy::too_many_arguments)]
    pub fn forward_cached(
        &self,
        cache: &KeyCache<'_>,
        num_queries: usize,
        queries: &[f32],
        valid_lens: ValidLens<'_>,
        out: &mut [f32],
        weights: Option<&mut [f32]>,
        workspace: &mut [f32],
    ) -> Result<(), Error> {
        if cache.hidden != self.hidden || cache.key_dim != self.key_dim {
            return Err(Error::Dimension { arg: "cache.hidden", expected: self.hidden, actual: cache.hidden });
        }
        let shape = cache.shape(num_queries, self.query_dim);
        self.check_call(&shape, queries, valid_lens, out, weights.as_deref())?;
        if super::nothing_to_write(out, weights.as_deref()) {
            return Ok(());
        }
        let needed = self.cached_workspace_len(&shape, weights.is_some())?;
        let workspace = take("workspace", workspace, needed)?;
        let sizes = shape.sizes()?;
        let projected = sizes.query_rows * self.hidden;
        let (a, rest) = workspace.split_at_mut(projected);
        let (folded, rest) = rest.split_at_mut(projected);
        let (reciprocal, rest) = rest.split_at_mut(self.hidden);
        let limit = fold_weights(self.w_v, reciprocal);
        let weights: &mut [f32] = match weights {
            Some(w) => w,
            None => &mut rest[..sizes.weights],
        };
        if core::ptr::eq(cache.w_q, self.w_q) {
            let (rows, dim) = (sizes.query_rows, self.query_dim);
            simd::dispatch(projection((queries, rows, dim), cache.w_q_panels, (&mut *a, self.hidden)));
        } else {
            project(queries, sizes.query_rows, self.query_dim, self.w_q, self.hidden, a)?;
        }
        simd::dispatch(AdditiveRows {
            a,
            folded,
            cache,
            w: ScoreWeights { w: self.w_v, sum: self.w_v_sum, reciprocal, limit },
            queries: num_queries,
            valid_lens,
            weights: &mut *weights,
        });
        weighted_sum(&shape, valid_lens, weights, cache.values, out)
    }

    fn check_dims(&self, shape: &AttentionShape) -> Result<(), Error> {
        if shape.query_dim != self.query_dim {
            return Err(Error::Dimension { arg: "shape.query_dim", expected: self.query_dim, actual: shape.query_dim });
        }
        if shape.key_dim != self.key_dim {
            return Err(Error::Dimension { arg: "shape.key_dim", expected: self.key_dim, actual: shape.key_dim });
        }
        Ok(())
    }

    pub(crate) fn check_call(
        &self,
        shape: &AttentionShape,
        queries: &[f32],
        valid_lens: ValidLens<'_>,
        out: &[f32],
        weights: Option<&[f32]>,
    ) -> Result<(), Error> {
        self.check_dims(shape)?;
        let sizes = shape.sizes()?;
        expect_len("queries", sizes.queries, queries.len())?;
        valid_lens.check(shape.batch, sizes.query_rows)?;
        shape.check_outputs(&sizes, out, weights)
    }
}

impl Attention for AdditiveAttention<'_> {
    /// Scratch needed by [`forward`](Self::forward) for `shape`: a key
    /// cache, the projected queries, and the scores unless the caller takes
    /// the weights.
    fn workspace_len(&self, shape: &AttentionShape, with_weights: bool) -> Result<usize, Error> {
        let cache = KeyCache::buffer_len(shape.batch, shape.keys, self.hidden, self.query_dim)?;
        let rest = self.cached_workspace_len(shape, with_weights)?;
        cache.checked_add(rest).ok_or(Error::Overflow { arg: "workspace" })
    }

    /// Additive attention over `queries` `(B, Q, query_dim)`, `keys` and
    /// `values`, writing `out` `(B, Q, value_dim)` and, if given, the
    /// attention weights `(B, Q, K)`.
    fn forward(
        &self,
        shape: &AttentionShape,
        inputs: AttentionInputs<'_>,
        out: &mut [f32],
        weights: Option<&mut [f32]>,
        workspace: &mut [f32],
    ) -> Result<(), Error> {
        let AttentionInputs { queries, keys, values, valid_lens } = inputs;
        self.check_call(shape, queries, valid_lens, out, weights.as_deref())?;
        if super::nothing_to_write(out, weights.as_deref()) {
            return Ok(());
        }
        let needed = self.workspace_len(shape, weights.is_some())?;
        let workspace = take("workspace", workspace, needed)?;
        let cache_len = KeyCache::buffer_len(shape.batch, shape.keys, self.hidden, self.query_dim)?;
        let (cache_buffer, rest) = workspace.split_at_mut(cache_len);
        let cache = self
            .key_cache_with(shape, keys, values, cache_buffer, Some(valid_lens), |rows| self.fill_cache_rows(rows))?;
        self.forward_cached(&cache, shape.queries, queries, valid_lens, out, weights, rest)
    }
}

impl KeyCache<'_> {
    /// The cache of batch entries `batches` alone (for splitting work).
    pub fn batches(&self, batches: core::ops::Range<usize>) -> Result<KeyCache<'_>, Error> {
        if batches.start > batches.end || batches.end > self.batch {
            return Err(Error::Dimension { arg: "batches.end", expected: self.batch, actual: batches.end });
        }
        let (k, h) = (self.keys, self.hidden);
        let keys = batches.start * k..batches.end * k;
        Ok(KeyCache {
            batch: batches.len(),
            b: &self.b[keys.start * h..keys.end * h],
            exp_2b: &self.exp_2b[keys.start * h..keys.end * h],
            magnitude: &self.magnitude[keys.clone()],
            values: &self.values[keys.start * self.value_dim..keys.end * self.value_dim],
            ..*self
        })
    }

    /// Values a cache of `batch × keys` keys needs, for an attention of
    /// `hidden` features over queries of `query_dim`.
    pub fn buffer_len(batch: usize, keys: usize, hidden: usize, query_dim: usize) -> Result<usize, Error> {
        let rows = checked_mul("workspace", batch, keys)?;
        let projected = checked_mul("workspace", rows, hidden)?;
        let w_q = packed_len(query_dim, hidden).ok_or(Error::Overflow { arg: "workspace" })?;
        [rows, w_q]
            .into_iter()
            .try_fold(checked_mul("workspace", projected, 2)?, usize::checked_add)
            .ok_or(Error::Overflow { arg: "workspace" })
    }

    pub(crate) fn shape(&self, queries: usize, query_dim: usize) -> AttentionShape {
        AttentionShape {
            batch: self.batch,
            queries,
            keys: self.keys,
            query_dim,
            key_dim: self.key_dim,
            value_dim: self.value_dim,
        }
    }
}

/// `out (rows × hidden) = x (rows × in_dim) · Wᵀ`, `W` being `(hidden, in_dim)`:
/// the queries of an attention whose `W_q` is not the cache's.
///
/// On our blocked GEMM (`gemm_own`) in every build, not `matrixmultiply`:
/// it packs `Wᵀ` a panel at a time on the stack. On one Zen 4 core
/// (2026-12-04, `benches/alternate.sh -r 5`), as the key projection then,
/// against `matrixmultiply`: `add-batch` 1.06×, `add-decode` 1.05×,
/// `add-long` 1.00×. (The key projection now reads `W_kᵀ` packed over the
/// whole depth when the cache has room: [`AdditiveAttention::key_cache_with`].)
fn project(x: &[f32], rows: usize, in_dim: usize, w: &[f32], hidden: usize, out: &mut [f32]) -> Result<(), Error> {
    gemm_own(1.0, MatRef::new(x, rows, in_dim), MatRef::new(w, hidden, in_dim).t(), 0.0, MatMut::new(out, rows, hidden))
}

/// `out (rows × hidden) = x (rows × in_dim) · Wᵀ`, `Wᵀ` packed in `panels`
/// (`in_dim × hidden`): a projection whose weights were packed once, the
/// whole depth in one product.
fn projection<'a>(
    (x, rows, in_dim): (&'a [f32], usize, usize),
    panels: &'a [f32],
    (out, hidden): (&'a mut [f32], usize),
) -> PanelProduct<'a> {
    PanelProduct {
        m: rows,
        n: hidden,
        kc: in_dim,
        alpha: 1.0,
        a: x,
        a_strides: (in_dim, 1),
        packed: panels,
        packed_rows: in_dim,
        k0: 0,
        beta: 0.0,
        c: out,
        c_row_stride: hidden,
    }
}

/// `out = x·W_kᵀ` on the rows `runs` names, `W_kᵀ` packed in `panels`
/// (`key_dim × hidden`): the whole depth in one product, one backend entry.
struct ProjectRuns<'a> {
    x: &'a [f32],
    panels: &'a [f32],
    key_dim: usize,
    hidden: usize,
    runs: FilledRows<'a>,
    out: &'a mut [f32],
}

impl WithSimd for ProjectRuns<'_> {
    type Output = ();

    #[inline(always)]
    fn run<V: F32Vector>(self) {
        let (d, h) = (self.key_dim, self.hidden);
        for r in 0..self.runs.count() {
            let rows = self.runs.run(r);
            let x = &self.x[rows.start * d..rows.end * d];
            projection((x, rows.len(), d), self.panels, (&mut self.out[rows.start * h..rows.end * h], h)).run::<V>();
        }
    }
}

/// Each filled key row's `e^{2b}` and magnitude, in one pass on one backend.
struct KeyExpProducts<'a> {
    b: &'a [f32],
    exp_2b: &'a mut [f32],
    magnitude: &'a mut [f32],
    hidden: usize,
    runs: FilledRows<'a>,
}

impl WithSimd for KeyExpProducts<'_> {
    type Output = ();

    #[inline(always)]
    fn run<V: F32Vector>(self) {
        let h = self.hidden;
        for run in 0..self.runs.count() {
            for r in self.runs.run(run) {
                let row = r * h..(r + 1) * h;
                self.magnitude[r] = exp_of_double_row::<V>(&self.b[row.clone()], &mut self.exp_2b[row]);
            }
        }
    }
}

/// `out_b = weights_b · values_b` for every batch entry, in the products
/// [`ValidLens::weighted_runs`] gives: no value past a row's valid length
/// reaches it (its weight is exactly 0, and it is never scored), and a
/// row's bits do not depend on the rows it shares a product with.
fn weighted_sum(
    shape: &AttentionShape,
    valid_lens: ValidLens<'_>,
    weights: &[f32],
    values: &[f32],
    out: &mut [f32],
) -> Result<(), Error> {
    let (q, k, d) = (shape.queries, shape.keys, shape.value_dim);
    for b in 0..shape.batch {
        let entry = &values[b * k * d..(b + 1) * k * d];
        for (rows, used) in valid_lens.weighted_runs(b, q, k, (entry, d)) {
            let (first, n) = (b * q + rows.start, rows.len());
            gemm_own(
                1.0,
                MatRef::strided(&weights[first * k..(first + n) * k], n, used, k, 1),
                MatRef::new(&entry[..used * d], used, d),
                0.0,
                MatMut::new(&mut out[first * d..(first + n) * d], n, d),
            )?;
        }
    }
    Ok(())
}

/// Scores and softmax for every query row, on one backend; each row's
/// `D = e^{2a}·C` (scratch) is computed just before it is scored.
struct AdditiveRows<'a> {
    a: &'a [f32],
    folded: &'a mut [f32],
    cache: &'a KeyCache<'a>,
    w: ScoreWeights<'a>,
    queries: usize,
    valid_lens: ValidLens<'a>,
    weights: &'a mut [f32],
}

impl WithSimd for AdditiveRows<'_> {
    type Output = ();

    #[inline(always)]
    fn run<V: F32Vector>(self) {
        let (h, k) = (self.cache.hidden, self.cache.keys);
        if k == 0 {
            return;
        }
        for (r, row) in self.weights.chunks_exact_mut(k).enumerate() {
            let Some(kept) = self.valid_lens.kept(r, self.queries, k) else {
                row.fill(1.0 / k as f32);
                continue;
            };
            let a = &self.a[r * h..(r + 1) * h];
            let folded = &mut self.folded[r * h..(r + 1) * h];
            let in_range = exp_of_double_row::<V>(a, folded) <= self.w.limit;
            fold_query::<V>(folded, self.w.reciprocal);
            let query = ProjectedQuery { a, folded, in_range };
            let first = (r / self.queries) * k;
            let keys = first * h..(first + kept) * h;
            let (scored, masked) = row.split_at_mut(kept);
            score_keys::<V>(
                query,
                &self.cache.b[keys.clone()],
                &self.cache.exp_2b[keys],
                &self.cache.magnitude[first..first + kept],
                self.w,
                scored,
            );
            softmax_row::<V>(scored);
            masked.fill(0.0);
        }
    }
}
