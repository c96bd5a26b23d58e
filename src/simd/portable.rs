//! The portable backend over `wide::f32x8`.
//!
//! `wide` picks its instructions when the crate is compiled (NEON on
//! aarch64, simd128 on wasm, SSE2 on a baseline x86_64, AVX2 with
//! `-C target-cpu=native`), so this backend needs no runtime check.

use super::vector::F32Vector;
use wide::f32x8;

impl F32Vector for f32x8 {
    const LANES: usize = 8;
    type Mask = f32x8;
    /// As AVX2 (`wide::f32x8` is two NEON or SSE registers a vector, so
    /// this is a judgment, not a measurement).
    const TILE_ROWS: usize = 6;
    /// As AVX2, for the same reason.
    const TILE_VECTORS: usize = 2;
    /// One stream: unmeasured on the targets this backend is for.
    const DECODE_STREAMS: usize = 1;

    #[inline(always)]
    unsafe fn load(ptr: *const f32) -> Self {
        // SAFETY: the caller guarantees 8 readable values at ptr.
        f32x8::new(unsafe { ptr.cast::<[f32; 8]>().read_unaligned() })
    }
    #[inline(always)]
    unsafe fn store(self, ptr: *mut f32) {
        // SAFETY: the caller guarantees 8 writable values at ptr.
        unsafe { ptr.cast::<[f32; 8]>().write_unaligned(self.to_array()) }
    }
    #[inline(always)]
    fn splat(x: f32) -> Self {
        f32x8::splat(x)
    }
    #[inline(always)]
    fn add(self, rhs: Self) -> Self {
        self + rhs
    }
    #[inline(always)]
    fn sub(self, rhs: Self) -> Self {
        self - rhs
    }
    #[inline(always)]
    fn mul(self, rhs: Self) -> Self {
        self * rhs
    }
    #[inline(always)]
    fn div(self, rhs: Self) -> Self {
        self / rhs
    }
    #[inline(always)]
    fn mul_add(self, b: Self, c: Self) -> Self {
        f32x8::mul_add(self, b, c)
    }
    #[inline(always)]
    fn min(self, rhs: Self) -> Self {
        self.fast_min(rhs)
    }
    #[inline(always)]
    fn max(self, rhs: Self) -> Self {
        self.fast_max(rhs)
    }
    #[inline(always)]
    fn abs(self) -> Self {
        f32x8::abs(self)
    }
    #[inline(always)]
    fn copysign(self, sign: Self) -> Self {
        f32x8::copysign(self, sign)
    }
    #[inline(always)]
    fn lt(self, rhs: Self) -> f32x8 {
        self.simd_lt(rhs)
    }
    #[inline(always)]
    fn is_nan(self) -> f32x8 {
        f32x8::is_nan(self)
    }
    #[inline(always)]
    fn select(mask: f32x8, if_true: Self, if_false: Self) -> Self {
        mask.select(if_true, if_false)
    }
    #[inline(always)]
    fn shl_23(self) -> Self {
        f32x8::from_bits(self.to_bits() << 23)
    }
    #[inline(always)]
    fn reduce_add(self) -> f32 {
        let a = self.to_array();
        ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]))
    }
    #[inline(always)]
    fn reduce_max(self) -> f32 {
        let a = self.to_array();
        let m = |x: f32, y: f32| if x > y { x } else { y };
        m(m(m(a[0], a[4]), m(a[2], a[6])), m(m(a[1], a[5]), m(a[3], a[7])))
    }
}
