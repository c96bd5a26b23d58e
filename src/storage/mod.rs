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
//!
//! This file holds the public types; `element.rs` how the kernels read them.

mod element;

use crate::error::Error;
pub(crate) use element::{Element, Row, Rows};
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
                    quantize_row(row, &mut values[start + r * width..][..width], &mut scales[at..at + blocks]);
                }
            }
        }
    }
}

/// Quantizes `src` (one row) to q8: per block of [`Q8_BLOCK`] values the
/// scale is `max|x| / 127` and `q = round(x / scale)` (half away from
/// zero), so the widened value `q · scale` is within half a step of `x`. A
/// block of zeros has scale 0. q8 holds no infinity or NaN: a block with
/// one gets scale NaN and reads back as NaN throughout.
///
/// `values` must hold `src.len()` values and `scales`
/// [`q8_blocks`]`(src.len())`; otherwise nothing is written and the error
/// names the buffer.
pub fn quantize_q8_row(src: &[f32], values: &mut [i8], scales: &mut [f32]) -> Result<(), Error> {
    crate::error::expect_len("values", src.len(), values.len())?;
    crate::error::expect_len("scales", q8_blocks(src.len()), scales.len())?;
    quantize_row(src, values, scales);
    Ok(())
}

/// [`quantize_q8_row`] on buffers whose lengths the caller has checked.
pub(crate) fn quantize_row(src: &[f32], values: &mut [i8], scales: &mut [f32]) {
    for ((block, q), scale) in src.chunks(Q8_BLOCK).zip(values.chunks_mut(Q8_BLOCK)).zip(scales.iter_mut()) {
        let max = block.iter().fold(0.0f32, |m, &x| if x.is_finite() { m.max(x.abs()) } else { f32::INFINITY });
        *scale = if max.is_finite() { max / 127.0 } else { f32::NAN };
        for (q, &x) in q.iter_mut().zip(block) {
            *q = if *scale > 0.0 { libm::roundf(x / *scale).clamp(-127.0, 127.0) as i8 } else { 0 };
        }
    }
}

fn widen_slice<T: Element>(src: &[T], dst: &mut [f32]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = s.widen(1.0);
    }
}
