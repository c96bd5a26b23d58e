//! The decode's scores over q8 keys in int32, by AVX-512 VNNI's `vpdpbusd`,
//! on the cores where it pays.
//!
//! The f32 pass ([`super::streaming_row`]) widens every key value: a sign
//! extension and a conversion for each 16 values, then the FMA. Here the
//! query is turned into integers instead, once per chunk, and the keys'
//! bytes are multiplied as they lie: `vpdpbusd` multiplies 64 unsigned bytes
//! by 64 signed bytes and adds each lane's four products to an int32 lane.
//!
//! # The query in fixed point
//!
//! Each 32-value block `b` of the query (the blocks of the keys' scales) is
//! scaled by a power of two `2^e_b` that puts its largest magnitude in
//! `[2¹⁹, 2²⁰)` and rounded to an integer `q̂_j`, |q̂_j| ≤ 2²⁰: 21 bits, so
//! `|q_j − q̂_j·2^{−e_b}| ≤ 2^{−20}·max_b|q|`, against f32's `2^{−24}·|q_j|`.
//! Each `q̂_j` is written as three signed digits, `q̂ = d₂·2¹⁶ + d₁·2⁸ +
//! d₀` with `d₁, d₀ ∈ [−128, 127]` and `|d₂| ≤ 16`.
//!
//! # One key row
//!
//! A key byte `k` is read as the unsigned `u = k + 128` (one `xor`), the
//! digits as the signed operand, and the three products are summed by
//! Horner's rule in each lane, `((Σd₂u)·2⁸ + Σd₁u)·2⁸ + Σd₀u = Σq̂u`: at most
//! 1.1·2³⁰, so no int32 lane overflows. Subtracting the query's constant
//! `128·Σq̂` (four values a lane) leaves `Σ q̂_j k_j` exactly. Each lane is
//! converted to f32 (one rounding), multiplied by its block's `s_b·2^{−e_b}`
//! (the key's scale times the query block's power of two), and the lanes are
//! summed in the fixed halving order of [`reduce_rows`], the same for a row
//! whatever rows it is summed with. So a score's bits do not depend on the
//! chunking or the thread count; they differ from the f32 pass's by the
//! query's rounding above, well inside the golden tolerance.
//!
//! Queries with a non-finite value, or a block whose largest magnitude lies
//! outside `2^{±100}`, keep the f32 pass, as do rows whose width is not a
//! multiple of 64 up to 256 (the digits are held in registers).
//!
//! # Speed
//!
//! On one Zen 4 core (2026-12-05), against the f32 pass:
//! `decode_in_cache/q8` (`cargo bench --bench attention`, 1024 keys of 128
//! in cache) 10.96 µs against 12.81, and `sdpa-decode-q8` in memory 1.20×
//! (`benches/alternate.sh -r 5`, 3.66 ms against 4.40). Two digits (a
//! 16-bit query) ran 1.01× three in memory, where the reads set the pace,
//! so the query keeps its 21 bits. Intel cores were not measured and keep
//! the f32 pass ([`pays`]).

use crate::simd::asked_once::AskedOnce;
use crate::simd::vendor::{Vendor, vendor};
use crate::storage::Q8_BLOCK;
use core::arch::x86_64::*;

/// Key values per vector: 64 bytes, two q8 blocks.
const BYTES: usize = 64;
/// The widest key row taken: 4 vectors, whose digits stay in registers.
const MAX_VECTORS: usize = 4;
/// The runs of a chunk read together, and the rows of each read in a
/// group: 16 rows, as [`group`] sums them.
const RUNS: usize = 4;
const STEPS: usize = 4;

/// Whether the decode should score q8 keys here: the CPU has AVX-512F and
/// AVX-512 VNNI and is an AMD core (the only cores it was measured on: see
/// the module docs). Asked once, then one relaxed atomic load.
pub(crate) fn pays() -> bool {
    static ANSWER: AskedOnce = AskedOnce::new();
    ANSWER.get(|| cpu_has_vnni() && vendor() == Vendor::Amd)
}

#[cold]
fn cpu_has_vnni() -> bool {
    #[cfg(feature = "std")]
    {
        std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512vnni")
    }
    #[cfg(not(feature = "std"))]
    {
        // cpufeatures checks AVX-512F and that the OS saves its state;
        // VNNI is CPUID leaf 7, sub-leaf 0, ECX bit 11.
        cpufeatures::new!(cpuid_avx512f_for_vnni, "avx512f");
        // SAFETY: a CPU with AVX-512F has CPUID leaf 7.
        #[allow(unused_unsafe)]
        let vnni = unsafe { core::arch::x86_64::__cpuid_count(7, 0).ecx & (1 << 11) != 0 };
        cpuid_avx512f_for_vnni::get() && vnni
    }
}

/// The query as digits (see the module docs), per vector of 64 values.
struct QueryDigits {
    /// `d₂`, `d₁`, `d₀` of each value.
    digits: [[[i8; BYTES]; MAX_VECTORS]; 3],
    /// `128·Σq̂` over each lane's four values.
    offsets: [[i32; 16]; MAX_VECTORS],
    /// `2^{−e_b}` per block, 0 for a block of zeros.
    powers: [f32; 16],
}

impl QueryDigits {
    /// The digits of `query` (a multiple of 64 values, at most 256), or
    /// `None` where the f32 pass must run (see the module docs).
    fn new(query: &[f32]) -> Option<QueryDigits> {
        let mut out =
            QueryDigits { digits: [[[0; BYTES]; MAX_VECTORS]; 3], offsets: [[0; 16]; MAX_VECTORS], powers: [0.0; 16] };
        // Adding and taking away 1.5·2⁵² rounds an f64 below 2⁵¹ to the nearest even integer.
        const ROUND: f64 = 6755399441055744.0;
        for (b, block) in query.chunks(Q8_BLOCK).enumerate() {
            let mut max = 0.0f32;
            for &q in block {
                // NaN fails the test below, as ±inf does.
                max = if q.abs() > max || q.is_nan() { q.abs() } else { max };
            }
            if !max.is_finite() {
                return None;
            }
            if max == 0.0 {
                continue;
            }
            // max = f·2^x with f in [1, 2): scaling by 2^(19 − x) puts it in [2¹⁹, 2²⁰).
            let x = libm::ilogbf(max);
            if !(-100..=100).contains(&x) {
                return None;
            }
            let up = f64::from_bits(((1023 + 19 - x) as u64) << 52);
            out.powers[b] = f32::from_bits(((127 + x - 19) as u32) << 23);
            for (i, &q) in block.iter().enumerate() {
                let fixed = ((f64::from(q) * up + ROUND) - ROUND) as i32;
                let d0 = ((fixed + 128) & 255) - 128;
                let r1 = (fixed - d0) >> 8;
                let d1 = ((r1 + 128) & 255) - 128;
                let d2 = (r1 - d1) >> 8;
                let j = b * Q8_BLOCK + i;
                let (v, at) = (j / BYTES, j % BYTES);
                out.digits[0][v][at] = d2 as i8;
                out.digits[1][v][at] = d1 as i8;
                out.digits[2][v][at] = d0 as i8;
                out.offsets[v][at / 4] += 128 * fixed;
            }
        }
        Some(out)
    }
}

/// `scores[j] = scale · query·key_j` for the `n = scores.len()` q8 key rows
/// of `width` values (`keys`, with `width / 32` `key_scales` a row), or
/// `false`, writing nothing, where the f32 pass must run: the CPU or width
/// does not qualify, or the query (see the module docs).
pub(crate) fn scores(query: &[f32], (keys, key_scales): (&[i8], &[f32]), scale: f32, scores: &mut [f32]) -> bool {
    let width = query.len();
    let n = scores.len();
    let vectors = width / BYTES;
    if width == 0 || !width.is_multiple_of(BYTES) || vectors > MAX_VECTORS || n == 0 || !pays() {
        return false;
    }
    assert!(keys.len() == n * width && key_scales.len() == n * (width / 32), "q8 key pass: key rows");
    let Some(digits) = QueryDigits::new(query) else { return false };
    // SAFETY: `pays` saw AVX-512F and VNNI; the assert above sizes the rows.
    unsafe {
        match vectors {
            1 => chunk::<1>(&digits, keys.as_ptr(), key_scales.as_ptr(), scale, scores),
            2 => chunk::<2>(&digits, keys.as_ptr(), key_scales.as_ptr(), scale, scores),
            3 => chunk::<3>(&digits, keys.as_ptr(), key_scales.as_ptr(), scale, scores),
            _ => chunk::<4>(&digits, keys.as_ptr(), key_scales.as_ptr(), scale, scores),
        }
    }
    true
}

/// The digits and constants of one query, in registers.
#[derive(Clone, Copy)]
struct Prepared<const Z: usize> {
    digits: [[__m512i; Z]; 3],
    offsets: [__m512i; Z],
    /// Lane `i` of vector `z` takes block `2z + i/8`'s scale.
    spread: [__m512i; Z],
    powers: __m512,
}

/// All `n` rows, 16 at a time: one row from each of the chunk's 4 runs
/// in each of 4 steps (so several streams of lines are in flight, as in
/// the f32 pass; 2 runs of 8 steps and 8 runs of 2 read `sdpa-decode-q8`
/// 1.26× and 1.33× slower on one Zen 4 core), then the rows left over, 16
/// at a time with the last repeated. A variant that scattered every
/// group's scores one by one, its 16 rows written out rather than looped,
/// ran as fast in cache and 1.2× slower in memory (`benches/alternate.sh
/// -r 9`).
///
/// # Safety
/// `keys` holds `n` rows of `64·Z` bytes and `scales` `n` rows of `2·Z`
/// scales, `n = scores.len()`; the CPU has AVX-512F and VNNI.
#[target_feature(enable = "avx512f,avx512vnni")]
unsafe fn chunk<const Z: usize>(d: &QueryDigits, keys: *const i8, scales: *const f32, scale: f32, scores: &mut [f32]) {
    let n = scores.len();
    let mut p = Prepared::<Z> {
        digits: [[_mm512_setzero_si512(); Z]; 3],
        offsets: [_mm512_setzero_si512(); Z],
        spread: [_mm512_setzero_si512(); Z],
        // SAFETY: 16 values.
        powers: unsafe { _mm512_loadu_ps(d.powers.as_ptr()) },
    };
    for z in 0..Z {
        // SAFETY: each array holds 64 bytes or 16 lanes.
        unsafe {
            for l in 0..3 {
                p.digits[l][z] = _mm512_loadu_si512(d.digits[l][z].as_ptr().cast());
            }
            p.offsets[z] = _mm512_loadu_si512(d.offsets[z].as_ptr().cast());
        }
        let (lo, hi) = (2 * z as i32, 2 * z as i32 + 1);
        p.spread[z] = _mm512_set_epi32(hi, hi, hi, hi, hi, hi, hi, hi, lo, lo, lo, lo, lo, lo, lo, lo);
    }
    let row_bytes = BYTES * Z;
    let row_scales = 2 * Z;
    let scale_lanes = _mm512_set1_ps(scale);
    let run = n / RUNS;
    let mut rows = [0usize; RUNS * STEPS];
    let mut t = 0;
    // Lane `4r + s` of a group's sums is row `s` of run `r` (see `reduce_rows`).
    while t + STEPS <= run {
        for s in 0..STEPS {
            for r in 0..RUNS {
                rows[s * RUNS + r] = r * run + t + s;
            }
        }
        // SAFETY: every row is below RUNS·run <= n.
        let sums = unsafe { _mm512_mul_ps(group::<Z>(&p, keys, scales, (row_bytes, row_scales), &rows), scale_lanes) };
        let mut lanes = [0.0f32; 16];
        // SAFETY: 16 values.
        unsafe { _mm512_storeu_ps(lanes.as_mut_ptr(), sums) };
        for r in 0..RUNS {
            scores[r * run + t..r * run + t + STEPS].copy_from_slice(&lanes[r * STEPS..r * STEPS + STEPS]);
        }
        t += STEPS;
    }
    // The rows left: the last steps of each run, then those past the runs.
    let mut left = [0usize; RUNS * STEPS];
    let mut count = 0;
    let rest = (0..RUNS).flat_map(|r| r * run + t..(r + 1) * run).chain(RUNS * run..n);
    for j in rest {
        left[count] = j;
        count += 1;
        if count == left.len() {
            // SAFETY: every row is below n.
            unsafe { score_leftover_rows::<Z>(&p, keys, scales, (row_bytes, row_scales), &left, count, scale, scores) };
            count = 0;
        }
    }
    if count > 0 {
        // SAFETY: as above.
        unsafe { score_leftover_rows::<Z>(&p, keys, scales, (row_bytes, row_scales), &left, count, scale, scores) };
    }
}

/// Scores the first `count` rows of `rows` (the others repeat the last).
///
/// # Safety
/// As [`chunk`], with every row below `n`.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,avx512vnni")]
unsafe fn score_leftover_rows<const Z: usize>(
    p: &Prepared<Z>,
    keys: *const i8,
    scales: *const f32,
    sizes: (usize, usize),
    rows: &[usize; 16],
    count: usize,
    scale: f32,
    scores: &mut [f32],
) {
    let mut padded = *rows;
    padded[count..].fill(rows[count - 1]);
    // SAFETY: every row is below n.
    let sums = unsafe { _mm512_mul_ps(group::<Z>(p, keys, scales, sizes, &padded), _mm512_set1_ps(scale)) };
    let mut lanes = [0.0f32; 16];
    // SAFETY: 16 values.
    unsafe { _mm512_storeu_ps(lanes.as_mut_ptr(), sums) };
    for (i, &row) in rows.iter().enumerate().take(count) {
        scores[row] = lanes[4 * (i % 4) + i / 4];
    }
}

/// The 16 rows' dot products with the query, unscaled: lane `4r + s`
/// holds row `rows[4s + r]`.
///
/// # Safety
/// As [`chunk`], with every row below `n`.
#[inline(always)]
unsafe fn group<const Z: usize>(
    p: &Prepared<Z>,
    keys: *const i8,
    scales: *const f32,
    (row_bytes, row_scales): (usize, usize),
    rows: &[usize; 16],
) -> __m512 {
    // SAFETY: the caller's CPU has AVX-512F.
    let zero = unsafe { _mm512_setzero_ps() };
    let mut by_step = [zero; STEPS];
    for (s, sums) in by_step.iter_mut().enumerate() {
        let mut lanes = [zero; RUNS];
        for (r, lanes) in lanes.iter_mut().enumerate() {
            let j = rows[s * RUNS + r];
            // SAFETY: row j < n.
            *lanes = unsafe { row_lanes::<Z>(p, keys.add(j * row_bytes), scales.add(j * row_scales)) };
        }
        // SAFETY: as above.
        *sums = unsafe { reduce_rows(lanes) };
    }
    // SAFETY: as above.
    unsafe { reduce_steps(by_step) }
}

/// One row's products as 16 lanes whose sum is the dot product.
///
/// # Safety
/// `keys` holds `64·Z` bytes and `scales` `2·Z` values; AVX-512F and VNNI.
#[inline(always)]
unsafe fn row_lanes<const Z: usize>(p: &Prepared<Z>, keys: *const i8, scales: *const f32) -> __m512 {
    // SAFETY: the caller's CPU has AVX-512F and VNNI, and the row holds
    // 64·Z bytes and 2·Z <= 8 scales.
    unsafe {
        let flip = _mm512_set1_epi8(-128);
        let block_scales = _mm512_mul_ps(_mm512_maskz_loadu_ps((1u16 << (2 * Z)) - 1, scales), p.powers);
        let mut lanes = _mm512_setzero_ps();
        for z in 0..Z {
            let u = _mm512_xor_si512(_mm512_loadu_si512(keys.add(z * BYTES).cast()), flip);
            let mut acc = _mm512_dpbusd_epi32(_mm512_setzero_si512(), u, p.digits[0][z]);
            acc = _mm512_dpbusd_epi32(_mm512_slli_epi32::<8>(acc), u, p.digits[1][z]);
            acc = _mm512_dpbusd_epi32(_mm512_slli_epi32::<8>(acc), u, p.digits[2][z]);
            let products = _mm512_cvtepi32_ps(_mm512_sub_epi32(acc, p.offsets[z]));
            let block_scale = _mm512_permutexvar_ps(p.spread[z], block_scales);
            lanes = if z == 0 {
                _mm512_mul_ps(products, block_scale)
            } else {
                _mm512_fmadd_ps(products, block_scale, lanes)
            };
        }
        lanes
    }
}

/// `shuffle(a, b, LO) + shuffle(a, b, HI)` by whole 128-bit quarters: one
/// halving of [`reduce_rows`].
///
/// # Safety
/// The CPU has AVX-512F.
#[inline(always)]
unsafe fn add_quarters<const LO: i32, const HI: i32>(a: __m512, b: __m512) -> __m512 {
    // SAFETY: the caller's CPU has AVX-512F.
    unsafe { _mm512_add_ps(_mm512_shuffle_f32x4::<LO>(a, b), _mm512_shuffle_f32x4::<HI>(a, b)) }
}

/// `shuffle(a, b, LO) + shuffle(a, b, HI)` within each quarter: one
/// halving of [`reduce_steps`].
///
/// # Safety
/// The CPU has AVX-512F.
#[inline(always)]
unsafe fn add_within_quarters<const LO: i32, const HI: i32>(a: __m512, b: __m512) -> __m512 {
    // SAFETY: the caller's CPU has AVX-512F.
    unsafe { _mm512_add_ps(_mm512_shuffle_ps::<LO>(a, b), _mm512_shuffle_ps::<HI>(a, b)) }
}

/// Four rows' lanes summed by the first two halvings of the fixed order
/// (`x_i + x_{i+8}`, then `+4`): quarter `r` holds row `r`'s four sums.
///
/// # Safety
/// The CPU has AVX-512F.
#[inline(always)]
unsafe fn reduce_rows(rows: [__m512; 4]) -> __m512 {
    // SAFETY: the caller's CPU has AVX-512F.
    unsafe {
        // [a.q0, a.q1, b.q0, b.q1] + [a.q2, a.q3, b.q2, b.q3]: rows a and b's x_i + x_{i+8}.
        let a = add_quarters::<0b01_00_01_00, 0b11_10_11_10>(rows[0], rows[1]);
        let b = add_quarters::<0b01_00_01_00, 0b11_10_11_10>(rows[2], rows[3]);
        // [a.q0, a.q2, b.q0, b.q2] + [a.q1, a.q3, b.q1, b.q3].
        add_quarters::<0b10_00_10_00, 0b11_01_11_01>(a, b)
    }
}

/// Four steps' [`reduce_rows`] summed to one lane a row by the last two
/// halvings (`+2`, then `+1`): lane `4r + s` is row `r` of step `s`.
///
/// # Safety
/// The CPU has AVX-512F.
#[inline(always)]
unsafe fn reduce_steps(steps: [__m512; 4]) -> __m512 {
    // SAFETY: the caller's CPU has AVX-512F.
    unsafe {
        // Within each quarter: [g0 + g2, g1 + g3, h0 + h2, h1 + h3].
        let c0 = add_within_quarters::<0b01_00_01_00, 0b11_10_11_10>(steps[0], steps[1]);
        let c1 = add_within_quarters::<0b01_00_01_00, 0b11_10_11_10>(steps[2], steps[3]);
        // [m0 + m1, m2 + m3, n0 + n1, n2 + n3].
        add_within_quarters::<0b10_00_10_00, 0b11_01_11_01>(c0, c1)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::{vec, vec::Vec};

    /// The query's fixed-point value `q̂_j` from its digits.
    fn fixed(d: &QueryDigits, j: usize) -> i64 {
        let (v, at) = (j / BYTES, j % BYTES);
        let digit = |l: usize| i64::from(d.digits[l][v][at]);
        (digit(0) << 16) + (digit(1) << 8) + digit(2)
    }

    #[test]
    fn digits_hold_the_query_to_21_bits() {
        let mut query: [f32; 128] = core::array::from_fn(|j| ((j * 37 % 101) as f32 - 50.0) * 0.013);
        query[0] = -1.9999999; // rounds to -2²⁰: d₂ = -16
        query[64..96].fill(0.0);
        let d = QueryDigits::new(&query).unwrap();
        assert_eq!(fixed(&d, 0), -(1 << 20));
        for (j, &q) in query.iter().enumerate() {
            let power = f64::from(d.powers[j / Q8_BLOCK]);
            let (v, at) = (j / BYTES, j % BYTES);
            assert!(fixed(&d, j).abs() <= 1 << 20, "q̂_{j} = {}", fixed(&d, j));
            assert!((-16..=16).contains(&d.digits[0][v][at]), "d₂ of {j}");
            let max = query[j / 32 * 32..][..32].iter().fold(0.0f32, |m, q| m.max(q.abs()));
            let error = (fixed(&d, j) as f64 * power - f64::from(q)).abs();
            assert!(error <= f64::from(max) * 2f64.powi(-20), "q_{j} = {q}: off by {error}");
        }
        for lane in 0..32 {
            let sum: i64 = (4 * lane..4 * lane + 4).map(|j| fixed(&d, j)).sum();
            assert_eq!(i64::from(d.offsets[lane / 16][lane % 16]), 128 * sum, "offset of lane {lane}");
        }
        assert!(QueryDigits::new(&[f32::NAN; 64]).is_none());
        let mut inf = [1.0f32; 64];
        inf[40] = f32::INFINITY;
        assert!(QueryDigits::new(&inf).is_none());
        assert!(QueryDigits::new(&[1e-33; 64]).is_none());
    }

    /// Keys at the byte extremes against a query at the digits' extremes
    /// (`|d₂| = 16`, the largest lane sums Horner's rule reaches): each
    /// score is the exact integer dot product, scaled, to f32 rounding.
    #[test]
    fn scores_are_the_exact_integer_dots() {
        if !pays() {
            return;
        }
        for e in [64, 128, 192, 256] {
            let query: Vec<f32> =
                (0..e).map(|j| if j % 3 == 0 { -1.9999999 } else { 1.9999999 - 1e-6 * j as f32 }).collect();
            let n = 53;
            let keys: Vec<i8> = (0..n * e).map(|i| [-128, 127, -127, 0, 5][(i + i / e) % 5]).collect();
            let key_scales: Vec<f32> = (0..n * e / 32).map(|b| 0.01 * (b % 9) as f32 - 0.03).collect();
            let mut scores = vec![0.0; n];
            assert!(super::scores(&query, (&keys, &key_scales), 0.5, &mut scores));
            let d = QueryDigits::new(&query).unwrap();
            for (r, &score) in scores.iter().enumerate() {
                let mut want = 0.0f64;
                for b in 0..e / 32 {
                    let dot: i64 = (32 * b..32 * b + 32).map(|j| fixed(&d, j) * i64::from(keys[r * e + j])).sum();
                    want += dot as f64 * f64::from(d.powers[b]) * f64::from(key_scales[r * e / 32 + b]);
                }
                want *= 0.5;
                let bound = 1e-6 * (0..e).map(|j| f64::from(keys[r * e + j]).abs()).sum::<f64>();
                assert!((f64::from(score) - want).abs() <= bound, "E {e}, row {r}: {score} vs {want}");
            }
        }
    }
}
