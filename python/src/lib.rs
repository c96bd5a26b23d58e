//! `simd_attention` for Python: the engine's operators over NumPy arrays.
//!
//! Each function borrows its arrays in place (C-contiguous `float32`,
//! `float16`, `ml_dtypes.bfloat16`, or q8 `(int8, float32 scales)` pairs;
//! other layouts are copied once), checks every shape before
//! any work, releases the GIL while it computes on every core through the
//! crate's `par` layer (so results are bit-identical at any thread count),
//! and raises `ValueError` or `TypeError` with the engine's message, which
//! names the argument, the expected value and the actual one (and
//! `MemoryError` for an output or copy larger than memory; a `KvCache`
//! appended to while another thread is inside a call on it raises PyO3's
//! `RuntimeError`).
//!
//! Nothing here computes: each function only maps arrays to the crate's
//! calls, as `tests/c/` and the C API do.

mod additive;
mod arrays;
mod attention;
mod errors;
mod kv_cache;
mod mask;
mod nadaraya_watson;
mod q8;
mod sdpa;
mod seq2seq;
mod stored;

use pyo3::prelude::*;

/// The SIMD backend the engine runs on in this process, e.g. `"avx512"`.
/// `SIMD_ATTENTION_BACKEND` in the environment, read once at the first
/// call, can force a slower one.
#[pyfunction]
fn backend() -> &'static str {
    engine::backend().name()
}

/// Attention on CPUs: `scaled_dot_product_attention` with PyTorch's
/// argument names and semantics, a `KvCache` for decoder loops, d2l's
/// attention modules with d2l's (`additive_attention`,
/// `dot_product_attention`, `bilinear_attention`, `multi_head_attention`,
/// `nadaraya_watson`), and `Seq2Seq`, d2l's trained Bahdanau seq2seq
/// decoded greedily. Threads: rayon's, `RAYON_NUM_THREADS` sets how many.
#[pymodule]
fn simd_attention(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(backend, m)?)?;
    m.add_function(wrap_pyfunction!(sdpa::scaled_dot_product_attention, m)?)?;
    m.add_function(wrap_pyfunction!(additive::additive_attention, m)?)?;
    m.add_function(wrap_pyfunction!(attention::dot_product_attention, m)?)?;
    m.add_function(wrap_pyfunction!(attention::bilinear_attention, m)?)?;
    m.add_function(wrap_pyfunction!(attention::multi_head_attention, m)?)?;
    m.add_function(wrap_pyfunction!(nadaraya_watson::nadaraya_watson, m)?)?;
    m.add_function(wrap_pyfunction!(q8::quantize_q8, m)?)?;
    m.add_class::<kv_cache::KvCache>()?;
    m.add_class::<seq2seq::Seq2Seq>()?;
    Ok(())
}
