//! The allocating convenience form of every operator (`alloc` feature):
//! `attend` sizes the output, the weights and the scratch itself and
//! returns them, for callers who do not manage buffers.

use crate::Error;
use alloc::vec;
use alloc::vec::Vec;

/// An operator's results.
#[derive(Clone, Debug, PartialEq)]
pub struct Attended {
    /// The attention output.
    pub output: Vec<f32>,
    /// The attention weights, when asked for.
    pub weights: Option<Vec<f32>>,
}

/// Allocates `output_len` outputs, `weights_len` weights when `want_weights`,
/// and `workspace_len` scratch, then runs `forward` on them.
pub(crate) fn attended(
    output_len: usize,
    weights_len: usize,
    want_weights: bool,
    workspace_len: usize,
    forward: impl FnOnce(&mut [f32], Option<&mut [f32]>, &mut [f32]) -> Result<(), Error>,
) -> Result<Attended, Error> {
    let mut output = vec![0.0; output_len];
    let mut weights = want_weights.then(|| vec![0.0; weights_len]);
    let mut workspace = vec![0.0; workspace_len];
    forward(&mut output, weights.as_deref_mut(), &mut workspace)?;
    Ok(Attended { output, weights })
}
