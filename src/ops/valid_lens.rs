//! d2l's `valid_lens`: how many leading keys each query row may attend to.

use crate::error::{Error, expect_len};
use crate::kernels::Mask;

/// Which keys each query row keeps, as in d2l's `masked_softmax`.
///
/// A length of 0 gives the row uniform weights `1/K` (d2l fills masked
/// scores with −1e6, so an all-masked row is uniform); a length `≥ K` masks
/// nothing.
#[derive(Clone, Copy, Debug)]
pub enum ValidLens<'a> {
    /// Every key.
    All,
    /// Shape `(B,)`: row `(b, q)` keeps keys `< lens[b]`.
    PerBatch(&'a [usize]),
    /// Shape `(B, Q)`: row `(b, q)` keeps keys `< lens[b·Q + q]`.
    PerQuery(&'a [usize]),
}

impl<'a> ValidLens<'a> {
    pub(crate) fn check(&self, batch: usize, rows: usize) -> Result<(), Error> {
        match *self {
            ValidLens::All => Ok(()),
            ValidLens::PerBatch(l) => expect_len("valid_lens", batch, l.len()),
            ValidLens::PerQuery(l) => expect_len("valid_lens", rows, l.len()),
        }
    }

    /// Keys kept by row `row = b·Q + q`, capped at `keys`; `None` means the
    /// d2l "nothing valid" case (uniform weights).
    #[inline]
    pub(crate) fn kept(&self, row: usize, queries: usize, keys: usize) -> Option<usize> {
        let len = match *self {
            ValidLens::All => keys,
            ValidLens::PerBatch(l) => l[row / queries],
            ValidLens::PerQuery(l) => l[row],
        };
        if len == 0 && keys > 0 { None } else { Some(len.min(keys)) }
    }

    /// Leading keys some query row of batch entry `b` scores: the longest
    /// valid length among its rows (0 for the uniform "nothing valid" rows,
    /// which score no key). Keys past it are never scored.
    pub(crate) fn scored(self, b: usize, queries: usize, keys: usize) -> usize {
        match self {
            ValidLens::All => keys,
            ValidLens::PerBatch(l) => l[b].min(keys),
            ValidLens::PerQuery(l) => l[b * queries..(b + 1) * queries].iter().fold(0, |m, &n| m.max(n.min(keys))),
        }
    }

    /// The lengths of batch entries `entries` alone, for a part of the batch.
    #[cfg(feature = "std")]
    pub(crate) fn entries(self, entries: core::ops::Range<usize>, queries: usize) -> ValidLens<'a> {
        match self {
            ValidLens::All => ValidLens::All,
            ValidLens::PerBatch(l) => ValidLens::PerBatch(&l[entries]),
            ValidLens::PerQuery(l) => ValidLens::PerQuery(&l[entries.start * queries..entries.end * queries]),
        }
    }

    /// Leading keys some query row of batch entry `b` weighs: the longest
    /// valid length among its rows, or every key for the uniform "nothing
    /// valid" case.
    pub(crate) fn longest(self, b: usize, queries: usize, keys: usize) -> usize {
        (0..queries).map(|q| self.weighs(b, q, queries, keys)).max().unwrap_or(0)
    }

    /// Keys row `q` of batch entry `b` weighs.
    fn weighs(self, b: usize, q: usize, queries: usize, keys: usize) -> usize {
        self.kept(b * queries + q, queries, keys).unwrap_or(keys)
    }

    /// Batch entry `b`'s query rows (`0..queries`) as `(rows, keys)` for
    /// the weighted sum of its `values` (`keys` rows of `width`): one
    /// product over the longest valid length when every value row between
    /// the shortest and the longest is finite, else runs of consecutive
    /// rows of one valid length, each stopping there.
    ///
    /// A masked weight is exactly 0, so next to finite values it adds
    /// exactly nothing, and the one product gives each row the bits it has
    /// on its own; a non-finite value would give `0 · inf = NaN` (as
    /// PyTorch's `bmm` does), so then no row reads a value past its own
    /// valid length. Either way a row's bits do not depend on the rows
    /// beside it, so the parallel layer may split a batch entry's rows
    /// anywhere.
    pub(crate) fn weighted_runs(
        self,
        b: usize,
        queries: usize,
        keys: usize,
        (values, width): (&[f32], usize),
    ) -> impl Iterator<Item = (core::ops::Range<usize>, usize)> + 'a {
        let weighs = move |q: usize| self.weighs(b, q, queries, keys);
        let shortest = (0..queries).map(weighs).min().unwrap_or(0);
        let longest = self.longest(b, queries, keys);
        let finite = || values[shortest * width..longest * width].iter().all(|v| v.is_finite());
        let together = shortest == longest || finite();
        let mut start = 0;
        core::iter::from_fn(move || {
            if start >= queries {
                return None;
            }
            let used = if together { longest } else { weighs(start) };
            let end =
                if together { queries } else { (start + 1..queries).find(|&q| weighs(q) != used).unwrap_or(queries) };
            let run = start..end;
            start = end;
            Some((run, used))
        })
    }

    /// The same rule as a softmax [`Mask`].
    pub fn as_mask(self) -> Mask<'a> {
        match self {
            ValidLens::All => Mask::None,
            ValidLens::PerBatch(l) => Mask::ValidLens(l),
            ValidLens::PerQuery(l) => Mask::ValidLensPerQuery(l),
        }
    }
}
