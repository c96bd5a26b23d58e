//! General matrix multiply over strided views: `C ← α·A·B + β·C`.
//!
//! Large products go to bluss's `matrixmultiply` when `alloc` is on (it
//! packs both operands into heap buffers and runs tuned AVX-512/AVX2/FMA
//! kernels). Small ones, and every product in a build without `alloc`, run
//! our own blocked microkernel on the active SIMD backend.
//!
//! As in BLAS, `β = 0` means C is not read: NaN or garbage in C is
//! overwritten. With `k = 0`, `C ← β·C`.

mod blocked;
mod view;

pub use view::{MatMut, MatRef};

use crate::error::Error;
use crate::kernels::matmul_tile::{Strided, StridedMut};
use crate::simd;
pub(crate) use blocked::RowRuns;
use blocked::{AllRows, BlockedGemm};

/// Products whose `k·n` (the size of B) is at least this go to
/// `matrixmultiply` when `alloc` is on; below it, its packing costs more
/// than it saves.
///
/// The choice deliberately ignores `m`: each element of C then gets the same
/// arithmetic however the rows of A are split into calls, which is what lets
/// the parallel layer split rows and still match the serial result bit for
/// bit.
pub const LARGE_GEMM_MIN_B: usize = 32 * 32;

/// `C ← α·A·B + β·C`.
///
/// Errors, before anything is written, if a view reaches past its buffer,
/// if C's strides make two elements share a place, if `a.cols ≠ b.rows`, or
/// if C is not `a.rows × b.cols`.
pub fn gemm(alpha: f32, a: MatRef<'_>, b: MatRef<'_>, beta: f32, mut c: MatMut<'_>) -> Result<(), Error> {
    let Some((m, n, k)) = checked_dims(&a, &b, &mut c, beta)? else { return Ok(()) };
    #[cfg(feature = "alloc")]
    if n.saturating_mul(k) >= LARGE_GEMM_MIN_B {
        large(alpha, a, b, beta, c);
        return Ok(());
    }
    blocked(alpha, (m, n, k), a, b, beta, c, AllRows(m));
    Ok(())
}

/// [`gemm`] on our own microkernel whatever the size. For products whose
/// rows a caller cannot batch (one query row per batch entry when decoding),
/// where `matrixmultiply` would pad each row to its 8-row kernel and repack
/// B on every call. The path depends on nothing but the call site, so the
/// parallel layer may still split rows.
pub(crate) fn gemm_own(alpha: f32, a: MatRef<'_>, b: MatRef<'_>, beta: f32, mut c: MatMut<'_>) -> Result<(), Error> {
    let Some(dims) = checked_dims(&a, &b, &mut c, beta)? else { return Ok(()) };
    blocked(alpha, dims, a, b, beta, c, AllRows(dims.0));
    Ok(())
}

/// [`gemm_own`] on the rows of A and C that `runs` names, B's panels
/// packed once for all of them (the other rows of C are not written). Each
/// row gets [`gemm_own`]'s bits. For the key rows some query scores, when
/// the rows past a batch entry's valid lengths are not needed.
pub(crate) fn gemm_own_rows(
    alpha: f32,
    a: MatRef<'_>,
    b: MatRef<'_>,
    beta: f32,
    mut c: MatMut<'_>,
    runs: impl RowRuns,
) -> Result<(), Error> {
    let Some(dims) = checked_dims(&a, &b, &mut c, beta)? else { return Ok(()) };
    blocked(alpha, dims, a, b, beta, c, runs);
    Ok(())
}

/// Checks the views and their agreement; handles the empty products, and
/// returns `(m, n, k)` when there is a product left to compute.
fn checked_dims(
    a: &MatRef<'_>,
    b: &MatRef<'_>,
    c: &mut MatMut<'_>,
    beta: f32,
) -> Result<Option<(usize, usize, usize)>, Error> {
    a.check("a")?;
    b.check("b")?;
    c.check("c")?;
    if b.rows != a.cols {
        return Err(Error::Dimension { arg: "b.rows", expected: a.cols, actual: b.rows });
    }
    if c.rows != a.rows {
        return Err(Error::Dimension { arg: "c.rows", expected: a.rows, actual: c.rows });
    }
    if c.cols != b.cols {
        return Err(Error::Dimension { arg: "c.cols", expected: b.cols, actual: c.cols });
    }
    let (m, k, n) = (a.rows, a.cols, b.cols);
    if m == 0 || n == 0 {
        return Ok(None);
    }
    if k == 0 {
        scale(beta, c);
        return Ok(None);
    }
    Ok(Some((m, n, k)))
}

fn blocked(
    alpha: f32,
    (m, n, k): (usize, usize, usize),
    a: MatRef<'_>,
    b: MatRef<'_>,
    beta: f32,
    c: MatMut<'_>,
    runs: impl RowRuns,
) {
    simd::dispatch(BlockedGemm {
        m,
        n,
        k,
        alpha,
        a: strided(&a),
        b: strided(&b),
        beta,
        c: StridedMut { ptr: c.data.as_mut_ptr(), rs: c.row_stride, cs: c.col_stride },
        runs,
    });
}

fn strided(v: &MatRef<'_>) -> Strided {
    Strided { ptr: v.data.as_ptr(), rs: v.row_stride, cs: v.col_stride }
}

/// `C ← β·C`, writing zeros (not reading C) when `β = 0`.
fn scale(beta: f32, c: &mut MatMut<'_>) {
    for i in 0..c.rows {
        for j in 0..c.cols {
            let x = &mut c.data[i * c.row_stride + j * c.col_stride];
            *x = if beta == 0.0 { 0.0 } else { beta * *x };
        }
    }
}

#[cfg(feature = "alloc")]
fn large(alpha: f32, a: MatRef<'_>, b: MatRef<'_>, beta: f32, c: MatMut<'_>) {
    // A stride only matters along a dimension longer than 1; zeroing the
    // others keeps every stride below the buffer length, hence within isize.
    let stride = |dim: usize, s: usize| if dim > 1 { s as isize } else { 0 };
    // SAFETY: the three views were checked: every (i, j) they reach is inside
    // its slice, C's elements are distinct, C is borrowed mutably so it aliases
    // neither A nor B, and strides are below slice lengths (<= isize::MAX).
    unsafe {
        matrixmultiply::sgemm(
            a.rows,
            a.cols,
            b.cols,
            alpha,
            a.data.as_ptr(),
            stride(a.rows, a.row_stride),
            stride(a.cols, a.col_stride),
            b.data.as_ptr(),
            stride(b.rows, b.row_stride),
            stride(b.cols, b.col_stride),
            beta,
            c.data.as_mut_ptr(),
            stride(c.rows, c.row_stride),
            stride(c.cols, c.col_stride),
        );
    }
}
