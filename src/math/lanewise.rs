//! Applying a per-lane function to a whole slice: full vectors first, then
//! one padded tail vector, so any length and any alignment works and nothing
//! past the end is touched.

use crate::simd::vector::{load_partial, store_partial};
use crate::simd::{F32Vector, WithSimd};
use core::marker::PhantomData;

/// A function applied lane by lane.
pub(crate) trait LaneFn {
    fn apply<V: F32Vector>(x: V) -> V;
}

/// `dst[i] = F(src[i])` for `i < len`; `src` may equal `dst` (in place).
pub(crate) struct MapSlice<F> {
    src: *const f32,
    dst: *mut f32,
    len: usize,
    f: PhantomData<F>,
}

impl<F: LaneFn> MapSlice<F> {
    pub(crate) fn new(src: &[f32], dst: &mut [f32]) -> Self {
        let len = src.len().min(dst.len());
        MapSlice { src: src.as_ptr(), dst: dst.as_mut_ptr(), len, f: PhantomData }
    }

    pub(crate) fn in_place(x: &mut [f32]) -> Self {
        // One pointer for both: a second borrow of `x` (`as_ptr` then
        // `as_mut_ptr`) would invalidate the first under Stacked Borrows.
        let p = x.as_mut_ptr();
        MapSlice { src: p.cast_const(), dst: p, len: x.len(), f: PhantomData }
    }
}

impl<F: LaneFn> WithSimd for MapSlice<F> {
    type Output = ();

    #[inline(always)]
    fn run<V: F32Vector>(self) {
        let mut i = 0;
        while i + V::LANES <= self.len {
            // SAFETY: i + LANES <= len, and both pointers come from slices of at least
            // len elements (`new` takes the shorter). Each chunk is loaded before it is
            // stored, so src == dst is fine.
            unsafe { F::apply(V::load(self.src.add(i))).store(self.dst.add(i)) };
            i += V::LANES;
        }
        if i < self.len {
            let rest = self.len - i;
            // SAFETY: rest < LANES values remain in both slices from i on.
            unsafe {
                let v: V = load_partial(self.src.add(i), rest, 0.0);
                store_partial(F::apply(v), self.dst.add(i), rest);
            }
        }
    }
}
