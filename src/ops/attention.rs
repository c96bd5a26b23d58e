//! The calling convention the batched operators share, so the parallel
//! layer and the allocating forms are written once for all of them.

use super::{AttentionShape, ValidLens};
use crate::Error;

/// The inputs of one batched call, by name, so that swapping keys and
/// values is visible at the call site.
#[derive(Clone, Copy, Debug)]
pub struct AttentionInputs<'a> {
    /// `(B, Q, query_dim)`.
    pub queries: &'a [f32],
    /// `(B, K, key_dim)`.
    pub keys: &'a [f32],
    /// `(B, K, value_dim)`.
    pub values: &'a [f32],
    /// d2l `valid_lens`: which keys each query sees.
    pub valid_lens: ValidLens<'a>,
}

/// A batched attention operator: queries `(B, Q, query_dim)`, keys
/// `(B, K, key_dim)`, values `(B, K, value_dim)` and d2l `valid_lens` in;
/// output `(B, Q, output_width)` and, if asked, weights
/// `(B·weight_sets, Q, K)` out; scratch from the caller. Every operator
/// takes the same [`AttentionInputs`], so the signature is written once.
pub trait Attention {
    /// Scratch [`forward`](Self::forward) needs for `shape`.
    fn workspace_len(&self, shape: &AttentionShape, with_weights: bool) -> Result<usize, Error>;

    /// Values per output row: `value_dim`, or the projected width for MHA.
    fn output_width(&self, shape: &AttentionShape) -> usize {
        shape.value_dim
    }

    /// Weight matrices per batch entry: 1, or the number of heads for MHA.
    fn weight_sets(&self) -> usize {
        1
    }

    /// Computes the output and, if given, the weights. Errors, before
    /// anything is written, on any length or shape that does not fit.
    fn forward(
        &self,
        shape: &AttentionShape,
        inputs: AttentionInputs<'_>,
        out: &mut [f32],
        weights: Option<&mut [f32]>,
        workspace: &mut [f32],
    ) -> Result<(), Error>;

    /// [`forward`](Self::forward) with buffers it allocates itself.
    #[cfg(feature = "alloc")]
    fn attend(
        &self,
        shape: &AttentionShape,
        inputs: AttentionInputs<'_>,
        want_weights: bool,
    ) -> Result<super::Attended, Error> {
        let sizes = shape.sizes()?;
        let out = crate::error::checked_mul("out", sizes.query_rows, self.output_width(shape))?;
        let weights = crate::error::checked_mul("weights", sizes.weights, self.weight_sets())?;
        let ws = self.workspace_len(shape, want_weights)?;
        super::attended::attended(out, weights, want_weights, ws, |out, w, ws| self.forward(shape, inputs, out, w, ws))
    }
}
