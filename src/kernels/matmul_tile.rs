//! The register-blocked matmul microkernel: an `MR × 2·LANES` block of C
//! kept in registers while `kc` rank-1 updates stream through it.
//!
//! `C[0..MR, 0..cols] ← α·A[0..MR, 0..kc]·B̃ + β·C`, where `B̃` is a packed
//! panel of `kc` rows of exactly `2·LANES` contiguous values (zero padded
//! past `cols`). A is read in place through its strides, one broadcast per
//! row per step. As in BLAS, when `β = 0` C is only written, never read, so
//! NaN or garbage in C does not leak into the result.

use crate::simd::F32Vector;
use crate::simd::vector::MAX_LANES;

/// Rows of C per full tile. 4 rows × 2 vectors keeps 8 accumulators, 2 B
/// vectors and a broadcast live: within the 16 registers of AVX2.
pub(crate) const TILE_ROWS: usize = 4;
/// Vectors of C per tile row.
pub(crate) const TILE_VECTORS: usize = 2;

/// A strided read-only operand: element `(i, j)` is at `ptr + i·rs + j·cs`.
#[derive(Clone, Copy)]
pub(crate) struct Strided {
    pub ptr: *const f32,
    pub rs: usize,
    pub cs: usize,
}

/// A strided writable operand.
#[derive(Clone, Copy)]
pub(crate) struct StridedMut {
    pub ptr: *mut f32,
    pub rs: usize,
    pub cs: usize,
}

/// Computes one tile.
///
/// # Safety
/// - `a` must be readable at `(i, p)` for `i < MR`, `p < kc`;
/// - `panel` must hold `kc · TILE_VECTORS · V::LANES` readable values;
/// - `c` must be readable and writable at `(i, j)` for `i < MR`, `j < cols`,
///   with no two of those elements at the same address;
/// - `cols <= TILE_VECTORS · V::LANES`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn tile<V: F32Vector, const MR: usize>(
    kc: usize,
    a: Strided,
    panel: *const f32,
    c: StridedMut,
    cols: usize,
    alpha: f32,
    beta: f32,
) {
    let width = TILE_VECTORS * V::LANES;
    let mut acc = [[V::splat(0.0); TILE_VECTORS]; MR];
    for p in 0..kc {
        // SAFETY: p < kc, so this row of the panel is in bounds, and (i, p) of A is readable.
        unsafe {
            let row = panel.add(p * width);
            let b = [V::load(row), V::load(row.add(V::LANES))];
            for (i, acc_row) in acc.iter_mut().enumerate() {
                let a_ip = V::splat(*a.ptr.add(i * a.rs + p * a.cs));
                for (acc_v, &b_v) in acc_row.iter_mut().zip(&b) {
                    *acc_v = a_ip.mul_add(b_v, *acc_v);
                }
            }
        }
    }
    let mut sums = [0.0f32; TILE_VECTORS * MAX_LANES];
    for (i, acc_row) in acc.iter().enumerate() {
        for (v, acc_v) in acc_row.iter().enumerate() {
            // SAFETY: sums holds TILE_VECTORS · MAX_LANES >= (v + 1) · LANES values.
            unsafe { acc_v.store(sums.as_mut_ptr().add(v * V::LANES)) };
        }
        for (j, &sum) in sums[..cols].iter().enumerate() {
            // SAFETY: i < MR and j < cols, which the caller guarantees are in C.
            unsafe {
                let dst = c.ptr.add(i * c.rs + j * c.cs);
                *dst = if beta == 0.0 { alpha * sum } else { alpha * sum + beta * *dst };
            }
        }
    }
}
