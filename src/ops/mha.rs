//! Multi-head attention, as d2l's `MultiHeadAttention`:
//!
//! `Q' = queries W_qᵀ (+ b_q)`, `K' = keys W_kᵀ`, `V' = values W_vᵀ`, each
//! `(B, S, H)` with `H = num_hiddens`; the `heads` heads of width `H/heads`
//! are strided views into them (no transpose copies); each head runs
//! scaled dot-product attention with the batch's `valid_lens` repeated per
//! head; the heads' outputs land side by side in `(B, Q, H)`, and
//! `output = concat W_oᵀ (+ b_o)`. Weights are `(B·heads, Q, K)`, entry
//! `b·heads + h`, as d2l's `attention_weights`.

use super::dot::{Heads, attend};
use super::{Attention, AttentionInputs, AttentionShape};
use crate::error::{Error, checked_mul, expect_len, take};
use crate::gemm::{MatMut, MatRef, gemm};

/// One `nn.Linear`: `weight` `(out, in)` and an optional `bias` `(out,)`.
#[derive(Clone, Copy, Debug)]
pub struct Linear<'p> {
    /// Row-major `(out_features, in_features)`.
    pub weight: &'p [f32],
    /// `(out_features,)`, or `None` for `bias=False`.
    pub bias: Option<&'p [f32]>,
}

impl Linear<'_> {
    fn check(&self, arg: &'static str, bias_arg: &'static str, out: usize, inp: usize) -> Result<(), Error> {
        expect_len(arg, checked_mul(arg, out, inp)?, self.weight.len())?;
        if let Some(b) = self.bias {
            expect_len(bias_arg, out, b.len())?;
        }
        Ok(())
    }

    /// `y (rows × out) = x (rows × in) · weightᵀ + bias`.
    fn apply(&self, x: &[f32], rows: usize, inp: usize, out_dim: usize, y: &mut [f32]) -> Result<(), Error> {
        match self.bias {
            Some(bias) => {
                for row in y.chunks_exact_mut(out_dim.max(1)).take(rows) {
                    row.copy_from_slice(bias);
                }
            }
            None => y.fill(0.0),
        }
        let beta = if self.bias.is_some() { 1.0 } else { 0.0 };
        gemm(
            1.0,
            MatRef::new(x, rows, inp),
            MatRef::new(self.weight, out_dim, inp).t(),
            beta,
            MatMut::new(y, rows, out_dim),
        )
    }
}

/// d2l's `MultiHeadAttention` parameters, borrowed.
#[derive(Clone, Copy, Debug)]
pub struct MultiHeadAttention<'p> {
    w_q: Linear<'p>,
    w_k: Linear<'p>,
    w_v: Linear<'p>,
    w_o: Linear<'p>,
    heads: usize,
    hidden: usize,
    query_dim: usize,
    key_dim: usize,
    value_dim: usize,
}

/// The sizes of a [`MultiHeadAttention`].
#[derive(Clone, Copy, Debug)]
pub struct MhaDims {
    /// Number of heads; must divide `hidden`.
    pub heads: usize,
    /// `num_hiddens`, the projected width (all heads together).
    pub hidden: usize,
    /// Input widths of queries, keys and values.
    pub query_dim: usize,
    /// See `query_dim`.
    pub key_dim: usize,
    /// See `query_dim`.
    pub value_dim: usize,
}

impl<'p> MultiHeadAttention<'p> {
    /// Wraps the four projections, checking their shapes and that `heads`
    /// divides `hidden`.
    pub fn new(
        w_q: Linear<'p>,
        w_k: Linear<'p>,
        w_v: Linear<'p>,
        w_o: Linear<'p>,
        dims: MhaDims,
    ) -> Result<Self, Error> {
        let MhaDims { heads, hidden, query_dim, key_dim, value_dim } = dims;
        if heads == 0 || !hidden.is_multiple_of(heads) {
            return Err(Error::Dimension { arg: "num_heads", expected: hidden, actual: heads });
        }
        w_q.check("W_q", "W_q.bias", hidden, query_dim)?;
        w_k.check("W_k", "W_k.bias", hidden, key_dim)?;
        w_v.check("W_v", "W_v.bias", hidden, value_dim)?;
        w_o.check("W_o", "W_o.bias", hidden, hidden)?;
        Ok(MultiHeadAttention { w_q, w_k, w_v, w_o, heads, hidden, query_dim, key_dim, value_dim })
    }

    /// `num_hiddens`, the width of the output.
    pub fn hidden(&self) -> usize {
        self.hidden
    }

    /// The number of heads.
    pub fn heads(&self) -> usize {
        self.heads
    }
}

impl Attention for MultiHeadAttention<'_> {
    /// Scratch for [`forward`](Self::forward): `Q'`, `K'`, `V'`, the
    /// concatenated heads, and the scores unless the caller takes the weights.
    fn workspace_len(&self, shape: &AttentionShape, with_weights: bool) -> Result<usize, Error> {
        let sizes = shape.sizes()?;
        let q = checked_mul("workspace", sizes.query_rows, self.hidden)?;
        let k = checked_mul("workspace", sizes.key_rows, self.hidden)?;
        let scores = if with_weights { 0 } else { checked_mul("workspace", sizes.weights, self.heads)? };
        [q, k, k, q, scores]
            .into_iter()
            .try_fold(0usize, |a, b| a.checked_add(b))
            .ok_or(Error::Overflow { arg: "workspace" })
    }

    /// Multi-head attention; `out` is `(B, Q, hidden)`, `weights` (if given)
    /// `(B·heads, Q, K)`. `shape.value_dim` is the input width of the values.
    fn forward(
        &self,
        shape: &AttentionShape,
        inputs: AttentionInputs<'_>,
        out: &mut [f32],
        weights: Option<&mut [f32]>,
        workspace: &mut [f32],
    ) -> Result<(), Error> {
        let AttentionInputs { queries, keys, values, valid_lens } = inputs;
        let dims = [
            ("shape.query_dim", self.query_dim, shape.query_dim),
            ("shape.key_dim", self.key_dim, shape.key_dim),
            ("shape.value_dim", self.value_dim, shape.value_dim),
        ];
        for (arg, expected, actual) in dims {
            if expected != actual {
                return Err(Error::Dimension { arg, expected, actual });
            }
        }
        let sizes = shape.check_inputs([queries, keys, values], valid_lens)?;
        expect_len("out", checked_mul("out", sizes.query_rows, self.hidden)?, out.len())?;
        let weights_len = checked_mul("weights", sizes.weights, self.heads)?;
        if let Some(w) = weights.as_deref() {
            expect_len("weights", weights_len, w.len())?;
        }
        if super::nothing_to_write(out, weights.as_deref()) {
            return Ok(());
        }
        let needed = self.workspace_len(shape, weights.is_some())?;
        let workspace = take("workspace", workspace, needed)?;
        let (q, rest) = workspace.split_at_mut(sizes.query_rows * self.hidden);
        let (k, rest) = rest.split_at_mut(sizes.key_rows * self.hidden);
        let (v, rest) = rest.split_at_mut(sizes.key_rows * self.hidden);
        let (concat, scores) = rest.split_at_mut(sizes.query_rows * self.hidden);
        self.w_q.apply(queries, sizes.query_rows, self.query_dim, self.hidden, q)?;
        self.w_k.apply(keys, sizes.key_rows, self.key_dim, self.hidden, k)?;
        self.w_v.apply(values, sizes.key_rows, self.value_dim, self.hidden, v)?;
        let weights = match weights {
            Some(w) => w,
            None => scores,
        };
        let width = self.hidden / self.heads;
        let heads = Heads {
            batch: shape.batch,
            heads: self.heads,
            queries: shape.queries,
            keys: shape.keys,
            qk_dim: width,
            v_dim: width,
        };
        attend(&heads, 1.0 / libm::sqrtf(width as f32), q, k, v, valid_lens, concat, weights)?;
        self.w_o.apply(concat, sizes.query_rows, self.hidden, self.hidden, out)
    }

    fn output_width(&self, _: &AttentionShape) -> usize {
        self.hidden
    }

    fn weight_sets(&self) -> usize {
        self.heads
    }
}
