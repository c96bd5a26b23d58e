//! `gemm` against an exact reference: small-integer matrices make every
//! product and sum exact in f32, so results must match bit for bit, through
//! every layout (row-major, transposed, padded strides), both paths (our
//! tiles and matrixmultiply) and every backend. C is pre-filled with NaN to
//! catch reads when β = 0 and writes outside the view.

mod common;
use common::{Rng, backends};
use proptest::prelude::*;
use simd_attention::gemm::{LARGE_GEMM_MIN_B, MatMut, MatRef, gemm};
use simd_attention::{Error, simd::with_backend};

/// A matrix stored with padding: element (i, j) at `off + i·rs + j·cs`.
#[derive(Debug, Clone)]
struct Stored {
    data: Vec<f32>,
    rows: usize,
    cols: usize,
    off: usize,
    rs: usize,
    cs: usize,
}

impl Stored {
    /// Lays `rows × cols` values out row-major or column-major, with extra
    /// padding per line and an offset.
    fn new(rows: usize, cols: usize, col_major: bool, pad: usize, off: usize, fill: f32, rng: &mut Rng) -> Self {
        let (rs, cs) = if col_major { (1, rows + pad) } else { (cols + pad, 1) };
        let len = off + rows.max(1) * rs.max(1) * cols.max(1) * cs.max(1);
        let mut data = vec![fill; len];
        for i in 0..rows {
            for j in 0..cols {
                data[off + i * rs + j * cs] = (rng.next_u32() % 7) as f32 - 3.0;
            }
        }
        Stored { data, rows, cols, off, rs, cs }
    }
    fn at(&self, i: usize, j: usize) -> f32 {
        self.data[self.off + i * self.rs + j * self.cs]
    }
    fn view(&self) -> MatRef<'_> {
        MatRef::strided(&self.data[self.off..], self.rows, self.cols, self.rs, self.cs)
    }
}

/// One product to check: sizes, layouts of (A, B, C) (true = column-major),
/// line padding, α, β and the seed of the values.
#[derive(Debug, Clone, Copy)]
struct Case {
    m: usize,
    k: usize,
    n: usize,
    layouts: [bool; 3],
    pad: usize,
    alpha: f32,
    beta: f32,
    seed: u64,
}

fn check(Case { m, k, n, layouts, pad, alpha, beta, seed }: Case) {
    let mut rng = Rng(seed | 1);
    let a = Stored::new(m, k, layouts[0], pad, 3, 0.0, &mut rng);
    let b = Stored::new(k, n, layouts[1], pad, 1, 0.0, &mut rng);
    let c0 = Stored::new(m, n, layouts[2], pad, 2, f32::NAN, &mut rng);
    let mut c0 = c0;
    if beta == 0.0 {
        // β = 0: C must not be read, so its NaNs must vanish.
        for i in 0..m {
            for j in 0..n {
                let (o, rs, cs) = (c0.off, c0.rs, c0.cs);
                c0.data[o + i * rs + j * cs] = f32::NAN;
            }
        }
    }
    for backend in backends() {
        let mut c = c0.clone();
        let (off, rs, cs) = (c.off, c.rs, c.cs);
        let out = MatMut::strided(&mut c.data[off..], m, n, rs, cs);
        with_backend(backend, || gemm(alpha, a.view(), b.view(), beta, out)).unwrap().unwrap();
        for idx in 0..c.data.len() {
            let inside = idx >= off && {
                let rel = idx - off;
                (0..m).any(|i| (0..n).any(|j| i * rs + j * cs == rel))
            };
            if !inside {
                assert!(c.data[idx].to_bits() == c0.data[idx].to_bits(), "{backend}: wrote outside C at {idx}");
            }
        }
        for i in 0..m {
            for j in 0..n {
                let dot: f32 = (0..k).map(|p| a.at(i, p) * b.at(p, j)).sum();
                let prior = if beta == 0.0 { 0.0 } else { beta * c0.at(i, j) };
                let want = alpha * dot + prior;
                assert_eq!(c.at(i, j), want, "{backend} m{m} k{k} n{n} layouts {layouts:?}: C[{i},{j}]");
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(120))]

    #[test]
    fn small_products_are_exact(
        m in 0usize..13, k in 0usize..40, n in 0usize..40,
        layouts in any::<[bool; 3]>(), pad in 0usize..3,
        alpha in prop::sample::select(vec![1.0f32, 2.0, -0.5]),
        beta in prop::sample::select(vec![0.0f32, 1.0, -2.0]),
        seed in any::<u64>(),
    ) {
        check(Case { m, k, n, layouts, pad, alpha, beta, seed });
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(60))]

    /// One row of C, wide enough for the wide single-row tiles and their
    /// leftover columns (B kept under `LARGE_GEMM_MIN_B`, so our kernel runs).
    #[test]
    fn single_rows_are_exact(
        k in 0usize..5, n in 56usize..200,
        layouts in any::<[bool; 3]>(), pad in 0usize..3,
        alpha in prop::sample::select(vec![1.0f32, 2.0, -0.5]),
        beta in prop::sample::select(vec![0.0f32, 1.0, -2.0]),
        seed in any::<u64>(),
    ) {
        check(Case { m: 1, k, n, layouts, pad, alpha, beta, seed });
    }
}

#[test]
fn large_products_take_matrixmultiply_and_are_exact() {
    // B past LARGE_GEMM_MIN_B, odd sizes on purpose, in every layout.
    const { assert!(41 * 70 >= LARGE_GEMM_MIN_B) };
    for (i, layouts) in [[false; 3], [true, false, false], [false, true, true], [true; 3]].into_iter().enumerate() {
        let case = Case { m: 37, k: 70, n: 41, layouts, pad: 1, alpha: 1.0, beta: 0.0, seed: i as u64 };
        check(case);
        check(Case { pad: 0, alpha: 2.0, beta: -1.0, seed: i as u64 + 10, ..case });
    }
}

#[test]
fn k_zero_scales_c() {
    let a: [f32; 0] = [];
    let mut c = [1.0f32, f32::NAN, 3.0, 4.0];
    gemm(1.0, MatRef::new(&a, 2, 0), MatRef::new(&a, 0, 2), 0.0, MatMut::new(&mut c, 2, 2)).unwrap();
    assert_eq!(c, [0.0; 4]);
    let mut c = [1.0f32, 2.0, 3.0, 4.0];
    gemm(1.0, MatRef::new(&a, 2, 0), MatRef::new(&a, 0, 2), 2.0, MatMut::new(&mut c, 2, 2)).unwrap();
    assert_eq!(c, [2.0, 4.0, 6.0, 8.0]);
}

#[test]
fn bad_views_are_refused_and_c_untouched() {
    let a = [1.0f32; 6];
    let b = [1.0f32; 6];
    let mut c = [9.0f32; 4];
    let ok_a = MatRef::new(&a, 2, 3);
    let ok_b = MatRef::new(&b, 3, 2);
    // (A, B, C's rows, cols, row stride, col stride, the error)
    type BadCase<'a> = (MatRef<'a>, MatRef<'a>, (usize, usize, usize, usize), Error);
    let cases: Vec<BadCase<'_>> = vec![
        (MatRef::new(&a, 3, 3), ok_b, (2, 2, 2, 1), Error::OutOfBounds { arg: "a", needed: 9, len: 6 }),
        (ok_a, MatRef::new(&b, 2, 3), (2, 2, 2, 1), Error::Dimension { arg: "b.rows", expected: 3, actual: 2 }),
        (ok_a, ok_b, (3, 2, 2, 1), Error::OutOfBounds { arg: "c", needed: 6, len: 4 }),
        (ok_a, ok_b, (1, 2, 2, 1), Error::Dimension { arg: "c.rows", expected: 2, actual: 1 }),
        (ok_a, ok_b, (2, 2, 0, 1), Error::Overlapping { arg: "c" }),
        (ok_a, ok_b, (2, 2, 1, 1), Error::Overlapping { arg: "c" }),
        (MatRef::strided(&a, 2, 3, usize::MAX, 1), ok_b, (2, 2, 2, 1), Error::Overflow { arg: "a" }),
    ];
    for (a, b, (rows, cols, rs, cs), err) in cases {
        let got = gemm(1.0, a, b, 0.0, MatMut::strided(&mut c, rows, cols, rs, cs));
        assert_eq!(got, Err(err));
        assert_eq!(c, [9.0; 4]);
    }
}

#[test]
fn rows_of_c_do_not_depend_on_how_a_is_split() {
    // The parallel layer splits A's rows into separate calls; each row of C
    // must come out with the same bits as in one big call, on either path.
    let mut rng = Rng(7);
    // (10, 96) and (5, 200): single rows take the wide one-row tiles.
    for (k, n) in [(20usize, 30usize), (70, 41), (10, 96), (5, 200), (256, 256)] {
        let m = 37;
        let a: Vec<f32> = (0..m * k).map(|_| rng.unit()).collect();
        let b: Vec<f32> = (0..k * n).map(|_| rng.unit()).collect();
        let mut whole = vec![0.0f32; m * n];
        gemm(1.0, MatRef::new(&a, m, k), MatRef::new(&b, k, n), 0.0, MatMut::new(&mut whole, m, n)).unwrap();
        for split in [1usize, 3, 8] {
            let mut parts = vec![0.0f32; m * n];
            for (i0, c) in (0..m).step_by(split).zip(parts.chunks_mut(split * n)) {
                let rows = c.len() / n;
                gemm(
                    1.0,
                    MatRef::new(&a[i0 * k..(i0 + rows) * k], rows, k),
                    MatRef::new(&b, k, n),
                    0.0,
                    MatMut::new(c, rows, n),
                )
                .unwrap();
            }
            assert!(whole.iter().zip(&parts).all(|(x, y)| x.to_bits() == y.to_bits()), "k={k} n={n} split={split}");
        }
    }
}
