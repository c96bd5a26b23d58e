//! Accuracy sweeps of `vmath::tanh`, `vmath::exp` and `vmath::sigmoid` against f64, on every
//! backend this CPU runs.
//!
//! The default tests take 2²¹ points spread over all bit patterns (plus the
//! whole neighbourhood of the regime switches). The `#[ignore]`d ones sweep
//! every f32 exactly: `cargo test --release --test vmath_ulp -- --ignored --nocapture`.

mod common;
use common::{backends, reference, ulp_error};
use simd_attention::{simd::with_backend, vmath};

const TANH_MAX_ULP: f64 = 3.0;
const EXP_MAX_ULP: f64 = 2.0;
const SIGMOID_MAX_ULP: f64 = 3.0;

/// Worst ulp error of `f` over the f32 values with the given bit patterns,
/// and the input where it occurs.
fn worst(
    bits: impl Iterator<Item = u32>,
    f: fn(&[f32], &mut [f32]),
    reference: fn(f64) -> f64,
    keep: fn(f32) -> bool,
) -> (f64, f32) {
    let mut worst = (0.0f64, 0.0f32);
    let mut input = Vec::with_capacity(1 << 16);
    let mut out = vec![0.0f32; 1 << 16];
    let mut flush = |input: &mut Vec<f32>, worst: &mut (f64, f32)| {
        f(input, &mut out[..input.len()]);
        for (&x, &y) in input.iter().zip(&out) {
            let e = ulp_error(y, reference(x as f64));
            if e > worst.0 || e.is_nan() {
                *worst = (e, x);
            }
        }
        input.clear();
    };
    for b in bits {
        let x = f32::from_bits(b);
        if keep(x) {
            input.push(x);
            if input.len() == input.capacity() {
                flush(&mut input, &mut worst);
            }
        }
    }
    flush(&mut input, &mut worst);
    worst
}

fn tanh_slice(x: &[f32], y: &mut [f32]) {
    vmath::tanh(x, y).unwrap();
}
fn exp_slice(x: &[f32], y: &mut [f32]) {
    vmath::exp(x, y).unwrap();
}
fn sigmoid_slice(x: &[f32], y: &mut [f32]) {
    vmath::sigmoid(x, y).unwrap();
}
fn finite(x: f32) -> bool {
    x.is_finite()
}
fn exp_range(x: f32) -> bool {
    (-87.0..=88.0).contains(&x)
}
/// Where sigmoid's result is normal (`σ(-87) ≈ 1.6e-38`); below, the
/// subnormal steps are checked by `tests/vmath.rs`.
fn sigmoid_range(x: f32) -> bool {
    x.is_finite() && x >= -87.0
}

/// One function's accuracy contract: the slice function, its f64
/// reference, the inputs where the bound holds and the bound.
struct Contract {
    name: &'static str,
    f: fn(&[f32], &mut [f32]),
    reference: fn(f64) -> f64,
    keep: fn(f32) -> bool,
    max_ulp: f64,
    /// Points whose neighbourhoods the sampled test covers densely.
    near: &'static [f32],
}

const TANH: Contract = Contract {
    name: "tanh",
    f: tanh_slice,
    reference: f64::tanh,
    keep: finite,
    max_ulp: TANH_MAX_ULP,
    near: &[0.625, 10.0, 1e-4],
};
const EXP: Contract = Contract {
    name: "exp",
    f: exp_slice,
    reference: f64::exp,
    keep: exp_range,
    max_ulp: EXP_MAX_ULP,
    near: &[0.3466, 1.0, 88.0, -87.0],
};
const SIGMOID: Contract = Contract {
    name: "sigmoid",
    f: sigmoid_slice,
    reference: reference::sigmoid,
    keep: sigmoid_range,
    max_ulp: SIGMOID_MAX_ULP,
    near: &[0.0, 1e-4, 16.0, 88.0, -87.0],
};

/// 2²¹ patterns evenly over all 2³² plus every pattern near the given points.
fn sample(near: &[f32]) -> impl Iterator<Item = u32> + '_ {
    let spread = (0..1u64 << 21).map(|i| (i * 4099 % (1 << 32)) as u32 ^ (i as u32).wrapping_mul(2048));
    let dense = near.iter().flat_map(|&c| {
        let b = c.to_bits();
        (b.saturating_sub(20_000)..b.saturating_add(20_000))
            .chain((b | 0x8000_0000).saturating_sub(20_000)..(b | 0x8000_0000).saturating_add(20_000))
    });
    spread.chain(dense)
}

/// The contract over the sampled patterns, or over every f32.
fn check(c: &Contract, exhaustive: bool) {
    for backend in backends() {
        let (e, x) = with_backend(backend, || {
            if exhaustive {
                worst(0..=u32::MAX, c.f, c.reference, c.keep)
            } else {
                worst(sample(c.near), c.f, c.reference, c.keep)
            }
        })
        .unwrap();
        println!("{} {backend}: worst {e:.3} ulp at {x:e} ({:#010x})", c.name, x.to_bits());
        assert!(e <= c.max_ulp, "{} on {backend}: {e} ulp at {x:e}", c.name);
    }
}

#[test]
fn tanh_within_3_ulp_sampled() {
    check(&TANH, false);
}

#[test]
fn exp_within_2_ulp_sampled() {
    check(&EXP, false);
}

#[test]
fn sigmoid_within_3_ulp_sampled() {
    check(&SIGMOID, false);
}

#[test]
#[ignore = "exhaustive: run in release"]
fn tanh_within_3_ulp_exhaustive() {
    check(&TANH, true);
}

#[test]
#[ignore = "exhaustive: run in release"]
fn exp_within_2_ulp_exhaustive() {
    check(&EXP, true);
}

#[test]
#[ignore = "exhaustive: run in release"]
fn sigmoid_within_3_ulp_exhaustive() {
    check(&SIGMOID, true);
}
