//! d2l's seq2seq decoder through the C API
//! (`simd_attention_seq2seq_greedy_decode`), every argument carved from
//! the bytes: a small model with tensors of about the right size (now and
//! then one off), layer counts past the limit, undefined layouts, widths
//! that disagree between layers, token ids past the vocabulary, `NULL`
//! parameter descriptors, and weights written over the workspace.
//!
//! It checks that no call crashes; that a refused one returns a negative
//! status and writes no token, weight or workspace value; and that an
//! accepted one gives the tokens and weight bits of the Rust
//! `Seq2Seq::greedy_decode` over the same slices.

use crate::{c_len, refused, same_bits, size, values};
use arbitrary::Unstructured;
use simd_attention::capi::*;
use simd_attention::models::{DecodeOptions, GruLayer, Seq2Seq, Weight};
use simd_attention::ops::AdditiveAttention;

/// A token no decode writes.
const UNWRITTEN: usize = usize::MAX - 7;

/// A matrix of about `rows × cols` values, labelled with a layout (now
/// and then 2, which is none).
struct Matrix {
    values: Vec<f32>,
    layout: simd_attention_layout,
}

impl Matrix {
    fn carve(u: &mut Unstructured<'_>, rows: usize, cols: usize) -> Matrix {
        let len = c_len(u, rows.saturating_mul(cols));
        let layout = if u.ratio(1u8, 32).unwrap_or(false) { 2 } else { u.int_in_range(0u32..=1).unwrap_or(0) };
        Matrix { values: values(u, len, true), layout }
    }

    fn c(&self) -> simd_attention_weight {
        simd_attention_weight::over(&self.values, self.layout)
    }

    fn rust(&self) -> Weight<'_> {
        if self.layout == SIMD_ATTENTION_LAYOUT_COLUMNS {
            Weight::Columns(&self.values)
        } else {
            Weight::Rows(&self.values)
        }
    }
}

/// One GRU layer's tensors and the widths it claims.
struct Layer {
    weight_ih: Matrix,
    weight_hh: Matrix,
    bias_ih: Vec<f32>,
    bias_hh: Vec<f32>,
    input: usize,
    hidden: usize,
}

impl Layer {
    fn carve(u: &mut Unstructured<'_>, input: usize, hidden: usize) -> Layer {
        // Now and then a width that disagrees with the model's.
        let input = if u.ratio(1u8, 32).unwrap_or(false) { size(u, 6) } else { input };
        let gates = 3 * hidden;
        let bias = |u: &mut Unstructured<'_>| {
            let len = c_len(u, gates);
            values(u, len, true)
        };
        Layer {
            weight_ih: Matrix::carve(u, gates, input),
            weight_hh: Matrix::carve(u, gates, hidden),
            bias_ih: bias(u),
            bias_hh: bias(u),
            input,
            hidden,
        }
    }

    fn c(&self) -> simd_attention_gru_layer {
        simd_attention_gru_layer {
            weight_ih: self.weight_ih.c(),
            weight_hh: self.weight_hh.c(),
            bias_ih: self.bias_ih.as_ptr(),
            bias_ih_len: self.bias_ih.len(),
            bias_hh: self.bias_hh.as_ptr(),
            bias_hh_len: self.bias_hh.len(),
            input: self.input,
            hidden: self.hidden,
        }
    }

    fn rust(&self) -> GruLayer<'_> {
        let (w_ih, w_hh) = (self.weight_ih.rust(), self.weight_hh.rust());
        GruLayer::new(w_ih, w_hh, &self.bias_ih, &self.bias_hh, self.input, self.hidden).expect("C took the layer")
    }
}

fn carved(u: &mut Unstructured<'_>, needed: usize) -> Vec<f32> {
    let len = c_len(u, needed);
    values(u, len, true)
}

/// A greedy decode, carved and checked against the Rust model.
pub fn capi_seq2seq(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let (vocab, embed, hidden) = (size(&mut u, 6), size(&mut u, 4), size(&mut u, 4));
    let layers =
        if u.ratio(1u8, 32).unwrap_or(false) { SIMD_ATTENTION_SEQ2SEQ_MAX_LAYERS + 1 } else { size(&mut u, 3) };
    let stored = layers.min(SIMD_ATTENTION_SEQ2SEQ_MAX_LAYERS);
    let encoder: Vec<Layer> =
        (0..stored).map(|l| Layer::carve(&mut u, if l == 0 { embed } else { hidden }, hidden)).collect();
    let decoder: Vec<Layer> =
        (0..stored).map(|l| Layer::carve(&mut u, if l == 0 { hidden + embed } else { hidden }, hidden)).collect();
    let (encoder_embedding, decoder_embedding) = (carved(&mut u, vocab * embed), carved(&mut u, vocab * embed));
    let (w_q, w_k, w_v) = (carved(&mut u, hidden * hidden), carved(&mut u, hidden * hidden), carved(&mut u, hidden));
    let dense_weight = Matrix::carve(&mut u, vocab, hidden);
    let dense_bias = carved(&mut u, vocab);
    let (c_encoder, c_decoder): (Vec<_>, Vec<_>) =
        (encoder.iter().map(Layer::c).collect(), decoder.iter().map(Layer::c).collect());
    let params = simd_attention_seq2seq_params {
        encoder_embedding: encoder_embedding.as_ptr(),
        encoder_embedding_len: encoder_embedding.len(),
        encoder_layers: c_encoder.as_ptr(),
        decoder_embedding: decoder_embedding.as_ptr(),
        decoder_embedding_len: decoder_embedding.len(),
        decoder_layers: c_decoder.as_ptr(),
        // A count past the limit points at no more layers than are stored:
        // the call must refuse it before reading them.
        num_layers: layers,
        attention: simd_attention_additive_params::over(&w_q, &w_k, &w_v, hidden, hidden, hidden),
        dense_weight: dense_weight.c(),
        dense_bias: dense_bias.as_ptr(),
        dense_bias_len: dense_bias.len(),
    };
    let params_ptr: *const simd_attention_seq2seq_params =
        if u.ratio(1u8, 64).unwrap_or(false) { core::ptr::null() } else { &params };

    // Sources: ids up to the vocabulary size (one past it refused).
    let (batch, src_len) = (size(&mut u, 3), size(&mut u, 5));
    let tokens_len = c_len(&mut u, batch * src_len);
    let src: Vec<usize> = (0..tokens_len).map(|_| size(&mut u, vocab)).collect();
    let lens_len = c_len(&mut u, batch);
    let lens: Vec<usize> = (0..lens_len).map(|_| size(&mut u, src_len + 1)).collect();
    let sources = simd_attention_sources::over(&src, &lens, batch, src_len);
    let options = simd_attention_decode_options {
        num_steps: size(&mut u, 5),
        bos: size(&mut u, vocab),
        eos: size(&mut u, vocab.max(1) - 1),
        stop_at_eos: u.int_in_range(0u32..=1).unwrap_or(0),
    };

    // Outputs, the workspace sized by its query when that answers.
    let steps = batch * options.num_steps;
    let mut ws_len = 0usize;
    // SAFETY: a descriptor whose buffers hold their lengths, and a `size_t`.
    let sized = unsafe { simd_attention_seq2seq_workspace_len(params_ptr, batch, src_len, &mut ws_len) };
    let ws_len = if sized == 0 { c_len(&mut u, ws_len.min(1 << 20)) } else { size(&mut u, 64) };
    let n_tokens = c_len(&mut u, steps);
    let with_weights = u.ratio(1u8, 2).unwrap_or(false);
    let n_weights = if with_weights { c_len(&mut u, steps * src_len) } else { 0 };
    let (mut tokens, mut weights, mut ws) = (vec![UNWRITTEN; n_tokens], vec![7.0f32; n_weights], vec![7.0f32; ws_len]);
    // Now and then the weights over the workspace (as long as it is).
    let over_ws = with_weights && u.ratio(1u8, 16).unwrap_or(false);
    let (w_ptr, w_len) = match (with_weights, over_ws) {
        (false, _) => (core::ptr::null_mut(), 0),
        (true, false) => (weights.as_mut_ptr(), n_weights),
        (true, true) => (ws.as_mut_ptr(), n_weights.min(ws_len)),
    };
    if over_ws {
        weights.clear();
    }
    // SAFETY: every pointer is NULL or points to as many elements as its
    // length says (a layer count past the limit is refused before its
    // layers are read); only the weights over the workspace are the
    // caller's error, which the call must refuse.
    let rc = unsafe {
        simd_attention_seq2seq_greedy_decode(
            params_ptr,
            sources,
            options,
            tokens.as_mut_ptr(),
            n_tokens,
            w_ptr,
            w_len,
            ws.as_mut_ptr(),
            ws_len,
        )
    };
    if refused(rc) {
        assert!(tokens.iter().all(|&t| t == UNWRITTEN), "a refused call (status {rc}) wrote tokens");
        assert!(weights.iter().chain(&ws).all(|&v| v == 7.0), "a refused call (status {rc}) wrote");
        return;
    }
    // Accepted: the Rust model over the same slices gives the same tokens
    // and weight bits.
    let (rust_encoder, rust_decoder): (Vec<_>, Vec<_>) =
        (encoder.iter().map(Layer::rust).collect(), decoder.iter().map(Layer::rust).collect());
    let model = Seq2Seq {
        encoder_embedding: &encoder_embedding,
        encoder: &rust_encoder,
        decoder_embedding: &decoder_embedding,
        decoder: &rust_decoder,
        attention: AdditiveAttention::new(&w_q, &w_k, &w_v, hidden, hidden, hidden).expect("C took the attention"),
        dense_weight: dense_weight.rust(),
        dense_bias: &dense_bias,
    };
    // The weights as C was given them: over the workspace, the call took
    // them only when empty.
    let (mut want, mut want_w, mut ws) = (vec![0; n_tokens], vec![0.0; w_len], vec![0.0; ws_len]);
    let decode = DecodeOptions::from(options);
    let weights_out = with_weights.then_some(&mut want_w[..]);
    model.greedy_decode(batch, src_len, &src, &lens, decode, &mut want, weights_out, &mut ws).expect("C took the call");
    assert!(tokens == want && same_bits(&weights[..w_len.min(weights.len())], &want_w), "C and Rust differ");
}
