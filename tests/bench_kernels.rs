//! The benches' kernel entry points (`simd_attention::bench_kernels`)
//! compute what they claim, against the f64 references, on every backend,
//! and refuse inconsistent lengths by name.

mod common;
use common::{Rng, backends, reference};
use simd_attention::Error;
use simd_attention::bench_kernels::{SdpaTile, additive_score_tile};
use simd_attention::ops::{TILE_KEYS, TILE_QUERIES};
use simd_attention::simd::with_backend;

fn values(n: usize, rng: &mut Rng) -> Vec<f32> {
    (0..n).map(|_| 2.0 * rng.unit()).collect()
}

/// One flash step over a whole head of `TILE_QUERIES × TILE_KEYS`: each
/// output row over its row sum is SDPA's row.
#[test]
fn sdpa_tile_is_one_head_of_sdpa() {
    let mut rng = Rng(11);
    for (e, ev) in [(64, 64), (5, 3), (1, 17), (0, 4)] {
        let (q, k, v) =
            (values(TILE_QUERIES * e, &mut rng), values(TILE_KEYS * e, &mut rng), values(TILE_KEYS * ev, &mut rng));
        let dims = [1, 1, 1, TILE_QUERIES, TILE_KEYS, e, ev];
        let want = reference::sdpa(dims, &q, &k, &v, 1.0 / (e as f64).sqrt(), |_, _, _, _| true, |_, _, _, _| 0.0);
        for backend in backends() {
            with_backend(backend, || {
                let mut tile = SdpaTile::new(&q, &k, &v, e, ev).unwrap();
                let (out, sums) = tile.run();
                for (i, (row, &sum)) in out.chunks(ev).zip(sums).enumerate() {
                    for (d, &o) in row.iter().enumerate() {
                        let (got, exact) = (f64::from(o / sum), want[i * ev + d]);
                        assert!(
                            (got - exact).abs() <= 1e-5 + 1e-4 * exact.abs(),
                            "{backend:?} E{e}: ({i}, {d}) {got} vs {exact}"
                        );
                    }
                }
            })
            .unwrap();
        }
    }
}

/// The score tile is `Σ_h w_h tanh(a_h + b_h)` for every (query, key).
#[test]
fn additive_score_tile_is_the_tanh_sum() {
    let mut rng = Rng(12);
    let (queries, keys, h) = (3, 9, 21);
    let (a, b, w) = (values(queries * h, &mut rng), values(keys * h, &mut rng), values(h, &mut rng));
    let exp2 = |x: &[f32]| x.iter().map(|&x| (2.0 * x).exp()).collect::<Vec<f32>>();
    let (exp_2a, exp_2b) = (exp2(&a), exp2(&b));
    for backend in backends() {
        with_backend(backend, || {
            let mut out = vec![0.0f32; queries * keys];
            additive_score_tile([&a, &exp_2a], [&b, &exp_2b], &w, &mut out).unwrap();
            for (at, &got) in out.iter().enumerate() {
                let (i, j) = (at / keys, at % keys);
                let exact: f64 =
                    (0..h).map(|x| f64::from(w[x]) * (f64::from(a[i * h + x]) + f64::from(b[j * h + x])).tanh()).sum();
                assert!(
                    (f64::from(got) - exact).abs() <= 1e-5 * (1.0 + exact.abs()),
                    "{backend:?} ({i}, {j}): {got} vs {exact}"
                );
            }
        })
        .unwrap();
    }
}

#[test]
fn an_empty_value_width_runs() {
    let (q, k) = (vec![1.0f32; TILE_QUERIES * 2], vec![1.0f32; TILE_KEYS * 2]);
    let mut tile = SdpaTile::new(&q, &k, &[], 2, 0).unwrap();
    let (out, sums) = tile.run();
    assert!(out.is_empty());
    assert!(sums.iter().all(|&s| s == TILE_KEYS as f32), "equal scores: every e^0 counts");
}

#[test]
fn inconsistent_lengths_are_refused_by_name() {
    let (q, k, v) = (vec![0.0f32; TILE_QUERIES * 4], vec![0.0f32; TILE_KEYS * 4], vec![0.0f32; TILE_KEYS * 2]);
    let err = SdpaTile::new(&q, &k[1..], &v, 4, 2).err();
    assert_eq!(err, Some(Error::Length { arg: "k", expected: TILE_KEYS * 4, actual: TILE_KEYS * 4 - 1 }));
    let err = SdpaTile::new(&q, &k, &v, 4, 3).err();
    assert_eq!(err, Some(Error::Length { arg: "v", expected: TILE_KEYS * 3, actual: TILE_KEYS * 2 }));
    let (a, b, w) = (vec![0.0f32; 6], vec![0.0f32; 9], vec![0.0f32; 3]);
    let mut out = vec![9.0f32; 5];
    let got = additive_score_tile([&a, &a], [&b, &b], &w, &mut out);
    assert_eq!(got, Err(Error::Length { arg: "out", expected: 6, actual: 5 }));
    assert_eq!(out, vec![9.0; 5]);
    let got = additive_score_tile([&a, &a[1..]], [&b, &b], &w, &mut [0.0; 6]);
    assert_eq!(got, Err(Error::Length { arg: "exp_2a", expected: 6, actual: 5 }));
}
