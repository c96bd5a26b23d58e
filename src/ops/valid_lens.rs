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

    /// The query rows of batch entry `b` (`0..queries`) in runs of
    /// consecutive rows that weigh the same leading keys, each with that
    /// count: a row's valid length, or every key for the uniform "nothing
    /// valid" case. One run under `All` and `PerBatch`.
    ///
    /// A weighted sum run by run reads no key or value past a row's valid
    /// length for that row, so a non-finite value there cannot reach it
    /// (where PyTorch's `bmm` gives `0 · NaN = NaN`), and a row's bits do
    /// not depend on which rows share its run: the parallel layer may split
    /// a batch entry's rows anywhere.
    pub(crate) fn weighted_runs(
        self,
        b: usize,
        queries: usize,
        keys: usize,
    ) -> impl Iterator<Item = (core::ops::Range<usize>, usize)> + 'a {
        let weighted = move |q: usize| self.kept(b * queries + q, queries, keys).unwrap_or(keys);
        let mut start = 0;
        core::iter::from_fn(move || {
            if start >= queries {
                return None;
            }
            let used = weighted(start);
            let end = (start + 1..queries).find(|&q| weighted(q) != used).unwrap_or(queries);
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
