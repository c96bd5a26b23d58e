//! The standard workloads of `attn bench`, each with the work it does per
//! reported unit: the floating-point operations it must do and the bytes
//! it must read.
//!
//! Inputs are f32, uniform of unit variance, weights scaled 1/√fan_in,
//! additive `valid_lens` drawn from [K/2, K]. Every workload runs through
//! the `par` layer (seq2seq through the model), in the caller's rayon pool.
//!
//! Counting rules, the same for ours and the peers (which do the same math):
//! - a multiply-add is 2 FLOP, an add, multiply, `tanh` or `exp` 1;
//! - work is counted dense, as the reference computes it: masked keys count;
//! - the causal SDPA counts the visible half of the `L × S` products;
//! - bytes are what must be read at least once per unit: inputs and
//!   parameters, never the outputs or scratch.
//!
//! Which roof applies: `sdpa-decode` reads 268 MB, far past every cache, at
//! 0.5 FLOP per byte, so it is held to the read bandwidth, as are its
//! reduced-precision forms (`-bf16`, `-f16`: K and V in 134 MB; `-q8`:
//! 75 MB with the scales), whose query stays f32. `sdpa-512-bf16` has Q,
//! K and V in bf16, as PyTorch's bf16 SDPA needs. Every other
//! workload's data fit in the caches (add-decode's key cache is 6.5 MB) and
//! it is held to the FMA peak.

use crate::decode::{Rng, encode, load_model};
use simd_attention::io::StoredTensor;
use simd_attention::io::seq2seq::Source;
use simd_attention::models::{DecodeOptions, Seq2Seq};
use simd_attention::ops::{
    AdditiveAttention, AttentionInputs, AttentionShape, KeyCache, ScaledDotProductAttention, SdpaInputs, SdpaMask,
    SdpaShape, ValidLens,
};
use simd_attention::par;
use simd_attention::storage::Storage::{self, Bf16, F16, F32, Q8};

/// Every workload, in the order they run.
pub const WORKLOADS: [&str; 12] = [
    "add-decode",
    "add-batch",
    "add-long",
    "sdpa-512",
    "sdpa-512-bf16",
    "sdpa-causal-2048",
    "sdpa-decode",
    "sdpa-decode-bf16",
    "sdpa-decode-f16",
    "sdpa-decode-q8",
    "seq2seq-token-b1",
    "seq2seq-token-b64",
];

/// Which roof a workload is held to.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// Its data stay in cache: GFLOP/s against the FMA peak.
    Compute,
    /// It streams from memory: GB/s against the read bandwidth.
    Memory,
}

/// One prepared workload: `run` does one timed call.
pub struct Prepared {
    pub run: Box<dyn FnMut() -> Result<(), String> + Send>,
    /// Units per call (decode steps, decoded tokens, or 1); times are
    /// reported per unit.
    pub units: f64,
    /// Useful floating-point operations per unit.
    pub flop: f64,
    /// Bytes that must be read per unit.
    pub bytes: f64,
    pub bound: Bound,
}

pub fn prepare(name: &str) -> Result<Prepared, String> {
    match name {
        "add-decode" => additive(64, 1, 50, 256, 50),
        "add-batch" => additive(32, 64, 64, 256, 0),
        "add-long" => additive(4, 256, 512, 128, 0),
        "sdpa-512" => sdpa(32, 512, 512, 64, false, F32, F32),
        "sdpa-512-bf16" => sdpa(32, 512, 512, 64, false, Bf16, Bf16),
        "sdpa-causal-2048" => sdpa(8, 2048, 2048, 64, true, F32, F32),
        "sdpa-decode" => sdpa(64, 1, 4096, 128, false, F32, F32),
        "sdpa-decode-bf16" => sdpa(64, 1, 4096, 128, false, F32, Bf16),
        "sdpa-decode-f16" => sdpa(64, 1, 4096, 128, false, F32, F16),
        "sdpa-decode-q8" => sdpa(64, 1, 4096, 128, false, F32, Q8),
        "seq2seq-token-b1" => seq2seq(1),
        "seq2seq-token-b64" => seq2seq(64),
        other => Err(format!("--workload: unknown workload `{other}` (known: {})", WORKLOADS.join(", "))),
    }
}

/// xorshift32 uniform values with variance `var`.
fn uniform(len: usize, seed: u32, var: f32) -> Vec<f32> {
    let scale = (3.0 * var).sqrt();
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            scale * (2.0 * ((state >> 8) as f32 / (1u32 << 24) as f32) - 1.0)
        })
        .collect()
}

/// FLOP of d2l's additive attention, `queries` rows of `keys` keys per
/// batch row, `h` wide everywhere: `W_q q` (and `W_k k` when
/// `project_keys`), then per (query, key, feature) an add, a `tanh` and
/// the multiply-add by `w_v`; per (query, key) the softmax's subtract,
/// `exp` and divide; then `weights · V`.
fn additive_flop(batch: usize, queries: usize, keys: usize, h: usize, project_keys: bool) -> f64 {
    let (b, q, k, h) = (batch as f64, queries as f64, keys as f64, h as f64);
    let projections = 2.0 * b * q * h * h + if project_keys { 2.0 * b * k * h * h } else { 0.0 };
    projections + 4.0 * b * q * k * h + 3.0 * b * q * k + 2.0 * b * q * k * h
}

/// Additive attention, batched (`steps = 0`: queries, keys, values and the
/// three weights are read) or as a decoder (`steps` single-query steps over
/// one key cache, built once per call; a step reads its query, the cache's
/// transformed keys and values, `W_q` and `w_v`, and its share of building
/// the cache is counted in its FLOP).
fn additive(batch: usize, queries: usize, keys: usize, h: usize, steps: usize) -> Result<Prepared, String> {
    let shape = AttentionShape { batch, queries, keys, query_dim: h, key_dim: h, value_dim: h };
    let w_q = uniform(h * h, 1, 1.0 / h as f32);
    let w_k = uniform(h * h, 2, 1.0 / h as f32);
    let w_v = uniform(h, 3, 1.0 / h as f32);
    let q = uniform(batch * queries * h, 4, 1.0);
    let k = uniform(batch * keys * h, 5, 1.0);
    let v = uniform(batch * keys * h, 6, 1.0);
    let lens: Vec<usize> = (0..batch).map(|b| keys / 2 + (b * 7919) % (keys - keys / 2 + 1)).collect();
    let mut out = vec![0.0; batch * queries * h];
    let mut weights = vec![0.0; batch * queries * keys];
    let mut cache_buf = vec![0.0; KeyCache::buffer_len(batch, keys, h, h).map_err(|e| e.to_string())?];
    let run = move || -> Result<(), String> {
        let attn = AdditiveAttention::new(&w_q, &w_k, &w_v, h, h, h).map_err(|e| e.to_string())?;
        if steps == 0 {
            return par::additive(
                &attn,
                &shape,
                AttentionInputs { queries: &q, keys: &k, values: &v, valid_lens: ValidLens::PerBatch(&lens) },
                &mut out,
                Some(&mut weights),
            )
            .map_err(|e| e.to_string());
        }
        let cache = par::key_cache(&attn, &shape, &k, &v, &mut cache_buf).map_err(|e| e.to_string())?;
        for _ in 0..steps {
            par::additive_cached(&attn, &cache, queries, &q, ValidLens::PerBatch(&lens), &mut out, Some(&mut weights))
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    };
    let f = |n: usize| n as f64;
    let (flop, bytes) = if steps == 0 {
        let inputs = f(batch * (queries + 2 * keys) * h + 2 * h * h + h);
        (additive_flop(batch, queries, keys, h, true), 4.0 * inputs)
    } else {
        let cache_build = 2.0 * f(batch * keys * h * h) / f(steps);
        let step_reads = f(batch * queries * h + 2 * batch * keys * h + h * h + h);
        (additive_flop(batch, queries, keys, h, false) + cache_build, 4.0 * step_reads)
    };
    Ok(Prepared { run: Box::new(run), units: f(steps.max(1)), flop, bytes, bound: Bound::Compute })
}

/// PyTorch SDPA, `heads` heads of `l` queries and `s` keys, `e` wide
/// (E = Ev), the query stored as `query` and K and V as `kv`:
/// `4·heads·l·s·e` FLOP (`Q·Kᵀ` and `P·V`; half that when causal), and Q,
/// K and V read once at their stored size (q8 with its scales).
fn sdpa(
    heads: usize,
    l: usize,
    s: usize,
    e: usize,
    causal: bool,
    query: Storage,
    kv: Storage,
) -> Result<Prepared, String> {
    let shape = SdpaShape { batch: 1, q_heads: heads, kv_heads: heads, q_len: l, kv_len: s, qk_dim: e, v_dim: e };
    let stored = |n: usize, seed: u32, storage: Storage| {
        StoredTensor::from_f32(&uniform(n, seed, 1.0), e, storage).map_err(|err| err.to_string())
    };
    let (q, k, v) = (stored(heads * l * e, 7, query)?, stored(heads * s * e, 8, kv)?, stored(heads * s * e, 9, kv)?);
    let mut out = vec![0.0; heads * l * e];
    let op = ScaledDotProductAttention::default();
    let mask = if causal { SdpaMask::Causal } else { SdpaMask::None };
    let run = move || {
        let inputs = SdpaInputs { query: q.as_stored(), key: k.as_stored(), value: v.as_stored(), mask };
        par::sdpa(&op, &shape, inputs, &mut out, None).map_err(|e| e.to_string())
    };
    let flop = 4.0 * (heads * l * s * e) as f64 * if causal { 0.5 } else { 1.0 };
    let size = |storage: Storage, rows: usize| storage.bytes(rows, e).unwrap_or(usize::MAX) as f64;
    let bytes = size(query, heads * l) + 2.0 * size(kv, heads * s);
    let bound = if l == 1 { Bound::Memory } else { Bound::Compute };
    Ok(Prepared { run: Box::new(run), units: 1.0, flop, bytes, bound })
}

/// Decoding steps of the seq2seq workloads (the model's `num_steps`).
const SEQ2SEQ_STEPS: usize = 10;

/// Greedy decoding with the demo model: `batch` random digit strings, the
/// encoder over the padded sources, then [`SEQ2SEQ_STEPS`] decoder steps
/// with no early stop; times are per decoded token (call ÷ (batch ×
/// steps)). FLOP ([`seq2seq_flop`]) are the model's matrix products and
/// attention scores; bytes are its parameters, read once per call.
fn seq2seq(batch: usize) -> Result<Prepared, String> {
    let model = load_model(None)?;
    let mut rng = Rng(0x5EED | 1);
    let sources: Vec<Source> = (0..batch).map(|_| encode(&model, &rng.digits())).collect::<Result<_, _>>()?;
    let src: Vec<usize> = sources.iter().flat_map(|s| s.ids.iter().copied()).collect();
    let lens: Vec<usize> = sources.iter().map(|s| s.valid_len).collect();
    let src_len = model.num_steps;
    let options = DecodeOptions { num_steps: SEQ2SEQ_STEPS, bos: model.bos, stop_at: None };
    let (ws_len, flop, params) = model
        .with_view(|m| Ok((m.workspace_len(batch, src_len)?, seq2seq_flop(m, batch, src_len), parameter_count(m))))
        .map_err(|e| e.to_string())?;
    let mut workspace = vec![0.0; ws_len];
    let mut tokens = vec![0; batch * SEQ2SEQ_STEPS];
    let run = move || -> Result<(), String> {
        model
            .with_view(|m| {
                Ok(m.greedy_decode(batch, src_len, &src, &lens, options, &mut tokens, None, &mut workspace)?)
            })
            .map_err(|e| e.to_string())
    };
    let units = (batch * SEQ2SEQ_STEPS) as f64;
    Ok(Prepared {
        run: Box::new(run),
        units,
        flop: flop / units,
        bytes: 4.0 * params as f64 / units,
        bound: Bound::Compute,
    })
}

/// FLOP of one greedy decode: the encoder's GRU products over every source
/// position and layer, the key cache's `W_k k`, then per step the query
/// projection, the additive scores ([`additive_flop`]), the decoder's GRU
/// products and the dense layer. A GRU layer step is `2·3H·(in + H)`; its
/// gate arithmetic (a few operations per unit) is left out.
fn seq2seq_flop(m: &Seq2Seq<'_>, batch: usize, src_len: usize) -> f64 {
    let gru = |layers: &[simd_attention::models::GruLayer<'_>]| -> f64 {
        layers.iter().map(|l| 2.0 * (3 * l.hidden() * (l.input() + l.hidden())) as f64).sum()
    };
    let h = m.attention.hidden();
    let vocab = m.dense_bias.len();
    let (b, t, steps) = (batch as f64, src_len as f64, SEQ2SEQ_STEPS as f64);
    let encoder = b * t * gru(m.encoder);
    let cache = 2.0 * b * t * (h * h) as f64;
    let step = additive_flop(batch, 1, src_len, h, false) + b * (gru(m.decoder) + 2.0 * (vocab * h) as f64);
    encoder + cache + steps * step
}

/// Parameters of the model, in values.
fn parameter_count(m: &Seq2Seq<'_>) -> usize {
    let gru = |layers: &[simd_attention::models::GruLayer<'_>]| -> usize {
        layers.iter().map(|l| 3 * l.hidden() * (l.input() + l.hidden() + 2)).sum()
    };
    let h = m.attention.hidden();
    m.encoder_embedding.len()
        + m.decoder_embedding.len()
        + gru(m.encoder)
        + gru(m.decoder)
        + h * (m.attention.query_dim() + h + 1)
        + m.dense_weight.len()
        + m.dense_bias.len()
}
