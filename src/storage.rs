//! How keys and values (and queries) are stored: `f32`, `bf16`, `f16`, or
//! `q8` blocks of int8 with one `f32` scale each.
//!
//! Decoding reads the whole K/V cache at every step, so its speed is the
//! bytes it reads: bf16 and f16 halve them, q8 quarters them (plus one scale
//! per [`Q8_BLOCK`] values). Every kernel computes in `f32`: values are
//! widened in registers as they are loaded, without rounding (bf16 is the top
//! half of an f32; every f16 is exactly an f32), and a q8 value is
//! `q · scale` computed in f32 (one rounding). The semantics are those of
//! `../shared/golden/README.md`'s reduced-precision cases.
//!
//! `bf16` and `f16` are the `half` crate's types (built without its `std`
//! feature, so the no_std core has them too): the reference implementation
//! of both formats, whose `from_f32` rounds to nearest even, which is what
//! a cache of keys and values needs when it stores new rows.

use crate::error::Error;
use crate::simd::F32Vector;
use crate::simd::vector::MAX_LANES;
pub use half::{bf16, f16};

/// Values per q8 block along a row. The last block of a row may be shorter.
/// It is a multiple of every backend's vector width, so a vector load that
/// starts on a multiple of the width never crosses a block.
pub const Q8_BLOCK: usize = 32;

/// The four storage types, for error messages and byte counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Storage {
    /// `f32`, 4 bytes a value.
    F32,
    /// bfloat16, 2 bytes a value.
    Bf16,
    /// IEEE half precision, 2 bytes a value.
    F16,
    /// int8 in blocks of [`Q8_BLOCK`] along each row with one `f32` scale
    /// per block: 1 byte a value plus 4 per block.
    Q8,
}

impl Storage {
    /// The name used in messages and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Storage::F32 => "f32",
            Storage::Bf16 => "bf16",
            Storage::F16 => "f16",
            Storage::Q8 => "q8",
        }
    }

    /// Bytes that `rows` rows of `width` values take, scales included, or
    /// `None` on overflow.
    pub fn bytes(self, rows: usize, width: usize) -> Option<usize> {
        let values = rows.checked_mul(width)?;
        match self {
            Storage::F32 => values.checked_mul(4),
            Storage::Bf16 | Storage::F16 => values.checked_mul(2),
            Storage::Q8 => values.checked_add(q8_blocks(width).checked_mul(rows)?.checked_mul(4)?),
        }
    }
}

/// Scales per row of `width` q8 values.
pub const fn q8_blocks(width: usize) -> usize {
    width.div_ceil(Q8_BLOCK)
}

/// A row-major tensor as stored, borrowed from the caller.
#[derive(Clone, Copy, Debug)]
pub enum Stored<'a> {
    /// `f32` values.
    F32(&'a [f32]),
    /// bfloat16 values.
    Bf16(&'a [bf16]),
    /// IEEE half-precision values.
    F16(&'a [f16]),
    /// int8 values; value `x` of block `b` of a row is `x · scales[b]`.
    Q8 {
        /// The int8 values, row-major.
        values: &'a [i8],
        /// [`q8_blocks`]`(width)` scales per row, row-major.
        scales: &'a [f32],
    },
}

impl<'a> From<&'a [f32]> for Stored<'a> {
    fn from(values: &'a [f32]) -> Self {
        Stored::F32(values)
    }
}

impl<'a> From<&'a [bf16]> for Stored<'a> {
    fn from(values: &'a [bf16]) -> Self {
        Stored::Bf16(values)
    }
}

impl<'a> From<&'a [f16]> for Stored<'a> {
    fn from(values: &'a [f16]) -> Self {
        Stored::F16(values)
    }
}

impl Stored<'_> {
    /// Its storage type.
    pub fn storage(&self) -> Storage {
        match self {
            Stored::F32(_) => Storage::F32,
            Stored::Bf16(_) => Storage::Bf16,
            Stored::F16(_) => Storage::F16,
            Stored::Q8 { .. } => Storage::Q8,
        }
    }

    /// Checks that it holds `rows × width` values (and, for q8, the scales
    /// of `rows` rows), naming `arg` (and `arg.scales`) otherwise.
    pub(crate) fn expect(
        &self,
        arg: &'static str,
        scales_arg: &'static str,
        rows: usize,
        width: usize,
    ) -> Result<(), Error> {
        let values = rows.checked_mul(width).ok_or(Error::Overflow { arg })?;
        let (len, scales) = match *self {
            Stored::F32(v) => (v.len(), None),
            Stored::Bf16(v) => (v.len(), None),
            Stored::F16(v) => (v.len(), None),
            Stored::Q8 { values, scales } => (values.len(), Some(scales.len())),
        };
        crate::error::expect_len(arg, values, len)?;
        if let Some(actual) = scales {
            let expected = rows.checked_mul(q8_blocks(width)).ok_or(Error::Overflow { arg: scales_arg })?;
            crate::error::expect_len(scales_arg, expected, actual)?;
        }
        Ok(())
    }

    /// Writes values `start..start + dst.len()` widened to `f32` into `dst`
    /// (a float tensor; q8 needs its row width and is never widened here).
    pub(crate) fn widen_into(&self, start: usize, dst: &mut [f32]) {
        let n = dst.len();
        match *self {
            Stored::F32(v) => dst.copy_from_slice(&v[start..start + n]),
            Stored::Bf16(v) => widen_slice(&v[start..start + n], dst),
            Stored::F16(v) => widen_slice(&v[start..start + n], dst),
            Stored::Q8 { .. } => unreachable!("q8 queries are refused by the checks"),
        }
    }
}

/// A row-major tensor in one of the storage types, borrowed mutably: the
/// buffers of a [`crate::ops::KvCache`].
#[derive(Debug)]
pub enum StoredMut<'a> {
    /// `f32` values.
    F32(&'a mut [f32]),
    /// bfloat16 values.
    Bf16(&'a mut [bf16]),
    /// IEEE half-precision values.
    F16(&'a mut [f16]),
    /// int8 values and [`q8_blocks`]`(width)` scales per row.
    Q8 {
        /// The int8 values, row-major.
        values: &'a mut [i8],
        /// The scales, row-major.
        scales: &'a mut [f32],
    },
}

impl StoredMut<'_> {
    /// Read-only, as the operators take it.
    pub fn as_stored(&self) -> Stored<'_> {
        match self {
            StoredMut::F32(v) => Stored::F32(v),
            StoredMut::Bf16(v) => Stored::Bf16(v),
            StoredMut::F16(v) => Stored::F16(v),
            StoredMut::Q8 { values, scales } => Stored::Q8 { values, scales },
        }
    }

    /// Stores `src` (whole rows of `width`) as rows `first..`, converted:
    /// bf16 and f16 round to nearest even, q8 quantizes each row
    /// ([`quantize_q8_row`]). The caller has checked that the rows fit.
    pub(crate) fn store_rows(&mut self, first: usize, width: usize, src: &[f32]) {
        let start = first * width;
        let end = start + src.len();
        match self {
            StoredMut::F32(v) => v[start..end].copy_from_slice(src),
            StoredMut::Bf16(v) => v[start..end].iter_mut().zip(src).for_each(|(d, &x)| *d = bf16::from_f32(x)),
            StoredMut::F16(v) => v[start..end].iter_mut().zip(src).for_each(|(d, &x)| *d = f16::from_f32(x)),
            StoredMut::Q8 { values, scales } => {
                let blocks = q8_blocks(width);
                let rows = src.len().checked_div(width).unwrap_or(0);
                for r in 0..rows {
                    let (row, at) = (&src[r * width..(r + 1) * width], (first + r) * blocks);
                    quantize_q8_row(row, &mut values[start + r * width..][..width], &mut scales[at..at + blocks]);
                }
            }
        }
    }
}

fn widen_slice<T: Element>(src: &[T], dst: &mut [f32]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = s.widen(1.0);
    }
}

/// One stored element type, widened to `f32` on load. The backends supply
/// the vector loads ([`F32Vector::load_bf16`] and friends); everything else
/// is written once here, generic over the type.
pub(crate) trait Element: Copy + Send + Sync + 'static {
    /// Whether values carry a per-block scale (q8).
    const SCALED: bool;
    /// The value as f32: exact for the float types, `self · scale` (one
    /// f32 rounding) for q8.
    fn widen(self, scale: f32) -> f32;
    /// `V::LANES` values from `ptr`, widened.
    ///
    /// # Safety
    /// `ptr..ptr + V::LANES` must be valid for reads.
    unsafe fn load<V: F32Vector>(ptr: *const Self, scale: f32) -> V;
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
    unsafe fn load<V: F32Vector>(ptr: *const f32, _: f32) -> V {
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
    unsafe fn load<V: F32Vector>(ptr: *const bf16, _: f32) -> V {
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
    unsafe fn load<V: F32Vector>(ptr: *const f16, _: f32) -> V {
        // SAFETY: f16 is a transparent u16; the caller guarantees LANES values.
        unsafe { V::load_f16(ptr.cast()) }
    }
}

impl Element for i8 {
    const SCALED: bool = true;
    #[inline(always)]
    fn widen(self, scale: f32) -> f32 {
        f32::from(self) * scale
    }
    #[inline(always)]
    unsafe fn load<V: F32Vector>(ptr: *const i8, scale: f32) -> V {
        // SAFETY: the caller guarantees LANES readable values.
        unsafe { V::load_i8(ptr).mul(V::splat(scale)) }
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

    #[inline(always)]
    fn scale(&self, at: usize) -> f32 {
        if T::SCALED { self.scales[at / Q8_BLOCK] } else { 1.0 }
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

    /// Values `at..at + V::LANES`, widened. For q8, `at` must be a multiple
    /// of `V::LANES` (so the vector lies in one block); the kernels only
    /// load there.
    ///
    /// # Safety
    /// `at + V::LANES <= self.len()`.
    #[inline(always)]
    pub(crate) unsafe fn load<V: F32Vector>(&self, at: usize) -> V {
        debug_assert!(at + V::LANES <= self.len() && (!T::SCALED || at.is_multiple_of(V::LANES)));
        // SAFETY: the caller guarantees LANES values from `at`.
        unsafe { T::load::<V>(self.values.as_ptr().add(at), self.scale(at)) }
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

    /// Values `at..at + n` (`n <= V::LANES`), widened, zeros in the other
    /// lanes. Nothing past the row is read.
    #[inline(always)]
    pub(crate) fn load_partial<V: F32Vector>(&self, at: usize, n: usize) -> V {
        let mut buf = [0.0f32; MAX_LANES];
        for (k, b) in buf[..n].iter_mut().enumerate() {
            *b = self.get(at + k);
        }
        // SAFETY: buf holds MAX_LANES >= V::LANES values.
        unsafe { V::load(buf.as_ptr()) }
    }
}

/// Quantizes `src` (one row) to q8: per block of [`Q8_BLOCK`] values the
/// scale is `max|x| / 127` and `q = round(x / scale)` (half away from
/// zero), so the widened value `q · scale` is within half a step of `x`. A
/// block of zeros has scale 0. q8 holds no infinity or NaN: a block with
/// one gets scale NaN and reads back as NaN throughout.
///
/// `values` holds `src.len()` values and `scales` [`q8_blocks`]`(src.len())`.
pub fn quantize_q8_row(src: &[f32], values: &mut [i8], scales: &mut [f32]) {
    for ((block, q), scale) in src.chunks(Q8_BLOCK).zip(values.chunks_mut(Q8_BLOCK)).zip(scales.iter_mut()) {
        let max = block.iter().fold(0.0f32, |m, &x| if x.is_finite() { m.max(x.abs()) } else { f32::INFINITY });
        *scale = if max.is_finite() { max / 127.0 } else { f32::NAN };
        for (q, &x) in q.iter_mut().zip(block) {
            *q = if *scale > 0.0 { libm::roundf(x / *scale).clamp(-127.0, 127.0) as i8 } else { 0 };
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::{Element, Row, bf16, f16};
    use crate::simd::vector::MAX_LANES;
    use crate::simd::{Backend, F32Vector, WithSimd, dispatch_on};
    use std::vec::Vec;

    /// Every value of `values` loaded through the backend's widening load
    /// (whole vectors, then a partial tail), as f32 bits.
    struct WidenAll<'a, T>(&'a [T]);

    impl<T: Element> WithSimd for WidenAll<'_, T> {
        type Output = Vec<u32>;

        #[inline(always)]
        fn run<V: F32Vector>(self) -> Vec<u32> {
            let row = Row { values: self.0, scales: &[] };
            let mut out = Vec::with_capacity(self.0.len());
            let mut buf = [0.0f32; MAX_LANES];
            let mut at = 0;
            while at < row.len() {
                let n = (row.len() - at).min(V::LANES);
                // SAFETY: at + LANES <= len when n == LANES; buf holds MAX_LANES values.
                let v = if n == V::LANES { unsafe { row.load::<V>(at) } } else { row.load_partial::<V>(at, n) };
                unsafe { v.store(buf.as_mut_ptr()) };
                out.extend(buf[..n].iter().map(|x| x.to_bits()));
                at += n;
            }
            out
        }
    }

    /// All 65536 bf16 and f16 bit patterns widen exactly on every backend:
    /// the bits of `half`'s conversion, NaN to NaN (quieted, sign kept).
    #[test]
    fn every_half_pattern_widens_exactly() {
        let bf: Vec<bf16> = (0..=u16::MAX).map(bf16::from_bits).collect();
        let hf: Vec<f16> = (0..=u16::MAX).chain([1, 2, 3]).map(f16::from_bits).collect();
        for backend in Backend::ALL.into_iter().filter(|b| b.is_available()) {
            let same = |got: u32, want: f32| {
                let g = f32::from_bits(got);
                if want.is_nan() {
                    g.is_nan() && g.is_sign_negative() == want.is_sign_negative()
                } else {
                    got == want.to_bits()
                }
            };
            for (x, got) in bf.iter().zip(dispatch_on(backend, WidenAll(&bf))) {
                assert!(same(got, x.to_f32()), "{backend:?}: bf16 {:#06x} widened to {got:#010x}", x.to_bits());
            }
            for (x, got) in hf.iter().zip(dispatch_on(backend, WidenAll(&hf))) {
                assert!(same(got, x.to_f32()), "{backend:?}: f16 {:#06x} widened to {got:#010x}", x.to_bits());
            }
        }
    }

    /// q8 widens to `q · scale` rounded once in f32, per block of 32.
    #[test]
    fn q8_widens_to_value_times_block_scale() {
        let values: Vec<i8> = (0..70).map(|i| (i * 37 % 255 - 127) as i8).collect();
        let scales = [0.37f32, -1.5e-3, 7.0];
        for backend in Backend::ALL.into_iter().filter(|b| b.is_available()) {
            struct Widen<'a>(Row<'a, i8>);
            impl WithSimd for Widen<'_> {
                type Output = Vec<f32>;
                #[inline(always)]
                fn run<V: F32Vector>(self) -> Vec<f32> {
                    let mut out = std::vec![0.0f32; self.0.len()];
                    let mut at = 0;
                    while at < out.len() {
                        let n = (out.len() - at).min(V::LANES);
                        let mut buf = [0.0f32; MAX_LANES];
                        // SAFETY: as in WidenAll.
                        let v = if n == V::LANES {
                            unsafe { self.0.load::<V>(at) }
                        } else {
                            self.0.load_partial::<V>(at, n)
                        };
                        unsafe { v.store(buf.as_mut_ptr()) };
                        out[at..at + n].copy_from_slice(&buf[..n]);
                        at += n;
                    }
                    out
                }
            }
            let got = dispatch_on(backend, Widen(Row { values: &values, scales: &scales }));
            for (i, (&q, &g)) in values.iter().zip(&got).enumerate() {
                assert_eq!(g.to_bits(), (f32::from(q) * scales[i / 32]).to_bits(), "{backend:?}: value {i}");
            }
        }
    }
}
