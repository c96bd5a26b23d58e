//! The register-blocked matmul microkernel: an `MR × NV·LANES` block of C
//! kept in registers while `kc` rank-1 updates stream through it. Its full
//! shape belongs to the backend: `V::TILE_ROWS × V::TILE_VECTORS`.
//!
//! `C[0..MR, 0..cols] ← α·A[0..MR, 0..kc]·B̃ + β·C`, where `B̃` is a
//! [`Panel`] of `kc` rows of `NV` vectors (zero padded past `cols`). A is
//! read in place through its strides, one broadcast per row per step. As in BLAS, when `β = 0` C is only written, never read, so
//! NaN or garbage in C does not leak into the result.

use crate::simd::F32Vector;
use crate::simd::vector::MAX_LANES;

/// Vectors of C in a single-row tile ([`tile`] with `MR = 1`, `NV =
/// ROW_VECTORS`): one row has only `NV` independent sums, and 2 of them
/// would leave the FMA units waiting on each other's latency.
pub(crate) const ROW_VECTORS: usize = 8;

/// The B operand of a tile: vector `v` of row `p` starts at `ptr +
/// p·row_stride + v·vector_stride`. A row's vectors lie back to back
/// (`vector_stride = LANES`) in B read in place and in the blocked GEMM's
/// stack panel; packed panels (`kernels::packed_panels`) keep each strip of
/// columns apart.
#[derive(Clone, Copy)]
pub(crate) struct Panel {
    pub ptr: *const f32,
    pub row_stride: usize,
    pub vector_stride: usize,
}

impl Panel {
    /// Rows `row_stride` values apart, each of contiguous vectors.
    #[inline(always)]
    pub(crate) fn rows<V: F32Vector>(ptr: *const f32, row_stride: usize) -> Panel {
        Panel { ptr, row_stride, vector_stride: V::LANES }
    }
}

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
/// - `panel` must be readable for `V::LANES` values at each vector `v <
///   NV` of each row `p < kc`;
/// - `c` must be readable and writable at `(i, j)` for `i < MR`, `j < cols`,
///   with no two of those elements at the same address;
/// - `cols <= NV · V::LANES` and `NV <= ROW_VECTORS`.
///
/// Each element of C gets the same operations whatever `MR` and `NV` are,
/// so how a product is cut into tiles never changes a bit.
#[inline(always)]
pub(crate) unsafe fn tile<V: F32Vector, const MR: usize, const NV: usize>(
    kc: usize,
    a: Strided,
    panel: Panel,
    c: StridedMut,
    cols: usize,
    alpha: f32,
    beta: f32,
) {
    let width = NV * V::LANES;
    let mut acc = [[V::splat(0.0); NV]; MR];
    // One pointer per row of A, so each step's broadcasts share one offset
    // register. `black_box` hides that the rows are `i·rs` apart: without it
    // LLVM folds them back into a chain of adds, 4 more instructions a step.
    let a_rows: [*const f32; MR] = core::hint::black_box(core::array::from_fn(|i| a.ptr.wrapping_add(i * a.rs)));
    for p in 0..kc {
        // SAFETY: p < kc, so this row of the panel is in bounds, and (i, p) of A is readable.
        unsafe {
            let row = panel.ptr.add(p * panel.row_stride);
            let b: [V; NV] = core::array::from_fn(|v| V::load(row.add(v * panel.vector_stride)));
            for (acc_row, a_row) in acc.iter_mut().zip(&a_rows) {
                let a_ip = V::splat(*a_row.add(p * a.cs));
                for (acc_v, &b_v) in acc_row.iter_mut().zip(&b) {
                    *acc_v = a_ip.mul_add(b_v, *acc_v);
                }
            }
        }
    }
    if c.cs == 1 && cols == width && alpha == 1.0 && (beta == 0.0 || beta == 1.0) {
        // The same, with the factors of 1 left out (`x·1 = x`: the same
        // bits): projections and `P·V` products, and every depth block
        // after a blocked product's first, which adds onto C. A separate
        // loop: a second branch inside the one below kept the accumulators
        // in memory, a store after every FMA (2026-12-05, one Zen 4 core:
        // `add-batch` and `seq2seq-token-b64` ran 0.5×); this one ran
        // `add-batch` 1.03× and the rest within noise (`benches/alternate.sh
        // -r 3`).
        for (i, acc_row) in acc.iter().enumerate() {
            for (v, acc_v) in acc_row.iter().enumerate() {
                // SAFETY: row i < MR, columns v·LANES..(v + 1)·LANES <= cols are in C.
                unsafe {
                    let dst = c.ptr.add(i * c.rs + v * V::LANES);
                    let value = if beta == 0.0 { *acc_v } else { acc_v.add(V::load(dst)) };
                    value.store(dst);
                }
            }
        }
        return;
    }
    if c.cs == 1 && cols == width {
        // A full tile of row-contiguous C: whole vectors in and out.
        let (alpha, beta_v) = (V::splat(alpha), V::splat(beta));
        for (i, acc_row) in acc.iter().enumerate() {
            for (v, acc_v) in acc_row.iter().enumerate() {
                // SAFETY: row i < MR, columns v·LANES..(v + 1)·LANES <= cols are in C.
                unsafe {
                    let dst = c.ptr.add(i * c.rs + v * V::LANES);
                    let scaled = acc_v.mul(alpha);
                    // The same two roundings as the scalar edge below, so no element depends on its tile.
                    let value = if beta == 0.0 { scaled } else { scaled.add(V::load(dst).mul(beta_v)) };
                    value.store(dst);
                }
            }
        }
        return;
    }
    let mut sums = [0.0f32; ROW_VECTORS * MAX_LANES];
    for (i, acc_row) in acc.iter().enumerate() {
        for (v, acc_v) in acc_row.iter().enumerate() {
            // SAFETY: sums holds ROW_VECTORS · MAX_LANES >= (v + 1) · LANES values.
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

/// The backend's full tile width, `V::TILE_VECTORS · V::LANES` values.
#[inline(always)]
pub(crate) const fn tile_width<V: F32Vector>() -> usize {
    V::TILE_VECTORS * V::LANES
}

/// Runs the tallest tile (of 12, 8, 6, 4, 2 or 1 rows, at most the
/// backend's `V::TILE_ROWS`, and `V::TILE_VECTORS` vectors wide) that fits
/// in `rows_left` rows and returns how many rows it did.
///
/// # Safety
/// As [`tile`], for `MR = rows_left.min(V::TILE_ROWS)` rows and
/// `cols <= tile_width::<V>()`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn tile_rows<V: F32Vector>(
    rows_left: usize,
    kc: usize,
    a: Strided,
    panel: Panel,
    c: StridedMut,
    cols: usize,
    alpha: f32,
    beta: f32,
) -> usize {
    const { assert!(V::TILE_VECTORS == 2 || V::TILE_VECTORS == 4) };
    let rows = rows_left.min(V::TILE_ROWS);
    // The tallest tile of `rows` at most, `$nv` vectors wide.
    macro_rules! tallest {
        ($nv:literal) => {
            match rows {
                12.. => tile::<V, 12, $nv>(kc, a, panel, c, cols, alpha, beta),
                8..12 => tile::<V, 8, $nv>(kc, a, panel, c, cols, alpha, beta),
                6..8 => tile::<V, 6, $nv>(kc, a, panel, c, cols, alpha, beta),
                4..6 => tile::<V, 4, $nv>(kc, a, panel, c, cols, alpha, beta),
                2..4 => tile::<V, 2, $nv>(kc, a, panel, c, cols, alpha, beta),
                _ => tile::<V, 1, $nv>(kc, a, panel, c, cols, alpha, beta),
            }
        };
    }
    // SAFETY: each arm runs no more rows than rows_left and no wider a tile
    // than the backend's, as the caller allows.
    unsafe {
        match V::TILE_VECTORS {
            4 => tallest!(4),
            _ => tallest!(2),
        }
    }
    match rows {
        12.. => 12,
        8..12 => 8,
        6..8 => 6,
        4..6 => 4,
        2..4 => 2,
        _ => 1,
    }
}
