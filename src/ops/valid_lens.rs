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

    /// Leading keys that carry weight in any query row of batch entry `b`:
    /// the most any of its rows keeps, and every key when a row is the
    /// uniform "nothing valid" case. The keys past it have weight exactly 0
    /// in every row, so a weighted sum may stop there.
    pub(crate) fn keys_weighted(&self, b: usize, queries: usize, keys: usize) -> usize {
        (b * queries..(b + 1) * queries).map(|row| self.kept(row, queries, keys).unwrap_or(keys)).max().unwrap_or(0)
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
