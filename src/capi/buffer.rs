//! A caller's buffer as C passes it, a pointer and a length in elements,
//! and the checks that must hold before it may become a Rust slice.
//!
//! `core::slice::from_raw_parts` requires a non-null, aligned pointer and a
//! byte size of at most `isize::MAX` that does not wrap the address space;
//! a `&mut` slice must moreover alias nothing else in use. [`Buffer`]
//! checks the first three when it is made, [`disjoint`] the last, and only
//! then do the unsafe `as_slice` conversions run, under the caller's
//! promise that the memory is valid for `len` elements.
//!
//! The entry points share two more things here: [`read_one`] reads a
//! descriptor passed by pointer, and [`Outputs`] checks and lends the
//! `out`, `weights` and `workspace` buffers every attention call takes.

use super::simd_attention_status::{
    self, SIMD_ATTENTION_ERROR_ALIASING, SIMD_ATTENTION_ERROR_ALIGNMENT, SIMD_ATTENTION_ERROR_NULL,
    SIMD_ATTENTION_ERROR_OVERFLOW,
};
use core::ops::Range;
use core::ptr::NonNull;

/// `len` values of `T` at `ptr`: non-null and aligned (a dangling pointer
/// when `len` is 0), with a byte size that fits in `isize` and does not
/// wrap the address space. Making one reads nothing.
pub(super) struct Buffer<T> {
    ptr: NonNull<T>,
    len: usize,
}

impl<T> Clone for Buffer<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Buffer<T> {}

impl<T> Buffer<T> {
    /// A buffer to read. `NULL` is accepted with `len == 0` only.
    pub(super) fn new(ptr: *const T, len: usize) -> Result<Self, simd_attention_status> {
        if len == 0 {
            return Ok(Buffer { ptr: NonNull::dangling(), len: 0 });
        }
        let ptr = NonNull::new(ptr.cast_mut()).ok_or(SIMD_ATTENTION_ERROR_NULL)?;
        if !ptr.as_ptr().is_aligned() {
            return Err(SIMD_ATTENTION_ERROR_ALIGNMENT);
        }
        let bytes = len.checked_mul(size_of::<T>()).filter(|&b| b <= isize::MAX as usize);
        let end = bytes.and_then(|b| (ptr.as_ptr() as usize).checked_add(b));
        if end.is_none() {
            return Err(SIMD_ATTENTION_ERROR_OVERFLOW);
        }
        Ok(Buffer { ptr, len })
    }

    /// A buffer to write; the same checks.
    pub(super) fn new_mut(ptr: *mut T, len: usize) -> Result<Self, simd_attention_status> {
        Self::new(ptr, len)
    }

    /// An optional buffer: `None` for `NULL` with `len == 0`, else as
    /// [`new`](Self::new) (so `NULL` with a length is refused).
    pub(super) fn optional(ptr: *const T, len: usize) -> Result<Option<Self>, simd_attention_status> {
        if ptr.is_null() && len == 0 { Ok(None) } else { Self::new(ptr, len).map(Some) }
    }

    /// [`optional`](Self::optional), to write.
    pub(super) fn optional_mut(ptr: *mut T, len: usize) -> Result<Option<Self>, simd_attention_status> {
        Self::optional(ptr, len)
    }

    /// The bytes it covers (empty for an empty buffer). Cannot overflow:
    /// [`new`](Self::new) checked the end address.
    pub(super) fn bytes(&self) -> Range<usize> {
        let start = self.ptr.as_ptr() as usize;
        start..start.wrapping_add(self.len.wrapping_mul(size_of::<T>()))
    }

    /// The bytes of an optional buffer (empty when absent).
    pub(super) fn bytes_or_none(buffer: Option<Self>) -> Range<usize> {
        buffer.map_or(0..0, |b| b.bytes())
    }

    /// The pointer, for a single read.
    pub(super) fn as_ptr(&self) -> *const T {
        self.ptr.as_ptr()
    }

    /// The pointer, for a single write.
    pub(super) fn as_mut_ptr(&self) -> *mut T {
        self.ptr.as_ptr()
    }

    /// The values, borrowed.
    ///
    /// # Safety
    /// The memory must be valid for reads of `len` initialised values of
    /// `T` and must not be written by anyone for `'a`.
    pub(super) unsafe fn as_slice<'a>(self) -> &'a [T] {
        // SAFETY: non-null, aligned and at most `isize::MAX` bytes without
        // wrapping (checked in `new`); validity and immutability for `'a`
        // are the caller's promise.
        unsafe { core::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// The values, borrowed mutably.
    ///
    /// # Safety
    /// As [`as_slice`](Self::as_slice), for reads and writes, and no other
    /// reference to the memory may be used for `'a` ([`disjoint`] checks
    /// the other buffers of the call).
    pub(super) unsafe fn as_mut_slice<'a>(self) -> &'a mut [T] {
        // SAFETY: as in `as_slice`, plus exclusive access, which the
        // caller promises.
        unsafe { core::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

/// The one `T` at `ptr` (a descriptor the caller passes by pointer), read:
/// `NULL` is refused with `SIMD_ATTENTION_ERROR_NULL`, a misaligned
/// pointer with `SIMD_ATTENTION_ERROR_ALIGNMENT`.
///
/// # Safety
/// A non-null, aligned `ptr` must be valid for reading one `T`, and `T`
/// must be plain data (integers and pointers) that any initialised bytes
/// make a valid value of.
pub(super) unsafe fn read_one<T: Copy>(ptr: *const T) -> Result<T, simd_attention_status> {
    let one = Buffer::new(ptr, 1)?;
    // SAFETY: non-null and aligned (checked by `Buffer::new`); readable
    // plain data, as the caller promises.
    Ok(unsafe { one.as_ptr().read() })
}

/// [`Outputs`], borrowed: `out`, the weights if requested, the workspace.
pub(super) type OutputSlices<'a> = (&'a mut [f32], Option<&'a mut [f32]>, &'a mut [f32]);

/// The outputs every attention entry point takes, in its argument order:
/// `out`, the optional `weights` (`NULL` with length 0: not requested) and
/// the `workspace`, checked in that order.
#[derive(Clone, Copy)]
pub(super) struct Outputs {
    out: Buffer<f32>,
    weights: Option<Buffer<f32>>,
    workspace: Buffer<f32>,
}

impl Outputs {
    /// The three buffers, each a pointer and its length, checked; reads
    /// and writes nothing.
    pub(super) fn new(
        [(out, out_len), (weights, weights_len), (workspace, workspace_len)]: [(*mut f32, usize); 3],
    ) -> Result<Self, simd_attention_status> {
        Ok(Outputs {
            out: Buffer::new_mut(out, out_len)?,
            weights: Buffer::optional_mut(weights, weights_len)?,
            workspace: Buffer::new_mut(workspace, workspace_len)?,
        })
    }

    /// The bytes of each, for [`disjoint`] (empty for absent weights).
    pub(super) fn bytes(&self) -> [Range<usize>; 3] {
        [self.out.bytes(), Buffer::bytes_or_none(self.weights), self.workspace.bytes()]
    }

    /// `out`, the weights if requested, and the workspace, borrowed mutably.
    ///
    /// # Safety
    /// As [`Buffer::as_mut_slice`] for each: valid for reads and writes,
    /// and overlapping no other buffer of the call ([`disjoint`] over
    /// [`bytes`](Self::bytes)).
    pub(super) unsafe fn as_mut_slices<'a>(self) -> OutputSlices<'a> {
        // SAFETY: checked buffers, valid and exclusive as the caller
        // promises.
        unsafe { (self.out.as_mut_slice(), self.weights.map(|w| w.as_mut_slice()), self.workspace.as_mut_slice()) }
    }
}

/// Refuses a call in which an output overlaps another output or any
/// input. `outputs` and `inputs` are byte ranges ([`Buffer::bytes`]); empty
/// ranges overlap nothing, and inputs may overlap each other.
pub(super) fn disjoint(outputs: &[Range<usize>], inputs: &[Range<usize>]) -> Result<(), simd_attention_status> {
    let overlap =
        |a: &Range<usize>, b: &Range<usize>| !a.is_empty() && !b.is_empty() && a.start < b.end && b.start < a.end;
    for (i, out) in outputs.iter().enumerate() {
        let later_outputs = outputs.get(i + 1..).unwrap_or(&[]);
        if later_outputs.iter().chain(inputs).any(|other| overlap(out, other)) {
            return Err(SIMD_ATTENTION_ERROR_ALIASING);
        }
    }
    Ok(())
}
