//! A hint that a cache line will be read soon.
//!
//! The decode kernel reads K and V rows as several runs in lockstep; the
//! hardware prefetchers follow each run, but hinted lines a little ahead
//! of every run arrived sooner on an AVX-512 Xeon (see
//! `kernels::streaming_row`'s `PREFETCH_AHEAD`; on AVX2's Zen cores they
//! did not, so each backend says whether it hints). `PREFETCHT0` is part
//! of SSE, so every x86-64 backend has it; elsewhere the hint is nothing.

/// Whether [`prefetch_read`] hints anything on this target: callers skip
/// the address arithmetic where it would not.
pub(crate) const HINTS: bool = cfg!(target_arch = "x86_64");

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
