//! Nadaraya–Watson kernel regression with a learned Gaussian width, as in
//! d2l's `NWKernelRegression`:
//!
//! `weights[i, j] = softmax_j(−((q_i − k_ij)·w)² / 2)`,
//! `output[i] = Σ_j weights[i, j] · v_ij`.
//!
//! Queries are `(n,)`; keys and values are `(n, m)`: each query has its own
//! `m` training points, as in d2l's training loop.

use crate::error::{Error, checked_mul, expect_len};
use crate::kernels::softmax::softmax_row;
use crate::simd::{self, F32Vector, WithSimd};

/// The Gaussian kernel's width parameter `w`.
#[derive(Clone, Copy, Debug)]
pub struct NadarayaWatson {
    /// Multiplies the distance before the Gaussian.
    pub w: f32,
}

impl NadarayaWatson {
    /// Writes `out` `(n,)` and `weights` `(n, m)` (the weights double as
    /// the scratch, so they are always produced).
    pub fn forward(
        &self,
        queries: &[f32],
        keys: &[f32],
        values: &[f32],
        out: &mut [f32],
        weights: &mut [f32],
    ) -> Result<(), Error> {
        let n = queries.len();
        let m = keys.len().checked_div(n).unwrap_or(0);
        let points = checked_mul("keys", n, m)?;
        expect_len("keys", points, keys.len())?;
        expect_len("values", points, values.len())?;
        expect_len("out", n, out.len())?;
        expect_len("weights", points, weights.len())?;
        if n == 0 || m == 0 {
            out.fill(0.0);
            return Ok(());
        }
        simd::dispatch(KernelRows { w: self.w, m, queries, keys, values, out, weights });
        Ok(())
    }

    /// [`forward`](Self::forward) with buffers it allocates itself; the
    /// weights are always returned.
    #[cfg(feature = "alloc")]
    pub fn attend(&self, queries: &[f32], keys: &[f32], values: &[f32]) -> Result<super::Attended, Error> {
        super::attended::attended(queries.len(), keys.len(), true, 0, |out, w, _| {
            self.forward(queries, keys, values, out, w.unwrap_or(&mut []))
        })
    }
}

struct KernelRows<'a> {
    w: f32,
    m: usize,
    queries: &'a [f32],
    keys: &'a [f32],
    values: &'a [f32],
    out: &'a mut [f32],
    weights: &'a mut [f32],
}

impl WithSimd for KernelRows<'_> {
    type Output = ();

    #[inline(always)]
    fn run<V: F32Vector>(self) {
        let rows = self.weights.chunks_exact_mut(self.m).zip(self.keys.chunks_exact(self.m));
        for (i, (row, keys)) in rows.enumerate() {
            let q = self.queries[i];
            for (s, &k) in row.iter_mut().zip(keys) {
                let d = (q - k) * self.w;
                *s = -0.5 * d * d;
            }
            softmax_row::<V>(row);
            let values = &self.values[i * self.m..(i + 1) * self.m];
            self.out[i] = row.iter().zip(values).map(|(&w, &v)| w * v).sum();
        }
    }
}
