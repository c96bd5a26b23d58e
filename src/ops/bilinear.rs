//! Bilinear ("general", Luong) attention: `score(q, k) = qᵀ (W_a k)` with
//! `W_a` of shape `(query_dim, key_dim)`, then the masked softmax and the
//! weighted sum as in dot-product attention.
//!
//! The keys are projected once, `k' = W_a k`, so the scores are a plain dot
//! product of `q` with `k'`.

use super::dot::{Heads, attend};
use super::{Attention, AttentionInputs, AttentionShape};
use crate::error::{Error, checked_mul, expect_len, take};
use crate::gemm::{MatMut, MatRef, gemm};

/// The parameter `W_a.weight` `(query_dim, key_dim)`, borrowed.
#[derive(Clone, Copy, Debug)]
pub struct BilinearAttention<'p> {
    w_a: &'p [f32],
    query_dim: usize,
    key_dim: usize,
}

impl<'p> BilinearAttention<'p> {
    /// Wraps `W_a`, checking its length.
    pub fn new(w_a: &'p [f32], query_dim: usize, key_dim: usize) -> Result<Self, Error> {
        expect_len("W_a", checked_mul("W_a", query_dim, key_dim)?, w_a.len())?;
        Ok(BilinearAttention { w_a, query_dim, key_dim })
    }
}

impl Attention for BilinearAttention<'_> {
    /// Scratch for [`forward`](Self::forward): the projected keys, and the
    /// scores unless the caller takes the weights.
    fn workspace_len(&self, shape: &AttentionShape, with_weights: bool) -> Result<usize, Error> {
        let sizes = shape.sizes()?;
        let projected = checked_mul("workspace", sizes.key_rows, self.query_dim)?;
        let scores = if with_weights { 0 } else { sizes.weights };
        projected.checked_add(scores).ok_or(Error::Overflow { arg: "workspace" })
    }

    /// Attention of `queries` `(B, Q, query_dim)` over `keys` `(B, K,
    /// key_dim)` and `values`; writes `out` and, if given, `weights`.
    fn forward(
        &self,
        shape: &AttentionShape,
        inputs: AttentionInputs<'_>,
        out: &mut [f32],
        weights: Option<&mut [f32]>,
        workspace: &mut [f32],
    ) -> Result<(), Error> {
        let AttentionInputs { queries, keys, values, valid_lens } = inputs;
        if shape.query_dim != self.query_dim {
            return Err(Error::Dimension { arg: "shape.query_dim", expected: self.query_dim, actual: shape.query_dim });
        }
        if shape.key_dim != self.key_dim {
            return Err(Error::Dimension { arg: "shape.key_dim", expected: self.key_dim, actual: shape.key_dim });
        }
        let sizes = shape.check_inputs([queries, keys, values], valid_lens)?;
        shape.check_outputs(&sizes, out, weights.as_deref())?;
        if super::nothing_to_write(out, weights.as_deref()) {
            return Ok(());
        }
        let needed = self.workspace_len(shape, weights.is_some())?;
        let workspace = take("workspace", workspace, needed)?;
        let (projected, scores) = workspace.split_at_mut(sizes.key_rows * self.query_dim);
        gemm(
            1.0,
            MatRef::new(keys, sizes.key_rows, self.key_dim),
            MatRef::new(self.w_a, self.query_dim, self.key_dim).t(),
            0.0,
            MatMut::new(projected, sizes.key_rows, self.query_dim),
        )?;
        let weights = match weights {
            Some(w) => w,
            None => scores,
        };
        let heads = Heads { qk_dim: self.query_dim, ..Heads::single(shape) };
        attend(&heads, 1.0, queries, projected, values, valid_lens, out, weights)
    }
}
