//! Which company made this CPU, asked once.
//!
//! Some choices follow the core, not the instruction set: prefetch hints
//! helped decode on an Intel Xeon and slowed it on every AMD core measured
//! (`simd::prefetch`), and AVX-512 BF16's `vdpbf16ps` beat the f32 FMA on a
//! Zen 4 core and lost to it on the Xeon (`kernels::bf16_pair_tile`). The
//! CPUID vendor string is the one thing that told them apart.

use core::sync::atomic::{AtomicU8, Ordering};

/// The CPU's maker, as far as the kernels care.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Vendor {
    Intel,
    Amd,
    /// Another x86 maker, or another architecture.
    Other,
}

/// This CPU's [`Vendor`]. The first call reads CPUID leaf 0, every later
/// call is one relaxed atomic load.
#[inline]
pub(crate) fn vendor() -> Vendor {
    /// 0: not asked yet; else 1 + the vendor's index.
    static ANSWER: AtomicU8 = AtomicU8::new(0);
    const ALL: [Vendor; 3] = [Vendor::Intel, Vendor::Amd, Vendor::Other];
    match ANSWER.load(Ordering::Relaxed) {
        0 => {
            let found = read_vendor();
            ANSWER.store(1 + ALL.iter().position(|&v| v == found).unwrap_or(2) as u8, Ordering::Relaxed);
            found
        }
        answer => ALL[usize::from(answer - 1).min(2)],
    }
}

#[cfg(target_arch = "x86_64")]
#[cold]
fn read_vendor() -> Vendor {
    // SAFETY: every x86_64 CPU has CPUID leaf 0.
    #[allow(unused_unsafe)]
    let leaf = unsafe { core::arch::x86_64::__cpuid(0) };
    // The 12-byte name is EBX, EDX, ECX, little-endian.
    let name = |a: &[u8; 4], b: &[u8; 4], c: &[u8; 4]| {
        leaf.ebx == u32::from_le_bytes(*a) && leaf.edx == u32::from_le_bytes(*b) && leaf.ecx == u32::from_le_bytes(*c)
    };
    if name(b"Genu", b"ineI", b"ntel") {
        Vendor::Intel
    } else if name(b"Auth", b"enti", b"cAMD") {
        Vendor::Amd
    } else {
        Vendor::Other
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn read_vendor() -> Vendor {
    Vendor::Other
}
