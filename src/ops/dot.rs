//! Dot-product attention, as d2l's `DotProductAttention`:
//! `weights = masked_softmax(Q Kᵀ / √d)`, `output = weights · V`.
//!
//! Also the core that [`super::BilinearAttention`] and
//! [`super::MultiHeadAttention`] reuse: scores by GEMM over strided views,
//! the masked softmax, and the weighted sum by GEMM.

use super::{Attention, AttentionInputs, AttentionShape, ValidLens};
use crate::error::{Error, take};
use crate::gemm::{MatMut, MatRef, gemm, gemm_own};
use crate::kernels::{ScoreShape, masked_softmax};

/// d2l's `DotProductAttention` (no parameters). Queries and keys must have
/// the same width; the scores are scaled by `1/√d`.
#[derive(Clone, Copy, Debug, Default)]
pub struct DotProductAttention;

impl DotProductAttention {}

/// Queries and keys must be equally wide for their dot product.
fn same_widths(shape: &AttentionShape) -> Result<(), Error> {
    if shape.key_dim != shape.query_dim {
        return Err(Error::Dimension { arg: "shape.key_dim", expected: shape.query_dim, actual: shape.key_dim });
    }
    Ok(())
}

impl Attention for DotProductAttention {
    /// Scratch [`forward`](Self::forward) needs: the scores, unless the
    /// caller takes the weights. Refuses the shapes `forward` refuses
    /// (widths that differ, sizes that overflow), so a caller who sizes
    /// its buffers from this learns of a bad shape here.
    fn workspace_len(&self, shape: &AttentionShape, with_weights: bool) -> Result<usize, Error> {
        same_widths(shape)?;
        let scores = shape.sizes()?.weights;
        Ok(if with_weights { 0 } else { scores })
    }

    /// Attention of `queries` `(B, Q, d)` over `keys` `(B, K, d)` and
    /// `values` `(B, K, value_dim)`; writes `out` `(B, Q, value_dim)` and, if
    /// given, `weights` `(B, Q, K)`.
    ///
    /// With `d = 0` every score is the empty sum, 0, so each row's weights
    /// are uniform over its valid keys, as SDPA's are for `E = 0`. d2l
    /// divides that 0 by `√0` and gets NaN weights; a width of 0 is more
    /// likely an edge of a sweep than an error, and uniform weights keep
    /// the output finite.
    fn forward(
        &self,
        shape: &AttentionShape,
        inputs: AttentionInputs<'_>,
        out: &mut [f32],
        weights: Option<&mut [f32]>,
        workspace: &mut [f32],
    ) -> Result<(), Error> {
        let AttentionInputs { queries, keys, values, valid_lens } = inputs;
        same_widths(shape)?;
        let sizes = shape.check_inputs([queries, keys, values], valid_lens)?;
        shape.check_outputs(&sizes, out, weights.as_deref())?;
        if super::nothing_to_write(out, weights.as_deref()) {
            return Ok(());
        }
        let needed = self.workspace_len(shape, weights.is_some())?;
        let workspace = take("workspace", workspace, needed)?;
        let weights = match weights {
            Some(w) => w,
            None => workspace,
        };
        let scale = 1.0 / libm::sqrtf(shape.query_dim as f32);
        let heads = Heads::single(shape);
        attend(&heads, scale, queries, keys, values, valid_lens, out, weights)
    }
}

/// How heads are laid out inside `(B, S, heads·d)` buffers, so that each
/// head is a strided view and nothing is copied. A plain attention call is
/// one head.
pub(crate) struct Heads {
    pub batch: usize,
    pub heads: usize,
    pub queries: usize,
    pub keys: usize,
    /// Width of one head's queries and keys.
    pub qk_dim: usize,
    /// Width of one head's values and output.
    pub v_dim: usize,
}

impl Heads {
    pub(crate) fn single(shape: &AttentionShape) -> Heads {
        Heads {
            batch: shape.batch,
            heads: 1,
            queries: shape.queries,
            keys: shape.keys,
            qk_dim: shape.query_dim,
            v_dim: shape.value_dim,
        }
    }
}

/// Scores, masked softmax and weighted sum for every (batch, head):
/// `weights[(b·heads + h)] = softmax(scale · Q_bh K_bhᵀ)`, `out_bh = weights · V_bh`.
/// `queries`, `keys`, `values` and `out` are `(B, S, heads·width)`;
/// `weights` is `(B·heads, Q, K)`. Lengths are checked by the caller.
///
/// Both products stop where the rows stop weighing keys: `Q·Kᵀ` at the
/// longest valid length of the batch entry (the masked softmax writes
/// every score past a row's own over), `P·V` in the products
/// [`ValidLens::weighted_runs`] gives, so no value past a row's valid
/// length reaches it (PyTorch's `bmm` gives `0 · NaN = NaN` there) and a
/// row's bits do not depend on the rows beside it.
///
/// `weights · V` runs on our own GEMM at every size: V's rows are
/// contiguous, so a few query rows (Q = 1 when decoding) read it in place
/// and more rows copy each panel once, where `matrixmultiply` would pack
/// all of V on every call. One path for every Q keeps a row's bits the
/// same however the rows are split. (A throwaway timing loop on one Zen 4
/// core, not a committed benchmark, had it faster on every shape tried.)
#[allow(clippy::too_many_arguments)]
pub(crate) fn attend(
    l: &Heads,
    scale: f32,
    queries: &[f32],
    keys: &[f32],
    values: &[f32],
    valid_lens: ValidLens<'_>,
    out: &mut [f32],
    weights: &mut [f32],
) -> Result<(), Error> {
    let (qk_row, v_row) = (l.heads * l.qk_dim, l.heads * l.v_dim);
    let per_head = l.queries * l.keys;
    for b in 0..l.batch {
        let used = valid_lens.longest(b, l.queries, l.keys);
        for h in 0..l.heads {
            let w = &mut weights[(b * l.heads + h) * per_head..][..per_head];
            let q = from(queries, b * l.queries * qk_row + h * l.qk_dim);
            let k = from(keys, b * l.keys * qk_row + h * l.qk_dim);
            gemm(
                scale,
                MatRef::strided(q, l.queries, l.qk_dim, qk_row, 1),
                MatRef::strided(k, used, l.qk_dim, qk_row, 1).t(),
                0.0,
                MatMut::strided(w, l.queries, used, l.keys, 1),
            )?;
        }
    }
    // Heads repeat the batch's valid lengths, as d2l's repeat_interleave does.
    let shape = ScoreShape { batch: l.batch, queries: l.queries, keys: l.keys };
    for b in 0..l.batch {
        let batch_lens = match valid_lens {
            ValidLens::All => ValidLens::All,
            ValidLens::PerBatch(lens) => ValidLens::PerBatch(&lens[b..b + 1]),
            ValidLens::PerQuery(lens) => ValidLens::PerQuery(&lens[b * l.queries..(b + 1) * l.queries]),
        };
        let one = ScoreShape { batch: 1, ..shape };
        for h in 0..l.heads {
            let w = &mut weights[(b * l.heads + h) * l.queries * l.keys..][..l.queries * l.keys];
            masked_softmax(w, one, batch_lens.as_mask())?;
        }
    }
    for b in 0..l.batch {
        let entry = from(values, b * l.keys * v_row);
        let entry = &entry[..(l.keys * v_row).min(entry.len())];
        for (rows, used) in valid_lens.weighted_runs(b, l.queries, l.keys, (entry, v_row)) {
            for h in 0..l.heads {
                let w = &weights[(b * l.heads + h) * per_head + rows.start * l.keys..][..rows.len() * l.keys];
                let v = from(values, b * l.keys * v_row + h * l.v_dim);
                let o = from_mut(out, (b * l.queries + rows.start) * v_row + h * l.v_dim);
                gemm_own(
                    1.0,
                    MatRef::strided(w, rows.len(), used, l.keys, 1),
                    MatRef::strided(v, used, l.v_dim, v_row, 1),
                    0.0,
                    MatMut::strided(o, rows.len(), l.v_dim, v_row, 1),
                )?;
            }
        }
    }
    Ok(())
}

/// `x[offset..]`, or empty past the end (only reached by views with no
/// elements, which the view checks then accept).
pub(crate) fn from(x: &[f32], offset: usize) -> &[f32] {
    x.get(offset..).unwrap_or(&[])
}

/// `x[offset..]`, or empty past the end.
pub(crate) fn from_mut(x: &mut [f32], offset: usize) -> &mut [f32] {
    x.get_mut(offset..).unwrap_or(&mut [])
}
