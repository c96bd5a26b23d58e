//! A linear layer's product, `y = x·Wᵀ + b` (PyTorch's `nn.Linear`, and
//! the gate products of a GRU), with `W` kept in one of two layouts.
//!
//! PyTorch saves `W` as `(out, in)` rows. Read as `Wᵀ`, that is a B whose
//! columns are strided, which every product must pack first; for a decoder
//! step (one row of `x` per sequence) the packing costs more than the
//! product. Transposed once into `(in, out)` ([`transpose`]), B's rows are
//! contiguous and our own GEMM reads it in place whenever few rows meet it.
//!
//! Which GEMM runs depends only on the layout, never on the number of rows,
//! so a row's result has the same bits whatever batch it is computed in.

use crate::error::{Error, checked_mul, expect_len, take};
use crate::gemm::{MatMut, MatRef, gemm, gemm_own};

/// A linear layer's weight, `out × in` as a matrix.
#[derive(Clone, Copy, Debug)]
pub enum Weight<'p> {
    /// PyTorch's layout: `(out, in)`, each output's weights contiguous.
    Rows(&'p [f32]),
    /// Transposed: `(in, out)`, each input's weights to every output
    /// contiguous. Products read it in place.
    Columns(&'p [f32]),
}

impl Weight<'_> {
    /// Number of values.
    pub fn len(&self) -> usize {
        self.values().len()
    }

    /// Whether it holds no value.
    pub fn is_empty(&self) -> bool {
        self.values().is_empty()
    }

    fn values(&self) -> &[f32] {
        match *self {
            Weight::Rows(w) | Weight::Columns(w) => w,
        }
    }
}

/// Writes `w` `(out, in)` transposed into `dst` `(in, out)`, for
/// [`Weight::Columns`]. Nothing is written if a length is wrong.
pub fn transpose(w: &[f32], out: usize, inp: usize, dst: &mut [f32]) -> Result<(), Error> {
    let len = checked_mul("w", out, inp)?;
    expect_len("w", len, w.len())?;
    expect_len("dst", len, dst.len())?;
    for (o, row) in w.chunks_exact(inp.max(1)).take(out).enumerate() {
        for (i, &x) in row.iter().enumerate() {
            dst[i * out + o] = x;
        }
    }
    Ok(())
}

/// `y (rows × out) = x (rows × inp) · Wᵀ + b`, with `out = b.len()`.
pub(crate) fn affine(x: &[f32], rows: usize, inp: usize, w: Weight<'_>, b: &[f32], y: &mut [f32]) -> Result<(), Error> {
    let out = b.len();
    expect_len("weight", checked_mul("weight", out, inp)?, w.len())?;
    let y = take("y", y, checked_mul("y", rows, out)?)?;
    let x = MatRef::new(x, rows, inp);
    // Both products check every view before writing, so y stays untouched on error.
    x.check("x")?;
    for row in y.chunks_exact_mut(out.max(1)).take(rows) {
        row.copy_from_slice(b);
    }
    let c = MatMut::new(y, rows, out);
    match w {
        Weight::Rows(w) => gemm(1.0, x, MatRef::new(w, out, inp).t(), 1.0, c),
        Weight::Columns(w) => gemm_own(1.0, x, MatRef::new(w, inp, out), 1.0, c),
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::simd::{Backend, with_backend};
    use std::string::ToString;
    use std::vec;
    use std::vec::Vec;

    /// Both layouts agree with the f64 product, and the transposed one has
    /// the same bits for a row alone as inside a batch, on every backend.
    #[test]
    fn both_layouts_compute_the_layer_and_rows_keep_their_bits() {
        let (rows, inp, out) = (9, 70, 150);
        let x: Vec<f32> = (0..rows * inp).map(|i| ((i * 37 % 101) as f32 - 50.0) / 17.0).collect();
        let w: Vec<f32> = (0..out * inp).map(|i| ((i * 53 % 97) as f32 - 48.0) / 13.0).collect();
        let b: Vec<f32> = (0..out).map(|i| i as f32 / 7.0).collect();
        let mut wt = vec![0.0; out * inp];
        transpose(&w, out, inp, &mut wt).unwrap();
        for backend in Backend::ALL.into_iter().filter(|b| b.is_available()) {
            with_backend(backend, || {
                for weight in [Weight::Rows(&w), Weight::Columns(&wt)] {
                    let mut y = vec![f32::NAN; rows * out];
                    affine(&x, rows, inp, weight, &b, &mut y).unwrap();
                    for (r, y_row) in y.chunks_exact(out).enumerate() {
                        for (o, &got) in y_row.iter().enumerate() {
                            let exact: f64 = f64::from(b[o])
                                + (0..inp).map(|i| f64::from(x[r * inp + i]) * f64::from(w[o * inp + i])).sum::<f64>();
                            assert!((f64::from(got) - exact).abs() < 1e-3, "{backend:?} {weight:?}: ({r}, {o})");
                        }
                        if let Weight::Columns(_) = weight {
                            let mut alone = vec![0.0; out];
                            affine(&x[r * inp..(r + 1) * inp], 1, inp, weight, &b, &mut alone).unwrap();
                            assert!(
                                alone.iter().zip(y_row).all(|(a, b)| a.to_bits() == b.to_bits()),
                                "{backend:?}: row {r}"
                            );
                        }
                    }
                }
            })
            .unwrap();
        }
    }

    #[test]
    fn wrong_lengths_are_refused_before_writing() {
        let (x, w, b) = ([1.0f32; 6], [1.0f32; 12], [0.5f32; 4]);
        let mut y = [7.0f32; 8];
        let err = affine(&x, 2, 3, Weight::Columns(&w[..11]), &b, &mut y).unwrap_err();
        assert_eq!(err.to_string(), "`weight`: expected length 12, got 11");
        let err = affine(&x, 2, 3, Weight::Rows(&w), &b, &mut y[..7]).unwrap_err();
        assert!(err.to_string().starts_with("`y`"), "{err}");
        assert_eq!(y, [7.0; 8]);
        let mut dst = [0.0f32; 11];
        assert!(transpose(&w, 4, 3, &mut dst).is_err());
        assert_eq!(dst, [0.0; 11]);
    }
}
