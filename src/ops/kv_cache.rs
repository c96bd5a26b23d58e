//! A cache of keys and values for decoder loops, in buffers the caller
//! owns: each step appends its new positions' K and V (converted to the
//! cache's storage type) and runs SDPA over the filled prefix.
//!
//! Layout: K is `(batch, kv_heads, capacity, E)` and V `(batch, kv_heads,
//! capacity, Ev)`, so each (batch, kv head) streams its filled rows
//! contiguously; the unfilled rows past [`KvCache::len`] are never read.
//! Nothing here allocates, and an append touches only the new rows.

use super::sdpa::SdpaCall;
use super::{ScaledDotProductAttention, SdpaInputs, SdpaMask, SdpaShape};
use crate::error::{Error, checked_mul, expect_len};
use crate::storage::{Storage, Stored, StoredMut};

/// The sizes of a [`KvCache`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KvCacheShape {
    /// `B`.
    pub batch: usize,
    /// `Hkv`.
    pub kv_heads: usize,
    /// Positions each (batch, kv head) can hold.
    pub capacity: usize,
    /// `E`, the width of keys (and queries).
    pub qk_dim: usize,
    /// `Ev`, the width of values.
    pub v_dim: usize,
}

impl KvCacheShape {
    /// Rows of K (and of V): `B · Hkv · capacity`.
    pub fn rows(&self) -> Result<usize, Error> {
        checked_mul("shape", checked_mul("shape", self.batch, self.kv_heads)?, self.capacity)
    }
}

/// The queries of one [`KvCache::attend`] step.
#[derive(Clone, Copy, Debug)]
pub struct CacheQuery<'a> {
    /// `(B, Hq, L, E)`: f32, bf16 or f16.
    pub query: Stored<'a>,
    /// `Hq`, a multiple of the cache's `Hkv` (GQA).
    pub q_heads: usize,
    /// `L`, the new positions: the last `L` of the cache's filled rows.
    pub q_len: usize,
    /// Which cached keys each query sees. [`SdpaMask::Causal`] means the
    /// decoder's alignment here: query `i` sees keys `0..=len − L + i`
    /// ([`SdpaMask::CausalLowerRight`]); explicit masks are `(·, ·, L, len)`.
    pub mask: SdpaMask<'a>,
}

/// Keys and values of the positions decoded so far, in the caller's buffers.
#[derive(Debug)]
pub struct KvCache<'b> {
    shape: KvCacheShape,
    len: usize,
    key: StoredMut<'b>,
    value: StoredMut<'b>,
}

impl<'b> KvCache<'b> {
    /// An empty cache over `key` and `value`, which must be of one storage
    /// type and hold `shape.rows()` rows of `E` and `Ev` values (and, for
    /// q8, their scales).
    pub fn new(shape: KvCacheShape, key: StoredMut<'b>, value: StoredMut<'b>) -> Result<KvCache<'b>, Error> {
        check_buffers(&shape, key.as_stored(), value.as_stored())?;
        Ok(KvCache { shape, len: 0, key, value })
    }

    /// A cache over buffers that already hold `len` positions of an earlier
    /// [`KvCache`] of the same shape and storage type: for a caller that
    /// keeps the buffers between steps but cannot keep the borrow (a
    /// language binding's object, a firmware's static state). Refused when
    /// `len` exceeds the capacity. The rows are taken as they are: garbage
    /// in them gives garbage results, never undefined behaviour.
    pub fn reopen(
        shape: KvCacheShape,
        key: StoredMut<'b>,
        value: StoredMut<'b>,
        len: usize,
    ) -> Result<KvCache<'b>, Error> {
        check_len(&shape, len)?;
        Ok(KvCache { len, ..KvCache::new(shape, key, value)? })
    }

    /// The filled prefix, read-only: what attention reads.
    pub fn view(&self) -> KvCacheView<'_> {
        KvCacheView { shape: self.shape, len: self.len, key: self.key.as_stored(), value: self.value.as_stored() }
    }

    /// Positions filled so far (the same for every batch entry and head).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no position is filled.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Its sizes.
    pub fn shape(&self) -> KvCacheShape {
        self.shape
    }

    /// The storage type of K and V.
    pub fn storage(&self) -> Storage {
        self.key.as_stored().storage()
    }

    /// Forgets every position (the buffers keep their bytes).
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Appends `new` positions: `key` `(B, Hkv, new, E)` and `value` `(B,
    /// Hkv, new, Ev)` in f32, converted to the cache's storage (bf16 and f16
    /// round to nearest even; q8 quantizes each row). Refused, with nothing
    /// written, when the rows do not fit or have the wrong width.
    pub fn append(&mut self, new: usize, key: &[f32], value: &[f32]) -> Result<(), Error> {
        let s = self.shape;
        let needed = self.len.checked_add(new).ok_or(Error::Overflow { arg: "new" })?;
        if needed > s.capacity {
            return Err(Error::Capacity { arg: "new", capacity: s.capacity, needed });
        }
        let rows = checked_mul("new", checked_mul("new", s.batch, s.kv_heads)?, new)?;
        expect_len("key", checked_mul("key", rows, s.qk_dim)?, key.len())?;
        expect_len("value", checked_mul("value", rows, s.v_dim)?, value.len())?;
        for head in 0..s.batch * s.kv_heads {
            let first = head * s.capacity + self.len;
            let (k, v) = (new * s.qk_dim, new * s.v_dim);
            self.key.store_rows(first, s.qk_dim, &key[head * k..(head + 1) * k]);
            self.value.store_rows(first, s.v_dim, &value[head * v..(head + 1) * v]);
        }
        self.len = needed;
        Ok(())
    }

    /// The SDPA shape of a step of `q_heads` heads and `q_len` queries
    /// against the filled prefix.
    pub fn sdpa_shape(&self, q_heads: usize, q_len: usize) -> SdpaShape {
        self.view().sdpa_shape(q_heads, q_len)
    }

    /// Scratch for [`attend`](Self::attend): see [`KvCacheView::workspace_len`].
    pub fn workspace_len(&self, op: &ScaledDotProductAttention, q_heads: usize, q_len: usize) -> Result<usize, Error> {
        self.view().workspace_len(op, q_heads, q_len)
    }

    /// `out` `(B, Hq, L, Ev)` ← SDPA of `query` against the filled prefix
    /// ([`KvCacheView::attend`]).
    pub fn attend(
        &self,
        op: &ScaledDotProductAttention,
        query: CacheQuery<'_>,
        out: &mut [f32],
        workspace: &mut [f32],
    ) -> Result<(), Error> {
        self.view().attend(op, query, out, workspace)
    }
}

/// A cache's filled prefix, borrowed read-only, so that several threads may
/// attend to one cache at once: from [`KvCache::view`], or over buffers a
/// caller keeps between steps ([`KvCacheView::new`], as the C API does).
#[derive(Clone, Copy, Debug)]
pub struct KvCacheView<'b> {
    shape: KvCacheShape,
    len: usize,
    key: Stored<'b>,
    value: Stored<'b>,
}

impl<'b> KvCacheView<'b> {
    /// The first `len` positions of the cache in `key` and `value`, checked
    /// as [`KvCache::reopen`] checks them.
    pub fn new(shape: KvCacheShape, key: Stored<'b>, value: Stored<'b>, len: usize) -> Result<Self, Error> {
        check_buffers(&shape, key, value)?;
        check_len(&shape, len)?;
        Ok(KvCacheView { shape, len, key, value })
    }

    /// Positions filled.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no position is filled.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The SDPA shape of a step of `q_heads` heads and `q_len` queries
    /// against the filled prefix.
    pub fn sdpa_shape(&self, q_heads: usize, q_len: usize) -> SdpaShape {
        let s = self.shape;
        SdpaShape {
            batch: s.batch,
            q_heads,
            kv_heads: s.kv_heads,
            q_len,
            kv_len: self.len,
            qk_dim: s.qk_dim,
            v_dim: s.v_dim,
        }
    }

    /// Scratch for [`attend`](Self::attend) with `q_heads` heads of `q_len`
    /// queries, enough however full the cache is (it is sized for a full
    /// one), so one buffer serves a whole decoder loop.
    pub fn workspace_len(&self, op: &ScaledDotProductAttention, q_heads: usize, q_len: usize) -> Result<usize, Error> {
        let full = SdpaShape { kv_len: self.shape.capacity, ..self.sdpa_shape(q_heads, q_len) };
        op.workspace_len(&full, false)
    }

    /// `out` `(B, Hq, L, Ev)` ← SDPA of `query` against the filled prefix,
    /// read where it lies (no copy of K or V).
    pub fn attend(
        &self,
        op: &ScaledDotProductAttention,
        query: CacheQuery<'_>,
        out: &mut [f32],
        workspace: &mut [f32],
    ) -> Result<(), Error> {
        let shape = self.sdpa_shape(query.q_heads, query.q_len);
        op.run(&self.call(&shape, query), out, None, workspace)
    }

    /// The SDPA call of a step: K and V as stored, kv heads `capacity` rows
    /// apart.
    pub(crate) fn call<'s>(&'s self, shape: &'s SdpaShape, query: CacheQuery<'s>) -> SdpaCall<'s> {
        let mask = match query.mask {
            SdpaMask::Causal => SdpaMask::CausalLowerRight,
            other => other,
        };
        let inputs = SdpaInputs { query: query.query, key: self.key, value: self.value, mask };
        SdpaCall { shape, inputs, kv_stride: self.shape.capacity }
    }
}

/// Refuses buffers of the wrong sizes, or of two storage types.
fn check_buffers(shape: &KvCacheShape, key: Stored<'_>, value: Stored<'_>) -> Result<(), Error> {
    let rows = shape.rows()?;
    key.expect("key", "key.scales", rows, shape.qk_dim)?;
    value.expect("value", "value.scales", rows, shape.v_dim)?;
    let (k, v) = (key.storage(), value.storage());
    if k != v {
        return Err(Error::Storage { arg: "value", expected: k.name(), actual: v.name() });
    }
    Ok(())
}

/// Refuses a fill length past the capacity.
fn check_len(shape: &KvCacheShape, len: usize) -> Result<(), Error> {
    if len > shape.capacity {
        return Err(Error::Capacity { arg: "len", capacity: shape.capacity, needed: len });
    }
    Ok(())
}
