//! A hint that a cache line will be read soon, and whether this core wants it.
//!
//! The decode kernel reads K and V rows as several runs in lockstep; the
//! hardware prefetchers follow each run, but hinted lines a little ahead
//! of every run arrived sooner on an AVX-512 Xeon, while on every AMD core
//! measured (Zen 1 and Zen 3 on AVX2, Zen 4 on AVX-512) they made the reads
//! slower, by up to half on Zen 4 (`kernels::streaming_row`'s
//! `PREFETCH_AHEAD` has the figures). The instruction set does not predict
//! that, the vendor does, so [`hints_help`] asks [`vendor`].
//! `PREFETCHT0` is part of SSE, so every x86-64 backend has it; elsewhere
//! the hint is nothing.

use super::vendor::{Vendor, vendor};

/// Bytes per cache line on the cores the hint is for.
pub(crate) const CACHE_LINE: usize = 64;

/// Hints the line holding `ptr` into all cache levels. Never faults: any
/// address, even one past an allocation, may be hinted.
#[inline(always)]
pub(crate) fn prefetch_read(ptr: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: SSE is part of x86-64, and a prefetch reads nothing
    // architecturally: it cannot fault on any address.
    unsafe {
        use core::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        _mm_prefetch::<_MM_HINT_T0>(ptr.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = ptr;
}

/// Whether the decode kernel should hint its rows ahead: on Intel cores
/// only (the one vendor measured faster with hints; see the module docs).
#[inline(always)]
pub(crate) fn hints_help() -> bool {
    vendor() == Vendor::Intel
}
