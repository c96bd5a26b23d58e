//! The shape shared by the batched attention operators: queries
//! `(B, Q, query_dim)`, keys `(B, K, key_dim)`, values `(B, K, value_dim)`,
//! output `(B, Q, value_dim)` and weights `(B, Q, K)`, all row-major.

use super::ValidLens;
use crate::error::{Error, checked_mul, expect_len};

/// Sizes of one batched attention call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttentionShape {
    /// `B`.
    pub batch: usize,
    /// `Q`, queries per batch entry.
    pub queries: usize,
    /// `K`, keys (and values) per batch entry.
    pub keys: usize,
    /// Features per query.
    pub query_dim: usize,
    /// Features per key.
    pub key_dim: usize,
    /// Features per value, and so per output row.
    pub value_dim: usize,
}

/// Element counts of every tensor of an [`AttentionShape`], checked for overflow.
#[derive(Clone, Copy, Debug)]
pub(crate) struct AttentionSizes {
    pub query_rows: usize,
    pub key_rows: usize,
    pub queries: usize,
    pub keys: usize,
    pub values: usize,
    pub output: usize,
    pub weights: usize,
}

impl AttentionShape {
    pub(crate) fn sizes(&self) -> Result<AttentionSizes, Error> {
        let query_rows = checked_mul("shape", self.batch, self.queries)?;
        let key_rows = checked_mul("shape", self.batch, self.keys)?;
        Ok(AttentionSizes {
            query_rows,
            key_rows,
            queries: checked_mul("shape", query_rows, self.query_dim)?,
            keys: checked_mul("shape", key_rows, self.key_dim)?,
            values: checked_mul("shape", key_rows, self.value_dim)?,
            output: checked_mul("shape", query_rows, self.value_dim)?,
            weights: checked_mul("shape", query_rows, self.keys)?,
        })
    }

    /// Checks the lengths of queries, keys, values and `valid_lens`, and
    /// returns the sizes.
    pub(crate) fn check_inputs(
        &self,
        [queries, keys, values]: [&[f32]; 3],
        valid_lens: ValidLens<'_>,
    ) -> Result<AttentionSizes, Error> {
        let sizes = self.sizes()?;
        expect_len("queries", sizes.queries, queries.len())?;
        expect_len("keys", sizes.keys, keys.len())?;
        expect_len("values", sizes.values, values.len())?;
        valid_lens.check(self.batch, sizes.query_rows)?;
        Ok(sizes)
    }

    /// Checks the lengths of the output and the optional weights buffer.
    pub(crate) fn check_outputs(
        &self,
        sizes: &AttentionSizes,
        out: &[f32],
        weights: Option<&[f32]>,
    ) -> Result<(), Error> {
        expect_len("out", sizes.output, out.len())?;
        if let Some(w) = weights {
            expect_len("weights", sizes.weights, w.len())?;
        }
        Ok(())
    }
}
