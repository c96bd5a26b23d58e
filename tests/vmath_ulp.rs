//! Accuracy sweeps of `vmath::tanh` and `vmath::exp` against f64, on every
//! backend this CPU runs.
//!
//! The default tests take 2²¹ points spread over all bit patterns (plus the
//! whole neighbourhood of the regime switches). The `#[ignore]`d ones sweep
//! every f32 exactly: `cargo test --release --test vmath_ulp -- --ignored --nocapture`.

mod common;
use common::{backends, ulp_error};
use simd_attention::{simd::with_backend, vmath};

const TANH_MAX_ULP: f64 = 3.0;
const EXP_MAX_ULP: f64 = 2.0;

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
fn finite(x: f32) -> bool {
    x.is_finite()
}
fn exp_range(x: f32) -> bool {
    (-87.0..=88.0).contains(&x)
}

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

#[test]
fn tanh_within_3_ulp_sampled() {
    for backend in backends() {
        let (e, x) =
            with_backend(backend, || worst(sample(&[0.625, 10.0, 1e-4]), tanh_slice, f64::tanh, finite)).unwrap();
        println!("tanh {backend}: worst {e:.3} ulp at {x:e}");
        assert!(e <= TANH_MAX_ULP, "tanh on {backend}: {e} ulp at {x:e}");
    }
}

#[test]
fn exp_within_2_ulp_sampled() {
    for backend in backends() {
        let (e, x) =
            with_backend(backend, || worst(sample(&[0.3466, 1.0, 88.0, -87.0]), exp_slice, f64::exp, exp_range))
                .unwrap();
        println!("exp {backend}: worst {e:.3} ulp at {x:e}");
        assert!(e <= EXP_MAX_ULP, "exp on {backend}: {e} ulp at {x:e}");
    }
}

#[test]
#[ignore = "exhaustive: run in release"]
fn tanh_within_3_ulp_exhaustive() {
    for backend in backends() {
        let (e, x) = with_backend(backend, || worst(0..=u32::MAX, tanh_slice, f64::tanh, finite)).unwrap();
        println!("tanh {backend}: worst {e:.3} ulp at {x:e} ({:#010x}) over every finite f32", x.to_bits());
        assert!(e <= TANH_MAX_ULP);
    }
}

#[test]
#[ignore = "exhaustive: run in release"]
fn exp_within_2_ulp_exhaustive() {
    for backend in backends() {
        let (e, x) = with_backend(backend, || worst(0..=u32::MAX, exp_slice, f64::exp, exp_range)).unwrap();
        println!("exp {backend}: worst {e:.3} ulp at {x:e} ({:#010x}) over every f32 in [-87, 88]", x.to_bits());
        assert!(e <= EXP_MAX_ULP);
    }
}
