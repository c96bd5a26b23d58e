//! d2l's Bahdanau seq2seq over C buffers: a trained model's parameters as
//! pointers (`state_dict` tensors, in PyTorch's layout or transposed), and
//! greedy decoding into the caller's token and weight buffers with the
//! caller's workspace, as `models::Seq2Seq::greedy_decode` does in Rust.
//!
//! Nothing is allocated: the GRU layers are read into fixed arrays of
//! [`SIMD_ATTENTION_SEQ2SEQ_MAX_LAYERS`] on the stack, which bounds
//! `num_layers` (d2l's models have one to four). Token ids are `size_t`,
//! the width the core takes them in, so no buffer is converted.
//!
//! Every parameter buffer, the sources and the outputs are checked before
//! anything is written, as for the operators: a token id past the
//! vocabulary is `SIMD_ATTENTION_ERROR_VALUE`, an output that overlaps a
//! parameter, a source or another output `SIMD_ATTENTION_ERROR_ALIASING`.

use super::additive::{Params as AttentionParams, simd_attention_additive_params};
use super::buffer::{Buffer, disjoint, read_one};
use super::simd_attention_status::{self, SIMD_ATTENTION_ERROR_KIND};
use super::{run, write_len};
use crate::Error;
use crate::models::{DecodeOptions, GruLayer, Seq2Seq, Weight};
use core::ffi::c_int;
use core::ops::Range;

/// How a weight matrix is laid out: one of the `SIMD_ATTENTION_LAYOUT_*`
/// values.
pub type simd_attention_layout = u32;

/// PyTorch's layout, `(out_features, in_features)`: each output's weights
/// contiguous, as a `state_dict` stores them.
pub const SIMD_ATTENTION_LAYOUT_ROWS: simd_attention_layout = 0;
/// Transposed, `(in_features, out_features)`: each decoding step's
/// products then read the matrix in place, which suits few rows (a
/// decoder at small batch). Transpose once, when the model is stored.
pub const SIMD_ATTENTION_LAYOUT_COLUMNS: simd_attention_layout = 1;

/// The most GRU layers a model may have (the encoder's and the decoder's
/// each): the C entry points hold them in fixed arrays, without a heap.
pub const SIMD_ATTENTION_SEQ2SEQ_MAX_LAYERS: usize = 8;

/// A weight matrix, borrowed: `len` floats in the given layout.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct simd_attention_weight {
    /// The values.
    pub data: *const f32,
    /// Floats at `data`.
    pub len: usize,
    /// A `SIMD_ATTENTION_LAYOUT_*` value.
    pub layout: simd_attention_layout,
}

impl simd_attention_weight {
    /// The descriptor of a borrowed matrix, for Rust callers: the slice must
    /// outlive every call that reads it.
    pub fn over(values: &[f32], layout: simd_attention_layout) -> Self {
        simd_attention_weight { data: values.as_ptr(), len: values.len(), layout }
    }
}

/// One GRU layer (PyTorch's `weight_ih_l{n}`, `weight_hh_l{n}`,
/// `bias_ih_l{n}`, `bias_hh_l{n}`), borrowed: `weight_ih` `(3·hidden,
/// input)`, `weight_hh` `(3·hidden, hidden)` (or their transposes), the
/// biases `3·hidden` floats each.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct simd_attention_gru_layer {
    /// The input-to-hidden weights.
    pub weight_ih: simd_attention_weight,
    /// The hidden-to-hidden weights.
    pub weight_hh: simd_attention_weight,
    /// `3·hidden` floats.
    pub bias_ih: *const f32,
    /// Floats at `bias_ih`.
    pub bias_ih_len: usize,
    /// `3·hidden` floats.
    pub bias_hh: *const f32,
    /// Floats at `bias_hh`.
    pub bias_hh_len: usize,
    /// Input width: the embedding width for the encoder's first layer,
    /// `hidden + embedding` for the decoder's, `hidden` above.
    pub input: usize,
    /// Hidden width, the same for every layer.
    pub hidden: usize,
}

/// The parameters of a d2l `Seq2SeqEncoder` and `Seq2SeqAttentionDecoder`
/// pair, borrowed. The vocabulary size is the dense layer's bias length.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct simd_attention_seq2seq_params {
    /// `encoder.embedding.weight`, `(vocab, embedding)` floats.
    pub encoder_embedding: *const f32,
    /// Floats at `encoder_embedding`.
    pub encoder_embedding_len: usize,
    /// `encoder.rnn.rnn.*`: `num_layers` layers, bottom first.
    pub encoder_layers: *const simd_attention_gru_layer,
    /// `decoder.embedding.weight`, `(vocab, embedding)` floats.
    pub decoder_embedding: *const f32,
    /// Floats at `decoder_embedding`.
    pub decoder_embedding_len: usize,
    /// `decoder.rnn.*`: `num_layers` layers, bottom first.
    pub decoder_layers: *const simd_attention_gru_layer,
    /// Layers of the encoder and of the decoder, 1 to
    /// `SIMD_ATTENTION_SEQ2SEQ_MAX_LAYERS`.
    pub num_layers: usize,
    /// `decoder.attention.*`, with `hidden`, `query_dim` and `key_dim`
    /// all the GRU's hidden width.
    pub attention: simd_attention_additive_params,
    /// `decoder.dense.weight`, `(vocab, hidden)` or its transpose.
    pub dense_weight: simd_attention_weight,
    /// `decoder.dense.bias`, `vocab` floats.
    pub dense_bias: *const f32,
    /// Floats at `dense_bias`.
    pub dense_bias_len: usize,
}

/// The sources to decode: `batch` rows of `src_len` token ids (padded, as
/// d2l pads them) and each row's valid length, which masks the attention.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct simd_attention_sources {
    /// `(batch, src_len)` token ids, each below the vocabulary size.
    pub tokens: *const usize,
    /// Ids at `tokens`.
    pub tokens_len: usize,
    /// `(batch,)` valid lengths (one past `src_len` masks nothing).
    pub valid_lens: *const usize,
    /// Lengths at `valid_lens`.
    pub valid_lens_len: usize,
    /// Sources.
    pub batch: usize,
    /// Tokens per source.
    pub src_len: usize,
}

impl simd_attention_sources {
    /// The descriptor of borrowed sources, for Rust callers: `tokens`
    /// `(batch, src_len)` and `valid_lens` `(batch,)`, which must outlive
    /// every call that reads it.
    pub fn over(tokens: &[usize], valid_lens: &[usize], batch: usize, src_len: usize) -> Self {
        simd_attention_sources {
            tokens: tokens.as_ptr(),
            tokens_len: tokens.len(),
            valid_lens: valid_lens.as_ptr(),
            valid_lens_len: valid_lens.len(),
            batch,
            src_len,
        }
    }
}

/// How to decode: d2l's `predict_step` runs `num_steps` steps from `bos`
/// with no early stop (`stop_at_eos = 0`). With `stop_at_eos` non-zero
/// decoding stops once every sequence has produced `eos`, and the
/// positions after a sequence's `eos` hold `eos` and zero weights.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct simd_attention_decode_options {
    /// Decoding steps: tokens per sequence.
    pub num_steps: usize,
    /// The first input token (`<bos>`), below the vocabulary size.
    pub bos: usize,
    /// The stop token (`<eos>`), used when `stop_at_eos` is non-zero.
    pub eos: usize,
    /// 0: run every step; non-zero: stop early at `eos`.
    pub stop_at_eos: u32,
}

impl From<simd_attention_decode_options> for DecodeOptions {
    fn from(o: simd_attention_decode_options) -> Self {
        DecodeOptions { num_steps: o.num_steps, bos: o.bos, stop_at: (o.stop_at_eos != 0).then_some(o.eos) }
    }
}

/// A [`simd_attention_weight`] with its pointer and layout checked.
#[derive(Clone, Copy)]
struct CheckedWeight {
    data: Buffer<f32>,
    transposed: bool,
}

impl CheckedWeight {
    fn new(w: simd_attention_weight) -> Result<Self, simd_attention_status> {
        let transposed = match w.layout {
            SIMD_ATTENTION_LAYOUT_ROWS => false,
            SIMD_ATTENTION_LAYOUT_COLUMNS => true,
            _ => return Err(SIMD_ATTENTION_ERROR_KIND),
        };
        Ok(CheckedWeight { data: Buffer::new(w.data, w.len)?, transposed })
    }

    /// # Safety
    /// The matrix must be valid for reads and unwritten for `'a`.
    unsafe fn weight<'a>(self) -> Weight<'a> {
        // SAFETY: a checked buffer, valid as the caller promises.
        let values = unsafe { self.data.as_slice() };
        if self.transposed { Weight::Columns(values) } else { Weight::Rows(values) }
    }
}

/// A [`simd_attention_gru_layer`] with its pointers checked.
#[derive(Clone, Copy)]
struct CheckedLayer {
    weight_ih: CheckedWeight,
    weight_hh: CheckedWeight,
    bias_ih: Buffer<f32>,
    bias_hh: Buffer<f32>,
    input: usize,
    hidden: usize,
}

impl CheckedLayer {
    fn new(l: simd_attention_gru_layer) -> Result<Self, simd_attention_status> {
        Ok(CheckedLayer {
            weight_ih: CheckedWeight::new(l.weight_ih)?,
            weight_hh: CheckedWeight::new(l.weight_hh)?,
            bias_ih: Buffer::new(l.bias_ih, l.bias_ih_len)?,
            bias_hh: Buffer::new(l.bias_hh, l.bias_hh_len)?,
            input: l.input,
            hidden: l.hidden,
        })
    }

    fn bytes(&self) -> [Range<usize>; 4] {
        [self.weight_ih.data.bytes(), self.weight_hh.data.bytes(), self.bias_ih.bytes(), self.bias_hh.bytes()]
    }

    /// The layer, its shapes checked by `GruLayer::new`.
    ///
    /// # Safety
    /// Its four buffers must be valid for reads and unwritten for `'a`.
    unsafe fn layer<'a>(self) -> Result<GruLayer<'a>, Error> {
        // SAFETY: checked buffers, valid as the caller promises.
        let (w_ih, w_hh, b_ih, b_hh) = unsafe {
            (self.weight_ih.weight(), self.weight_hh.weight(), self.bias_ih.as_slice(), self.bias_hh.as_slice())
        };
        GruLayer::new(w_ih, w_hh, b_ih, b_hh, self.input, self.hidden)
    }
}

/// The encoder's or the decoder's layers, checked, in a fixed array.
type Layers = [Option<CheckedLayer>; SIMD_ATTENTION_SEQ2SEQ_MAX_LAYERS];

/// Every buffer a model reads: two embeddings, four per layer on each
/// side, the attention's three matrices and the dense layer's two.
const MODEL_BUFFERS: usize = 2 + 2 * 4 * SIMD_ATTENTION_SEQ2SEQ_MAX_LAYERS + 3 + 2;

/// [`simd_attention_seq2seq_params`] with every pointer checked.
struct Model {
    encoder_embedding: Buffer<f32>,
    decoder_embedding: Buffer<f32>,
    encoder: Layers,
    decoder: Layers,
    num_layers: usize,
    attention: AttentionParams,
    dense_weight: CheckedWeight,
    dense_bias: Buffer<f32>,
}

impl Model {
    /// # Safety
    /// A non-null, aligned `params` must be valid for reading one
    /// descriptor, and its layer pointers for reading `num_layers`
    /// descriptors each.
    unsafe fn from_ptr(params: *const simd_attention_seq2seq_params) -> Result<Self, simd_attention_status> {
        // SAFETY: the caller promises a readable descriptor, plain data.
        let p = unsafe { read_one(params)? };
        if p.num_layers > SIMD_ATTENTION_SEQ2SEQ_MAX_LAYERS {
            return Err(Error::Value { arg: "num_layers", index: 0 }.into());
        }
        // SAFETY: as the caller promises for the two layer arrays.
        let (encoder, decoder) =
            unsafe { (layers(p.encoder_layers, p.num_layers)?, layers(p.decoder_layers, p.num_layers)?) };
        Ok(Model {
            encoder_embedding: Buffer::new(p.encoder_embedding, p.encoder_embedding_len)?,
            decoder_embedding: Buffer::new(p.decoder_embedding, p.decoder_embedding_len)?,
            encoder,
            decoder,
            num_layers: p.num_layers,
            attention: AttentionParams::new(p.attention)?,
            dense_weight: CheckedWeight::new(p.dense_weight)?,
            dense_bias: Buffer::new(p.dense_bias, p.dense_bias_len)?,
        })
    }

    /// The bytes of every buffer the model reads (empty ranges past its
    /// layers), for [`disjoint`].
    fn bytes(&self) -> [Range<usize>; MODEL_BUFFERS] {
        let mut bytes: [Range<usize>; MODEL_BUFFERS] = core::array::from_fn(|_| 0..0);
        let layers = self.encoder.iter().chain(&self.decoder).flatten().flat_map(CheckedLayer::bytes);
        let rest = [self.encoder_embedding.bytes(), self.decoder_embedding.bytes(), self.dense_weight.data.bytes()];
        let all = layers.chain(rest).chain(self.attention.bytes()).chain([self.dense_bias.bytes()]);
        for (slot, range) in bytes.iter_mut().zip(all) {
            *slot = range;
        }
        bytes
    }

    /// Runs `body` on the model, its shapes checked by `GruLayer::new` and
    /// by the `Seq2Seq` methods `body` calls.
    ///
    /// # Safety
    /// Every buffer of the model must be valid for reads and unwritten
    /// until `body` returns.
    unsafe fn with<R>(&self, body: impl FnOnce(&Seq2Seq<'_>) -> Result<R, Error>) -> Result<R, simd_attention_status> {
        // A layer of zero width: a placeholder for the unused slots.
        let empty = GruLayer::new(Weight::Rows(&[]), Weight::Rows(&[]), &[], &[], 0, 0)?;
        let (mut encoder, mut decoder) =
            ([empty; SIMD_ATTENTION_SEQ2SEQ_MAX_LAYERS], [empty; SIMD_ATTENTION_SEQ2SEQ_MAX_LAYERS]);
        for (checked, built) in self.encoder.iter().zip(&mut encoder).chain(self.decoder.iter().zip(&mut decoder)) {
            if let Some(checked) = checked {
                // SAFETY: as the caller promises.
                *built = unsafe { checked.layer()? };
            }
        }
        let layers = self.num_layers;
        // SAFETY: checked buffers, valid as the caller promises.
        let (encoder_embedding, decoder_embedding, dense_weight, dense_bias, attention) = unsafe {
            (
                self.encoder_embedding.as_slice(),
                self.decoder_embedding.as_slice(),
                self.dense_weight.weight(),
                self.dense_bias.as_slice(),
                self.attention.attention()?,
            )
        };
        let model = Seq2Seq {
            encoder_embedding,
            encoder: encoder.get(..layers).unwrap_or(&[]),
            decoder_embedding,
            decoder: decoder.get(..layers).unwrap_or(&[]),
            attention,
            dense_weight,
            dense_bias,
        };
        Ok(body(&model)?)
    }
}

/// `count` layer descriptors at `ptr`, checked, in the first slots.
///
/// # Safety
/// A non-null, aligned `ptr` must be valid for reading `count` descriptors.
unsafe fn layers(ptr: *const simd_attention_gru_layer, count: usize) -> Result<Layers, simd_attention_status> {
    let descriptors = Buffer::new(ptr, count)?;
    let mut layers: Layers = [None; SIMD_ATTENTION_SEQ2SEQ_MAX_LAYERS];
    // SAFETY: checked, readable as the caller promises; plain data.
    for (slot, &descriptor) in layers.iter_mut().zip(unsafe { descriptors.as_slice() }) {
        *slot = Some(CheckedLayer::new(descriptor)?);
    }
    Ok(layers)
}

/// The workspace floats `simd_attention_seq2seq_greedy_decode` needs for
/// `batch` sources of `src_len` tokens, written to `*len`.
///
/// # Safety
/// `params` as for `simd_attention_seq2seq_greedy_decode`; `len` must be
/// `NULL` (refused) or valid for writing one `size_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn simd_attention_seq2seq_workspace_len(
    params: *const simd_attention_seq2seq_params,
    batch: usize,
    src_len: usize,
    len: *mut usize,
) -> c_int {
    run(|| {
        // SAFETY: `params` as the caller promises.
        let model = unsafe { Model::from_ptr(params)? };
        // SAFETY: the model's buffers as the caller promises.
        let needed = unsafe { model.with(|m| m.workspace_len(batch, src_len))? };
        // SAFETY: `len` as the caller promises.
        unsafe { write_len(len, Ok(needed)) }
    })
}

/// Greedy decoding of `sources` with the model: writes `tokens` `(batch,
/// num_steps)` and, if requested, the attention weights `(batch,
/// num_steps, src_len)` (`weights = NULL` with length 0: not requested).
/// As d2l's `predict_step`: the encoder runs over every source position,
/// padding included; each step attends with the previous top-layer state
/// over the encoder's outputs, masked by the valid lengths, and feeds the
/// argmax token (the first maximum) back.
///
/// # Safety
/// `params` must be `NULL` (refused) or point to a descriptor whose layer
/// arrays hold `num_layers` descriptors; each buffer must be `NULL` with
/// length 0 (empty) or valid for its length: the parameters and sources
/// for reads, the outputs for reads and writes. No buffer may be written
/// by another thread during the call.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn simd_attention_seq2seq_greedy_decode(
    params: *const simd_attention_seq2seq_params,
    sources: simd_attention_sources,
    options: simd_attention_decode_options,
    tokens: *mut usize,
    tokens_len: usize,
    weights: *mut f32,
    weights_len: usize,
    workspace: *mut f32,
    workspace_len: usize,
) -> c_int {
    run(|| {
        // SAFETY: `params` as the caller promises.
        let model = unsafe { Model::from_ptr(params)? };
        let src = Buffer::new(sources.tokens, sources.tokens_len)?;
        let lens = Buffer::new(sources.valid_lens, sources.valid_lens_len)?;
        let tokens = Buffer::new_mut(tokens, tokens_len)?;
        let weights = Buffer::optional_mut(weights, weights_len)?;
        let workspace = Buffer::new_mut(workspace, workspace_len)?;
        let outputs = [tokens.bytes(), Buffer::bytes_or_none(weights), workspace.bytes()];
        disjoint(&outputs, &model.bytes())?;
        disjoint(&outputs, &[src.bytes(), lens.bytes()])?;
        // SAFETY: checked buffers, valid as the caller promises; the outputs
        // overlap each other, the sources and the parameters nowhere
        // (`disjoint`).
        unsafe {
            let (src, lens) = (src.as_slice(), lens.as_slice());
            let (tokens, weights, workspace) =
                (tokens.as_mut_slice(), weights.map(|w| w.as_mut_slice()), workspace.as_mut_slice());
            model.with(|m| {
                m.greedy_decode(sources.batch, sources.src_len, src, lens, options.into(), tokens, weights, workspace)
            })
        }
    })
}
