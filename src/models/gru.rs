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
//! Both products are GEMMs over the whole batch; σ is computed as
//! `½ + ½·tanh(x/2)` so the gates reuse the vector tanh.

use super::dense::{Weight, affine};
use crate::error::{Error, checked_mul, expect_len, take};
use crate::vmath;

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
        // gi becomes [r | z | n] per row, computed in place.
        for (gi, gh) in gi.chunks_exact_mut(3 * hidden).zip(gh.chunks_exact(3 * hidden)) {
            let (ri, rest) = gi.split_at_mut(hidden);
            let (zi, ni) = rest.split_at_mut(hidden);
            let (rh, rest) = gh.split_at(hidden);
            let (zh, nh) = rest.split_at(hidden);
            sigmoid_of_sum(ri, rh);
            sigmoid_of_sum(zi, zh);
            for ((n, &r), &nh) in ni.iter_mut().zip(ri.iter()).zip(nh) {
                *n += r * nh;
            }
            vmath::tanh_in_place(ni);
        }
        for (b, h_row) in h.chunks_exact_mut(hidden.max(1)).take(batch).enumerate() {
            let g = &gi[b * 3 * hidden..(b + 1) * 3 * hidden];
            let (z, n) = (&g[hidden..2 * hidden], &g[2 * hidden..]);
            for ((h, &z), &n) in h_row.iter_mut().zip(z).zip(n) {
                *h = (1.0 - z) * n + z * *h;
            }
        }
        Ok(())
    }
}

/// `a ← σ(a + b)`, as `½ + ½·tanh((a + b)/2)`.
fn sigmoid_of_sum(a: &mut [f32], b: &[f32]) {
    for (a, &b) in a.iter_mut().zip(b) {
        *a = 0.5 * (*a + b);
    }
    vmath::tanh_in_place(a);
    for a in a.iter_mut() {
        *a = 0.5 + 0.5 * *a;
    }
}
