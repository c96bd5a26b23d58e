//! The two roofs of the core the engine runs on, measured through the same
//! vector trait and backend as the kernels, so `attn bench` can say what
//! share of the machine each workload reaches.
//!
//! - **FMA peak**: [`FMA_CHAINS`] independent chains of `acc ← acc·a + b`
//!   held in registers. Each chain waits on its own latency only, so with
//!   more chains than latency × FMA ports every port issues each cycle.
//! - **Read bandwidth**: a sum over a caller's buffer (at least 256 MB, far
//!   past every cache) read as [`READ_STREAMS`] interleaved streams, one per
//!   contiguous part. One stream leaves the prefetchers idle between
//!   misses; several keep more lines in flight, which is what a decode
//!   kernel that reads K and V together gets.
//!
//! Hidden and outside the semver promise, like [`crate::bench_kernels`].

use crate::simd::{self, F32Vector, WithSimd};

/// Independent multiply-add chains. 2 FMA ports × 4 cycles of latency on
/// Zen 3/4 and on Intel's server cores need 8; 12 leaves room for a longer
/// latency and still fits AVX2's 16 registers with the two constants.
pub const FMA_CHAINS: usize = 12;

/// Streams of the bandwidth sum.
pub const READ_STREAMS: usize = 8;

/// Floating-point operations per second of `iterations` rounds of
/// [`FMA_CHAINS`] vector multiply-adds (2 per lane each) on the active
/// backend, on this thread.
pub fn fma_flops(iterations: usize) -> f64 {
    simd::dispatch(FmaLoop { iterations })
}

/// Bytes per second read by summing `data` as [`READ_STREAMS`] streams, on
/// this thread. Returns `(rate, sum)`; the sum is there so the reads
/// cannot be optimised away.
pub fn read_bytes(data: &[f32]) -> (f64, f32) {
    simd::dispatch(StreamSum { data })
}

struct FmaLoop {
    iterations: usize,
}

impl WithSimd for FmaLoop {
    type Output = f64;

    #[inline(always)]
    fn run<V: F32Vector>(self) -> f64 {
        // acc ← acc·a + b converges to b/(1 − a) = 1: no overflow, no subnormals.
        let (a, b) = (V::splat(core::hint::black_box(0.999_999)), V::splat(core::hint::black_box(1e-6)));
        let mut acc = [V::splat(0.5); FMA_CHAINS];
        let start = std::time::Instant::now();
        for _ in 0..self.iterations {
            for acc in &mut acc {
                *acc = acc.mul_add(a, b);
            }
        }
        let seconds = start.elapsed().as_secs_f64();
        core::hint::black_box(acc.iter().fold(V::splat(0.0), |s, &x| s.add(x)).reduce_add());
        (2 * V::LANES * FMA_CHAINS * self.iterations) as f64 / seconds
    }
}

struct StreamSum<'a> {
    data: &'a [f32],
}

impl WithSimd for StreamSum<'_> {
    type Output = (f64, f32);

    #[inline(always)]
    fn run<V: F32Vector>(self) -> (f64, f32) {
        // Each stream is a contiguous part, a whole number of vectors long;
        // the few values past the last whole vector of every part are not read.
        let part = self.data.len() / READ_STREAMS / V::LANES * V::LANES;
        let bases: [*const f32; READ_STREAMS] = core::array::from_fn(|s| self.data[s * part..].as_ptr());
        let mut acc = [V::splat(0.0); READ_STREAMS];
        let start = std::time::Instant::now();
        let mut i = 0;
        while i < part {
            for (acc, base) in acc.iter_mut().zip(&bases) {
                // SAFETY: i + LANES <= part, and stream s owns data[s·part..(s + 1)·part].
                *acc = acc.add(unsafe { V::load(base.add(i)) });
            }
            i += V::LANES;
        }
        let seconds = start.elapsed().as_secs_f64();
        let sum = acc.iter().fold(V::splat(0.0), |s, &x| s.add(x)).reduce_add();
        ((READ_STREAMS * part * 4) as f64 / seconds, sum)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simd::{Backend, with_backend};
    use alloc::vec;

    /// The stream sum reads what it says: every whole vector of each part.
    #[test]
    fn stream_sum_adds_every_value_it_reads() {
        for backend in Backend::ALL.into_iter().filter(|b| b.is_available()) {
            let data = vec![1.0f32; READ_STREAMS * 64 + 3];
            let (rate, sum) = with_backend(backend, || read_bytes(&data)).unwrap();
            assert_eq!(sum, (READ_STREAMS * 64) as f32, "{backend:?}");
            assert!(rate > 0.0);
        }
    }

    /// The FMA loop reports a positive, finite rate on every backend.
    #[test]
    fn fma_loop_reports_a_rate() {
        for backend in Backend::ALL.into_iter().filter(|b| b.is_available()) {
            let rate = with_backend(backend, || fma_flops(10_000)).unwrap();
            assert!(rate.is_finite() && rate > 0.0, "{backend:?}: {rate}");
        }
    }
}
