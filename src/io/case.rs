//! Running one case in the golden format (`../shared/golden/README.md`):
//! the `__metadata__["kind"]` names the operator, the inputs and the
//! parameters come from the same file, and the results come back as named
//! tensors (`output`, `attention_weights`). This is what `attn run` does.
//! The operators run through [`crate::par`], in the current rayon pool.

use super::params::{AdditiveParams, BilinearParams, MhaParams};
use super::seq2seq::Seq2SeqModel;
use super::{LoadError, Tensor, TensorFile};
use crate::kernels::{ScoreShape, masked_softmax};
use crate::models::DecodeOptions;
use crate::ops::{
    Attention, AttentionInputs, AttentionShape, DotProductAttention, NadarayaWatson, ScaledDotProductAttention,
    SdpaInputs, SdpaMask, SdpaShape, ValidLens,
};
use crate::par;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

/// One result tensor.
#[derive(Clone, Debug, PartialEq)]
pub enum CaseTensor {
    /// Outputs and weights.
    F32(Tensor<f32>),
    /// Token ids.
    I64(Tensor<i64>),
}

/// The results of a case: `(name, tensor)` pairs, `output` (or `tokens`) first.
pub type CaseOutputs = Vec<(&'static str, CaseTensor)>;

/// Runs the case in `file`. `seq2seq_decode` cases decode with `model`.
pub fn run_case(file: &TensorFile, model: Option<&Seq2SeqModel>) -> Result<CaseOutputs, LoadError> {
    let kind = file.require_metadata("kind")?;
    match kind.as_str() {
        "seq2seq_decode" => {
            seq2seq_case(file, model.ok_or(LoadError::Missing { tensor: "--model (a seq2seq model)".to_string() })?)
        }
        "additive" | "dot" | "bilinear" | "mha" => attention_case(file, &kind),
        "masked_softmax" => softmax_case(file),
        "sdpa" => sdpa_case(file),
        "nadaraya_watson" => nadaraya_watson_case(file),
        other => {
            Err(LoadError::Metadata { key: "kind".to_string(), problem: alloc::format!("unknown kind `{other}`") })
        }
    }
}

/// `valid_lens` of shape `(B,)` or `(B, Q)`, or none.
struct Lens {
    data: Vec<usize>,
    per_query: bool,
    present: bool,
}

impl Lens {
    fn load(file: &TensorFile, batch: usize, queries: usize) -> Result<Lens, LoadError> {
        if !file.contains("valid_lens") {
            return Ok(Lens { data: Vec::new(), per_query: false, present: false });
        }
        let t = file.lengths("valid_lens")?;
        let per_query = t.shape.len() == 2;
        if per_query {
            t.expect_shape("valid_lens", &[Some(batch), Some(queries)])?;
        } else {
            t.expect_shape("valid_lens", &[Some(batch)])?;
        }
        Ok(Lens { data: t.data, per_query, present: true })
    }

    fn valid_lens(&self) -> ValidLens<'_> {
        match (self.present, self.per_query) {
            (false, _) => ValidLens::All,
            (true, false) => ValidLens::PerBatch(&self.data),
            (true, true) => ValidLens::PerQuery(&self.data),
        }
    }
}

fn tensor3(file: &TensorFile, name: &str, batch: Option<usize>, rows: Option<usize>) -> Result<Tensor<f32>, LoadError> {
    let t = file.f32s(name)?;
    t.expect_shape(name, &[batch, rows, None])?;
    Ok(t)
}

fn attention_case(file: &TensorFile, kind: &str) -> Result<CaseOutputs, LoadError> {
    let q = tensor3(file, "queries", None, None)?;
    let (batch, nq) = (q.shape[0], q.shape[1]);
    let k = tensor3(file, "keys", Some(batch), None)?;
    let nk = k.shape[1];
    let v = tensor3(file, "values", Some(batch), Some(nk))?;
    let shape = AttentionShape {
        batch,
        queries: nq,
        keys: nk,
        query_dim: q.shape[2],
        key_dim: k.shape[2],
        value_dim: v.shape[2],
    };
    let lens = Lens::load(file, batch, nq)?;
    let valid = lens.valid_lens();
    let inputs = AttentionInputs { queries: &q.data, keys: &k.data, values: &v.data, valid_lens: valid };
    let (out_dim, heads) = match kind {
        "mha" => {
            let heads = parse_metadata(file, "num_heads")?;
            let hidden = file.f32s("W_o.weight")?.shape.first().copied().unwrap_or(0);
            (hidden, heads)
        }
        _ => (shape.value_dim, 1),
    };
    let mut out = vec![0.0f32; checked(&[batch, nq, out_dim])?];
    let mut weights = vec![0.0f32; checked(&[batch, heads, nq, nk])?];
    match kind {
        "additive" => {
            let params = AdditiveParams::load(file, "")?;
            let op = params.attention()?;
            within_limit(op.workspace_len(&shape, true)?)?;
            par::additive(&op, &shape, inputs, &mut out, Some(&mut weights))?;
        }
        "dot" => par::batched(&DotProductAttention, &shape, inputs, &mut out, Some(&mut weights))?,
        "bilinear" => {
            let params = BilinearParams::load(file, "")?;
            let op = params.attention()?;
            within_limit(op.workspace_len(&shape, true)?)?;
            par::batched(&op, &shape, inputs, &mut out, Some(&mut weights))?;
        }
        _ => {
            let bias = match file.metadata("bias").as_deref() {
                None | Some("false") => false,
                Some("true") => true,
                Some(other) => {
                    return Err(metadata_error("bias", alloc::format!("expected true or false, found `{other}`")));
                }
            };
            let params = MhaParams::load(file, "", heads, bias)?;
            let op = params.attention()?;
            within_limit(op.workspace_len(&shape, true)?)?;
            par::batched(&op, &shape, inputs, &mut out, Some(&mut weights))?;
        }
    }
    let weights_shape = if kind == "mha" { vec![batch * heads, nq, nk] } else { vec![batch, nq, nk] };
    Ok(vec![
        ("output", CaseTensor::F32(Tensor { shape: vec![batch, nq, out_dim], data: out })),
        ("attention_weights", CaseTensor::F32(Tensor { shape: weights_shape, data: weights })),
    ])
}

fn softmax_case(file: &TensorFile) -> Result<CaseOutputs, LoadError> {
    let scores = tensor3(file, "scores", None, None)?;
    let shape = ScoreShape { batch: scores.shape[0], queries: scores.shape[1], keys: scores.shape[2] };
    let lens = Lens::load(file, shape.batch, shape.queries)?;
    let mut weights = scores.data;
    masked_softmax(&mut weights, shape, lens.valid_lens().as_mask())?;
    Ok(vec![("attention_weights", CaseTensor::F32(Tensor { shape: scores.shape, data: weights }))])
}

fn sdpa_case(file: &TensorFile) -> Result<CaseOutputs, LoadError> {
    // K and V stay at their stored precision (BF16, F16, or I8 with
    // scales); the query may be F32, BF16 or F16, never I8.
    let (q, query) = file.stored("query", false)?;
    expect_dims("query", &q, &[None, None, None, None])?;
    let (k, key) = file.stored("key", true)?;
    expect_dims("key", &k, &[Some(q[0]), None, None, Some(q[3])])?;
    let (v, value) = file.stored("value", true)?;
    expect_dims("value", &v, &[Some(q[0]), Some(k[1]), Some(k[2]), None])?;
    let shape =
        SdpaShape { batch: q[0], q_heads: q[1], kv_heads: k[1], q_len: q[2], kv_len: k[2], qk_dim: q[3], v_dim: v[3] };
    let causal = match file.metadata("is_causal").as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(metadata_error("is_causal", alloc::format!("expected true or false, found `{other}`")));
        }
    };
    let scale = match file.metadata("scale") {
        None => None,
        Some(s) => {
            Some(s.trim().parse::<f32>().map_err(|_| metadata_error("scale", alloc::format!("not a number: `{s}`")))?)
        }
    };
    let (keep, additive, mask_dims);
    let mask = if file.contains("attn_mask") {
        if causal {
            return Err(metadata_error("is_causal", "cannot be combined with attn_mask".to_string()));
        }
        let is_bool = matches!(file.dtype("attn_mask"), Some(safetensors::Dtype::U8 | safetensors::Dtype::BOOL));
        let dims = if is_bool { file.bools("attn_mask")?.shape } else { file.f32s("attn_mask")?.shape };
        let expect = [None, None, Some(shape.q_len), Some(shape.kv_len)];
        expect_dims("attn_mask", &dims, &expect)?;
        mask_dims = (dims[0], dims[1]);
        if is_bool {
            keep = file.bools("attn_mask")?.data;
            SdpaMask::Keep { mask: &keep, batch: mask_dims.0, heads: mask_dims.1 }
        } else {
            additive = file.f32s("attn_mask")?.data;
            SdpaMask::Additive { mask: &additive, batch: mask_dims.0, heads: mask_dims.1 }
        }
    } else if causal {
        SdpaMask::Causal
    } else {
        SdpaMask::None
    };
    let op = ScaledDotProductAttention { scale };
    let mut out = vec![0.0f32; checked(&[shape.batch, shape.q_heads, shape.q_len, shape.v_dim])?];
    let inputs = SdpaInputs { query: query.as_stored(), key: key.as_stored(), value: value.as_stored(), mask };
    par::sdpa(&op, &shape, inputs, &mut out, None)?;
    let shape = vec![shape.batch, shape.q_heads, shape.q_len, shape.v_dim];
    Ok(vec![("output", CaseTensor::F32(Tensor { shape, data: out }))])
}

/// Checks a shape read apart from its data, as [`Tensor::expect_shape`] does.
fn expect_dims(name: &str, shape: &[usize], expected: &[Option<usize>]) -> Result<(), LoadError> {
    Tensor::<()> { shape: shape.to_vec(), data: Vec::new() }.expect_shape(name, expected)
}

fn nadaraya_watson_case(file: &TensorFile) -> Result<CaseOutputs, LoadError> {
    let q = file.f32s("queries")?;
    q.expect_shape("queries", &[None])?;
    let k = file.f32s("keys")?;
    k.expect_shape("keys", &[Some(q.shape[0]), None])?;
    let v = file.f32s("values")?;
    v.expect_shape("values", &[Some(q.shape[0]), Some(k.shape[1])])?;
    let w = file.f32s("w")?;
    w.expect_shape("w", &[Some(1)])?;
    let mut out = vec![0.0f32; q.shape[0]];
    let mut weights = vec![0.0f32; k.data.len()];
    NadarayaWatson { w: w.data[0] }.forward(&q.data, &k.data, &v.data, &mut out, &mut weights)?;
    Ok(vec![
        ("output", CaseTensor::F32(Tensor { shape: q.shape, data: out })),
        ("attention_weights", CaseTensor::F32(Tensor { shape: k.shape, data: weights })),
    ])
}

fn seq2seq_case(file: &TensorFile, model: &Seq2SeqModel) -> Result<CaseOutputs, LoadError> {
    let src = file.lengths("src")?;
    src.expect_shape("src", &[None, None])?;
    let (batch, src_len) = (src.shape[0], src.shape[1]);
    let lens = file.lengths("src_valid_lens")?;
    lens.expect_shape("src_valid_lens", &[Some(batch)])?;
    let num_steps = parse_metadata(file, "num_steps")?;
    let bos = match file.metadata("bos") {
        Some(_) => parse_metadata(file, "bos")?,
        None => model.bos,
    };
    checked(&[batch, num_steps, src_len])?;
    let options = DecodeOptions { num_steps, bos, stop_at: None };
    let (tokens, weights) = model.decode(batch, src_len, &src.data, &lens.data, options)?;
    let tokens = tokens.into_iter().map(|t| t as i64).collect();
    Ok(vec![
        ("tokens", CaseTensor::I64(Tensor { shape: vec![batch, num_steps], data: tokens })),
        ("attention_weights", CaseTensor::F32(Tensor { shape: vec![batch, num_steps, src_len], data: weights })),
    ])
}

fn parse_metadata(file: &TensorFile, key: &str) -> Result<usize, LoadError> {
    let value = file.require_metadata(key)?;
    value.trim().parse().map_err(|_| metadata_error(key, alloc::format!("not a whole number: `{value}`")))
}

fn metadata_error(key: &str, problem: String) -> LoadError {
    LoadError::Metadata { key: key.to_string(), problem }
}

/// The most values one result tensor may hold (1 GiB of f32). A small file
/// can name huge dimensions through zero-width tensors (say queries and keys
/// of shape `(1, 65536, 0)`, whose weights would be 2³² values); such cases
/// are refused rather than allowed to exhaust memory.
pub const MAX_RESULT_ELEMENTS: usize = 1 << 28;

/// The product of `dims`, or an error if it overflows or passes
/// [`MAX_RESULT_ELEMENTS`].
fn checked(dims: &[usize]) -> Result<usize, LoadError> {
    let n = dims
        .iter()
        .try_fold(1usize, |a, &b| a.checked_mul(b))
        .ok_or(LoadError::Op(crate::Error::Overflow { arg: "shape" }))?;
    within_limit(n).map_err(|_| LoadError::Value {
        tensor: "result".to_string(),
        problem: alloc::format!("{n} values (shape {dims:?}) exceed the limit of {MAX_RESULT_ELEMENTS}"),
    })
}

/// Refuses scratch or results past [`MAX_RESULT_ELEMENTS`] values.
fn within_limit(n: usize) -> Result<usize, LoadError> {
    if n > MAX_RESULT_ELEMENTS {
        return Err(LoadError::Value {
            tensor: "result".to_string(),
            problem: alloc::format!("{n} values of scratch exceed the limit of {MAX_RESULT_ELEMENTS}"),
        });
    }
    Ok(n)
}
