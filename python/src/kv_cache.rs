//! `KvCache`: the engine's cache of keys and values for decoder loops,
//! owning its buffers, so that a Python decoder appends each step's K and V
//! once and attends over every position so far without copying them.

use crate::arrays::{Borrowed, filled, new_array, shape_text};
use crate::errors::{size, to_py, type_error, value_error};
use crate::mask::{Mask, sdpa_mask};
use crate::sdpa::{check_gqa, output, with_width};
use crate::stored::StoredArray;
use engine::io::StoredTensor;
use engine::ops::{CacheQuery, KvCache as Cache, KvCacheShape, KvCacheView, ScaledDotProductAttention};
use engine::par;
use engine::storage::{Storage, bf16, f16, q8_blocks};
use pyo3::prelude::*;

/// Zeroed room for `rows` rows of `width` in `storage`, or a
/// `MemoryError` naming `arg`.
fn zeroed(arg: &str, storage: Storage, rows: usize, width: usize) -> PyResult<StoredTensor> {
    let n = rows.saturating_mul(width);
    Ok(match storage {
        Storage::F32 => StoredTensor::F32(filled(arg, n, 0.0)?),
        Storage::Bf16 => StoredTensor::Bf16(filled(arg, n, bf16::ZERO)?),
        Storage::F16 => StoredTensor::F16(filled(arg, n, f16::ZERO)?),
        Storage::Q8 => {
            let blocks = rows.saturating_mul(q8_blocks(width));
            StoredTensor::Q8 { values: filled(arg, n, 0)?, scales: filled(arg, blocks, 0.0)? }
        }
    })
}

/// The storage types by their Python names.
const DTYPES: [(&str, Storage); 4] =
    [("float32", Storage::F32), ("bfloat16", Storage::Bf16), ("float16", Storage::F16), ("q8", Storage::Q8)];

/// `dtype` as a storage type: one of [`DTYPES`]' names (`"bfloat16"`
/// needs no `ml_dtypes`), or anything `numpy.dtype` reads as one of the
/// float types (`numpy.float16`, `"f4"`, `ml_dtypes.bfloat16`).
fn storage_of(dtype: &Bound<'_, PyAny>) -> PyResult<Storage> {
    const EXPECTED: &str = "\"float32\", \"bfloat16\", \"float16\" or \"q8\"";
    let named = |name: &str| DTYPES.iter().find(|(n, _)| *n == name).map(|&(_, s)| s);
    if let Some(storage) = dtype.extract::<String>().ok().and_then(|n| named(&n)) {
        return Ok(storage);
    }
    let repr = || dtype.repr().map_or_else(|_| "?".into(), |r| r.to_string());
    let numpy_name = || -> PyResult<String> {
        dtype.py().import("numpy")?.call_method1("dtype", (dtype,))?.getattr("name")?.extract()
    };
    let name = numpy_name().map_err(|_| type_error("dtype", EXPECTED, repr()))?;
    named(&name).filter(|&s| s != Storage::Q8).ok_or_else(|| value_error("dtype", EXPECTED, repr()))
}

/// Keys and values of the positions decoded so far, stored as `dtype`:
/// `"float32"`, `"bfloat16"`, `"float16"` (rounded to nearest even as they
/// are appended) or `"q8"` (each row quantized in blocks of 32, as
/// `quantize_q8` does). K is `(batch, kv_heads, capacity, head_dim)` and V
/// `(…, value_dim)`; each (batch, head) is contiguous, so attention streams
/// the filled prefix where it lies.
///
/// Threads: any number may `attend` at once (the GIL is released, and
/// attention only reads the cache); an `append` while another thread is
/// inside a call on the same cache raises `RuntimeError` (PyO3's borrow
/// check) and changes nothing.
#[pyclass(module = "simd_attention")]
pub struct KvCache {
    shape: KvCacheShape,
    storage: Storage,
    len: usize,
    key: StoredTensor,
    value: StoredTensor,
}

impl KvCache {
    /// The engine's read-only view of the filled prefix.
    fn view(&self) -> PyResult<KvCacheView<'_>> {
        KvCacheView::new(self.shape, self.key.as_stored(), self.value.as_stored(), self.len).map_err(to_py)
    }

    /// `(B, Hkv, n, width)` of a 4-D float32 array that must match the
    /// cache's batch, heads and `width`, and its rows.
    fn new_rows<'py>(&self, arg: &str, obj: &Bound<'py, PyAny>, width: usize) -> PyResult<(Borrowed<'py, f32>, usize)> {
        let rows = Borrowed::<f32>::require(arg, obj, "a float32 array")?;
        let s = self.shape;
        match *rows.shape() {
            [b, h, n, w] if (b, h, w) == (s.batch, s.kv_heads, width) => Ok((rows, n)),
            _ => Err(value_error(
                arg,
                format!("shape ({}, {}, n, {width})", s.batch, s.kv_heads),
                shape_text(rows.shape()),
            )),
        }
    }
}

#[pymethods]
impl KvCache {
    /// An empty cache of `capacity` positions. `value_dim` defaults to
    /// `head_dim`. Its memory is allocated here, once.
    #[new]
    #[pyo3(signature = (batch, kv_heads, capacity, head_dim, value_dim=None, dtype=None))]
    fn new(
        batch: &Bound<'_, PyAny>,
        kv_heads: &Bound<'_, PyAny>,
        capacity: &Bound<'_, PyAny>,
        head_dim: &Bound<'_, PyAny>,
        value_dim: Option<&Bound<'_, PyAny>>,
        dtype: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let head_dim = size("head_dim", head_dim)?;
        let shape = KvCacheShape {
            batch: size("batch", batch)?,
            kv_heads: size("kv_heads", kv_heads)?,
            capacity: size("capacity", capacity)?,
            qk_dim: head_dim,
            v_dim: value_dim.map_or(Ok(head_dim), |v| size("value_dim", v))?,
        };
        let storage = dtype.map(storage_of).transpose()?.unwrap_or(Storage::F32);
        let rows = shape.rows().map_err(to_py)?;
        let (key, value) = (zeroed("key", storage, rows, shape.qk_dim)?, zeroed("value", storage, rows, shape.v_dim)?);
        let cache = KvCache { shape, storage, len: 0, key, value };
        cache.view()?; // the engine's own checks of the buffers
        Ok(cache)
    }

    /// Positions filled so far.
    fn __len__(&self) -> usize {
        self.len
    }

    fn __repr__(&self) -> String {
        let s = self.shape;
        format!(
            "KvCache(batch={}, kv_heads={}, capacity={}, head_dim={}, value_dim={}, dtype={:?}) holding {}",
            s.batch,
            s.kv_heads,
            s.capacity,
            s.qk_dim,
            s.v_dim,
            self.dtype(),
            self.len
        )
    }

    /// Positions it can hold.
    #[getter]
    fn capacity(&self) -> usize {
        self.shape.capacity
    }

    /// `"float32"`, `"bfloat16"`, `"float16"` or `"q8"`.
    #[getter]
    fn dtype(&self) -> &'static str {
        DTYPES.iter().find(|(_, s)| *s == self.storage).map_or("", |(n, _)| n)
    }

    /// Bytes K and V take (scales included), filled or not.
    #[getter]
    fn nbytes(&self) -> usize {
        let (s, rows) = (self.shape, self.shape.rows().unwrap_or(0));
        [s.qk_dim, s.v_dim].iter().map(|&w| self.storage.bytes(rows, w).unwrap_or(0)).sum()
    }

    /// Forgets every position; the memory stays.
    fn clear(&mut self) {
        self.len = 0;
    }

    /// Appends `n` positions: `key (batch, kv_heads, n, head_dim)` and
    /// `value (batch, kv_heads, n, value_dim)`, float32, converted to the
    /// cache's dtype. Past the capacity, or with the wrong shapes, it raises
    /// and changes nothing.
    fn append(&mut self, py: Python<'_>, key: &Bound<'_, PyAny>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let (k, n) = self.new_rows("key", key, self.shape.qk_dim)?;
        let (v, nv) = self.new_rows("value", value, self.shape.v_dim)?;
        if nv != n {
            return Err(value_error("value", format!("{n} positions, as key has"), nv));
        }
        let room = self.shape.capacity - self.len;
        if n > room {
            return Err(value_error(
                "key",
                format!("at most {room} new positions (capacity {})", self.shape.capacity),
                n,
            ));
        }
        let (keys, values, shape, len) = (k.values(), v.values(), self.shape, self.len);
        let (key, value) = (&mut self.key, &mut self.value);
        self.len = py
            .detach(|| {
                let mut cache = Cache::reopen(shape, key.as_stored_mut(), value.as_stored_mut(), len)?;
                cache.append(n, keys, values)?;
                Ok(cache.len())
            })
            .map_err(to_py)?;
        Ok(())
    }

    /// `scaled_dot_product_attention` of `query (batch, q_heads, L, head_dim)`
    /// (float32, float16 or bfloat16) against every position filled so far,
    /// returning `(batch, q_heads, L, value_dim)` float32. The queries are
    /// the last `L` positions: `is_causal` lets query `i` see positions
    /// `0..=len − L + i` (a decoder's alignment, PyTorch's lower-right
    /// causal mask), and `attn_mask` is broadcast to `(batch, q_heads, L,
    /// len)`. Bit-identical to `scaled_dot_product_attention` over the same
    /// stored keys and values.
    #[pyo3(signature = (query, attn_mask=None, is_causal=false, scale=None, enable_gqa=false))]
    fn attend<'py>(
        &self,
        py: Python<'py>,
        query: &Bound<'py, PyAny>,
        attn_mask: Option<&Bound<'py, PyAny>>,
        is_causal: bool,
        scale: Option<f64>,
        enable_gqa: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let q = StoredArray::query("query", query)?;
        let (b, e) = (self.shape.batch, self.shape.qk_dim);
        let [q_heads, q_len] = match *q.shape() {
            [batch, q_heads, q_len, width] if (batch, width) == (b, e) => [q_heads, q_len],
            _ => return Err(value_error("query", format!("shape ({b}, q_heads, L, {e})"), shape_text(q.shape()))),
        };
        check_gqa(q_heads, self.shape.kv_heads, enable_gqa)?;
        let mask = Mask::parse(attn_mask, is_causal)?;
        let v_dim = self.shape.v_dim;
        let cache = self.view()?;
        let shape = cache.sdpa_shape(q_heads, q_len);
        let mask = mask.as_ref().map(|m| m.broadcast(&shape)).transpose()?;
        let query = CacheQuery { query: q.stored(), q_heads, q_len, mask: sdpa_mask(mask.as_ref(), is_causal) };
        let mut out = output([b, q_heads, q_len, v_dim])?;
        let op = ScaledDotProductAttention { scale: scale.map(|s| s as f32) };
        py.detach(|| par::sdpa_cached(&op, cache, query, &mut out)).map_err(to_py)?;
        new_array(py, "output", &with_width(q.shape(), v_dim), out)
    }
}
