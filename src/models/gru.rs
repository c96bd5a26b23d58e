//! One layer of PyTorch's `nn.GRU`, one time step at a time, gate order
//! r, z, n, with both bias vectors:
//!
//! ```text
//! r  = σ(W_ir x + b_ir + W_hr h + b_hr)
//! z  = σ(W_iz x + b_iz + W_hz h + b_hz)
//! n  = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))
//! h' = (1 − z) ⊙ n + z ⊙ h
//! ```
//!
//! Both products are GEMMs over the whole batch; σ is the vector sigmoid
//! (one exponential and one division, where `½ + ½·tanh(x/2)` cost a whole
//! tanh and lost the bits of small gates: `seq2seq-token-b64` 1.11× and
//! `-b1` 1.04× on one Zen 1 core, `benches/alternate.sh -r 7`,
//! 2026-12-03), and the gates and the new state of every row are computed
//! in one entry into the backend.

use super::dense::{Weight, affine};
use crate::error::{Error, checked_mul, expect_len, take};
use crate::math::sigmoid::sigmoid;
use crate::math::tanh::tanh;
use crate::simd::vector::{load_slice, store_slice};
use crate::simd::{self, F32Vector, WithSimd};

/// One GRU layer's parameters, borrowed: `weight_ih` `(3H, input)`,
/// `weight_hh` `(3H, H)`, `bias_ih` and `bias_hh` `(3H,)`.
#[derive(Clone, Copy, Debug)]
pub struct GruLayer<'p> {
    weight_ih: Weight<'p>,
    weight_hh: Weight<'p>,
    bias_ih: &'p [f32],
    bias_hh: &'p [f32],
    input: usize,
    hidden: usize,
}

impl<'p> GruLayer<'p> {
    /// Wraps the four tensors of layer `l` (`weight_ih_l{l}`, …), checking
    /// shapes. The weights come in either layout: [`Weight::Rows`] is
    /// PyTorch's; [`Weight::Columns`] (transposed once with
    /// [`transpose`](super::transpose)) makes each step's products read them
    /// in place, which is what a decoder loop of few rows wants.
    pub fn new(
        weight_ih: Weight<'p>,
        weight_hh: Weight<'p>,
        bias_ih: &'p [f32],
        bias_hh: &'p [f32],
        input: usize,
        hidden: usize,
    ) -> Result<Self, Error> {
        let gates = checked_mul("hidden", 3, hidden)?;
        expect_len("weight_ih", checked_mul("weight_ih", gates, input)?, weight_ih.len())?;
        expect_len("weight_hh", checked_mul("weight_hh", gates, hidden)?, weight_hh.len())?;
        expect_len("bias_ih", gates, bias_ih.len())?;
        expect_len("bias_hh", gates, bias_hh.len())?;
        Ok(GruLayer { weight_ih, weight_hh, bias_ih, bias_hh, input, hidden })
    }

    /// Input width.
    pub fn input(&self) -> usize {
        self.input
    }

    /// Hidden width `H`.
    pub fn hidden(&self) -> usize {
        self.hidden
    }

    /// Scratch [`step`](Self::step) needs for `batch` rows.
    pub fn workspace_len(&self, batch: usize) -> Result<usize, Error> {
        checked_mul("workspace", checked_mul("workspace", batch, self.hidden)?, 6)
    }

    /// Advances `h` `(batch, H)` by one step with input `x` `(batch, input)`.
    pub fn step(&self, batch: usize, x: &[f32], h: &mut [f32], workspace: &mut [f32]) -> Result<(), Error> {
        let hidden = self.hidden;
        let rows = checked_mul("h", batch, hidden)?;
        expect_len("x", checked_mul("x", batch, self.input)?, x.len())?;
        expect_len("h", rows, h.len())?;
        let needed = self.workspace_len(batch)?;
        let ws = take("workspace", workspace, needed)?;
        let (gi, gh) = ws.split_at_mut(3 * rows);
        affine(x, batch, self.input, self.weight_ih, self.bias_ih, gi)?;
        affine(h, batch, hidden, self.weight_hh, self.bias_hh, gh)?;
        simd::dispatch(GateStep { hidden, gi, gh: &gh[..3 * rows], h });
        Ok(())
    }
}

/// The gates and the new state of every row, `gi = x·W_ihᵀ + b_ih` and
/// `gh = h·W_hhᵀ + b_hh` given, in one entry into the backend (a step of a
/// 64-row batch used to enter it three times a row, for 64 values each).
/// Each value takes the operations the scalar formulas spell, unfused, so
/// a row's bits do not depend on its lane or on the batch.
struct GateStep<'a> {
    hidden: usize,
    gi: &'a [f32],
    gh: &'a [f32],
    h: &'a mut [f32],
}

impl WithSimd for GateStep<'_> {
    type Output = ();

    #[inline(always)]
    fn run<V: F32Vector>(self) {
        let hidden = self.hidden;
        if hidden == 0 {
            return;
        }
        let rows = self.gi.chunks_exact(3 * hidden).zip(self.gh.chunks_exact(3 * hidden));
        for ((gi, gh), h) in rows.zip(self.h.chunks_exact_mut(hidden)) {
            for c in (0..hidden).step_by(V::LANES) {
                let cols = c..c + (hidden - c).min(V::LANES);
                // Plain calls, no closures: a closure may stay out of line,
                // outside the backend's target features.
                let (r, z) = (sigmoid_of_sum::<V>(gi, gh, 0, &cols), sigmoid_of_sum::<V>(gi, gh, hidden, &cols));
                let n_gi = load_slice::<V>(&gi[2 * hidden + cols.start..2 * hidden + cols.end]);
                let n_gh = load_slice::<V>(&gh[2 * hidden + cols.start..2 * hidden + cols.end]);
                let candidate = tanh(n_gi.add(r.mul(n_gh)));
                let h = &mut h[cols];
                let new = V::splat(1.0).sub(z).mul(candidate).add(z.mul(load_slice::<V>(h)));
                store_slice(new, h);
            }
        }
    }
}

/// `σ(gi[at + cols] + gh[at + cols])`.
#[inline(always)]
fn sigmoid_of_sum<V: F32Vector>(gi: &[f32], gh: &[f32], at: usize, cols: &core::ops::Range<usize>) -> V {
    let (a, b) =
        (load_slice::<V>(&gi[at + cols.start..at + cols.end]), load_slice::<V>(&gh[at + cols.start..at + cols.end]));
    sigmoid(a.add(b))
}
