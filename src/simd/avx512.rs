//! The x86_64 AVX-512F backend over `__m512`.
//!
//! Only reached through [`super::dispatch`], which enters a
//! `#[target_feature(enable = "avx512f,avx2,fma,f16c")]` function after checking
//! the CPU. Only AVX-512F instructions are used, so every AVX-512 part
//! qualifies.

use super::vector::F32Vector;
use core::arch::x86_64::*;

impl F32Vector for __m512 {
    const LANES: usize = 16;
    type Mask = __mmask16;
    /// 6: 12 of 32 registers. Zen 4 issues one 512-bit FMA a cycle, and 6
    /// rows already make the tile FMA-bound (12 FMAs to 8 loads a step).
    /// Measured on one Zen 4 core, 2026-12-01 (`benches/alternate.sh -r 3
    /// sdpa-512,add-batch` over builds with 6, 8 and 12 rows, medians of
    /// medians in ms): sdpa-512 25.7 / 26.8 / 54.2, add-batch 13.7 / 13.9
    /// / 17.8. On a two-port Intel Xeon (2026-12-01, the same script, 3
    /// rounds, builds of d812d0a) 8 rows gained 5.6 % on sdpa-512 (19.04 →
    /// 18.02), 4.0 % on add-batch and 5.1 % on sdpa-causal-2048, and 12
    /// rows 6 %, 16 % slower and 6 %: a gain there about the size of the
    /// loss on Zen 4, so 6 stays.
    const TILE_ROWS: usize = 6;
    /// 4: 6 × 4 = 24 accumulators, 4 B vectors and a broadcast are 29 of
    /// the 32 registers, and a step does 24 FMAs for 10 loads, where 6 × 2
    /// did 12 for 8 (the rows were measured with 2 vectors, above). On one
    /// two-port Xeon core, 2026-12-02 (`benches/alternate.sh -r 3
    /// sdpa-512,add-batch,sdpa-causal-2048`, medians of medians in ms, 2
    /// vectors then 4): sdpa-512 31.1 → 27.5, sdpa-causal-2048 63.9 → 56.9,
    /// add-batch 14.3 / 14.9 (its projections are mostly matrixmultiply's).
    /// On one Zen 4 core, 2026-12-04 (the same script, `-r 5`, 2 vectors
    /// against 4): sdpa-512 0.98×, sdpa-causal-2048 1.00×, add-batch 0.97×,
    /// add-long 1.00×, sdpa-512-bf16 1.00×: no loss there.
    const TILE_VECTORS: usize = 4;
    /// 4 runs (of 2 accumulators each). A core's read rate is bound by the
    /// cache lines it keeps in flight, and the widened types spend more
    /// instructions per line, so the run count matters most to them. On
    /// one Zen 4 core, 2026-12-04 (`benches/alternate.sh -r 5
    /// sdpa-decode,sdpa-decode-bf16,sdpa-decode-f16,sdpa-decode-q8`,
    /// 4096-key chunks, no hints; medians of medians in ms): 8 runs 11.8 /
    /// 6.01 / 6.94 / 5.00, 4 runs 11.8 / 5.09 / 5.14 / 3.98, 2 runs 11.0 /
    /// 5.43 / 5.75 / 4.47. On the Xeon 8 runs had been at most 4 % ahead
    /// of 4, so 4 serves both AVX-512 cores. Earlier, on one two-port Xeon core,
    /// 2026-12-01, `benches/alternate.sh -r 3
    /// sdpa-decode,sdpa-decode-bf16,sdpa-decode-q8` (ms): 4 runs of 4
    /// accumulators 17.12 / 10.38 / 7.24; 8 runs of 2 17.20 / 10.01 / 6.47;
    /// 4 of 2 17.03 / 10.24 / 6.74; 8 of 4 (spilling) 17.47 / 10.13 / 7.09;
    /// and 2 runs of 4 5 %, 15 % and 20 % slower than 4. On Zen 4, 4 runs
    /// read 85–92 % of the roof in quiet spells against 1.06–1.11× less
    /// with one run (runs of 512-key chunks; the chunks are now 4096 keys,
    /// `streaming_row::CHUNK_KEYS`).
    const DECODE_STREAMS: usize = 4;
    const BF16_DOT: bool = true;
    const I8_DOT: bool = true;

    #[inline(always)]
    unsafe fn load(ptr: *const f32) -> Self {
        // SAFETY: the caller guarantees 16 readable values; loadu has no alignment need.
        unsafe { _mm512_loadu_ps(ptr) }
    }
    #[inline(always)]
    unsafe fn store(self, ptr: *mut f32) {
        // SAFETY: the caller guarantees 16 writable values; storeu has no alignment need.
        unsafe { _mm512_storeu_ps(ptr, self) }
    }
    #[inline(always)]
    unsafe fn load_bf16(ptr: *const u16) -> Self {
        // SAFETY: the caller guarantees 16 readable values (32 bytes); AVX-512F is enabled.
        unsafe {
            let bits = _mm512_cvtepu16_epi32(_mm256_loadu_si256(ptr.cast()));
            _mm512_castsi512_ps(_mm512_slli_epi32::<16>(bits))
        }
    }
    #[inline(always)]
    unsafe fn load_f16(ptr: *const u16) -> Self {
        // SAFETY: the caller guarantees 16 readable values; vcvtph2ps on zmm is AVX-512F.
        unsafe { _mm512_cvtph_ps(_mm256_loadu_si256(ptr.cast())) }
    }
    #[inline(always)]
    unsafe fn load_i8(ptr: *const i8) -> Self {
        // SAFETY: the caller guarantees 16 readable bytes; AVX-512F is enabled.
        unsafe { _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(ptr.cast()))) }
    }
    #[inline(always)]
    fn splat(x: f32) -> Self {
        // SAFETY: the CPU has AVX-512F: this type only runs inside dispatch's avx512 entry point.
        unsafe { _mm512_set1_ps(x) }
    }
    #[inline(always)]
    fn add(self, rhs: Self) -> Self {
        // SAFETY: the CPU has AVX-512F: this type only runs inside dispatch's avx512 entry point.
        unsafe { _mm512_add_ps(self, rhs) }
    }
    #[inline(always)]
    fn sub(self, rhs: Self) -> Self {
        // SAFETY: the CPU has AVX-512F: this type only runs inside dispatch's avx512 entry point.
        unsafe { _mm512_sub_ps(self, rhs) }
    }
    #[inline(always)]
    fn mul(self, rhs: Self) -> Self {
        // SAFETY: the CPU has AVX-512F: this type only runs inside dispatch's avx512 entry point.
        unsafe { _mm512_mul_ps(self, rhs) }
    }
    #[inline(always)]
    fn div(self, rhs: Self) -> Self {
        // SAFETY: the CPU has AVX-512F: this type only runs inside dispatch's avx512 entry point.
        unsafe { _mm512_div_ps(self, rhs) }
    }
    #[inline(always)]
    fn recip(self) -> Self {
        // SAFETY: the CPU has AVX-512F: this type only runs inside dispatch's avx512 entry point.
        unsafe {
            let estimate = _mm512_rcp14_ps(self);
            // One Newton step: r + r·(1 − x·r) squares the estimate's error.
            _mm512_fmadd_ps(estimate, _mm512_fnmadd_ps(self, estimate, _mm512_set1_ps(1.0)), estimate)
        }
    }
    #[inline(always)]
    fn round_split(self) -> (Self, Self) {
        // SAFETY: the CPU has AVX-512F: this type only runs inside dispatch's avx512 entry point.
        unsafe {
            // AVX-512F alone: `vrndscaleps` rounds, but leaves −inf − (−inf) =
            // NaN in `r`, so lanes are first clamped to −200 (far below any
            // normal 2^x; NaN passes, `maxps` returning its second operand).
            // DQ's `vreduceps` would save this `maxps`; on one Zen 4 core
            // (2026-12-04, `benches/alternate.sh -r 5`) the two ran
            // `sdpa-causal-2048` within 0.4 % of each other.
            let x = _mm512_max_ps(_mm512_set1_ps(-200.0), self);
            let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(x);
            (n, _mm512_sub_ps(x, n))
        }
    }
    #[inline(always)]
    fn mul_pow2(self, n: Self) -> Self {
        // SAFETY: the CPU has AVX-512F: this type only runs inside dispatch's avx512 entry point.
        unsafe { _mm512_scalef_ps(self, n) }
    }
    #[inline(always)]
    fn mul_add(self, b: Self, c: Self) -> Self {
        // SAFETY: the CPU has AVX-512F: this type only runs inside dispatch's avx512 entry point.
        unsafe { _mm512_fmadd_ps(self, b, c) }
    }
    #[inline(always)]
    fn min(self, rhs: Self) -> Self {
        // SAFETY: the CPU has AVX-512F: this type only runs inside dispatch's avx512 entry point.
        unsafe { _mm512_min_ps(self, rhs) }
    }
    #[inline(always)]
    fn max(self, rhs: Self) -> Self {
        // SAFETY: the CPU has AVX-512F: this type only runs inside dispatch's avx512 entry point.
        unsafe { _mm512_max_ps(self, rhs) }
    }
    #[inline(always)]
    fn abs(self) -> Self {
        // SAFETY: the CPU has AVX-512F: this type only runs inside dispatch's avx512 entry point.
        unsafe { _mm512_abs_ps(self) }
    }
    #[inline(always)]
    fn copysign(self, sign: Self) -> Self {
        // SAFETY: the CPU has AVX-512F: this type only runs inside dispatch's avx512 entry point.
        unsafe {
            let sign_bit = _mm512_set1_epi32(i32::MIN);
            let magnitude = _mm512_andnot_si512(sign_bit, _mm512_castps_si512(self));
            let sign = _mm512_and_si512(sign_bit, _mm512_castps_si512(sign));
            _mm512_castsi512_ps(_mm512_or_si512(magnitude, sign))
        }
    }
    #[inline(always)]
    fn lt(self, rhs: Self) -> __mmask16 {
        // SAFETY: the CPU has AVX-512F: this type only runs inside dispatch's avx512 entry point.
        unsafe { _mm512_cmp_ps_mask::<_CMP_LT_OQ>(self, rhs) }
    }
    #[inline(always)]
    fn is_nan(self) -> __mmask16 {
        // SAFETY: the CPU has AVX-512F: this type only runs inside dispatch's avx512 entry point.
        unsafe { _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(self, self) }
    }
    #[inline(always)]
    fn select(mask: __mmask16, if_true: Self, if_false: Self) -> Self {
        // SAFETY: the CPU has AVX-512F: this type only runs inside dispatch's avx512 entry point.
        unsafe { _mm512_mask_blend_ps(mask, if_false, if_true) }
    }
    #[inline(always)]
    fn shl_23(self) -> Self {
        // SAFETY: the CPU has AVX-512F: this type only runs inside dispatch's avx512 entry point.
        unsafe { _mm512_castsi512_ps(_mm512_slli_epi32::<23>(_mm512_castps_si512(self))) }
    }
    #[inline(always)]
    fn reduce_add(self) -> f32 {
        // Halve the width each step (16 → 8 → 4 → 2 → 1): the same pairwise tree
        // the narrower backends use on their lanes.
        // SAFETY: the CPU has AVX-512F: this type only runs inside dispatch's avx512 entry point.
        unsafe {
            let lo = _mm512_castps512_ps256(self);
            let hi = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(self)));
            let x = _mm256_add_ps(lo, hi);
            let x = _mm_add_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps::<1>(x));
            let x = _mm_add_ps(x, _mm_movehl_ps(x, x));
            _mm_cvtss_f32(_mm_add_ss(x, _mm_movehdup_ps(x)))
        }
    }
    #[inline(always)]
    fn reduce_max(self) -> f32 {
        // SAFETY: the CPU has AVX-512F: this type only runs inside dispatch's avx512 entry point.
        unsafe {
            let lo = _mm512_castps512_ps256(self);
            let hi = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(self)));
            let x = _mm256_max_ps(lo, hi);
            let x = _mm_max_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps::<1>(x));
            let x = _mm_max_ps(x, _mm_movehl_ps(x, x));
            _mm_cvtss_f32(_mm_max_ss(x, _mm_movehdup_ps(x)))
        }
    }
}
