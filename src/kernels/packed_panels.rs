//! Operands packed once into column panels, then multiplied tile after tile
//! by the [`tile`] microkernel: the two products of the SDPA flash loop.
//!
//! FlashAttention multiplies each query block by every key tile (`Q·Kᵀ`)
//! and every weight tile by its value rows (`P·V`). Packing a head's `Kᵀ`
//! and `V` once, rather than once per product as a general GEMM must,
//! leaves the microkernel as nearly all of the work.
//!
//! A packed matrix of `rows × cols` is a sequence of panels of [`PANEL`]
//! columns; panel `w` holds `rows` rows of `PANEL` contiguous values
//! (columns `w·PANEL..`, zero past `cols`). `PANEL` is a multiple of every
//! backend's tile width, so one packing serves whichever backend runs.

use super::matmul_tile::{Strided, StridedMut, tile_rows, tile_width};
use crate::simd::{F32Vector, MAX_TILE_WIDTH, WithSimd};
use crate::storage::{Element, Rows};

/// Columns per panel: the widest tile of any backend in the build.
pub(crate) const PANEL: usize = MAX_TILE_WIDTH;

/// Values a packed `rows × cols` matrix takes, or `None` on overflow.
pub(crate) fn packed_len(rows: usize, cols: usize) -> Option<usize> {
    cols.div_ceil(PANEL).checked_mul(PANEL)?.checked_mul(rows)
}

/// Packs the first `n` rows of `src` (each `src.width()` values wide),
/// widened to f32, as an `n × width` matrix into `dst`
/// (`packed_len(n, width)` values).
pub(crate) fn pack_rows<T: Element>(src: &Rows<'_, T>, n: usize, dst: &mut [f32]) {
    let cols = src.width();
    if n == 0 {
        return;
    }
    for (w, panel) in dst.chunks_exact_mut(n * PANEL).take(cols.div_ceil(PANEL)).enumerate() {
        let c0 = w * PANEL;
        let width = PANEL.min(cols - c0);
        for (r, row) in panel.chunks_exact_mut(PANEL).enumerate() {
            src.row(r).widen_into(c0, &mut row[..width]);
            row[width..].fill(0.0);
        }
    }
}

/// Packs the transpose of the first `n` rows of `src`, widened to f32: a
/// `width × n` matrix (`packed_len(width, n)` values), as `Kᵀ` for `Q·Kᵀ`.
pub(crate) fn pack_transposed<T: Element>(src: &Rows<'_, T>, n: usize, dst: &mut [f32]) {
    let rows = src.width();
    if rows == 0 {
        return;
    }
    for (w, panel) in dst.chunks_exact_mut(rows * PANEL).take(n.div_ceil(PANEL)).enumerate() {
        let c0 = w * PANEL;
        let width = PANEL.min(n - c0);
        for c in 0..width {
            let column = src.row(c0 + c);
            for (r, d) in panel.iter_mut().skip(c).step_by(PANEL).enumerate() {
                *d = column.get(r);
            }
        }
        for row in panel.chunks_exact_mut(PANEL) {
            row[width..].fill(0.0);
        }
    }
}

/// `C ← α·A·B + β·C` where `B` is rows `k0..k0 + kc` and columns
/// `0..n` of a packed matrix of `packed_rows` rows, `A` is `m × kc` and `C`
/// is `m × n`, both read and written in place through their strides.
pub(crate) struct PanelProduct<'a> {
    pub m: usize,
    pub n: usize,
    pub kc: usize,
    pub alpha: f32,
    pub a: &'a [f32],
    pub a_strides: (usize, usize),
    pub packed: &'a [f32],
    pub packed_rows: usize,
    pub k0: usize,
    pub beta: f32,
    pub c: &'a mut [f32],
    pub c_row_stride: usize,
}

impl PanelProduct<'_> {
    /// Checks that every index the product reaches lies in its slice.
    fn in_bounds(&self) -> bool {
        let last = |rows: usize, cols: usize, (rs, cs): (usize, usize)| {
            (rows - 1).checked_mul(rs).and_then(|r| (cols - 1).checked_mul(cs).and_then(|c| r.checked_add(c)))
        };
        if self.m == 0 || self.n == 0 || self.kc == 0 {
            return true;
        }
        let a = last(self.m, self.kc, self.a_strides).is_some_and(|i| i < self.a.len());
        let c = last(self.m, self.n, (self.c_row_stride, 1)).is_some_and(|i| i < self.c.len());
        let b = self.k0 + self.kc <= self.packed_rows
            && packed_len(self.packed_rows, self.n).is_some_and(|len| len <= self.packed.len());
        a && b && c
    }
}

impl WithSimd for PanelProduct<'_> {
    type Output = ();

    #[inline(always)]
    fn run<V: F32Vector>(self) {
        assert!(self.in_bounds(), "PanelProduct out of bounds");
        if self.kc == 0 {
            // An empty sum: C ← β·C, without reading C when β = 0.
            for row in self.c.chunks_mut(self.c_row_stride.max(1)).take(self.m) {
                for x in &mut row[..self.n] {
                    *x = if self.beta == 0.0 { 0.0 } else { self.beta * *x };
                }
            }
            return;
        }
        let width = tile_width::<V>();
        const { assert!(PANEL.is_multiple_of(tile_width::<V>())) };
        let a = Strided { ptr: self.a.as_ptr(), rs: self.a_strides.0, cs: self.a_strides.1 };
        let c = StridedMut { ptr: self.c.as_mut_ptr(), rs: self.c_row_stride, cs: 1 };
        for j0 in (0..self.n).step_by(width) {
            let cols = width.min(self.n - j0);
            let panel_start = ((j0 / PANEL) * self.packed_rows + self.k0) * PANEL + j0 % PANEL;
            let panel = self.packed[panel_start..].as_ptr();
            let mut i = 0;
            while i < self.m {
                let a_block = Strided { ptr: a.ptr.wrapping_add(i * a.rs), ..a };
                let c_block = StridedMut { ptr: c.ptr.wrapping_add(i * c.rs + j0), ..c };
                // SAFETY: in_bounds holds, so rows i..m of A (depth kc) and of C (columns
                // j0..j0 + cols), and kc rows of width values from the panel, are in their slices.
                i += unsafe {
                    tile_rows::<V>(self.m - i, self.kc, a_block, panel, PANEL, c_block, cols, self.alpha, self.beta)
                };
            }
        }
    }
}
