//! Strided matrix views: element `(i, j)` of a view lives at
//! `data[i·row_stride + j·col_stride]`.
//!
//! Strides let one buffer serve several layouts without a copy: a
//! transpose swaps the strides ([`MatRef::t`]), and a head of a
//! `(S, H·D)` buffer is the view `rows = S, cols = D, row_stride = H·D`
//! starting at offset `h·D`. Strides are element counts and never negative.

use crate::error::Error;

/// A read-only strided matrix.
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a> {
    pub(crate) data: &'a [f32],
    pub(crate) rows: usize,
    pub(crate) cols: usize,
    pub(crate) row_stride: usize,
    pub(crate) col_stride: usize,
}

/// A writable strided matrix.
#[derive(Debug)]
pub struct MatMut<'a> {
    pub(crate) data: &'a mut [f32],
    pub(crate) rows: usize,
    pub(crate) cols: usize,
    pub(crate) row_stride: usize,
    pub(crate) col_stride: usize,
}

impl<'a> MatRef<'a> {
    /// A dense row-major `rows × cols` view. Checked when used.
    pub fn new(data: &'a [f32], rows: usize, cols: usize) -> Self {
        MatRef { data, rows, cols, row_stride: cols, col_stride: 1 }
    }

    /// A view with explicit strides. Checked when used.
    pub fn strided(data: &'a [f32], rows: usize, cols: usize, row_stride: usize, col_stride: usize) -> Self {
        MatRef { data, rows, cols, row_stride, col_stride }
    }

    /// The transpose, as a view of the same data.
    pub fn t(self) -> Self {
        MatRef {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
        }
    }

    /// `(rows, cols)`.
    pub fn shape(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }

    pub(crate) fn check(&self, arg: &'static str) -> Result<(), Error> {
        check_extent(arg, self.rows, self.cols, self.row_stride, self.col_stride, self.data.len())
    }
}

impl<'a> MatMut<'a> {
    /// A dense row-major `rows × cols` view. Checked when used.
    pub fn new(data: &'a mut [f32], rows: usize, cols: usize) -> Self {
        MatMut { data, rows, cols, row_stride: cols, col_stride: 1 }
    }

    /// A view with explicit strides. Checked when used.
    pub fn strided(data: &'a mut [f32], rows: usize, cols: usize, row_stride: usize, col_stride: usize) -> Self {
        MatMut { data, rows, cols, row_stride, col_stride }
    }

    /// `(rows, cols)`.
    pub fn shape(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }

    /// Checks the extent and that no two elements share an address (a
    /// write through such a view would have no single meaning).
    pub(crate) fn check(&self, arg: &'static str) -> Result<(), Error> {
        check_extent(arg, self.rows, self.cols, self.row_stride, self.col_stride, self.data.len())?;
        if self.rows == 0 || self.cols == 0 {
            return Ok(());
        }
        let (mut dims, mut strides) = ((self.rows, self.cols), (self.row_stride, self.col_stride));
        if strides.0 < strides.1 {
            dims = (dims.1, dims.0);
            strides = (strides.1, strides.0);
        }
        // Now strides.1 is the smaller. Rows of the inner dimension must not meet.
        let (outer, inner) = dims;
        let (outer_stride, inner_stride) = strides;
        let inner_ok = inner <= 1 || inner_stride >= 1;
        let outer_ok = outer <= 1 || inner_stride.checked_mul(inner).is_some_and(|span| outer_stride >= span.max(1));
        if inner_ok && outer_ok { Ok(()) } else { Err(Error::Overlapping { arg }) }
    }
}

/// Checks that every element of a `rows × cols` view lies inside `len`.
fn check_extent(
    arg: &'static str,
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
    len: usize,
) -> Result<(), Error> {
    if rows == 0 || cols == 0 {
        return Ok(());
    }
    let last = (rows - 1)
        .checked_mul(row_stride)
        .and_then(|r| (cols - 1).checked_mul(col_stride).and_then(|c| r.checked_add(c)))
        .and_then(|last| last.checked_add(1))
        .ok_or(Error::Overflow { arg })?;
    if last <= len { Ok(()) } else { Err(Error::OutOfBounds { arg, needed: last, len }) }
}
