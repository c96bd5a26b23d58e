//! Our own blocked GEMM, for builds without `alloc` and for small products.
//!
//! The loop order follows BLIS as bluss's `matrixmultiply` lays it out, cut
//! down to what fits on the stack: B is packed one `KC ×` tile-width panel
//! at a time into a fixed stack buffer (`KC × MAX_TILE_WIDTH`: 16 KiB with
//! the x86 backends, 512 B with the scalar one alone), and every row block of A
//! runs the microkernel (`kernels::matmul_tile`) over that panel. A is read
//! in place, so no heap is needed; so is B, when it has row-contiguous
//! columns and the call has a single row block (a GEMV-like product reads B
//! once, and copying it would double that). Knows nothing of the ISA: the
//! vector type comes from dispatch.

use crate::kernels::matmul_tile::{Panel, ROW_VECTORS, Strided, StridedMut, tile, tile_rows, tile_width};
use crate::simd::{F32Vector, MAX_TILE_WIDTH, WithSimd};

/// Depth of one packed panel.
const KC: usize = 64;

/// Which rows of A and C a product computes: runs of consecutive rows, in
/// order, each within `0..m`. Every panel of B is packed once and serves
/// all of them; a row gets the same operations whichever run it is in.
pub(crate) trait RowRuns: Copy {
    /// How many runs.
    fn count(&self) -> usize;
    /// Run `r`'s rows.
    fn run(&self, r: usize) -> core::ops::Range<usize>;
}

/// All `m` rows, as one run.
#[derive(Clone, Copy)]
pub(crate) struct AllRows(pub usize);

impl RowRuns for AllRows {
    fn count(&self) -> usize {
        1
    }
    fn run(&self, _: usize) -> core::ops::Range<usize> {
        0..self.0
    }
}

/// `C ← α·A·B + β·C` for views already checked by [`super::gemm`], on the
/// rows `runs` names (the other rows of C are left alone).
pub(crate) struct BlockedGemm<R: RowRuns> {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub alpha: f32,
    pub a: Strided,
    pub b: Strided,
    pub beta: f32,
    pub c: StridedMut,
    pub runs: R,
}

impl<R: RowRuns> WithSimd for BlockedGemm<R> {
    type Output = ();

    #[inline(always)]
    fn run<V: F32Vector>(self) {
        let BlockedGemm { m, n, k, alpha, a, b, beta, c, runs } = self;
        let width = tile_width::<V>();
        // A single row with B's rows contiguous (a GEMV, such as one decoding
        // step's product) goes through one-row tiles of 8, 4, 2 and 1
        // vectors, reading B in place: one row has only as many independent
        // sums as the tile has vectors, so the widest that fits keeps the
        // FMA units busy. The columns left over (fewer than a vector) take
        // the loop below.
        let one_row = m == 1 && runs.count() == 1 && runs.run(0) == (0..1);
        let wide_cols = if one_row && b.cs == 1 { one_row_tiles::<V>(n, k, alpha, a, b, beta, c) } else { 0 };
        if wide_cols == n {
            // All done above: skip zeroing the 8 KiB panel, which a decoding
            // step's many small products would otherwise pay each call.
            return;
        }
        let mut panel = [0.0f32; KC * MAX_TILE_WIDTH];
        for j0 in (wide_cols..n).step_by(width) {
            let cols = width.min(n - j0);
            for (p0, kc, beta) in depth_blocks(k, beta) {
                // Few rows read the block of B once: read it in place when
                // its rows are contiguous, rather than copy it. The values
                // and their order are the same either way.
                let b_panel = if m <= V::TILE_ROWS && b.cs == 1 && cols == width {
                    Panel::rows::<V>(b.ptr.wrapping_add(p0 * b.rs + j0), b.rs)
                } else {
                    pack_panel::<V>(&b, (p0, kc), (j0, cols), width, &mut panel);
                    Panel::rows::<V>(panel.as_ptr(), width)
                };
                for r in 0..runs.count() {
                    let rows = runs.run(r);
                    let (mut i, end) = (rows.start, rows.end.min(m));
                    while i < end {
                        let a_block = Strided { ptr: a.ptr.wrapping_add(i * a.rs + p0 * a.cs), ..a };
                        let c_block = StridedMut { ptr: c.ptr.wrapping_add(i * c.rs + j0 * c.cs), ..c };
                        // SAFETY: rows i..end <= m (tile_rows never passes them), depth
                        // p0..p0+kc and columns j0..j0+cols lie inside the checked views; the
                        // panel (packed, or B in place when all `width` columns are inside it)
                        // holds kc rows.
                        i += unsafe { tile_rows::<V>(end - i, kc, a_block, b_panel, c_block, cols, alpha, beta) };
                    }
                }
            }
        }
    }
}

/// Row 0 of C over its leading columns in one-row tiles of 8, 4, 2 and
/// 1 vectors (widest first), B read in place; returns the columns done,
/// all but the last `n mod LANES`.
#[inline(always)]
fn one_row_tiles<V: F32Vector>(
    n: usize,
    k: usize,
    alpha: f32,
    a: Strided,
    b: Strided,
    beta: f32,
    c: StridedMut,
) -> usize {
    let mut j0 = 0;
    while n - j0 >= V::LANES {
        let vectors = [ROW_VECTORS, 4, 2, 1].into_iter().find(|&nv| n - j0 >= nv * V::LANES).unwrap_or(1);
        let cols = vectors * V::LANES;
        for (p0, kc, beta) in depth_blocks(k, beta) {
            let a_block = Strided { ptr: a.ptr.wrapping_add(p0 * a.cs), ..a };
            let c_block = StridedMut { ptr: c.ptr.wrapping_add(j0 * c.cs), ..c };
            let panel = Panel::rows::<V>(b.ptr.wrapping_add(p0 * b.rs + j0), b.rs);
            // SAFETY: row 0, depth p0..p0 + kc and columns j0..j0 + cols <= n lie inside
            // the checked views, and B's rows are contiguous, so each of its kc rows
            // holds those cols values.
            unsafe {
                match vectors {
                    ROW_VECTORS => tile::<V, 1, ROW_VECTORS>(kc, a_block, panel, c_block, cols, alpha, beta),
                    4 => tile::<V, 1, 4>(kc, a_block, panel, c_block, cols, alpha, beta),
                    2 => tile::<V, 1, 2>(kc, a_block, panel, c_block, cols, alpha, beta),
                    _ => tile::<V, 1, 1>(kc, a_block, panel, c_block, cols, alpha, beta),
                }
            }
        }
        j0 += cols;
    }
    j0
}

/// The depth blocks `(p0, kc, β)` of a product of depth `k`: later blocks
/// accumulate onto what the first one wrote, so only the first uses `beta`.
fn depth_blocks(k: usize, beta: f32) -> impl Iterator<Item = (usize, usize, f32)> {
    (0..k).step_by(KC).map(move |p0| (p0, KC.min(k - p0), if p0 == 0 { beta } else { 1.0 }))
}

/// Copies rows `p0..p0 + kc`, columns `j0..j0 + cols` of B into `panel`
/// as `kc` rows of `width` values, zero past `cols`.
#[inline(always)]
fn pack_panel<V: F32Vector>(
    b: &Strided,
    (p0, kc): (usize, usize),
    (j0, cols): (usize, usize),
    width: usize,
    panel: &mut [f32],
) {
    for p in 0..kc {
        let dst = &mut panel[p * width..(p + 1) * width];
        if b.cs == 1 && cols == width && width.is_multiple_of(V::LANES) {
            // A whole row of the panel in vector moves: `copy_from_slice`
            // of a length known only at run time is a `memmove` call a row,
            // 10 % of a batch-64 seq2seq decode's time on one Xeon core.
            for v in (0..width).step_by(V::LANES) {
                // SAFETY: row p0 + p holds columns j0..j0 + width of B (the view was
                // checked), and dst holds width values.
                unsafe { V::load(b.ptr.add((p0 + p) * b.rs + j0 + v)).store(dst.as_mut_ptr().add(v)) };
            }
            continue;
        }
        if b.cs == 1 {
            // SAFETY: row p0 + p holds columns j0..j0 + cols of B; the view was checked.
            let row = unsafe { core::slice::from_raw_parts(b.ptr.add((p0 + p) * b.rs + j0), cols) };
            dst[..cols].copy_from_slice(row);
            dst[cols..].fill(0.0);
            continue;
        }
        for (j, d) in dst.iter_mut().enumerate() {
            // SAFETY: (p0 + p, j0 + j) is inside B for j < cols; the view was checked.
            *d = if j < cols { unsafe { *b.ptr.add((p0 + p) * b.rs + (j0 + j) * b.cs) } } else { 0.0 };
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::super::{MatMut, MatRef, gemm_own};
    use crate::simd::{Backend, with_backend};
    use std::vec;
    use std::vec::Vec;

    /// A row computed alone (wide one-row tiles) has the bits it has inside
    /// a taller product (6-row tiles), across several depth blocks and with
    /// leftover columns, on every backend this CPU has.
    #[test]
    fn a_row_alone_matches_the_row_in_a_block() {
        let (m, k, n) = (7, 150, 100);
        let a: Vec<f32> = (0..m * k).map(|i| ((i * 37 % 101) as f32 - 50.0) / 17.0).collect();
        let b: Vec<f32> = (0..k * n).map(|i| ((i * 53 % 97) as f32 - 48.0) / 13.0).collect();
        for backend in Backend::ALL.into_iter().filter(|b| b.is_available()) {
            with_backend(backend, || {
                let mut whole = vec![0.0f32; m * n];
                gemm_own(1.5, MatRef::new(&a, m, k), MatRef::new(&b, k, n), 0.0, MatMut::new(&mut whole, m, n))
                    .unwrap();
                for i in 0..m {
                    let mut row = vec![0.0f32; n];
                    let a_row = MatRef::new(&a[i * k..(i + 1) * k], 1, k);
                    gemm_own(1.5, a_row, MatRef::new(&b, k, n), 0.0, MatMut::new(&mut row, 1, n)).unwrap();
                    let same = row.iter().zip(&whole[i * n..]).all(|(x, y)| x.to_bits() == y.to_bits());
                    assert!(same, "{backend:?}: row {i} alone differs");
                }
            })
            .unwrap();
        }
    }
}
