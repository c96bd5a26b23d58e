//! `Q·Kᵀ` of bf16 queries and keys by AVX-512 BF16's `vdpbf16ps`, on the
//! cores where it pays.
//!
//! `vdpbf16ps` multiplies 16 pairs of bf16 values by 16 other pairs and adds
//! each pair's two products to an f32 lane: twice an FMA's multiply-adds per
//! instruction. Whether that is faster depends on the core, not on the
//! instruction set: on a Zen 4 core it ran at 1.92–2.18× the f32 FMA's
//! FLOP rate, on an Intel Xeon at 0.48× (`cargo bench --bench
//! bf16_dot_rate`). So [`pays`] says yes on AMD cores with AVX-512 BF16 only,
//! and the flash loop multiplies bf16 heads (queries and keys both bf16)
//! here, on the avx512 backend; every other head, and every other core,
//! keeps the f32 microkernel.
//!
//! The operands are exactly the stored bf16 values, so the products are
//! exact in f32, as on the f32 path. What differs is the summing: per Intel's
//! description of the instruction, each lane adds the pair's odd product and
//! then its even one, each addition rounded to nearest even, with subnormal
//! inputs and results taken as zero. So a score differs from the f32
//! microkernel's in its last bits (and where products are below 2⁻¹²⁶),
//! well inside the golden tolerance; it is still one fixed order per score,
//! so the bits do not depend on threads or tiling.
//!
//! The layout reuses the f32 panels: [`pairs_in_place`] turns each strip of
//! 16 key columns, `E` rows of f32, into `⌈E/2⌉` rows of bf16 pairs in its
//! first half, so a tile finds its four strips where the f32 tile would.

use crate::kernels::packed_panels::STRIP;
use crate::simd::asked_once::AskedOnce;
use crate::simd::vendor::{Vendor, vendor};
use core::arch::x86_64::*;

/// Query rows per microkernel call: 6 × 4 accumulators, 4 key vectors and a
/// broadcast are 29 of the 32 registers, as for the f32 tile.
const ROWS: usize = 6;
/// Strips of 16 keys per microkernel call: one 64-key panel.
const STRIPS: usize = 4;
/// Keys per microkernel call.
pub(crate) const TILE_KEYS: usize = STRIPS * STRIP;

/// Whether the flash loop should multiply bf16 heads here: the CPU has
/// AVX-512F and AVX-512 BF16 and is an AMD core (see the module docs).
/// Asked once, then one relaxed atomic load.
pub(crate) fn pays() -> bool {
    static ANSWER: AskedOnce = AskedOnce::new();
    ANSWER.get(|| cpu_has_bf16_dot() && vendor() == Vendor::Amd)
}

#[cold]
fn cpu_has_bf16_dot() -> bool {
    #[cfg(feature = "std")]
    {
        std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(feature = "std"))]
    {
        // cpufeatures 0.3 checks AVX-512F and that the OS saves its state,
        // but does not name BF16: CPUID leaf 7, sub-leaf 1, EAX bit 5.
        cpufeatures::new!(cpuid_avx512f_only, "avx512f");
        // SAFETY: a CPU with AVX-512F has CPUID leaf 7; sub-leaf 1 is read
        // only when sub-leaf 0 says it exists.
        #[allow(unused_unsafe)]
        let bf16 = unsafe {
            use core::arch::x86_64::__cpuid_count;
            __cpuid_count(7, 0).eax >= 1 && __cpuid_count(7, 1).eax & (1 << 5) != 0
        };
        cpuid_avx512f_only::get() && bf16
    }
}

/// One bf16 pair from two f32 values that hold bf16 values exactly (their
/// low 16 bits zero): `lo` in the low half, `hi` in the high half.
#[inline(always)]
fn pair(lo: f32, hi: f32) -> f32 {
    f32::from_bits((hi.to_bits() & 0xFFFF_0000) | (lo.to_bits() >> 16))
}

/// Turns `rows` rows of `width`-value f32 rows, starting at `data[0]`, into
/// rows of `⌈width/2⌉` bf16 pairs at the front of `data`, in place (each
/// pair is written no later than its values are read). The values must be
/// bf16 values held exactly, as widened bf16 is.
pub(crate) fn row_pairs_in_place(data: &mut [f32], rows: usize, width: usize) {
    let pairs = width.div_ceil(2);
    for r in 0..rows {
        for p in 0..pairs {
            let lo = data[r * width + 2 * p];
            let hi = if 2 * p + 1 < width { data[r * width + 2 * p + 1] } else { 0.0 };
            data[r * pairs + p] = pair(lo, hi);
        }
    }
}

/// Turns packed f32 `Kᵀ` panels (`rows` = E rows, `cols` columns; see
/// `kernels::packed_panels`) into bf16 pairs in place: row `p` of each strip
/// becomes the pair of its rows `2p` and `2p + 1` (zero past E). Only
/// where [`pays`] (the caller's check; asserted again).
pub(crate) fn pairs_in_place(panels: &mut [f32], rows: usize, cols: usize) {
    let strip_len = rows * STRIP;
    let strips = cols.div_ceil(TILE_KEYS) * STRIPS;
    assert!(pays(), "bf16 pairs: the CPU lacks AVX-512 BF16");
    assert!(panels.len() >= strips * strip_len, "bf16 pairs: panels");
    // SAFETY: the strips lie in `panels`; `pays` saw AVX-512F.
    unsafe { strip_pairs(panels.as_mut_ptr(), strips, rows) }
}

/// [`pairs_in_place`] over `strips` strips of `rows` rows from `panels`.
///
/// # Safety
/// `strips · rows · 16` values from `panels` are valid for reads and
/// writes; the CPU has AVX-512F.
#[target_feature(enable = "avx512f")]
unsafe fn strip_pairs(panels: *mut f32, strips: usize, rows: usize) {
    let high = _mm512_set1_epi32(0xFFFF_0000u32 as i32);
    for g in 0..strips {
        let strip = panels.wrapping_add(g * rows * STRIP);
        // Pair p is written at row p, after rows 2p and 2p + 1 (both at or
        // past row p) are read: the writes trail the reads.
        for p in 0..rows.div_ceil(2) {
            // SAFETY: rows 2p and 2p + 1 (when below `rows`) and row p lie in the strip.
            unsafe {
                let lo = _mm512_loadu_si512(strip.add(2 * p * STRIP).cast());
                let hi = if 2 * p + 1 < rows {
                    _mm512_loadu_si512(strip.add((2 * p + 1) * STRIP).cast())
                } else {
                    _mm512_setzero_si512()
                };
                let pairs = _mm512_or_si512(_mm512_and_si512(hi, high), _mm512_srli_epi32::<16>(lo));
                _mm512_storeu_si512(strip.add(p * STRIP).cast(), pairs);
            }
        }
    }
}

/// `scores[r][c] = scale · q_r·k_c` for `m` query rows of `⌈E/2⌉` pairs
/// (`queries`, row after row) and the `n` keys from key `j0` (a multiple of
/// [`TILE_KEYS`]) of panels that [`pairs_in_place`] converted (E = `rows`).
/// Writes whole 64-key tiles: `scores` rows are `stride` apart and must
/// hold `n` rounded up to [`TILE_KEYS`]. Only where [`pays`] (the
/// caller's check; asserted again, one atomic load a tile).
pub(crate) fn scores(
    (queries, m): (&[f32], usize),
    (panels, rows, j0, n): (&[f32], usize, usize, usize),
    scale: f32,
    (scores, stride): (&mut [f32], usize),
) {
    let pairs = rows.div_ceil(2);
    let strip_len = rows * STRIP;
    let tiles = n.div_ceil(TILE_KEYS);
    assert!(pays(), "bf16 pair tile: the CPU lacks AVX-512 BF16");
    assert!(j0.is_multiple_of(TILE_KEYS), "bf16 pair tile: keys start a panel");
    assert!(queries.len() >= m * pairs, "bf16 pair tile: query rows");
    assert!(panels.len() >= (j0 / STRIP + tiles * STRIPS) * strip_len, "bf16 pair tile: panels");
    assert!(m == 0 || n == 0 || scores.len() >= (m - 1) * stride + tiles * TILE_KEYS, "bf16 pair tile: scores");
    assert!(stride >= tiles * TILE_KEYS || m <= 1, "bf16 pair tile: score rows overlap");
    for t in 0..tiles {
        let k = panels[(j0 / STRIP + t * STRIPS) * strip_len..].as_ptr();
        let mut i = 0;
        while i < m {
            let q = queries[i * pairs..].as_ptr();
            let c = scores[i * stride + t * TILE_KEYS..].as_mut_ptr();
            let tile = (k, strip_len, pairs, scale);
            // SAFETY: the asserts above keep every row, pair and column in
            // its slice; `pays` saw AVX-512F and AVX-512 BF16.
            i += unsafe {
                match m - i {
                    1 => tile_rows::<1>(q, pairs, tile, c, stride),
                    2 => tile_rows::<2>(q, pairs, tile, c, stride),
                    3 => tile_rows::<3>(q, pairs, tile, c, stride),
                    4 => tile_rows::<4>(q, pairs, tile, c, stride),
                    5 => tile_rows::<5>(q, pairs, tile, c, stride),
                    _ => tile_rows::<ROWS>(q, pairs, tile, c, stride),
                }
            };
        }
    }
}

/// `R` query rows against one 64-key tile; returns `R`.
///
/// # Safety
/// `q` holds `R` rows of `pairs` pairs, `q_stride` apart; `k` holds
/// [`STRIPS`] strips of `pairs` rows of 16 pairs, `strip_len` apart; `c`
/// holds `R` rows of 64 values, `c_stride` apart; the CPU has AVX-512 BF16.
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn tile_rows<const R: usize>(
    q: *const f32,
    q_stride: usize,
    (k, strip_len, pairs, scale): (*const f32, usize, usize, f32),
    c: *mut f32,
    c_stride: usize,
) -> usize {
    // Plain loops, no closures: a closure may stay out of line, outside
    // this function's target features.
    let mut acc = [[_mm512_setzero_ps(); STRIPS]; R];
    let mut kv = [as_pairs(_mm512_setzero_ps()); STRIPS];
    for p in 0..pairs {
        // SAFETY: p < pairs rows of each strip and of each query row.
        unsafe {
            for (s, kv) in kv.iter_mut().enumerate() {
                *kv = as_pairs(_mm512_loadu_ps(k.add(s * strip_len + p * STRIP)));
            }
            for (r, acc) in acc.iter_mut().enumerate() {
                let qb = as_pairs(_mm512_set1_ps(*q.add(r * q_stride + p)));
                for (a, &kv) in acc.iter_mut().zip(&kv) {
                    *a = _mm512_dpbf16_ps(*a, qb, kv);
                }
            }
        }
    }
    let scale = _mm512_set1_ps(scale);
    for (r, acc) in acc.iter().enumerate() {
        for (s, a) in acc.iter().enumerate() {
            // SAFETY: row r < R, column s·16 + 15 < 64.
            unsafe { _mm512_storeu_ps(c.add(r * c_stride + s * STRIP), _mm512_mul_ps(*a, scale)) };
        }
    }
    R
}

/// The same 512 bits, read as 32 bf16 values.
#[inline(always)]
fn as_pairs(x: __m512) -> __m512bh {
    // SAFETY: both are 64 bytes of plain data; every bit pattern is valid.
    unsafe { core::mem::transmute(x) }
}
