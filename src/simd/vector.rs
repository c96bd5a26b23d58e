//! The `f32` vector trait that every SIMD algorithm in this crate is written
//! against, once.
//!
//! Each backend implements it for one register type (`__m512`, `__m256`,
//! `wide::f32x8`, or a one-lane scalar). The methods are `#[inline(always)]`
//! and carry no `#[target_feature]`: they are inlined into an entry point
//! that does (see [`super::dispatch`]), which is what lets a plain
//! `cargo build` emit AVX2 or AVX-512 code for the generic algorithms.

/// A vector of `LANES` `f32` values.
///
/// NaN rules: [`min`](Self::min) and [`max`](Self::max) may return either
/// operand when one is NaN (x86 returns the second, `wide`'s portable code
/// the non-NaN one). Algorithms that must propagate NaN test
/// [`is_nan`](Self::is_nan) and [`select`](Self::select) explicitly.
pub(crate) trait F32Vector: Copy {
    /// Number of `f32` lanes; at most [`MAX_LANES`].
    const LANES: usize;
    /// The lane mask produced by comparisons.
    type Mask: Copy;

    // The shapes of the kernels, which belong to the register file: each
    // backend records beside its values the measurement that chose them.

    /// Rows of the matmul microkernel's full tile
    /// ([`crate::kernels::matmul_tile`]), which keeps `TILE_ROWS ×
    /// TILE_VECTORS` accumulators, `TILE_VECTORS` B vectors and a broadcast
    /// live. At least 2.
    const TILE_ROWS: usize;
    /// Vectors of C in each row of that tile: 2 or 4. The tile's width,
    /// `TILE_VECTORS · LANES`, divides every packed panel
    /// ([`MAX_TILE_WIDTH`](super::MAX_TILE_WIDTH) wide).
    const TILE_VECTORS: usize;
    /// Runs of key (and value) rows a decode chunk reads in lockstep
    /// (`kernels::streaming_row`): 1, 2, 4 or 8. More streams keep more cache
    /// lines in flight; each needs its own accumulators.
    const DECODE_STREAMS: usize;
    /// Whether this backend may multiply bf16 heads' `Q·Kᵀ` with AVX-512
    /// BF16 (`kernels::bf16_pair_tile`) where the CPU has it and it pays:
    /// only the AVX-512 backend, so a backend forced for testing or
    /// comparison runs its own instructions alone.
    #[cfg(simd_attention_x86_backends)]
    const BF16_DOT: bool = false;
    /// Whether this backend may score the decode's q8 keys with AVX-512
    /// VNNI (`kernels::q8_key_pass`) where the CPU has it and it pays: only
    /// the AVX-512 backend, as for [`BF16_DOT`](Self::BF16_DOT).
    #[cfg(simd_attention_x86_backends)]
    const I8_DOT: bool = false;

    /// Loads `LANES` values from `ptr`, which need not be aligned.
    ///
    /// # Safety
    /// `ptr..ptr + LANES` must be valid for reads.
    unsafe fn load(ptr: *const f32) -> Self;
    /// Stores `LANES` values to `ptr`, which need not be aligned.
    ///
    /// # Safety
    /// `ptr..ptr + LANES` must be valid for writes.
    unsafe fn store(self, ptr: *mut f32);
    fn splat(x: f32) -> Self;

    // Widening loads of the stored types (`crate::storage`). The defaults
    // convert lane by lane through a stack buffer; the x86 backends use
    // one conversion instruction.

    /// Loads `LANES` bf16 bit patterns and widens them exactly (bf16 is
    /// the top half of an f32).
    ///
    /// # Safety
    /// `ptr..ptr + LANES` must be valid for reads.
    #[inline(always)]
    unsafe fn load_bf16(ptr: *const u16) -> Self {
        // SAFETY: the caller guarantees LANES readable values.
        unsafe { widen_lanes(ptr, |bits| f32::from_bits(u32::from(bits) << 16)) }
    }
    /// Loads `LANES` IEEE half-precision bit patterns and widens them
    /// exactly (every f16, subnormals included, is an f32).
    ///
    /// # Safety
    /// `ptr..ptr + LANES` must be valid for reads.
    #[inline(always)]
    unsafe fn load_f16(ptr: *const u16) -> Self {
        // SAFETY: the caller guarantees LANES readable values.
        unsafe { widen_lanes(ptr, |bits| half::f16::from_bits(bits).to_f32()) }
    }
    /// Loads `LANES` int8 values as f32 (exact).
    ///
    /// # Safety
    /// `ptr..ptr + LANES` must be valid for reads.
    #[inline(always)]
    unsafe fn load_i8(ptr: *const i8) -> Self {
        // SAFETY: the caller guarantees LANES readable values.
        unsafe { widen_lanes(ptr, f32::from) }
    }

    fn add(self, rhs: Self) -> Self;
    fn sub(self, rhs: Self) -> Self;
    fn mul(self, rhs: Self) -> Self;
    fn div(self, rhs: Self) -> Self;
    /// `1/self` within 2 ulp, for finite lanes of magnitude in
    /// `[2^-126, 2^126]`. AVX2 and AVX-512 refine the hardware estimate by
    /// one Newton step, which has twice a division's throughput on AVX2;
    /// the other backends divide.
    #[inline(always)]
    fn recip(self) -> Self {
        Self::splat(1.0).div(self)
    }
    /// `self * b + c`: fused (one rounding) on AVX2, AVX-512 and NEON;
    /// rounded twice by the scalar backend and by `wide` on SSE2.
    fn mul_add(self, b: Self, c: Self) -> Self;
    fn min(self, rhs: Self) -> Self;
    fn max(self, rhs: Self) -> Self;
    fn abs(self) -> Self;
    /// The magnitude of `self` with the sign bit of `sign`.
    fn copysign(self, sign: Self) -> Self;

    /// Lanes where `self < rhs` (false for NaN).
    fn lt(self, rhs: Self) -> Self::Mask;
    fn is_nan(self) -> Self::Mask;
    /// `if_true` where `mask` is set, `if_false` elsewhere.
    fn select(mask: Self::Mask, if_true: Self, if_false: Self) -> Self;

    /// Shifts each lane's bit pattern left by 23, as integers.
    ///
    /// Feed it a float whose low mantissa bits hold a biased exponent
    /// `e` in `1..=254` and it returns `2^(e-127)`: the cheap way to build
    /// a power of two in [`crate::math::exp`].
    fn shl_23(self) -> Self;

    /// `(n, r)` with `n` the lanes rounded to integers and `r = self − n`
    /// in `[−½, ½]`: the range reduction of [`crate::math::exp`]'s base-2
    /// form, exact for lanes from −200 up to 2²². Lanes below −200 (−inf
    /// included) give some `n ≤ −200` (AVX-512 clamps them to −200 first)
    /// and an `r` that may be NaN; NaN gives NaN.
    #[inline(always)]
    fn round_split(self) -> (Self, Self) {
        // 1.5·2²³: adding it rounds a float of magnitude < 2²² to an integer.
        let magic = Self::splat(12_582_912.0);
        let n = self.add(magic).sub(magic);
        (n, self.sub(n))
    }
    /// `self · 2ⁿ` for integral lanes `n ≤ 0` (`−inf` included) and finite
    /// `self` in `[½, 2]`, exactly while the result is normal. Below that
    /// (`n < −126`) the result is 0 on every backend but AVX-512, whose
    /// `vscalefps` rounds it into the subnormals; the others build `2ⁿ` from
    /// exponent bits, and give 0 there whatever `self` is (NaN included).
    #[inline(always)]
    fn mul_pow2(self, n: Self) -> Self {
        // n + 1.5·2²³ + 127 holds n's biased exponent in its low mantissa bits.
        let scaled = self.mul(n.add(Self::splat(12_582_912.0 + 127.0)).shl_23());
        Self::select(n.lt(Self::splat(-126.0)), Self::splat(0.0), scaled)
    }

    /// Sum of the lanes, in a fixed pairwise order.
    fn reduce_add(self) -> f32;
    /// Maximum of the lanes (NaN lanes may be skipped).
    fn reduce_max(self) -> f32;
}

/// `LANES` values from `ptr`, each widened by `widen`, through a stack buffer.
///
/// # Safety
/// `ptr..ptr + V::LANES` must be valid for reads.
#[inline(always)]
unsafe fn widen_lanes<V: F32Vector, T: Copy>(ptr: *const T, widen: impl Fn(T) -> f32) -> V {
    let mut buf = [0.0f32; MAX_LANES];
    for (k, b) in buf[..V::LANES].iter_mut().enumerate() {
        // SAFETY: k < LANES, within what the caller guarantees.
        *b = widen(unsafe { *ptr.add(k) });
    }
    // SAFETY: buf holds MAX_LANES >= LANES values.
    unsafe { V::load(buf.as_ptr()) }
}

/// The widest vector any backend has (AVX-512: 16 lanes). Tail buffers are
/// this long.
pub(crate) const MAX_LANES: usize = 16;

/// Loads the first `n < V::LANES` values at `ptr`, filling the other lanes
/// with `fill`. Tails go through a small stack copy so nothing is read past
/// the end of a slice.
///
/// # Safety
/// `ptr..ptr + n` must be valid for reads and `n <= V::LANES`.
#[inline(always)]
pub(crate) unsafe fn load_partial<V: F32Vector>(ptr: *const f32, n: usize, fill: f32) -> V {
    let mut buf = [fill; MAX_LANES];
    // SAFETY: the caller guarantees n readable values; buf holds MAX_LANES >= n.
    unsafe {
        core::ptr::copy_nonoverlapping(ptr, buf.as_mut_ptr(), n);
        V::load(buf.as_ptr())
    }
}

/// Stores the first `n <= V::LANES` lanes of `v` to `ptr`.
///
/// # Safety
/// `ptr..ptr + n` must be valid for writes and `n <= V::LANES`.
#[inline(always)]
pub(crate) unsafe fn store_partial<V: F32Vector>(v: V, ptr: *mut f32, n: usize) {
    let mut buf = [0.0f32; MAX_LANES];
    // SAFETY: buf holds MAX_LANES >= V::LANES values; the caller guarantees n writable values.
    unsafe {
        v.store(buf.as_mut_ptr());
        core::ptr::copy_nonoverlapping(buf.as_ptr(), ptr, n);
    }
}

/// The first `min(x.len(), V::LANES)` values of `x` as a vector, zeros in
/// the other lanes: a whole vector when `x` holds one, else through
/// [`load_partial`].
#[inline(always)]
pub(crate) fn load_slice<V: F32Vector>(x: &[f32]) -> V {
    let n = x.len().min(V::LANES);
    // SAFETY: x holds at least n values; load reads LANES = n of them, load_partial n.
    unsafe { if n == V::LANES { V::load(x.as_ptr()) } else { load_partial(x.as_ptr(), n, 0.0) } }
}

/// Stores the first `min(x.len(), V::LANES)` lanes of `v` into `x`.
#[inline(always)]
pub(crate) fn store_slice<V: F32Vector>(v: V, x: &mut [f32]) {
    let n = x.len().min(V::LANES);
    // SAFETY: x holds at least n values; store writes LANES = n of them, store_partial n.
    unsafe { if n == V::LANES { v.store(x.as_mut_ptr()) } else { store_partial(v, x.as_mut_ptr(), n) } }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::F32Vector;
    use crate::simd::{Backend, WithSimd, dispatch_on};
    use std::vec::Vec;

    /// The largest error of `recip`, in ulps of the exact `1/x`, over `xs`.
    struct RecipError<'a>(&'a [f32]);

    impl WithSimd for RecipError<'_> {
        type Output = f64;

        #[inline(always)]
        fn run<V: F32Vector>(self) -> f64 {
            let mut worst = 0.0f64;
            for chunk in self.0.chunks_exact(V::LANES) {
                let mut got = [0.0f32; super::MAX_LANES];
                // SAFETY: chunk and got hold at least LANES values.
                unsafe { V::load(chunk.as_ptr()).recip().store(got.as_mut_ptr()) };
                for (&x, &r) in chunk.iter().zip(&got) {
                    let exact = 1.0 / f64::from(x);
                    let ulp = f64::from(f32::from_bits((exact as f32).abs().to_bits() + 1) - (exact as f32).abs());
                    worst = worst.max((f64::from(r) - exact).abs() / ulp);
                }
            }
            worst
        }
    }

    /// `recip` keeps its documented 2 ulp on every backend this CPU has,
    /// over signs and the whole documented range of magnitudes.
    #[test]
    fn recip_is_within_two_ulp() {
        let mut xs = Vec::new();
        let mut bits = 1.0f32.to_bits();
        while f32::from_bits(bits) < 2.0 {
            // Every 97th mantissa of one binade, where the estimate's error repeats.
            xs.push(f32::from_bits(bits));
            bits += 97;
        }
        let binade = xs.clone();
        for e in [-126, -60, -1, 1, 20, 60, 125] {
            xs.extend(binade.iter().step_by(13).map(|&x| -x * 2f32.powi(e)));
        }
        xs.truncate(xs.len() / 16 * 16);
        for backend in Backend::ALL.into_iter().filter(|b| b.is_available()) {
            let worst = dispatch_on(backend, RecipError(&xs));
            assert!(worst <= 2.0, "{backend:?}: recip off by {worst} ulp");
        }
    }
}
