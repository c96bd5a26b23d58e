//! Our own blocked GEMM, for builds without `alloc` and for small products.
//!
//! The loop order follows BLIS as bluss's `matrixmultiply` lays it out, cut
//! down to what fits on the stack: B is packed one `KC × 2·LANES` panel at a
//! time into a fixed stack buffer (at most 8 KiB), and every row block of A
//! runs the microkernel (`kernels::matmul_tile`) over that panel. A is read
//! in place, so no heap is needed; so is B, when it has row-contiguous
//! columns and the call has a single row block (a GEMV-like product reads B
//! once, and copying it would double that). Knows nothing of the ISA: the
//! vector type comes from dispatch.

use crate::kernels::matmul_tile::{Strided, StridedMut, TILE_ROWS, TILE_VECTORS, tile_rows};
use crate::simd::vector::MAX_LANES;
use crate::simd::{F32Vector, WithSimd};

/// Depth of one packed panel.
const KC: usize = 64;

/// `C ← α·A·B + β·C` for views already checked by [`super::gemm`].
pub(crate) struct BlockedGemm {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub alpha: f32,
    pub a: Strided,
    pub b: Strided,
    pub beta: f32,
    pub c: StridedMut,
}

impl WithSimd for BlockedGemm {
    type Output = ();

    #[inline(always)]
    fn run<V: F32Vector>(self) {
        let BlockedGemm { m, n, k, alpha, a, b, beta, c } = self;
        let width = TILE_VECTORS * V::LANES;
        let mut panel = [0.0f32; KC * TILE_VECTORS * MAX_LANES];
        for j0 in (0..n).step_by(width) {
            let cols = width.min(n - j0);
            for p0 in (0..k).step_by(KC) {
                let kc = KC.min(k - p0);
                // Few rows read the block of B once: read it in place when
                // its rows are contiguous, rather than copy it. The values
                // and their order are the same either way.
                let (panel_ptr, panel_stride) = if m <= TILE_ROWS && b.cs == 1 && cols == width {
                    (b.ptr.wrapping_add(p0 * b.rs + j0), b.rs)
                } else {
                    pack_panel(&b, (p0, kc), (j0, cols), width, &mut panel);
                    (panel.as_ptr(), width)
                };
                // Later depth blocks accumulate onto what the first one wrote.
                let beta = if p0 == 0 { beta } else { 1.0 };
                let mut i = 0;
                while i < m {
                    let a_block = Strided { ptr: a.ptr.wrapping_add(i * a.rs + p0 * a.cs), ..a };
                    let c_block = StridedMut { ptr: c.ptr.wrapping_add(i * c.rs + j0 * c.cs), ..c };
                    // SAFETY: rows i..m (tile_rows never passes them), depth p0..p0+kc and
                    // columns j0..j0+cols lie inside the checked views; the panel (packed, or
                    // B in place when all `width` columns are inside it) holds kc rows.
                    i += unsafe {
                        tile_rows::<V>(m - i, kc, a_block, panel_ptr, panel_stride, c_block, cols, alpha, beta)
                    };
                }
            }
        }
    }
}

/// Copies rows `p0..p0 + kc`, columns `j0..j0 + cols` of B into `panel`
/// as `kc` rows of `width` values, zero past `cols`.
fn pack_panel(b: &Strided, (p0, kc): (usize, usize), (j0, cols): (usize, usize), width: usize, panel: &mut [f32]) {
    for p in 0..kc {
        let dst = &mut panel[p * width..(p + 1) * width];
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
