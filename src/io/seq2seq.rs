//! Loading d2l's Bahdanau seq2seq from its state dict and metadata.
//!
//! Tensor names are d2l's (`encoder.embedding.weight`,
//! `encoder.rnn.rnn.weight_ih_l0`, `decoder.attention.W_q.weight`,
//! `decoder.rnn.weight_ih_l0`, `decoder.dense.weight`, …). Sizes (vocabulary,
//! embedding, hidden, layers) come from the tensors, so any model of this
//! architecture loads; the vocabulary and special ids come from
//! `__metadata__` (`vocab` as a JSON list, `bos`, `eos`, `pad`, `num_steps`).

use super::params::AdditiveParams;
use super::{LoadError, Tensor, TensorFile};
use crate::models::{DecodeOptions, GruLayer, Seq2Seq, Weight, transpose};
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

/// One GRU layer's four tensors, with both weights also transposed once
/// so each decoding step reads them in place ([`Weight::Columns`]).
#[derive(Clone, Debug)]
struct GruParams {
    weight_ih: Tensor<f32>,
    weight_hh: Tensor<f32>,
    bias_ih: Tensor<f32>,
    bias_hh: Tensor<f32>,
    weight_ih_t: Vec<f32>,
    weight_hh_t: Vec<f32>,
}

/// `t` `(rows, cols)` transposed, or empty when it is not 2-D (the shape
/// check that follows names the tensor).
fn transposed(t: &Tensor<f32>) -> Vec<f32> {
    let [rows, cols] = t.shape[..] else { return Vec::new() };
    let mut out = vec![0.0; t.data.len()];
    match transpose(&t.data, rows, cols, &mut out) {
        Ok(()) => out,
        Err(_) => Vec::new(),
    }
}

impl GruParams {
    fn load(file: &TensorFile, prefix: &str, l: usize) -> Result<GruParams, LoadError> {
        let t = |name: &str| file.f32s(&format!("{prefix}{name}_l{l}"));
        let (weight_ih, weight_hh) = (t("weight_ih")?, t("weight_hh")?);
        Ok(GruParams {
            weight_ih_t: transposed(&weight_ih),
            weight_hh_t: transposed(&weight_hh),
            weight_ih,
            weight_hh,
            bias_ih: t("bias_ih")?,
            bias_hh: t("bias_hh")?,
        })
    }

    fn layer(&self, prefix: &str, l: usize) -> Result<GruLayer<'_>, LoadError> {
        let hidden = self.weight_hh.shape.last().copied().unwrap_or(0);
        let input = self.weight_ih.shape.last().copied().unwrap_or(0);
        self.weight_ih.expect_shape(&format!("{prefix}weight_ih_l{l}"), &[Some(3 * hidden), None])?;
        self.weight_hh.expect_shape(&format!("{prefix}weight_hh_l{l}"), &[Some(3 * hidden), Some(hidden)])?;
        self.bias_ih.expect_shape(&format!("{prefix}bias_ih_l{l}"), &[Some(3 * hidden)])?;
        self.bias_hh.expect_shape(&format!("{prefix}bias_hh_l{l}"), &[Some(3 * hidden)])?;
        Ok(GruLayer::new(
            Weight::Columns(&self.weight_ih_t),
            Weight::Columns(&self.weight_hh_t),
            &self.bias_ih.data,
            &self.bias_hh.data,
            input,
            hidden,
        )?)
    }
}

const ENCODER_RNN: &str = "encoder.rnn.rnn.";
const DECODER_RNN: &str = "decoder.rnn.";

/// One source as [`Seq2SeqModel::source`] makes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    /// `num_steps` ids: the tokens', `<eos>`, then `<pad>`.
    pub ids: Vec<usize>,
    /// Ids before the padding (the tokens and `<eos>`).
    pub valid_len: usize,
}

/// A trained d2l Bahdanau seq2seq, owned.
#[derive(Clone, Debug)]
pub struct Seq2SeqModel {
    encoder_embedding: Tensor<f32>,
    encoder: Vec<GruParams>,
    decoder_embedding: Tensor<f32>,
    decoder: Vec<GruParams>,
    attention: AdditiveParams,
    dense_weight: Tensor<f32>,
    /// `dense_weight` transposed, `(H, V)`.
    dense_weight_t: Vec<f32>,
    dense_bias: Tensor<f32>,
    /// Token strings by id.
    pub vocab: Vec<String>,
    /// `<bos>`, the first decoder input.
    pub bos: usize,
    /// `<eos>`.
    pub eos: usize,
    /// `<pad>`, which fills sources up to `num_steps`.
    pub pad: usize,
    /// The source length the model was trained with.
    pub num_steps: usize,
}

impl Seq2SeqModel {
    /// Loads the model in `file`.
    pub fn load(file: &TensorFile) -> Result<Seq2SeqModel, LoadError> {
        let layers = (0..).take_while(|l| file.contains(&format!("{ENCODER_RNN}weight_ih_l{l}"))).count();
        if layers == 0 {
            return Err(LoadError::Missing { tensor: format!("{ENCODER_RNN}weight_ih_l0") });
        }
        let encoder = (0..layers).map(|l| GruParams::load(file, ENCODER_RNN, l)).collect::<Result<Vec<_>, _>>()?;
        let decoder = (0..layers).map(|l| GruParams::load(file, DECODER_RNN, l)).collect::<Result<Vec<_>, _>>()?;
        let vocab_json = file.require_metadata("vocab")?;
        let vocab: Vec<String> = serde_json::from_str(&vocab_json).map_err(|e| LoadError::Metadata {
            key: "vocab".to_string(),
            problem: format!("not a JSON list of strings: {e}"),
        })?;
        let special = |key: &str| -> Result<usize, LoadError> {
            let v = file.require_metadata(key)?;
            let id: usize = v
                .trim()
                .parse()
                .map_err(|_| LoadError::Metadata { key: key.to_string(), problem: format!("not a token id: `{v}`") })?;
            if id >= vocab.len() {
                return Err(LoadError::Metadata {
                    key: key.to_string(),
                    problem: format!("id {id} outside a vocabulary of {}", vocab.len()),
                });
            }
            Ok(id)
        };
        let mut model = Seq2SeqModel {
            encoder_embedding: file.f32s("encoder.embedding.weight")?,
            encoder,
            decoder_embedding: file.f32s("decoder.embedding.weight")?,
            decoder,
            attention: AdditiveParams::load(file, "decoder.attention.")?,
            dense_weight_t: Vec::new(),
            dense_weight: file.f32s("decoder.dense.weight")?,
            dense_bias: file.f32s("decoder.dense.bias")?,
            bos: special("bos")?,
            eos: special("eos")?,
            pad: special("pad")?,
            num_steps: special_count(file, "num_steps")?,
            vocab,
        };
        let v = model.vocab.len();
        model.encoder_embedding.expect_shape("encoder.embedding.weight", &[Some(v), None])?;
        model.decoder_embedding.expect_shape("decoder.embedding.weight", &[Some(v), None])?;
        model.dense_bias.expect_shape("decoder.dense.bias", &[Some(v)])?;
        model.dense_weight.expect_shape("decoder.dense.weight", &[Some(v), None])?;
        model.dense_weight_t = transposed(&model.dense_weight);
        model.with_view(|_| Ok(()))?;
        Ok(model)
    }

    /// The id of a token string.
    pub fn token_id(&self, token: &str) -> Option<usize> {
        self.vocab.iter().position(|t| t == token)
    }

    /// `tokens` as the model reads a source (d2l's preprocessing): their
    /// ids, then `<eos>`, padded with `<pad>` to [`num_steps`](Self::num_steps).
    /// Refused, naming `source`, for a token outside the vocabulary or more
    /// than `num_steps − 1` tokens, where d2l reads the first as `<unk>` and
    /// cuts the second short: either would decode something other than
    /// what the caller wrote, without a word.
    pub fn source<S: AsRef<str>>(&self, tokens: &[S]) -> Result<Source, LoadError> {
        let mut ids = tokens
            .iter()
            .map(|t| {
                let t = t.as_ref();
                self.token_id(t).ok_or_else(|| {
                    LoadError::Source(format!("unknown token `{t}` (the vocabulary is: {})", self.vocab.join(" ")))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        ids.push(self.eos);
        let valid_len = ids.len();
        if valid_len > self.num_steps {
            let most = self.num_steps.saturating_sub(1);
            return Err(LoadError::Source(format!("expected at most {most} tokens, got {}", tokens.len())));
        }
        ids.resize(self.num_steps, self.pad);
        Ok(Source { ids, valid_len })
    }

    /// Decoded ids as token strings, up to (not including) the first
    /// `<eos>` or id outside the vocabulary.
    pub fn words(&self, ids: &[usize]) -> Vec<&str> {
        ids.iter().take_while(|&&t| t != self.eos).map_while(|&t| self.vocab.get(t).map(String::as_str)).collect()
    }

    /// Runs `f` on the borrowed model (checks every shape on the way), for
    /// callers that decode into their own buffers with
    /// [`Seq2Seq::greedy_decode`].
    pub fn with_view<R>(&self, f: impl FnOnce(&Seq2Seq<'_>) -> Result<R, LoadError>) -> Result<R, LoadError> {
        fn layers<'a>(params: &'a [GruParams], prefix: &str) -> Result<Vec<GruLayer<'a>>, LoadError> {
            params.iter().enumerate().map(|(l, p)| p.layer(prefix, l)).collect()
        }
        let (encoder, decoder) = (layers(&self.encoder, ENCODER_RNN)?, layers(&self.decoder, DECODER_RNN)?);
        let model = Seq2Seq {
            encoder_embedding: &self.encoder_embedding.data,
            encoder: &encoder,
            decoder_embedding: &self.decoder_embedding.data,
            decoder: &decoder,
            attention: self.attention.attention()?,
            dense_weight: Weight::Columns(&self.dense_weight_t),
            dense_bias: &self.dense_bias.data,
        };
        model.workspace_len(1, 1)?;
        f(&model)
    }

    /// Greedy decoding of `src` `(batch, src_len)` (see
    /// [`Seq2Seq::greedy_decode`]), allocating the scratch. Returns the
    /// tokens `(batch, num_steps)` and weights `(batch, num_steps, src_len)`.
    pub fn decode(
        &self,
        batch: usize,
        src_len: usize,
        src: &[usize],
        src_valid_lens: &[usize],
        options: DecodeOptions,
    ) -> Result<(Vec<usize>, Vec<f32>), LoadError> {
        self.with_view(|model| {
            let steps = options.num_steps;
            let mut tokens = vec![0usize; batch.saturating_mul(steps)];
            let mut weights = vec![0.0f32; batch.saturating_mul(steps).saturating_mul(src_len)];
            let mut ws = vec![0.0f32; model.workspace_len(batch, src_len)?];
            model.greedy_decode(
                batch,
                src_len,
                src,
                src_valid_lens,
                options,
                &mut tokens,
                Some(&mut weights),
                &mut ws,
            )?;
            Ok((tokens, weights))
        })
    }
}

fn special_count(file: &TensorFile, key: &str) -> Result<usize, LoadError> {
    let v = file.require_metadata(key)?;
    v.trim()
        .parse()
        .map_err(|_| LoadError::Metadata { key: key.to_string(), problem: format!("not a whole number: `{v}`") })
}
