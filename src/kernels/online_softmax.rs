//! One step of the online (streaming) softmax behind FlashAttention.
//!
//! Scores come in base-2 units (`log2 e` times the natural ones, as the
//! flash loop scales them), so every `e^{…}` below is computed as `2^{…}`.
//!
//! A query row sees its keys one tile at a time. It keeps the running
//! maximum `m`, the running sum `l = Σ e^{s − m}` and the unnormalised
//! output `o = Σ e^{s − m} v`. When a tile raises the maximum to `m'`, the
//! old sum and output are rescaled by `e^{m − m'}`; the tile's scores are
//! replaced in place by `p = e^{s − m'}`, ready for `o += p · V_tile`. At
//! the end `o / l` is the softmax-weighted output, and `l = 0` marks a row
//! that saw no key at all (fully masked: PyTorch gives zeros).

use crate::math::exp::exp2_nonpositive;
use crate::math::reduce;
use crate::simd::vector::{MAX_LANES, load_partial, store_partial};
use crate::simd::{F32Vector, WithSimd};

/// Updates `rows` query rows with one tile of scores.
pub(crate) struct OnlineSoftmaxTile<'a> {
    /// `rows × cols` scores (row stride `stride`), replaced by `p`.
    pub scores: &'a mut [f32],
    pub stride: usize,
    pub cols: usize,
    /// Running maximum and sum per row.
    pub max: &'a mut [f32],
    pub sum: &'a mut [f32],
    /// Unnormalised outputs, `rows × out_cols` with row stride `out_stride`.
    pub out: &'a mut [f32],
    pub out_stride: usize,
    pub out_cols: usize,
}

impl WithSimd for OnlineSoftmaxTile<'_> {
    type Output = ();

    #[inline(always)]
    fn run<V: F32Vector>(self) {
        let rows = self.max.len();
        let mut r0 = 0;
        while r0 < rows {
            // A vector of rows at a time: their new maxima, then all their
            // rescale factors `2^{m − m'}` in one vector exponential, where
            // one `libm::exp2f` call a row took 2.6 % of `sdpa-512-bf16`'s
            // samples (`perf record -e cpu-clock`, one Zen 4 core,
            // 2026-12-05). Against those calls
            // (`benches/alternate.sh -r 5`): `sdpa-512` 1.008×,
            // `sdpa-causal-2048` 1.012×, `sdpa-512-bf16` 1.025×.
            let n = (rows - r0).min(V::LANES);
            let mut new_max = [0.0f32; MAX_LANES];
            for (k, new_max) in new_max[..n].iter_mut().enumerate() {
                let i = r0 + k;
                let tile_max = reduce::max::<V>(&self.scores[i * self.stride..i * self.stride + self.cols]);
                *new_max = if tile_max > self.max[i] || tile_max.is_nan() { tile_max } else { self.max[i] };
            }
            let mut correction = [0.0f32; MAX_LANES];
            // SAFETY: n <= LANES values from r0 on in max, and in new_max and
            // correction (MAX_LANES each). `m − m'` is at most 0, or NaN, or
            // -inf − -inf = NaN for a row still fully masked, which is skipped.
            unsafe {
                let old = load_partial::<V>(self.max[r0..].as_ptr(), n, 0.0);
                let new = load_partial::<V>(new_max.as_ptr(), n, 0.0);
                store_partial(exp2_nonpositive(old.sub(new)), correction.as_mut_ptr(), n);
            }
            for k in 0..n {
                let (i, new_max, correction) = (r0 + k, new_max[k], correction[k]);
                let s = &mut self.scores[i * self.stride..i * self.stride + self.cols];
                if new_max == f32::NEG_INFINITY {
                    // Every key so far is masked: nothing to add.
                    s.fill(0.0);
                    continue;
                }
                // Skipping the rescale factor when the maximum stays (1,
                // exactly) was no faster on one Zen 4 core (2026-12-04,
                // `benches/alternate.sh -r 5`: `sdpa-512` 0.98×,
                // `sdpa-512-bf16` 0.99×). Nor was keeping the sum as a vector
                // of lane sums, reduced once a row is done (2026-12-05, `-r
                // 7`: `sdpa-512` 0.994×, `sdpa-causal-2048` 0.996×).
                let tile_sum = reduce::exp2_shifted_sum::<V>(s, new_max);
                self.sum[i] = self.sum[i] * correction + tile_sum;
                self.max[i] = new_max;
                if correction != 1.0 {
                    let o = &mut self.out[i * self.out_stride..i * self.out_stride + self.out_cols];
                    reduce::scale::<V>(o, correction);
                }
            }
            r0 += n;
        }
    }
}
