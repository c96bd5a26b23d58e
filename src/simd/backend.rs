//! Which vector backend runs, chosen once per process and cached.
//!
//! Detection follows memchr's `arch/x86_64/memchr.rs`: the first call
//! detects, every later call is one relaxed atomic load. The cache holds the
//! [`Backend`] rather than one function pointer per kernel because one
//! generic entry point ([`super::dispatch`]) serves every kernel in the
//! crate; a pointer per kernel would need a static per instantiation.

use crate::Error;
use core::fmt;
use core::sync::atomic::{AtomicU8, Ordering};

/// A vector backend: the instruction set the kernels run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Backend {
    /// x86_64 AVX-512F, 16 lanes.
    Avx512,
    /// x86_64 AVX2 with FMA, 8 lanes.
    Avx2,
    /// `wide::f32x8`, whatever the target compiles it to (NEON, simd128, SSE2).
    /// Targets without a vector unit (a Cortex-M4) do not have it: there
    /// `wide` would be eight scalars in a row, and [`Scalar`](Self::Scalar)
    /// runs instead.
    Portable,
    /// One lane of plain `f32`; never detected, only forced.
    Scalar,
}

impl Backend {
    /// Every backend, fastest first.
    pub const ALL: [Backend; 4] = [Backend::Avx512, Backend::Avx2, Backend::Portable, Backend::Scalar];

    /// The lowercase name used by `Display` and `SIMD_ATTENTION_BACKEND`.
    pub const fn name(self) -> &'static str {
        match self {
            Backend::Avx512 => "avx512",
            Backend::Avx2 => "avx2",
            Backend::Portable => "portable",
            Backend::Scalar => "scalar",
        }
    }

    /// Parses a [`name`](Self::name).
    pub fn from_name(name: &str) -> Option<Backend> {
        Backend::ALL.into_iter().find(|b| b.name() == name)
    }

    /// Whether this CPU can run the backend.
    pub fn is_available(self) -> bool {
        match self {
            Backend::Avx512 => cpu_has_avx512(),
            Backend::Avx2 => cpu_has_avx2(),
            Backend::Portable => cfg!(simd_attention_portable_simd),
            Backend::Scalar => true,
        }
    }

    /// Returns `Ok(self)` if this CPU can run it, else an error naming it.
    pub fn check_available(self) -> Result<Backend, Error> {
        if self.is_available() { Ok(self) } else { Err(Error::BackendUnavailable { backend: self.name() }) }
    }

    /// The fastest backend this CPU runs.
    pub fn detect() -> Backend {
        Backend::ALL.into_iter().find(|b| b.is_available()).unwrap_or(Backend::Scalar)
    }

    fn from_code(code: u8) -> Backend {
        Backend::ALL[usize::from(code) % Backend::ALL.len()]
    }

    fn code(self) -> u8 {
        self as u8
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(simd_attention_x86_backends)]
fn cpu_has_avx2() -> bool {
    #[cfg(feature = "std")]
    {
        std::is_x86_feature_detected!("avx2")
            && std::is_x86_feature_detected!("fma")
            && std::is_x86_feature_detected!("f16c")
    }
    #[cfg(not(feature = "std"))]
    {
        cpufeatures::new!(cpuid_avx2_fma, "avx2", "fma");
        cpuid_avx2_fma::get() && cpuid_f16c()
    }
}

/// F16C (CPUID leaf 1, ECX bit 29), which `cpufeatures` 0.3 does not name.
#[cfg(all(simd_attention_x86_backends, not(feature = "std")))]
fn cpuid_f16c() -> bool {
    // SAFETY: every x86_64 CPU has CPUID leaf 1.
    #[allow(unused_unsafe)]
    let leaf = unsafe { core::arch::x86_64::__cpuid(1) };
    leaf.ecx & (1 << 29) != 0
}

#[cfg(simd_attention_x86_backends)]
fn cpu_has_avx512() -> bool {
    // The AVX-512 entry point also enables AVX2 and FMA for its 256-bit
    // reductions, and F16C with them (cpu_has_avx2 checks all three).
    #[cfg(feature = "std")]
    {
        std::is_x86_feature_detected!("avx512f") && cpu_has_avx2()
    }
    #[cfg(not(feature = "std"))]
    {
        cpufeatures::new!(cpuid_avx512f, "avx512f", "avx2", "fma");
        cpuid_avx512f::get() && cpuid_f16c()
    }
}

#[cfg(not(simd_attention_x86_backends))]
fn cpu_has_avx2() -> bool {
    false
}

#[cfg(not(simd_attention_x86_backends))]
fn cpu_has_avx512() -> bool {
    false
}

/// `u8::MAX` until the first call to [`active`] detects.
static ACTIVE: AtomicU8 = AtomicU8::new(u8::MAX);

/// The backend the public functions use.
///
/// Chosen on first use: the fastest one the CPU has, unless (with `std`) the
/// environment variable `SIMD_ATTENTION_BACKEND` names another available
/// backend. An unknown or unavailable name is ignored, so forcing `avx512`
/// on a CPU without it can never run illegal instructions; [`backend()`]
/// reports what really runs.
///
/// [`backend()`]: crate::backend
pub fn active() -> Backend {
    #[cfg(feature = "std")]
    if let Some(forced) = scoped::current() {
        return forced;
    }
    let code = ACTIVE.load(Ordering::Relaxed);
    if code != u8::MAX {
        return Backend::from_code(code);
    }
    let chosen = from_environment().unwrap_or_else(Backend::detect);
    ACTIVE.store(chosen.code(), Ordering::Relaxed);
    chosen
}

#[cfg(feature = "std")]
fn from_environment() -> Option<Backend> {
    let name = std::env::var("SIMD_ATTENTION_BACKEND").ok()?;
    Backend::from_name(name.trim()).filter(|b| b.is_available())
}

#[cfg(not(feature = "std"))]
fn from_environment() -> Option<Backend> {
    None
}

/// Runs `f` with `backend` as this thread's active backend.
///
/// This is how tests and benchmarks compare backends inside one process.
/// The override is per thread: work that `f` hands to other threads uses
/// their own backend unless the operator passes its choice along (the
/// crate's own parallel layer does).
#[cfg(feature = "std")]
pub fn with_backend<R>(backend: Backend, f: impl FnOnce() -> R) -> Result<R, Error> {
    backend.check_available()?;
    Ok(scoped::run(backend, f))
}

#[cfg(feature = "std")]
mod scoped {
    use super::Backend;
    use std::cell::Cell;

    std::thread_local! {
        static FORCED: Cell<Option<Backend>> = const { Cell::new(None) };
    }

    pub(super) fn current() -> Option<Backend> {
        FORCED.with(Cell::get)
    }

    pub(super) fn run<R>(backend: Backend, f: impl FnOnce() -> R) -> R {
        struct Restore(Option<Backend>);
        impl Drop for Restore {
            fn drop(&mut self) {
                FORCED.with(|c| c.set(self.0));
            }
        }
        let _restore = Restore(FORCED.with(|c| c.replace(Some(backend))));
        f()
    }
}
