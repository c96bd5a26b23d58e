//! Operands packed once into column panels, then multiplied tile after tile
//! by the [`tile`] microkernel: the two products of the SDPA flash loop.
//!
//! FlashAttention multiplies each query block by every key tile (`Q·Kᵀ`)
//! and every weight tile by its value rows (`P·V`). Packing a head's `Kᵀ`
//! and `V` once, rather than once per product as a general GEMM must,
//! leaves the microkernel as nearly all of the work.
//!
//! A packed matrix of `rows × cols` is a sequence of panels of [`PANEL`]
//! columns (zero past `cols`); panel `w` holds columns `w·PANEL..` in
//! `rows · PANEL` values, as `PANEL / STRIP` strips of [`STRIP`] columns,
//! each strip stored row after row. `PANEL` is a multiple of every
//! backend's tile width, so one packing serves whichever backend runs: a
//! tile no wider than a strip (AVX2's 16 columns) reads one strip's
//! consecutive rows, and a wider one (AVX-512's 64) takes one vector from
//! each of its strips.
//!
//! Strips, not rows of the whole panel: with 256-byte panel rows an AVX2
//! tile read 64 bytes of every fourth cache line, so a 256-row strip used a
//! quarter of L1's sets and left L1 for L2 (`P·V` reads 256 rows of V per
//! key tile). On one Zen 3 core (avx2, 2026-12-03, a VM whose neighbours
//! moved single rounds by up to 25 %), `benches/alternate.sh -r 11` against
//! the 64-wide rows gave `add-batch` 1.04×, `sdpa-causal-2048` 1.14× and
//! `sdpa-512` 0.89× (1.02× in a 15-round rerun). AVX-512's tile now loads
//! its four vectors from four strips (four pointer increments a step
//! beside 24 FMAs, in the assembly); unmeasured on an AVX-512 core.

use super::matmul_tile::{Panel, Strided, StridedMut, tile_rows, tile_width};
use crate::simd::{F32Vector, MAX_TILE_WIDTH, WithSimd};
use crate::storage::{Element, Rows};

/// Columns per panel: the widest tile of any backend in the build.
pub(crate) const PANEL: usize = MAX_TILE_WIDTH;

/// Columns per strip of a panel: AVX2's tile width, and AVX-512's vector.
pub(crate) const STRIP: usize = if PANEL < 16 { PANEL } else { 16 };
const _: () = assert!(PANEL.is_multiple_of(STRIP));

/// Where value `(r, c)` of a panel of `rows` rows lies in it (`c < PANEL`).
#[inline(always)]
fn in_panel(rows: usize, r: usize, c: usize) -> usize {
    (c / STRIP) * rows * STRIP + r * STRIP + c % STRIP
}

/// Where the tile of backend `V` over columns `j0..` (a multiple of its
/// width) and rows `k0..` starts in a packed matrix of `rows` rows, and
/// the distance between its vectors; its rows are [`STRIP`] values apart.
#[inline(always)]
fn tile_start<V: F32Vector>(rows: usize, k0: usize, j0: usize) -> (usize, usize) {
    ((j0 / PANEL) * rows * PANEL + in_panel(rows, k0, j0 % PANEL), vector_stride::<V>(rows))
}

/// The distance between the vectors of one tile row in a packed matrix of
/// `rows` rows: within one strip, or from strip to strip.
#[inline(always)]
const fn vector_stride<V: F32Vector>(rows: usize) -> usize {
    const {
        assert!(
            (tile_width::<V>() <= STRIP && STRIP.is_multiple_of(tile_width::<V>())) || V::LANES.is_multiple_of(STRIP),
            "a tile must fit in a strip, or each vector cover whole strips"
        )
    };
    if tile_width::<V>() <= STRIP { V::LANES } else { (V::LANES / STRIP) * rows * STRIP }
}

/// Values a packed `rows × cols` matrix takes, or `None` on overflow.
pub(crate) fn packed_len(rows: usize, cols: usize) -> Option<usize> {
    cols.div_ceil(PANEL).checked_mul(PANEL)?.checked_mul(rows)
}

/// Packs the first `n` rows of `src` (each `src.width()` values wide),
/// widened to f32, as an `n × width` matrix into `dst`
/// (`packed_len(n, width)` values).
///
/// Both packings run once per head, outside the backend, value by value
/// (and here a `memcpy` call per strip row for f32): about 2 % of
/// `sdpa-512` together in a `perf record -e cpu-clock` profile on one Zen 4
/// core (2026-12-04). Whole-strip copies of a fixed length, a transpose
/// through 16 × 16 blocks and inlining both into the backend each removed
/// them from the profile, yet ran slower: against this code
/// (`benches/alternate.sh -r 5`, medians of medians) `sdpa-512` 0.97–0.98×,
/// `sdpa-512-bf16` 0.94–0.97× and `sdpa-causal-2048` 0.98–1.00×, as the
/// flash loop they join was laid out anew. So they stay as they are.
pub(crate) fn pack_rows<T: Element>(src: &Rows<'_, T>, n: usize, dst: &mut [f32]) {
    let cols = src.width();
    if n == 0 {
        return;
    }
    for (w, panel) in dst.chunks_exact_mut(n * PANEL).take(cols.div_ceil(PANEL)).enumerate() {
        for (s, strip) in panel.chunks_exact_mut(n * STRIP).enumerate() {
            let c0 = w * PANEL + s * STRIP;
            let width = STRIP.min(cols.saturating_sub(c0));
            for (r, row) in strip.chunks_exact_mut(STRIP).enumerate() {
                if width > 0 {
                    src.row(r).widen_into(c0, &mut row[..width]);
                }
                row[width..].fill(0.0);
            }
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
            for r in 0..rows {
                panel[in_panel(rows, r, c)] = column.get(r);
            }
        }
        for c in width..PANEL {
            for r in 0..rows {
                panel[in_panel(rows, r, c)] = 0.0;
            }
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
            let (start, vector_stride) = tile_start::<V>(self.packed_rows, self.k0, j0);
            let panel = Panel { ptr: self.packed[start..].as_ptr(), row_stride: STRIP, vector_stride };
            let mut i = 0;
            while i < self.m {
                let a_block = Strided { ptr: a.ptr.wrapping_add(i * a.rs), ..a };
                let c_block = StridedMut { ptr: c.ptr.wrapping_add(i * c.rs + j0), ..c };
                // SAFETY: in_bounds holds, so rows i..m of A (depth kc) and of C (columns
                // j0..j0 + cols), and kc rows of width values from the panel, are in their slices.
                i += unsafe {
                    tile_rows::<V>(self.m - i, self.kc, a_block, panel, c_block, cols, self.alpha, self.beta)
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec;
    use std::vec::Vec;

    /// Every backend's tiles, addressed as `PanelProduct` addresses them,
    /// read the values packed at their place (zeros past the columns), for
    /// both packings: plain integer arithmetic, so it checks the AVX-512
    /// layout on a CPU without AVX-512 too.
    fn tiles_read_what_was_packed<V: F32Vector>() {
        let (rows, cols) = (37, 150);
        let m: Vec<f32> = (0..rows * cols).map(|i| i as f32 + 1.0).collect();
        let mut packed = vec![f32::NAN; packed_len(rows, cols).unwrap()];
        pack_rows(&Rows::new(&m, &[], cols), rows, &mut packed);
        let mut transposed_src = vec![0.0; rows * cols];
        for r in 0..rows {
            for c in 0..cols {
                transposed_src[c * rows + r] = m[r * cols + c];
            }
        }
        let mut packed_t = vec![f32::NAN; packed_len(rows, cols).unwrap()];
        pack_transposed(&Rows::new(&transposed_src, &[], rows), cols, &mut packed_t);
        for packed in [&packed, &packed_t] {
            for j0 in (0..cols).step_by(tile_width::<V>()) {
                for k0 in [0, 5] {
                    let (start, vector_stride) = tile_start::<V>(rows, k0, j0);
                    for p in 0..rows - k0 {
                        for v in 0..V::TILE_VECTORS {
                            for lane in 0..V::LANES {
                                let got = packed[start + p * STRIP + v * vector_stride + lane];
                                let c = j0 + v * V::LANES + lane;
                                let want = if c < cols { m[(k0 + p) * cols + c] } else { 0.0 };
                                assert_eq!(got, want, "tile at column {j0}, row {}, vector {v}, lane {lane}", k0 + p);
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn every_backends_tiles_read_what_was_packed() {
        tiles_read_what_was_packed::<crate::simd::Scalar>();
        #[cfg(simd_attention_portable_simd)]
        tiles_read_what_was_packed::<wide::f32x8>();
        #[cfg(simd_attention_x86_backends)]
        {
            tiles_read_what_was_packed::<core::arch::x86_64::__m256>();
            tiles_read_what_was_packed::<core::arch::x86_64::__m512>();
        }
    }
}
