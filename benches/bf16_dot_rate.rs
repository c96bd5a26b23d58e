//! Whether an AVX-512 BF16 (`vdpbf16ps`) kernel could beat the f32 one:
//! the rate of 24 independent `vdpbf16ps` chains against 24 independent
//! f32 FMA chains on one core, in FLOP/s (a `vdpbf16ps` of 16 lanes does 32
//! multiply-adds, an FMA 16).
//!
//!     taskset -c 0 cargo bench --bench bf16_dot_rate
//!
//! Why it matters: `sdpa-512-bf16` multiplies bf16 `Q·Kᵀ` by widening to
//! f32 and running the f32 microkernel. A `vdpbf16ps` tile does twice the
//! work per instruction, so it pays only if the instruction issues at more
//! than half the FMA's rate. On the 2-core Xeon of 2026-12-03 (AVX-512
//! BF16, no AMX; pinned to core 0, three rounds) it ran at 82–84 GFLOP/s
//! against the FMA's 171–175: 0.48–0.49× the f32 path, so the crate has
//! no such kernel there (see `ops/sdpa/flash.rs`). On a 2-core AMD EPYC Zen
//! 4 of 2026-12-04 (the same command) it ran at 210–230 GFLOP/s against the
//! FMA's 105–115: 1.92–2.18×, the other way round, so on AMD cores the
//! flash loop multiplies bf16 `Q·Kᵀ` with it (`kernels::bf16_pair_tile`).

use std::hint::black_box;
use std::time::Instant;

/// Independent accumulators: enough to cover either instruction's latency.
const CHAINS: usize = 24;
/// Steps of all chains per timed run.
const STEPS: usize = 20_000_000;

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{CHAINS, STEPS};
    use core::arch::x86_64::*;

    /// `STEPS` rounds of one `vdpbf16ps` per chain; returns a sum so that
    /// nothing is optimised away.
    ///
    /// # Safety
    /// The CPU must have AVX-512F and AVX-512 BF16.
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub unsafe fn bf16_dots(seed: i16) -> f32 {
        // SAFETY: __m512i and __m512bh are both 64 bytes of plain bits, any
        // pattern valid; 0x3f80 is bf16 1.0.
        let as_bf16 = |x: __m512i| unsafe { core::mem::transmute::<__m512i, __m512bh>(x) };
        let (a, b) = (as_bf16(_mm512_set1_epi16(0x3f80)), as_bf16(_mm512_set1_epi16(seed)));
        let mut acc = [_mm512_setzero_ps(); CHAINS];
        for _ in 0..STEPS {
            for x in &mut acc {
                *x = _mm512_dpbf16_ps(*x, a, b);
            }
        }
        _mm512_reduce_add_ps(acc.iter().fold(_mm512_setzero_ps(), |s, &x| _mm512_add_ps(s, x)))
    }

    /// The same with one f32 FMA per chain.
    ///
    /// # Safety
    /// The CPU must have AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn f32_fmas(seed: f32) -> f32 {
        let (a, b) = (_mm512_set1_ps(1.0), _mm512_set1_ps(seed));
        let mut acc = [_mm512_setzero_ps(); CHAINS];
        for _ in 0..STEPS {
            for x in &mut acc {
                *x = _mm512_fmadd_ps(*x, a, b);
            }
        }
        _mm512_reduce_add_ps(acc.iter().fold(_mm512_setzero_ps(), |s, &x| _mm512_add_ps(s, x)))
    }
}

/// GFLOP/s of `run`, which performs `flop_per_step · CHAINS · STEPS` FLOP.
fn rate(flop_per_step: f64, run: impl FnOnce() -> f32) -> f64 {
    let start = Instant::now();
    black_box(run());
    flop_per_step * (CHAINS * STEPS) as f64 / start.elapsed().as_secs_f64() / 1e9
}

#[cfg(target_arch = "x86_64")]
fn main() {
    if !(is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bf16")) {
        println!("skipped: this CPU has no AVX-512 BF16");
        return;
    }
    for round in 1..=3 {
        // SAFETY: both features were detected above.
        let bf16 = rate(64.0, || unsafe { x86::bf16_dots(black_box(0x3f81)) });
        // SAFETY: AVX-512F was detected above.
        let f32 = rate(32.0, || unsafe { x86::f32_fmas(black_box(0.5)) });
        println!("round {round}: vdpbf16ps {bf16:.1} GFLOP/s, f32 FMA {f32:.1} GFLOP/s, ratio {:.2}", bf16 / f32);
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn main() {
    println!("skipped: not an x86_64 target");
}
