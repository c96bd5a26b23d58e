//! The SIMD layer: one `f32` vector trait, its backends, and the dispatch
//! that enters the right one.
//!
//! Algorithms elsewhere in the crate implement `WithSimd` once, generic
//! over `F32Vector`. `dispatch` then calls that code inside a
//! `#[target_feature]` entry point for the active [`Backend`], so the
//! generic code is compiled once per instruction set and a plain
//! `cargo build --release` runs AVX2 or AVX-512 where the CPU has it.

#[cfg(simd_attention_x86_backends)]
pub(crate) mod asked_once;
#[cfg(simd_attention_x86_backends)]
mod avx2;
#[cfg(simd_attention_x86_backends)]
mod avx512;
mod backend;
#[cfg(simd_attention_portable_simd)]
mod portable;
pub(crate) mod prefetch;
mod scalar;
pub(crate) mod vector;
pub(crate) mod vendor;

/// The scalar backend's vector, for tests that check each backend's
/// layout arithmetic without running its instructions.
#[cfg(test)]
pub(crate) use scalar::Scalar;

#[cfg(feature = "std")]
pub use backend::with_backend;
pub use backend::{Backend, active};
pub(crate) use vector::F32Vector;

/// The widest matmul tile (`TILE_VECTORS · LANES` values) of the backends
/// this build has: the width of packed panels and of the blocked GEMM's
/// stack panel. Every tile width is a power of two, so each divides it.
pub(crate) const MAX_TILE_WIDTH: usize = {
    use crate::kernels::matmul_tile::tile_width as width;
    #[allow(dead_code)] // with the scalar backend alone
    const fn max(a: usize, b: usize) -> usize {
        if a > b { a } else { b }
    }
    #[allow(unused_mut)]
    let mut widest = width::<scalar::Scalar>();
    #[cfg(simd_attention_portable_simd)]
    {
        widest = max(widest, width::<wide::f32x8>());
    }
    #[cfg(simd_attention_x86_backends)]
    {
        widest = max(widest, max(width::<core::arch::x86_64::__m256>(), width::<core::arch::x86_64::__m512>()));
    }
    widest
};

/// An algorithm written once, generic over the vector type.
///
/// Implementations must mark `run` `#[inline(always)]`, and everything
/// generic it calls too: the code is only compiled for the backend's
/// instruction set once it is inlined into that backend's entry point.
pub(crate) trait WithSimd {
    type Output;
    fn run<V: F32Vector>(self) -> Self::Output;
}

/// Runs `job` on the active backend.
#[inline]
pub(crate) fn dispatch<J: WithSimd>(job: J) -> J::Output {
    dispatch_on(active(), job)
}

/// Runs `job` on `backend`, which must be one [`active`] could return
/// (detection never returns a backend the CPU lacks).
#[inline]
pub(crate) fn dispatch_on<J: WithSimd>(backend: Backend, job: J) -> J::Output {
    match backend {
        #[cfg(simd_attention_x86_backends)]
        // SAFETY: `active` only yields Avx512 after `is_available` saw avx512f, avx2, fma and f16c.
        Backend::Avx512 if backend.is_available() => unsafe { run_avx512(job) },
        #[cfg(simd_attention_x86_backends)]
        // SAFETY: `is_available` saw avx2, fma and f16c.
        Backend::Avx2 if backend.is_available() => unsafe { run_avx2(job) },
        #[cfg(simd_attention_portable_simd)]
        Backend::Scalar => job.run::<scalar::Scalar>(),
        #[cfg(simd_attention_portable_simd)]
        _ => job.run::<wide::f32x8>(),
        // No vector unit: one instantiation, the scalar one.
        #[cfg(not(simd_attention_portable_simd))]
        _ => job.run::<scalar::Scalar>(),
    }
}

/// # Safety
/// The CPU must support AVX-512F, AVX2, FMA and F16C.
#[cfg(simd_attention_x86_backends)]
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
unsafe fn run_avx512<J: WithSimd>(job: J) -> J::Output {
    job.run::<core::arch::x86_64::__m512>()
}

/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[cfg(simd_attention_x86_backends)]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn run_avx2<J: WithSimd>(job: J) -> J::Output {
    job.run::<core::arch::x86_64::__m256>()
}
