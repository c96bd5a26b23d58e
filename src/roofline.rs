//! The two roofs of the core the engine runs on, measured through the same
//! vector trait and backend as the kernels, so `attn bench` can say what
//! share of the machine each workload reaches.
//!
//! - **FMA peak**: [`FMA_CHAINS`] independent chains of `acc ← acc·a + b`
//!   held in registers. Each chain waits on its own latency only, so with
//!   more chains than latency × FMA ports every port issues each cycle.
//! - **Read bandwidth**: a sum over a caller's buffer (`attn bench` gives
//!   each thread its share of 256 MiB, far past every cache) read as
//!   [`READ_STREAMS`] interleaved streams, one per contiguous part. One
//!   stream leaves the prefetchers idle between misses; several keep more
//!   lines in flight, as the decode kernel's runs of key and value rows do.
//!
//! Both return the work they did, not a rate: a caller running them on
//! several threads at once divides the total by one wall-clock interval
//! around all of them, which stays right when threads share a core.
//!
//! Hidden and outside the semver promise, like [`crate::bench_kernels`].

use crate::simd::{self, F32Vector, WithSimd};

/// Independent multiply-add chains. 2 FMA ports × 4 cycles of latency on
/// Zen 3/4 and on Intel's server cores need 8; 12 leaves room for a longer
/// latency and still fits AVX2's 16 registers with the two constants.
pub const FMA_CHAINS: usize = 12;

/// Streams of the bandwidth sum.
pub const READ_STREAMS: usize = 8;

/// Runs `iterations` rounds of [`FMA_CHAINS`] vector multiply-adds on the
/// active backend, on this thread, and returns the floating-point
/// operations done (2 per lane each).
pub fn fma_flops(iterations: usize) -> f64 {
    simd::dispatch(FmaLoop { iterations })
}

/// Sums `data` as [`READ_STREAMS`] streams on this thread. Returns the
/// bytes read and the sum, which is there so the reads cannot be
/// optimised away.
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
        for _ in 0..self.iterations {
            for acc in &mut acc {
                *acc = acc.mul_add(a, b);
            }
        }
        core::hint::black_box(acc.iter().fold(V::splat(0.0), |s, &x| s.add(x)).reduce_add());
        (2 * V::LANES * FMA_CHAINS) as f64 * self.iterations as f64
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
        let mut i = 0;
        while i < part {
            for (acc, base) in acc.iter_mut().zip(&bases) {
                // SAFETY: i + LANES <= part, and stream s owns data[s·part..(s + 1)·part].
                *acc = acc.add(unsafe { V::load(base.add(i)) });
            }
            i += V::LANES;
        }
        let sum = acc.iter().fold(V::splat(0.0), |s, &x| s.add(x)).reduce_add();
        ((READ_STREAMS * part * 4) as f64, sum)
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
            let (bytes, sum) = with_backend(backend, || read_bytes(&data)).unwrap();
            assert_eq!(sum, (READ_STREAMS * 64) as f32, "{backend:?}");
            assert_eq!(bytes, (READ_STREAMS * 64 * 4) as f64, "{backend:?}");
        }
    }

    /// The FMA loop counts 2 operations per lane, chain and round on every backend.
    #[test]
    fn fma_loop_counts_its_operations() {
        for (backend, lanes) in
            [(Backend::Avx512, 16), (Backend::Avx2, 8), (Backend::Portable, 8), (Backend::Scalar, 1)]
        {
            if backend.is_available() {
                let flop = with_backend(backend, || fma_flops(10_000)).unwrap();
                assert_eq!(flop, (2 * lanes * FMA_CHAINS * 10_000) as f64, "{backend:?}");
            }
        }
    }
}
