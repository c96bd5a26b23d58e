//! `vmath::tanh`, `vmath::exp` and `vmath::sigmoid` on arbitrary slices:
//! every length from 0 to 1000, at every offset into a buffer (so each tail
//! and alignment runs), with special values mixed in; against f64, in place
//! against out of place, and every backend against every other.

mod common;
use common::{backends, reference, ulp_error};
use proptest::prelude::*;
use simd_attention::{Error, simd::with_backend, vmath};

type SliceFn = fn(&[f32], &mut [f32]) -> Result<(), Error>;
type InPlaceFn = fn(&mut [f32]);

struct Op {
    name: &'static str,
    out_of_place: SliceFn,
    in_place: InPlaceFn,
    reference: fn(f64) -> f64,
    max_ulp: f64,
    /// Inputs where the ulp bound is promised (elsewhere only special-value rules hold).
    bounded: fn(f32) -> bool,
}

const OPS: [Op; 3] = [
    Op {
        name: "tanh",
        out_of_place: vmath::tanh,
        in_place: vmath::tanh_in_place,
        reference: f64::tanh,
        max_ulp: 3.0,
        bounded: f32::is_finite,
    },
    Op {
        name: "exp",
        out_of_place: vmath::exp,
        in_place: vmath::exp_in_place,
        reference: f64::exp,
        max_ulp: 2.0,
        bounded: |x| (-87.0..=88.0).contains(&x),
    },
    Op {
        name: "sigmoid",
        out_of_place: vmath::sigmoid,
        in_place: vmath::sigmoid_in_place,
        reference: reference::sigmoid,
        max_ulp: 3.0,
        // Below -87 the result is subnormal: two subnormal steps (below).
        bounded: |x| x >= -87.0,
    },
];

fn value() -> impl Strategy<Value = f32> {
    prop_oneof![
        6 => -12.0f32..12.0,
        2 => -100.0f32..100.0,
        1 => any::<f32>(),
        1 => prop::sample::select(vec![
            0.0f32, -0.0, f32::INFINITY, f32::NEG_INFINITY, f32::NAN, f32::MIN_POSITIVE, 1e-40, -1e-40,
            0.625, -0.625, 10.0, -10.0, 88.7, 89.0, -87.4, -88.5, -95.0, -103.0, -104.0, -105.0, f32::MAX,
            f32::MIN,
        ]),
    ]
}

/// Checks one output value: within the ulp bound where promised, and the
/// special-value rules everywhere.
fn check_value(op: &Op, x: f32, y: f32) {
    let want = (op.reference)(x as f64);
    if (op.bounded)(x) || x.is_nan() || x.is_infinite() {
        let e = ulp_error(y, want);
        assert!(e <= op.max_ulp, "{}({x:e}) = {y:e}, want {want:e} ({e} ulp)", op.name);
    } else {
        // exp outside [-87, 88], sigmoid below -87: within the bound while
        // the result is normal, within two subnormal steps once it underflows.
        let rounded = want as f32;
        if rounded.abs() >= f32::MIN_POSITIVE {
            let e = ulp_error(y, want);
            assert!(e <= op.max_ulp, "{}({x:e}) = {y:e}, want {want:e} ({e} ulp)", op.name);
        } else {
            assert!((y - rounded).abs() <= 2.0 * 1.4e-45, "{}({x:e}) = {y:e}, want {rounded:e}", op.name);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn every_length_offset_and_backend(data in prop::collection::vec(value(), 0..1016), offset in 0usize..16) {
        let input = &data[offset.min(data.len())..];
        for op in &OPS {
            let mut first: Option<(simd_attention::Backend, Vec<f32>)> = None;
            for backend in backends() {
                let mut out = vec![f32::NAN; input.len() + 3];
                let mut in_place = input.to_vec();
                with_backend(backend, || {
                    (op.out_of_place)(input, &mut out[1..input.len() + 1]).unwrap();
                    (op.in_place)(&mut in_place);
                }).unwrap();
                // Nothing outside the output slice moved.
                prop_assert!(out[0].is_nan() && out[input.len() + 1].is_nan());
                let out = &out[1..input.len() + 1];
                for (&x, &y) in input.iter().zip(out) {
                    check_value(op, x, y);
                }
                prop_assert_eq!(bits(out), bits(&in_place), "{} in place on {}", op.name, backend);
                // Backends may differ (FMA or not, lane count) but only within
                // the sum of their bounds of each other.
                if let Some((b0, ref y0)) = first {
                    for ((&x, &a), &b) in input.iter().zip(y0).zip(out) {
                        if (op.bounded)(x) {
                            let e = ulp_error(b, a as f64);
                            prop_assert!(e <= 2.0 * op.max_ulp, "{}({x:e}): {b0} {a:e} vs {backend} {b:e}", op.name);
                        }
                    }
                } else {
                    first = Some((backend, out.to_vec()));
                }
            }
        }
    }
}

fn bits(x: &[f32]) -> Vec<u32> {
    x.iter().map(|v| v.to_bits()).collect()
}

#[test]
fn special_values() {
    let x = [0.0f32, -0.0, f32::INFINITY, f32::NEG_INFINITY, f32::NAN, 100.0, -120.0];
    for backend in backends() {
        let (mut t, mut e) = ([0.0f32; 7], [0.0f32; 7]);
        with_backend(backend, || {
            vmath::tanh(&x, &mut t).unwrap();
            vmath::exp(&x, &mut e).unwrap();
        })
        .unwrap();
        assert_eq!(bits(&t[..4]), bits(&[0.0, -0.0, 1.0, -1.0]), "tanh on {backend}");
        assert!(t[4].is_nan());
        assert_eq!((t[5], t[6]), (1.0, -1.0));
        assert_eq!(&e[..4], &[1.0, 1.0, f32::INFINITY, 0.0], "exp on {backend}");
        assert!(e[4].is_nan());
        assert_eq!((e[5], e[6]), (f32::INFINITY, 0.0));
        let mut s = [0.0f32; 7];
        with_backend(backend, || vmath::sigmoid(&x, &mut s).unwrap()).unwrap();
        assert_eq!(&s[..4], &[0.5, 0.5, 1.0, 0.0], "sigmoid on {backend}");
        assert!(s[4].is_nan());
        assert_eq!((s[5], s[6]), (1.0, 0.0));
    }
}

#[test]
fn exp_underflows_through_subnormals() {
    let x = [-88.0f32, -95.0, -103.0];
    let mut y = [0.0f32; 3];
    vmath::exp(&x, &mut y).unwrap();
    for (&x, &y) in x.iter().zip(&y) {
        let want = (x as f64).exp() as f32;
        assert!(y > 0.0 && (y - want).abs() <= 2.0 * 1.4e-45, "exp({x}) = {y:e}, want {want:e}");
    }
}

#[test]
fn length_mismatch_is_refused_and_nothing_written() {
    let mut out = [5.0f32; 3];
    assert_eq!(vmath::tanh(&[1.0; 4], &mut out), Err(Error::Length { arg: "out", expected: 4, actual: 3 }));
    assert_eq!(vmath::exp(&[1.0; 2], &mut out), Err(Error::Length { arg: "out", expected: 2, actual: 3 }));
    assert_eq!(out, [5.0; 3]);
}
