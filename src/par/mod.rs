//! The parallel layer (`std`): the same operators, split across rayon
//! threads over independent (batch, query-block) rows, or (batch, head)
//! pairs for SDPA (or their key chunks when decoding, see `split_keys`),
//! and over batch entries for the multi-GEMM operators.
//!
//! Results are bit-identical to the serial operators for any thread count:
//! each piece runs the serial code on a sub-shape, every row's arithmetic is
//! independent of how rows are grouped (the GEMM path choice ignores the row
//! count, see [`crate::gemm::LARGE_GEMM_MIN_B`]), and the SIMD backend of
//! the calling thread is carried into every task. Problems under
//! [`PARALLEL_MIN_WORK`] stay serial. The work runs in the current rayon
//! pool, so a caller can bound it with `ThreadPool::install`.

use crate::Error;
use crate::ops::TILE_QUERIES;
use crate::ops::additive::{CacheRows, ScoredKeys};
use crate::ops::nothing_to_write;
use crate::ops::sdpa::{STREAM_MAX_QUERIES, SdpaCall};
use crate::ops::{
    AdditiveAttention, Attention, AttentionInputs, AttentionShape, CacheQuery, KeyCache, KvCacheView,
    ScaledDotProductAttention, SdpaInputs, SdpaShape, ValidLens,
};
use crate::simd::{self, with_backend};
use alloc::vec;
use alloc::vec::Vec;
use rayon::prelude::*;

mod split_keys;

/// Below this many multiply-adds (roughly), splitting costs more than it saves.
pub const PARALLEL_MIN_WORK: usize = 1 << 18;
/// Query rows per task for the row-split operators.
const QUERY_BLOCK: usize = 16;

/// Runs the tasks on the current pool with the caller's backend, stopping at
/// the first error.
fn run_tasks<T: Send>(tasks: Vec<T>, f: impl Fn(T) -> Result<(), Error> + Sync) -> Result<(), Error> {
    let backend = simd::active();
    tasks.into_par_iter().try_for_each(|t| with_backend(backend, || f(t))?)
}

/// Splits `rows × width` values into consecutive chunks of `counts[i]` rows.
fn split_rows(mut buf: &mut [f32], width: usize, counts: impl Iterator<Item = usize>) -> Vec<&mut [f32]> {
    let mut parts = Vec::new();
    for rows in counts {
        let (head, tail) = core::mem::take(&mut buf).split_at_mut(rows * width);
        parts.push(head);
        buf = tail;
    }
    parts
}

/// `weights` split like `out`, or `None` for every task.
fn split_optional<'a>(buf: Option<&'a mut [f32]>, width: usize, counts: &[usize]) -> Vec<Option<&'a mut [f32]>> {
    match buf {
        Some(w) => split_rows(w, width, counts.iter().copied()).into_iter().map(Some).collect(),
        None => counts.iter().map(|_| None).collect(),
    }
}

/// The `valid_lens` of batch entry `b`, queries `q0..q1`.
fn lens_for<'a>(lens: ValidLens<'a>, b: usize, queries: usize, q: core::ops::Range<usize>) -> ValidLens<'a> {
    match lens {
        ValidLens::All => ValidLens::All,
        ValidLens::PerBatch(l) => ValidLens::PerBatch(&l[b..b + 1]),
        ValidLens::PerQuery(l) => ValidLens::PerQuery(&l[b * queries + q.start..b * queries + q.end]),
    }
}

fn work(parts: &[usize]) -> usize {
    parts.iter().fold(1usize, |a, &b| a.saturating_mul(b))
}

/// [`AdditiveAttention::forward`] over (batch, query-block) tasks sharing
/// one key cache.
pub fn additive(
    attn: &AdditiveAttention<'_>,
    shape: &AttentionShape,
    inputs: AttentionInputs<'_>,
    out: &mut [f32],
    weights: Option<&mut [f32]>,
) -> Result<(), Error> {
    let AttentionInputs { queries, keys, values, valid_lens } = inputs;
    attn.check_call(shape, queries, valid_lens, out, weights.as_deref())?;
    if nothing_to_write(out, weights.as_deref()) {
        return Ok(());
    }
    let mut buffer = zeroed(KeyCache::buffer_len(shape.batch, shape.keys, attn.hidden(), attn.query_dim())?);
    let cache = cache_on_threads(attn, shape, keys, values, &mut buffer, Some(valid_lens))?;
    additive_cached(attn, &cache, shape.queries, queries, valid_lens, out, weights)
}

/// `len` zeros, written by all threads: a key cache can take megabytes,
/// and zeroing them on one thread would be the serial part of the call.
fn zeroed(len: usize) -> Vec<f32> {
    let mut buffer = Vec::with_capacity(len);
    buffer.par_extend(rayon::iter::repeat_n(0.0f32, len));
    buffer
}

/// The fewest key rows per task when a key cache is built in parallel.
const KEY_ROW_BLOCK: usize = 64;

/// [`AdditiveAttention::key_cache`] with the key projection split across
/// threads in blocks of key rows (each row's entries depend on it alone,
/// and the GEMM path ignores the row count, so the bits are the serial ones).
pub fn key_cache<'a>(
    attn: &AdditiveAttention<'a>,
    shape: &AttentionShape,
    keys: &[f32],
    values: &'a [f32],
    buffer: &'a mut [f32],
) -> Result<KeyCache<'a>, Error> {
    cache_on_threads(attn, shape, keys, values, buffer, None)
}

/// A key cache filled on the pool's threads, all of it or (with
/// `scored_by`, for one call) the keys those lengths score, split in
/// blocks of whole batch entries. One thread fills it in one pass (where
/// `W_kᵀ` has no room to be packed once for all tasks, a pass packs it
/// panel by panel).
fn cache_on_threads<'a>(
    attn: &AdditiveAttention<'a>,
    shape: &AttentionShape,
    keys: &[f32],
    values: &'a [f32],
    buffer: &'a mut [f32],
    scored_by: Option<ValidLens<'_>>,
) -> Result<KeyCache<'a>, Error> {
    let (hidden, key_dim) = attn.key_projection_dims();
    attn.key_cache_with(shape, keys, values, buffer, scored_by, |rows| {
        let n = rows.magnitude.len();
        let threads = rayon::current_num_threads();
        if threads == 1 || hidden == 0 || key_dim == 0 || work(&[n, hidden, key_dim]) < PARALLEL_MIN_WORK {
            return attn.fill_cache_rows(rows);
        }
        // About four tasks per thread, sharing `W_kᵀ`'s packed panels (or
        // each packing its own where they have no room). A task takes whole
        // units: rows, or scored batch entries.
        let CacheRows { keys, b, exp_2b, magnitude, scored, w_k_panels } = rows;
        let unit = scored.map_or(1, |s| s.keys.max(1));
        let per_task = (n / unit).div_ceil(4 * threads).max(KEY_ROW_BLOCK.div_ceil(unit));
        let block = per_task * unit;
        let tasks: Vec<_> = keys
            .chunks(block * key_dim)
            .zip(b.chunks_mut(block * hidden))
            .zip(exp_2b.chunks_mut(block * hidden))
            .zip(magnitude.chunks_mut(block))
            .enumerate()
            .map(|(t, (((keys, b), exp_2b), magnitude))| {
                let first = t * per_task;
                let entries = first..first + magnitude.len() / unit;
                let scored = scored.map(|s| ScoredKeys { lens: s.lens.entries(entries, s.queries), ..s });
                CacheRows { keys, b, exp_2b, magnitude, scored, w_k_panels }
            })
            .collect();
        run_tasks(tasks, |rows| attn.fill_cache_rows(rows))
    })
}

/// [`AdditiveAttention::forward_cached`] over (batch, query-block) tasks.
#[allow(clippy::too_many_arguments)]
pub fn additive_cached(
    attn: &AdditiveAttention<'_>,
    cache: &KeyCache<'_>,
    num_queries: usize,
    queries: &[f32],
    valid_lens: ValidLens<'_>,
    out: &mut [f32],
    weights: Option<&mut [f32]>,
) -> Result<(), Error> {
    let shape = cache.shape(num_queries, attn.query_dim());
    attn.check_call(&shape, queries, valid_lens, out, weights.as_deref())?;
    if nothing_to_write(out, weights.as_deref()) {
        return Ok(());
    }
    let nq = shape.queries;
    if work(&[shape.batch, nq, shape.keys, attn.hidden()]) < PARALLEL_MIN_WORK {
        let mut ws = vec![0.0; attn.cached_workspace_len(&shape, weights.is_some())?];
        return attn.forward_cached(cache, nq, queries, valid_lens, out, weights, &mut ws);
    }
    // Tasks of whole batch entries, or of about QUERY_BLOCK query rows of
    // one when the batch is short, or (for short query runs, such as
    // decoding) several whole entries.
    // Short query runs group whole entries, but into at least two tasks per
    // thread when the batch allows. Grouping never changes a bit.
    let threads = rayon::current_num_threads();
    let per_thread = shape.batch.div_ceil(2 * threads);
    let batches_per_task = QUERY_BLOCK.div_ceil(nq.max(1)).min(per_thread).max(1);
    // With two entries or more per thread, a task takes whole entries:
    // smaller blocks would each pack their entry's values again and run
    // their last rows in a short tile. Against 16-row blocks on one Zen 4
    // core (2026-12-05, `benches/alternate.sh -r 5`): `add-batch` 1.028×
    // and `add-long` 1.040× on one thread, 1.041× and 1.033× on two.
    let query_block = if shape.batch >= 2 * threads { nq } else { QUERY_BLOCK };
    let blocks: Vec<Block> = if nq >= QUERY_BLOCK {
        (0..shape.batch)
            .flat_map(|b| {
                (0..nq)
                    .step_by(query_block)
                    .map(move |q0| Block { batches: b..b + 1, queries: q0..(q0 + query_block).min(nq) })
            })
            .collect()
    } else {
        (0..shape.batch)
            .step_by(batches_per_task)
            .map(|b0| Block { batches: b0..(b0 + batches_per_task).min(shape.batch), queries: 0..nq })
            .collect()
    };
    let counts: Vec<usize> = blocks.iter().map(|b| b.batches.len() * b.queries.len()).collect();
    // One workspace per rayon job, sized for the largest task, not one per task.
    let mut ws_len = 0;
    for block in &blocks {
        let sub_shape = AttentionShape { batch: block.batches.len(), queries: block.queries.len(), ..shape };
        ws_len = ws_len.max(attn.cached_workspace_len(&sub_shape, weights.is_some())?);
    }
    let outs = split_rows(out, shape.value_dim, counts.iter().copied());
    let ws = split_optional(weights, shape.keys, &counts);
    let tasks: Vec<_> = blocks.into_iter().zip(outs).zip(ws).collect();
    let qd = shape.query_dim;
    // One task: `block`'s rows of the queries, lengths, output and weights.
    let run_block = |block: Block, out: &mut [f32], weights: Option<&mut [f32]>, ws: &mut [f32]| {
        let Block { batches, queries: q } = block;
        let sub = cache.batches(batches.clone())?;
        let lens = match valid_lens {
            ValidLens::PerQuery(l) if batches.len() == 1 => {
                ValidLens::PerQuery(&l[batches.start * nq + q.start..batches.start * nq + q.end])
            }
            // Several entries take all their query rows.
            lens => lens.entries(batches.clone(), nq),
        };
        let rows = if batches.len() == 1 {
            batches.start * nq + q.start..batches.start * nq + q.end
        } else {
            batches.start * nq..batches.end * nq
        };
        attn.forward_cached(&sub, q.len(), &queries[rows.start * qd..rows.end * qd], lens, out, weights, ws)
    };
    let backend = simd::active();
    tasks.into_par_iter().try_for_each_init(
        || vec![0.0; ws_len],
        |ws, ((block, out), weights)| with_backend(backend, || run_block(block, out, weights, ws))?,
    )
}

/// A task of the additive split: whole batch entries, or one entry's query block.
struct Block {
    batches: core::ops::Range<usize>,
    queries: core::ops::Range<usize>,
}

/// One batch entry's slices of a batched attention call.
struct BatchSlices<'a> {
    shape: AttentionShape,
    queries: &'a [f32],
    keys: &'a [f32],
    values: &'a [f32],
    valid_lens: ValidLens<'a>,
}

/// Splits a checked call into batch entries and runs `f` on each in parallel.
#[allow(clippy::too_many_arguments)]
fn per_batch(
    shape: &AttentionShape,
    [queries, keys, values]: [&[f32]; 3],
    valid_lens: ValidLens<'_>,
    out: &mut [f32],
    out_width: usize,
    weights: Option<&mut [f32]>,
    weights_per_batch: usize,
    f: impl Fn(BatchSlices<'_>, &mut [f32], Option<&mut [f32]>) -> Result<(), Error> + Sync,
) -> Result<(), Error> {
    let b_n = shape.batch;
    let counts = vec![1usize; b_n];
    let outs = split_rows(out, shape.queries * out_width, counts.iter().copied());
    let ws = split_optional(weights, weights_per_batch, &counts);
    let tasks: Vec<_> = (0..b_n).zip(outs).zip(ws).collect();
    let (nq, nk) = (shape.queries, shape.keys);
    run_tasks(tasks, |((b, out), weights)| {
        let slices = BatchSlices {
            shape: AttentionShape { batch: 1, ..*shape },
            queries: &queries[b * nq * shape.query_dim..(b + 1) * nq * shape.query_dim],
            keys: &keys[b * nk * shape.key_dim..(b + 1) * nk * shape.key_dim],
            values: &values[b * nk * shape.value_dim..(b + 1) * nk * shape.value_dim],
            valid_lens: lens_for(valid_lens, b, nq, 0..nq),
        };
        f(slices, out, weights)
    })
}

/// [`Attention::forward`] of a multi-GEMM operator (dot-product, bilinear,
/// multi-head, or additive without a shared cache) split over batch
/// entries, each running the serial operator with its own workspace.
pub fn batched<A: Attention + Sync>(
    op: &A,
    shape: &AttentionShape,
    inputs: AttentionInputs<'_>,
    out: &mut [f32],
    weights: Option<&mut [f32]>,
) -> Result<(), Error> {
    let AttentionInputs { queries, keys, values, valid_lens } = inputs;
    let inputs = [queries, keys, values];
    let sizes = shape.check_inputs(inputs, valid_lens)?;
    let out_width = op.output_width(shape);
    let sets = op.weight_sets();
    crate::error::expect_len("out", crate::error::checked_mul("out", sizes.query_rows, out_width)?, out.len())?;
    if let Some(w) = weights.as_deref() {
        crate::error::expect_len("weights", crate::error::checked_mul("weights", sizes.weights, sets)?, w.len())?;
    }
    if nothing_to_write(out, weights.as_deref()) {
        return Ok(());
    }
    let serial =
        |s: &AttentionShape, [q, k, v]: [&[f32]; 3], l: ValidLens<'_>, o: &mut [f32], w: Option<&mut [f32]>| {
            let mut ws = vec![0.0; op.workspace_len(s, w.is_some())?];
            op.forward(s, AttentionInputs { queries: q, keys: k, values: v, valid_lens: l }, o, w, &mut ws)
        };
    let width = shape.query_dim.max(shape.key_dim).max(shape.value_dim).max(out_width);
    let cost = work(&[shape.batch, shape.queries + shape.keys, shape.keys.max(width), width]);
    if cost < PARALLEL_MIN_WORK || shape.batch < 2 {
        return serial(shape, inputs, valid_lens, out, weights);
    }
    per_batch(shape, inputs, valid_lens, out, out_width, weights, shape.queries * shape.keys * sets, |s, out, w| {
        serial(&s.shape, [s.queries, s.keys, s.values], s.valid_lens, out, w)
    })
}

/// [`ScaledDotProductAttention::forward`] split over (batch, head) pairs.
pub fn sdpa(
    op: &ScaledDotProductAttention,
    shape: &SdpaShape,
    inputs: SdpaInputs<'_>,
    out: &mut [f32],
    weights: Option<&mut [f32]>,
) -> Result<(), Error> {
    sdpa_call(op, &SdpaCall { shape, inputs, kv_stride: shape.kv_len }, out, weights)
}

/// [`KvCacheView::attend`] split as [`sdpa`] splits a call: same bits as
/// serial. It only reads the cache ([`crate::ops::KvCache::view`]), so
/// several threads may attend to one cache at once.
pub fn sdpa_cached(
    op: &ScaledDotProductAttention,
    cache: KvCacheView<'_>,
    query: CacheQuery<'_>,
    out: &mut [f32],
) -> Result<(), Error> {
    let shape = cache.sdpa_shape(query.q_heads, query.q_len);
    sdpa_call(op, &cache.call(&shape, query), out, None)
}

/// [`sdpa`] of any call (a cache's K and V lie `kv_stride` rows apart).
pub(crate) fn sdpa_call(
    op: &ScaledDotProductAttention,
    call: &SdpaCall<'_>,
    out: &mut [f32],
    weights: Option<&mut [f32]>,
) -> Result<(), Error> {
    let shape = call.shape;
    op.check(call, out, weights.as_deref())?;
    if nothing_to_write(out, weights.as_deref()) {
        return Ok(());
    }
    let heads = shape.batch * shape.q_heads;
    let cost = work(&[heads, shape.q_len, shape.kv_len, shape.qk_dim + shape.v_dim]);
    if cost >= PARALLEL_MIN_WORK && split_keys::worth_it(shape, weights.is_some()) {
        return split_keys::sdpa(op, call, out);
    }
    let threads = rayon::current_num_threads();
    let flash = weights.is_none() && shape.q_len > STREAM_MAX_QUERIES;
    if cost >= PARALLEL_MIN_WORK && flash && heads < 2 * threads && shape.q_len > TILE_QUERIES {
        return sdpa_query_blocks(op, call, out, threads);
    }
    if cost < PARALLEL_MIN_WORK || heads < 2 {
        let mut ws = vec![0.0; op.workspace_len(shape, weights.is_some())?];
        return op.run(call, out, weights, &mut ws);
    }
    let counts = vec![1usize; heads];
    let with_weights = weights.is_some();
    let outs = split_rows(out, shape.q_len * shape.v_dim, counts.iter().copied());
    let ws = split_optional(weights, shape.q_len * shape.kv_len, &counts);
    let tasks: Vec<_> = (0..heads).zip(outs).zip(ws).collect();
    // One workspace per rayon job, not per head: a flash head's packed K
    // and V can be hundreds of KiB.
    let ws_len = op.workspace_len(shape, with_weights)?;
    let backend = simd::active();
    tasks.into_par_iter().try_for_each_init(
        || vec![0.0; ws_len],
        |ws, ((i, out), weights)| {
            let (b, h) = (i / shape.q_heads, i % shape.q_heads);
            with_backend(backend, || op.head(call, (b, h), out, weights, ws))?
        },
    )
}

/// Flash SDPA with fewer heads than threads (long causal sequences): tasks
/// are runs of query tiles within a head, about four per thread. Each task
/// packs the keys its rows can see; each query tile's arithmetic is the
/// serial one.
fn sdpa_query_blocks(
    op: &ScaledDotProductAttention,
    call: &SdpaCall<'_>,
    out: &mut [f32],
    threads: usize,
) -> Result<(), Error> {
    let shape = call.shape;
    let heads = shape.batch * shape.q_heads;
    let tiles = shape.q_len.div_ceil(TILE_QUERIES);
    let tiles_per_task = (heads * tiles).div_ceil(4 * threads).clamp(1, tiles);
    let rows_per_task = tiles_per_task * TILE_QUERIES;
    let ev = shape.v_dim;
    let mut tasks = Vec::new();
    for (head, head_out) in out.chunks_mut(shape.q_len * ev).enumerate() {
        for (t, rows_out) in head_out.chunks_mut(rows_per_task * ev).enumerate() {
            let start = t * rows_per_task;
            tasks.push((head, start..(start + rows_per_task).min(shape.q_len), rows_out));
        }
    }
    let ws_len = op.workspace_len(shape, false)?;
    let backend = simd::active();
    tasks.into_par_iter().try_for_each_init(
        || vec![0.0; ws_len],
        |ws, (head, rows, out)| {
            let bh = (head / shape.q_heads, head % shape.q_heads);
            with_backend(backend, || op.head_rows(call, bh, rows, out, ws))?
        },
    )
}
