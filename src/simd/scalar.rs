//! The one-lane backend: plain `f32` arithmetic through the vector trait.
//!
//! Where the target has a vector unit it is never chosen by detection: it
//! exists so that every generic algorithm can be run lane by lane
//! (`SIMD_ATTENTION_BACKEND=scalar`), a second opinion in the
//! backend-against-backend tests. Where it has none (a Cortex-M4F, say),
//! it is the backend that runs.
//!
//! Its `mul_add` rounds twice, `a·b` then `+ c`, as `wide` does on SSE2
//! without FMA, which the same accuracy tests hold to. A fused one in
//! no_std means libm's `fmaf`, a soft-float f64 routine of a hundred or
//! more instructions on a Cortex-M4F; the FPU's own `vfma.f32` is out of
//! reach on stable Rust (its target feature and register class are
//! unstable for Arm).

use super::vector::F32Vector;

/// One `f32` lane.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Scalar(f32);

impl F32Vector for Scalar {
    const LANES: usize = 1;
    type Mask = bool;
    /// One lane: the shape only has to be valid, never fast.
    const TILE_ROWS: usize = 4;
    /// 2: a 2-value panel, so a build with no vector unit packs (and keeps
    /// on its stack) no wider panels than this backend uses.
    const TILE_VECTORS: usize = 2;
    const DECODE_STREAMS: usize = 1;

    #[inline(always)]
    unsafe fn load(ptr: *const f32) -> Self {
        // SAFETY: the caller guarantees one readable value at ptr.
        Scalar(unsafe { ptr.read_unaligned() })
    }
    #[inline(always)]
    unsafe fn store(self, ptr: *mut f32) {
        // SAFETY: the caller guarantees one writable value at ptr.
        unsafe { ptr.write_unaligned(self.0) }
    }
    #[inline(always)]
    fn splat(x: f32) -> Self {
        Scalar(x)
    }
    #[inline(always)]
    fn add(self, rhs: Self) -> Self {
        Scalar(self.0 + rhs.0)
    }
    #[inline(always)]
    fn sub(self, rhs: Self) -> Self {
        Scalar(self.0 - rhs.0)
    }
    #[inline(always)]
    fn mul(self, rhs: Self) -> Self {
        Scalar(self.0 * rhs.0)
    }
    #[inline(always)]
    fn div(self, rhs: Self) -> Self {
        Scalar(self.0 / rhs.0)
    }
    #[inline(always)]
    fn mul_add(self, b: Self, c: Self) -> Self {
        Scalar(self.0 * b.0 + c.0)
    }
    #[inline(always)]
    fn min(self, rhs: Self) -> Self {
        Scalar(if self.0 < rhs.0 { self.0 } else { rhs.0 })
    }
    #[inline(always)]
    fn max(self, rhs: Self) -> Self {
        Scalar(if self.0 > rhs.0 { self.0 } else { rhs.0 })
    }
    #[inline(always)]
    fn abs(self) -> Self {
        Scalar(f32::from_bits(self.0.to_bits() & 0x7fff_ffff))
    }
    #[inline(always)]
    fn copysign(self, sign: Self) -> Self {
        Scalar(f32::from_bits((self.0.to_bits() & 0x7fff_ffff) | (sign.0.to_bits() & 0x8000_0000)))
    }
    #[inline(always)]
    fn lt(self, rhs: Self) -> bool {
        self.0 < rhs.0
    }
    #[inline(always)]
    fn is_nan(self) -> bool {
        self.0.is_nan()
    }
    #[inline(always)]
    fn select(mask: bool, if_true: Self, if_false: Self) -> Self {
        if mask { if_true } else { if_false }
    }
    #[inline(always)]
    fn shl_23(self) -> Self {
        Scalar(f32::from_bits(self.0.to_bits() << 23))
    }
    #[inline(always)]
    fn reduce_add(self) -> f32 {
        self.0
    }
    #[inline(always)]
    fn reduce_max(self) -> f32 {
        self.0
    }
}
