//! Emits one cfg per family of backends that can exist on the target, so
//! the code for the others is not even compiled.
//!
//! - `simd_attention_x86_backends`: x86_64, where the AVX2 and AVX-512
//!   backends exist (chosen at run time, see `src/simd/backend.rs`).
//!
//! - `simd_attention_portable_simd`: targets where `wide::f32x8` compiles
//!   to vector instructions (SSE2 on x86, NEON on aarch64 and on arm with
//!   `neon`, simd128 on wasm32). Elsewhere, a Cortex-M4 for example, `wide`
//!   falls back to arrays of eight scalars: the same arithmetic as the
//!   scalar backend, in far more code (the Cortex-M4 firmware's `.text`
//!   fell from 247 KB to 86 KB without it), and eight registers a "vector"
//!   on an FPU of 32. There the portable backend is not built and the
//!   scalar one runs.
//!
//! The scalar backend exists everywhere.

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rustc-check-cfg=cfg(simd_attention_x86_backends)");
    println!("cargo::rustc-check-cfg=cfg(simd_attention_portable_simd)");
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let features = std::env::var("CARGO_CFG_TARGET_FEATURE").unwrap_or_default();
    let has = |f: &str| features.split(',').any(|g| g == f);
    if arch == "x86_64" {
        println!("cargo::rustc-cfg=simd_attention_x86_backends");
    }
    let vector_unit = match arch.as_str() {
        "x86_64" | "aarch64" | "arm64ec" => true,
        "x86" => has("sse2"),
        "arm" => has("neon"),
        "wasm32" | "wasm64" => has("simd128"),
        _ => false,
    };
    if vector_unit {
        println!("cargo::rustc-cfg=simd_attention_portable_simd");
    }
}
