//! Helpers shared by the integration tests: ulp distances and the list of
//! backends this machine can run.
#![allow(dead_code)]

use simd_attention::Backend;

/// Distance from `got` to the exact `want`, in units of the f32 ulp at `want`.
/// Equal non-finite values (and NaN against NaN) are 0 apart.
pub fn ulp_error(got: f32, want: f64) -> f64 {
    if want.is_nan() || got.is_nan() {
        return if want.is_nan() && got.is_nan() { 0.0 } else { f64::INFINITY };
    }
    let rounded = want as f32;
    if rounded.is_infinite() || got.is_infinite() {
        return if got == rounded { 0.0 } else { f64::INFINITY };
    }
    let a = want.abs().max(f32::MIN_POSITIVE as f64);
    let ulp = 2f64.powi(a.log2().floor() as i32 - 23);
    (got as f64 - want).abs() / ulp
}

/// Backends this CPU runs. With `SIMD_ATTENTION_REQUIRE_BACKENDS=a,b` set,
/// panics if one of those is missing, so a CI run cannot pass on the
/// portable path alone by accident.
pub fn backends() -> Vec<Backend> {
    if let Ok(required) = std::env::var("SIMD_ATTENTION_REQUIRE_BACKENDS") {
        for name in required.split(',').filter(|s| !s.is_empty()) {
            let b = Backend::from_name(name).unwrap_or_else(|| panic!("unknown backend {name}"));
            assert!(b.is_available(), "backend {name} is required but this CPU cannot run it");
        }
    }
    Backend::ALL.into_iter().filter(|b| b.is_available()).collect()
}

/// Deterministic xorshift for tests that want many values without proptest.
pub struct Rng(pub u64);
impl Rng {
    pub fn next_u32(&mut self) -> u32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 32) as u32
    }
    /// Uniform in [-1, 1).
    pub fn unit(&mut self) -> f32 {
        (self.next_u32() as f64 / 2f64.powi(31) - 1.0) as f32
    }
}
