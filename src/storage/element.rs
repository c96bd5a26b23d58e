//! How the kernels read stored values: one [`Element`] trait over `f32`,
//! bf16, f16 and q8's `i8`, whose vector loads widen to `f32` (the
//! backends supply the instructions), and [`Rows`]/[`Row`] views that pair
//! q8 values with their block scales. Every kernel is generic over it.

use super::{Q8_BLOCK, bf16, f16, q8_blocks};
use crate::simd::F32Vector;
use crate::simd::prefetch::{CACHE_LINE, prefetch_read};
use crate::simd::vector::MAX_LANES;

/// One stored element type, widened to `f32` on load. The backends supply
/// the vector loads ([`F32Vector::load_bf16`] and friends); everything else
/// is written once here, generic over the type.
pub(crate) trait Element: Copy + Send + Sync + 'static {
    /// Whether values carry a per-block scale (q8).
    const SCALED: bool;
    /// The value as f32: exact for the float types, `self · scale` (one
    /// f32 rounding) for q8.
    fn widen(self, scale: f32) -> f32;
    /// `V::LANES` values from `ptr` as f32, without q8's block scale
    /// (exact for every type: an i8 is an f32).
    ///
    /// # Safety
    /// `ptr..ptr + V::LANES` must be valid for reads.
    unsafe fn load_unscaled<V: F32Vector>(ptr: *const Self) -> V;
    /// The values as int8, for q8 (`None` for the float types).
    #[cfg(simd_attention_x86_backends)]
    fn as_i8(_values: &[Self]) -> Option<&[i8]> {
        None
    }
    /// `V::LANES` values from `ptr`, widened: the unscaled values, times
    /// `scale` for q8.
    ///
    /// # Safety
    /// `ptr..ptr + V::LANES` must be valid for reads.
    #[inline(always)]
    unsafe fn load<V: F32Vector>(ptr: *const Self, scale: f32) -> V {
        // SAFETY: the caller guarantees LANES readable values.
        let v = unsafe { Self::load_unscaled::<V>(ptr) };
        if Self::SCALED { v.mul(V::splat(scale)) } else { v }
    }
    /// `2·V::LANES` values from `ptr`, widened, as its two halves, which
    /// lie in one q8 block where the kernels call it, so q8 looks its scale
    /// up once for both: that made `sdpa-decode-q8` 1.20× faster on one
    /// Xeon core (`benches/alternate.sh -r 3`, 2026-12-01). A bf16 form
    /// that split one load into even and odd values with a shift and a mask
    /// (the query permuted to match) measured no faster, 0.99×, and was
    /// dropped.
    ///
    /// # Safety
    /// `ptr..ptr + 2·V::LANES` must be valid for reads.
    #[inline(always)]
    unsafe fn load_pair<V: F32Vector>(ptr: *const Self, scale: f32) -> (V, V) {
        // SAFETY: the caller guarantees 2·LANES readable values.
        unsafe { (Self::load::<V>(ptr, scale), Self::load::<V>(ptr.add(V::LANES), scale)) }
    }
}

impl Element for f32 {
    const SCALED: bool = false;
    #[inline(always)]
    fn widen(self, _: f32) -> f32 {
        self
    }
    #[inline(always)]
    unsafe fn load_unscaled<V: F32Vector>(ptr: *const f32) -> V {
        // SAFETY: the caller guarantees LANES readable values.
        unsafe { V::load(ptr) }
    }
}

impl Element for bf16 {
    const SCALED: bool = false;
    #[inline(always)]
    fn widen(self, _: f32) -> f32 {
        self.to_f32()
    }
    #[inline(always)]
    unsafe fn load_unscaled<V: F32Vector>(ptr: *const bf16) -> V {
        // SAFETY: bf16 is a transparent u16; the caller guarantees LANES values.
        unsafe { V::load_bf16(ptr.cast()) }
    }
}

impl Element for f16 {
    const SCALED: bool = false;
    #[inline(always)]
    fn widen(self, _: f32) -> f32 {
        self.to_f32()
    }
    #[inline(always)]
    unsafe fn load_unscaled<V: F32Vector>(ptr: *const f16) -> V {
        // SAFETY: f16 is a transparent u16; the caller guarantees LANES values.
        unsafe { V::load_f16(ptr.cast()) }
    }
}

impl Element for i8 {
    const SCALED: bool = true;
    #[cfg(simd_attention_x86_backends)]
    fn as_i8(values: &[i8]) -> Option<&[i8]> {
        Some(values)
    }
    #[inline(always)]
    fn widen(self, scale: f32) -> f32 {
        f32::from(self) * scale
    }
    #[inline(always)]
    unsafe fn load_unscaled<V: F32Vector>(ptr: *const i8) -> V {
        // SAFETY: the caller guarantees LANES readable values.
        unsafe { V::load_i8(ptr) }
    }
}

/// `rows × width` stored values, row-major, with q8's scales
/// ([`q8_blocks`]`(width)` per row; empty for the float types).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Rows<'a, T> {
    values: &'a [T],
    scales: &'a [f32],
    width: usize,
}

impl<'a, T: Element> Rows<'a, T> {
    /// Rows of `width` values; `scales` as the type needs (empty unless q8).
    pub(crate) fn new(values: &'a [T], scales: &'a [f32], width: usize) -> Self {
        Rows { values, scales, width }
    }

    /// q8's values and scales as they lie, for kernels that read the int8
    /// values themselves (`None` for the float types).
    #[cfg(simd_attention_x86_backends)]
    pub(crate) fn q8_parts(&self) -> Option<(&'a [i8], &'a [f32])> {
        T::as_i8(self.values).map(|values| (values, self.scales))
    }

    /// Values per row.
    pub(crate) fn width(&self) -> usize {
        self.width
    }

    fn blocks(&self) -> usize {
        if T::SCALED { q8_blocks(self.width) } else { 0 }
    }

    /// Rows `first..first + n`.
    pub(crate) fn sub(&self, first: usize, n: usize) -> Rows<'a, T> {
        let (w, b) = (self.width, self.blocks());
        Rows {
            values: &self.values[first * w..(first + n) * w],
            scales: &self.scales[first * b..(first + n) * b],
            width: w,
        }
    }

    /// Row `j`.
    #[inline(always)]
    pub(crate) fn row(&self, j: usize) -> Row<'a, T> {
        let (w, b) = (self.width, self.blocks());
        Row { values: &self.values[j * w..(j + 1) * w], scales: &self.scales[j * b..(j + 1) * b] }
    }
}

/// One row of stored values and its scales.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Row<'a, T> {
    values: &'a [T],
    scales: &'a [f32],
}

impl<T: Element> Row<'_, T> {
    /// Values in the row.
    #[inline(always)]
    pub(crate) fn len(&self) -> usize {
        self.values.len()
    }

    /// The scale of the q8 block holding value `at` (1 for the float types).
    #[inline(always)]
    pub(crate) fn scale(&self, at: usize) -> f32 {
        if T::SCALED { self.scales[at / Q8_BLOCK] } else { 1.0 }
    }

    /// Hints into cache the row `rows` rows past this one (rows lie
    /// back to back): its values and, for q8, its scales.
    #[inline(always)]
    pub(crate) fn prefetch_ahead(&self, rows: usize) {
        let spans = [
            (self.values.as_ptr().cast::<u8>(), core::mem::size_of_val(self.values)),
            (self.scales.as_ptr().cast::<u8>(), core::mem::size_of_val(self.scales)),
        ];
        for (start, len) in spans {
            let ahead = start.wrapping_add(rows * len);
            for line in (0..len).step_by(CACHE_LINE) {
                prefetch_read(ahead.wrapping_add(line));
            }
        }
    }

    /// Value `c`, widened.
    #[inline(always)]
    pub(crate) fn get(&self, c: usize) -> f32 {
        self.values[c].widen(self.scale(c))
    }

    /// Writes values `at..at + dst.len()`, widened, to `dst`.
    #[inline(always)]
    pub(crate) fn widen_into(&self, at: usize, dst: &mut [f32]) {
        let values = &self.values[at..at + dst.len()];
        if T::SCALED {
            for (k, (d, &x)) in dst.iter_mut().zip(values).enumerate() {
                *d = x.widen(self.scale(at + k));
            }
        } else {
            for (d, &x) in dst.iter_mut().zip(values) {
                *d = x.widen(1.0);
            }
        }
    }

    /// Values `at..at + 2·V::LANES`, widened, as two vectors.
    /// For q8, `at` must be a multiple of `2·V::LANES`.
    ///
    /// # Safety
    /// `at + 2·V::LANES <= self.len()`.
    #[inline(always)]
    pub(crate) unsafe fn load_pair<V: F32Vector>(&self, at: usize) -> (V, V) {
        debug_assert!(at + 2 * V::LANES <= self.len() && (!T::SCALED || at.is_multiple_of(2 * V::LANES)));
        // SAFETY: the caller guarantees 2·LANES values from `at`.
        unsafe { T::load_pair::<V>(self.values.as_ptr().add(at), self.scale(at)) }
    }

    /// Values `at..at + 2·V::LANES` as two vectors without q8's block
    /// scale ([`Row::scale`]), for kernels that apply it once per block.
    ///
    /// # Safety
    /// `at + 2·V::LANES <= self.len()`.
    #[inline(always)]
    pub(crate) unsafe fn load_pair_unscaled<V: F32Vector>(&self, at: usize) -> (V, V) {
        debug_assert!(at + 2 * V::LANES <= self.len());
        // SAFETY: the caller guarantees 2·LANES values from `at`.
        unsafe {
            let ptr = self.values.as_ptr().add(at);
            (T::load_unscaled::<V>(ptr), T::load_unscaled::<V>(ptr.add(V::LANES)))
        }
    }

    /// Values `at..at + V::LANES` without q8's block scale.
    ///
    /// # Safety
    /// `at + V::LANES <= self.len()`.
    #[inline(always)]
    pub(crate) unsafe fn load_unscaled<V: F32Vector>(&self, at: usize) -> V {
        debug_assert!(at + V::LANES <= self.len());
        // SAFETY: the caller guarantees LANES values from `at`.
        unsafe { T::load_unscaled::<V>(self.values.as_ptr().add(at)) }
    }

    /// Values `at..at + n` (`n <= V::LANES`), widened, zeros in the other
    /// lanes. Nothing past the row is read.
    #[inline(always)]
    pub(crate) fn load_partial<V: F32Vector>(&self, at: usize, n: usize) -> V {
        self.partial_with::<V>(at, n, |c| self.scale(c))
    }

    /// [`load_partial`](Self::load_partial) without q8's block scale.
    #[inline(always)]
    pub(crate) fn load_partial_unscaled<V: F32Vector>(&self, at: usize, n: usize) -> V {
        self.partial_with::<V>(at, n, |_| 1.0)
    }

    #[inline(always)]
    fn partial_with<V: F32Vector>(&self, at: usize, n: usize, scale: impl Fn(usize) -> f32) -> V {
        let mut buf = [0.0f32; MAX_LANES];
        for (k, b) in buf[..n].iter_mut().enumerate() {
            *b = self.values[at + k].widen(scale(at + k));
        }
        // SAFETY: buf holds MAX_LANES >= V::LANES values.
        unsafe { V::load(buf.as_ptr()) }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::{Element, Row, bf16, f16};
    use crate::simd::vector::MAX_LANES;
    use crate::simd::{Backend, F32Vector, WithSimd, dispatch_on};
    use std::vec::Vec;

    /// Every value of a row loaded through the backend's widening loads:
    /// whole vectors, then a partial tail.
    struct WidenRow<'a, T>(Row<'a, T>);

    impl<T: Element> WithSimd for WidenRow<'_, T> {
        type Output = Vec<f32>;

        #[inline(always)]
        fn run<V: F32Vector>(self) -> Vec<f32> {
            let row = self.0;
            let mut out = Vec::with_capacity(row.len());
            let mut at = 0;
            while at < row.len() {
                let n = (row.len() - at).min(V::LANES);
                let v = if n == V::LANES {
                    // SAFETY: at + LANES <= len, within one q8 block (at is a multiple of LANES).
                    unsafe { T::load::<V>(row.values.as_ptr().add(at), row.scale(at)) }
                } else {
                    row.load_partial::<V>(at, n)
                };
                let mut buf = [0.0f32; MAX_LANES];
                // SAFETY: buf holds MAX_LANES >= LANES values.
                unsafe { v.store(buf.as_mut_ptr()) };
                out.extend_from_slice(&buf[..n]);
                at += n;
            }
            out
        }
    }

    fn widened<T: Element>(backend: Backend, values: &[T], scales: &[f32]) -> Vec<f32> {
        dispatch_on(backend, WidenRow(Row { values, scales }))
    }

    /// All 65536 bf16 and f16 bit patterns widen exactly on every backend:
    /// the bits of `half`'s conversion, NaN to NaN (sign kept).
    #[test]
    fn every_half_pattern_widens_exactly() {
        let bf: Vec<bf16> = (0..=u16::MAX).map(bf16::from_bits).collect();
        let hf: Vec<f16> = (0..=u16::MAX).chain([1, 2, 3]).map(f16::from_bits).collect();
        let same = |got: f32, want: f32| {
            if want.is_nan() {
                got.is_nan() && got.is_sign_negative() == want.is_sign_negative()
            } else {
                got.to_bits() == want.to_bits()
            }
        };
        for backend in Backend::ALL.into_iter().filter(|b| b.is_available()) {
            for (x, got) in bf.iter().zip(widened(backend, &bf, &[])) {
                assert!(same(got, x.to_f32()), "{backend:?}: bf16 {:#06x} widened to {got:e}", x.to_bits());
            }
            for (x, got) in hf.iter().zip(widened(backend, &hf, &[])) {
                assert!(same(got, x.to_f32()), "{backend:?}: f16 {:#06x} widened to {got:e}", x.to_bits());
            }
        }
    }

    /// q8 widens to `q · scale` rounded once in f32, per block of 32.
    #[test]
    fn q8_widens_to_value_times_block_scale() {
        let values: Vec<i8> = (0..70).map(|i| (i * 37 % 255 - 127) as i8).collect();
        let scales = [0.37f32, -1.5e-3, 7.0];
        for backend in Backend::ALL.into_iter().filter(|b| b.is_available()) {
            let got = widened(backend, &values, &scales);
            assert_eq!(got.len(), values.len());
            for (i, (&q, &g)) in values.iter().zip(&got).enumerate() {
                assert_eq!(g.to_bits(), (f32::from(q) * scales[i / 32]).to_bits(), "{backend:?}: value {i}");
            }
        }
    }
}
