//! The x86_64 AVX2+FMA backend over `__m256`.
//!
//! Only reached through [`super::dispatch`], which enters a
//! `#[target_feature(enable = "avx2,fma,f16c")]` function after checking the CPU.

use super::vector::F32Vector;
use core::arch::x86_64::*;

impl F32Vector for __m256 {
    const LANES: usize = 8;
    type Mask = __m256;
    /// 6: 12 accumulators, 2 B vectors and a broadcast are 15 of the 16
    /// registers, the most multiply-adds per load.
    const TILE_ROWS: usize = 6;
    /// 2: with 6 rows, 15 of the 16 registers (above).
    const TILE_VECTORS: usize = 2;
    /// 4 runs: the 16 accumulators take every register, so the loop spills
    /// four of them to the stack (checked in the assembly), but loads are
    /// cheap where memory is the bound. `sdpa-decode` with
    /// `SIMD_ATTENTION_BACKEND=avx2` on one Zen 4 core, 2026-12-01
    /// (`benches/alternate.sh -r 5`, medians of medians): 14.1 ms with 4
    /// runs, 16.6 with 2 and 16.0 before this path (one run per step). On
    /// an AVX2-only core (Zen 3, 2026-12-03, `benches/alternate.sh -r 5`
    /// against 4 runs, chunks of 4096 keys): 2 runs read `sdpa-decode`,
    /// `-bf16`, `-f16`, `-q8` at 0.89×, 0.82×, 0.90×, 0.90× and 8 runs at
    /// 0.74×, 0.76×, 0.86×, 0.87×.
    const DECODE_STREAMS: usize = 4;

    #[inline(always)]
    unsafe fn load(ptr: *const f32) -> Self {
        // SAFETY: the caller guarantees 8 readable values; loadu has no alignment need.
        unsafe { _mm256_loadu_ps(ptr) }
    }
    #[inline(always)]
    unsafe fn store(self, ptr: *mut f32) {
        // SAFETY: the caller guarantees 8 writable values; storeu has no alignment need.
        unsafe { _mm256_storeu_ps(ptr, self) }
    }
    #[inline(always)]
    unsafe fn load_bf16(ptr: *const u16) -> Self {
        // The 16 bytes in both halves, then one byte shuffle puts value i
        // in the high half of lane i (zeros below): the f32 of the same
        // bits. Zero-extending and shifting took two operations, the shift
        // on a single pipe of Zen 1; this ran `sdpa-decode-bf16` 1.27×
        // faster there (`benches/alternate.sh -r 7`, 2026-12-03).
        const HIGH_HALVES: [i8; 32] = {
            let mut control = [-128i8; 32];
            // A shuffle reads within its 128-bit half; each half holds all
            // 16 bytes, so lane i takes bytes 2i and 2i + 1 in either half.
            let mut lane = 0;
            while lane < 8 {
                control[4 * lane + 2] = 2 * lane as i8;
                control[4 * lane + 3] = 2 * lane as i8 + 1;
                lane += 1;
            }
            control
        };
        // SAFETY: the caller guarantees 8 readable values (16 bytes); AVX2 is
        // enabled; HIGH_HALVES holds 32 bytes.
        unsafe {
            let both = _mm256_broadcastsi128_si256(_mm_loadu_si128(ptr.cast()));
            let control = _mm256_loadu_si256(HIGH_HALVES.as_ptr().cast());
            _mm256_castsi256_ps(_mm256_shuffle_epi8(both, control))
        }
    }
    #[inline(always)]
    unsafe fn load_f16(ptr: *const u16) -> Self {
        // SAFETY: the caller guarantees 8 readable values; the entry point enables F16C.
        unsafe { _mm256_cvtph_ps(_mm_loadu_si128(ptr.cast())) }
    }
    #[inline(always)]
    unsafe fn load_i8(ptr: *const i8) -> Self {
        // SAFETY: the caller guarantees 8 readable bytes (one 64-bit load); AVX2 is enabled.
        unsafe { _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(ptr.cast()))) }
    }
    #[inline(always)]
    fn splat(x: f32) -> Self {
        // SAFETY: the CPU has AVX2 and FMA: this type only runs inside dispatch's avx2 entry point.
        unsafe { _mm256_set1_ps(x) }
    }
    #[inline(always)]
    fn add(self, rhs: Self) -> Self {
        // SAFETY: the CPU has AVX2 and FMA: this type only runs inside dispatch's avx2 entry point.
        unsafe { _mm256_add_ps(self, rhs) }
    }
    #[inline(always)]
    fn sub(self, rhs: Self) -> Self {
        // SAFETY: the CPU has AVX2 and FMA: this type only runs inside dispatch's avx2 entry point.
        unsafe { _mm256_sub_ps(self, rhs) }
    }
    #[inline(always)]
    fn mul(self, rhs: Self) -> Self {
        // SAFETY: the CPU has AVX2 and FMA: this type only runs inside dispatch's avx2 entry point.
        unsafe { _mm256_mul_ps(self, rhs) }
    }
    #[inline(always)]
    fn div(self, rhs: Self) -> Self {
        // SAFETY: the CPU has AVX2 and FMA: this type only runs inside dispatch's avx2 entry point.
        unsafe { _mm256_div_ps(self, rhs) }
    }
    #[inline(always)]
    fn recip(self) -> Self {
        // SAFETY: the CPU has AVX2 and FMA: this type only runs inside dispatch's avx2 entry point.
        unsafe {
            let estimate = _mm256_rcp_ps(self);
            // One Newton step: r + r·(1 − x·r) squares the estimate's error.
            _mm256_fmadd_ps(estimate, _mm256_fnmadd_ps(self, estimate, _mm256_set1_ps(1.0)), estimate)
        }
    }
    #[inline(always)]
    fn mul_add(self, b: Self, c: Self) -> Self {
        // SAFETY: the CPU has AVX2 and FMA: this type only runs inside dispatch's avx2 entry point.
        unsafe { _mm256_fmadd_ps(self, b, c) }
    }
    #[inline(always)]
    fn min(self, rhs: Self) -> Self {
        // SAFETY: the CPU has AVX2 and FMA: this type only runs inside dispatch's avx2 entry point.
        unsafe { _mm256_min_ps(self, rhs) }
    }
    #[inline(always)]
    fn max(self, rhs: Self) -> Self {
        // SAFETY: the CPU has AVX2 and FMA: this type only runs inside dispatch's avx2 entry point.
        unsafe { _mm256_max_ps(self, rhs) }
    }
    #[inline(always)]
    fn abs(self) -> Self {
        // SAFETY: the CPU has AVX2 and FMA: this type only runs inside dispatch's avx2 entry point.
        unsafe { _mm256_andnot_ps(_mm256_set1_ps(-0.0), self) }
    }
    #[inline(always)]
    fn copysign(self, sign: Self) -> Self {
        // SAFETY: the CPU has AVX2 and FMA: this type only runs inside dispatch's avx2 entry point.
        unsafe {
            let sign_bit = _mm256_set1_ps(-0.0);
            _mm256_or_ps(_mm256_andnot_ps(sign_bit, self), _mm256_and_ps(sign_bit, sign))
        }
    }
    #[inline(always)]
    fn lt(self, rhs: Self) -> __m256 {
        // SAFETY: the CPU has AVX2 and FMA: this type only runs inside dispatch's avx2 entry point.
        unsafe { _mm256_cmp_ps::<_CMP_LT_OQ>(self, rhs) }
    }
    #[inline(always)]
    fn is_nan(self) -> __m256 {
        // SAFETY: the CPU has AVX2 and FMA: this type only runs inside dispatch's avx2 entry point.
        unsafe { _mm256_cmp_ps::<_CMP_UNORD_Q>(self, self) }
    }
    #[inline(always)]
    fn select(mask: __m256, if_true: Self, if_false: Self) -> Self {
        // SAFETY: the CPU has AVX2 and FMA: this type only runs inside dispatch's avx2 entry point.
        unsafe { _mm256_blendv_ps(if_false, if_true, mask) }
    }
    #[inline(always)]
    fn shl_23(self) -> Self {
        // SAFETY: the CPU has AVX2 and FMA: this type only runs inside dispatch's avx2 entry point.
        unsafe { _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_castps_si256(self))) }
    }
    #[inline(always)]
    fn reduce_add(self) -> f32 {
        // SAFETY: the CPU has AVX2 and FMA: this type only runs inside dispatch's avx2 entry point.
        unsafe {
            let x = _mm_add_ps(_mm256_castps256_ps128(self), _mm256_extractf128_ps::<1>(self));
            let x = _mm_add_ps(x, _mm_movehl_ps(x, x));
            _mm_cvtss_f32(_mm_add_ss(x, _mm_movehdup_ps(x)))
        }
    }
    #[inline(always)]
    fn reduce_max(self) -> f32 {
        // SAFETY: the CPU has AVX2 and FMA: this type only runs inside dispatch's avx2 entry point.
        unsafe {
            let x = _mm_max_ps(_mm256_castps256_ps128(self), _mm256_extractf128_ps::<1>(self));
            let x = _mm_max_ps(x, _mm_movehl_ps(x, x));
            _mm_cvtss_f32(_mm_max_ss(x, _mm_movehdup_ps(x)))
        }
    }
}
