//! Additive attention through a `KeyCache` on golden cases: the keys are
//! projected once into a cache in the arena, then the queries attend over
//! it; output and weights within 5e-5 + 1e-4·|expected|, as on the host.

use crate::check::{Failure, Tally, Usage, compare, take};
use crate::golden::{ADDITIVE_LENS1D_EDGES, ADDITIVE_LENS2D, Case};
use simd_attention::ops::{AdditiveAttention, AttentionShape, KeyCache, ValidLens};

/// Valid lengths this firmware has room for.
const MAX_LENS: usize = 64;

pub fn run(tally: &mut Tally, arena: &mut [f32]) {
    for (name, case) in
        [("additive cached, 1-D lens", &ADDITIVE_LENS1D_EDGES), ("additive cached, 2-D lens", &ADDITIVE_LENS2D)]
    {
        tally.check(name, || attend(case, arena));
    }
}

fn attend(case: &Case, arena: &mut [f32]) -> Result<Usage, Failure> {
    let (q, k, v) = (case.shape("queries")?, case.shape("keys")?, case.shape("values")?);
    let (w_q, w_k, w_v) = (case.f32s("W_q.weight")?, case.f32s("W_k.weight")?, case.f32s("w_v.weight")?);
    let hidden = case.shape("w_v.weight")?[1];
    let shape =
        AttentionShape { batch: q[0], queries: q[1], keys: k[1], query_dim: q[2], key_dim: k[2], value_dim: v[2] };
    let op = AdditiveAttention::new(w_q, w_k, w_v, hidden, shape.query_dim, shape.key_dim)?;

    let mut lens = [0usize; MAX_LENS];
    let lens = if case.has("valid_lens") {
        let given = case.i64s("valid_lens")?;
        let dst = lens.get_mut(..given.len()).ok_or(Failure::Case("valid_lens"))?;
        for (d, &l) in dst.iter_mut().zip(given) {
            *d = usize::try_from(l).map_err(|_| Failure::Case("valid_lens"))?;
        }
        match case.shape("valid_lens")?.len() {
            1 => ValidLens::PerBatch(dst),
            _ => ValidLens::PerQuery(dst),
        }
    } else {
        ValidLens::All
    };

    let mut used = 0;
    let mut rest = &mut *arena;
    let buffer = take(&mut rest, KeyCache::buffer_len(shape.batch, shape.keys, hidden, shape.query_dim)?, &mut used)?;
    let cache = op.key_cache(&shape, case.f32s("keys")?, case.f32s("values")?, buffer)?;
    let out = take(&mut rest, shape.batch * shape.queries * shape.value_dim, &mut used)?;
    let weights = take(&mut rest, shape.batch * shape.queries * shape.keys, &mut used)?;
    let workspace = take(&mut rest, op.cached_workspace_len(&shape, true)?, &mut used)?;
    op.forward_cached(&cache, shape.queries, case.f32s("queries")?, lens, out, Some(&mut *weights), workspace)?;

    let e_out = compare("output", out, case.f32s("expected.output")?, 5e-5, 1e-4)?;
    let e_w = compare("weights", weights, case.f32s("expected.attention_weights")?, 5e-5, 1e-4)?;
    Ok(Usage { max_error: e_out.max(e_w), scratch: used, stack: 0 })
}
