//! Emits one cfg per family of backends that can exist on the target, so
//! the code for the others is not even compiled.
//!
//! - `simd_attention_x86_backends`: x86_64, where the AVX2 and AVX-512
//!   backends exist (chosen at run time, see `src/simd/backend.rs`).
//!
//! The portable `wide` backend and the scalar one exist everywhere.

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rustc-check-cfg=cfg(simd_attention_x86_backends)");
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    if arch == "x86_64" {
        println!("cargo::rustc-cfg=simd_attention_x86_backends");
    }
}
