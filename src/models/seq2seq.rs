//! d2l's Bahdanau seq2seq (`Seq2SeqEncoder` + `Seq2SeqAttentionDecoder`)
//! and greedy decoding as in d2l's `predict_step`.
//!
//! - Encoder: embedding, then a multi-layer GRU over the whole padded
//!   source; the top layer's outputs are the attention keys and values.
//! - Decoder: starts from the encoder's final state (every layer). At each
//!   step the query is the previous top-layer state; additive attention
//!   over the encoder outputs (masked by the source valid lengths, through
//!   a `KeyCache` built once per source) gives a context; the GRU input is
//!   the context followed by the embedding of the previous token; a dense
//!   layer maps the top state to vocabulary logits, and the argmax (first
//!   maximum, as `torch.argmax`) is fed back.
//!
//! Everything runs on caller scratch ([`Seq2Seq::workspace_len`]).

use super::dense::{Weight, affine};
use super::gru::GruLayer;
use crate::error::{Error, checked_mul, expect_len, take};
use crate::ops::{AdditiveAttention, AttentionShape, KeyCache, ValidLens};

/// A trained model's parameters, borrowed.
#[derive(Clone, Copy, Debug)]
pub struct Seq2Seq<'p> {
    /// `encoder.embedding.weight` `(V, E)`.
    pub encoder_embedding: &'p [f32],
    /// `encoder.rnn.rnn.*_l{n}`, bottom layer first.
    pub encoder: &'p [GruLayer<'p>],
    /// `decoder.embedding.weight` `(V, E)`.
    pub decoder_embedding: &'p [f32],
    /// `decoder.rnn.*_l{n}`, bottom layer first.
    pub decoder: &'p [GruLayer<'p>],
    /// `decoder.attention.*`.
    pub attention: AdditiveAttention<'p>,
    /// `decoder.dense.weight` `(V, H)`, in either layout.
    pub dense_weight: Weight<'p>,
    /// `decoder.dense.bias` `(V,)`.
    pub dense_bias: &'p [f32],
}

/// How to decode.
#[derive(Clone, Copy, Debug)]
pub struct DecodeOptions {
    /// Steps to run (d2l: `num_steps`, no early stop).
    pub num_steps: usize,
    /// The first input token (`<bos>`).
    pub bos: usize,
    /// With `Some(eos)`, stop once every sequence has produced `eos`; the
    /// positions after a sequence's `eos` are filled with `eos` and their
    /// weights with zeros.
    pub stop_at: Option<usize>,
}

/// Sizes derived from the parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Dims {
    vocab: usize,
    embed: usize,
    hidden: usize,
    layers: usize,
}

impl Seq2Seq<'_> {
    fn dims(&self) -> Result<Dims, Error> {
        let vocab = self.dense_bias.len();
        let hidden = self.attention.hidden();
        let layers = self.encoder.len();
        let first = self.encoder.first().ok_or(Error::Dimension { arg: "encoder layers", expected: 1, actual: 0 })?;
        let embed = first.input();
        if self.decoder.len() != layers {
            return Err(Error::Dimension { arg: "decoder layers", expected: layers, actual: self.decoder.len() });
        }
        for (l, (e, d)) in self.encoder.iter().zip(self.decoder).enumerate() {
            let input = if l == 0 { embed } else { hidden };
            let d_input = if l == 0 { hidden + embed } else { hidden };
            for (arg, expected, actual) in [
                ("encoder layer input", input, e.input()),
                ("encoder layer hidden", hidden, e.hidden()),
                ("decoder layer input", d_input, d.input()),
                ("decoder layer hidden", hidden, d.hidden()),
            ] {
                if expected != actual {
                    return Err(Error::Dimension { arg, expected, actual });
                }
            }
        }
        let table = checked_mul("embedding", vocab, embed)?;
        expect_len("encoder.embedding", table, self.encoder_embedding.len())?;
        expect_len("decoder.embedding", table, self.decoder_embedding.len())?;
        expect_len("dense.weight", checked_mul("dense.weight", vocab, hidden)?, self.dense_weight.len())?;
        Ok(Dims { vocab, embed, hidden, layers })
    }

    /// Scratch [`greedy_decode`](Self::greedy_decode) needs for `batch`
    /// sources of `src_len` tokens.
    pub fn workspace_len(&self, batch: usize, src_len: usize) -> Result<usize, Error> {
        let d = self.dims()?;
        Ok(Layout::new(d, batch, src_len, &self.attention)?.total)
    }

    /// Greedy decoding of `src` `(batch, src_len)` token ids with
    /// `src_valid_lens` `(batch,)`; writes `tokens` `(batch, num_steps)` and,
    /// if given, the attention weights `(batch, num_steps, src_len)`.
    #[allow(clippy::too_many_arguments)]
    pub fn greedy_decode(
        &self,
        batch: usize,
        src_len: usize,
        src: &[usize],
        src_valid_lens: &[usize],
        options: DecodeOptions,
        tokens: &mut [usize],
        mut weights: Option<&mut [f32]>,
        workspace: &mut [f32],
    ) -> Result<(), Error> {
        let d = self.dims()?;
        expect_len("src", checked_mul("src", batch, src_len)?, src.len())?;
        expect_len("src_valid_lens", batch, src_valid_lens.len())?;
        let steps = options.num_steps;
        expect_len("tokens", checked_mul("tokens", batch, steps)?, tokens.len())?;
        if let Some(w) = weights.as_deref() {
            expect_len("weights", checked_mul("weights", checked_mul("weights", batch, steps)?, src_len)?, w.len())?;
        }
        for (arg, ids) in [("src", src), ("bos", core::slice::from_ref(&options.bos))] {
            if let Some(index) = ids.iter().position(|&t| t >= d.vocab) {
                return Err(Error::Value { arg, index });
            }
        }
        let layout = Layout::new(d, batch, src_len, &self.attention)?;
        let ws = take("workspace", workspace, layout.total)?;
        if batch == 0 {
            // Nothing to write: skip the steps, which could be many.
            return Ok(());
        }
        let [enc_out, states, input, gru_ws, cache_buf, attn_ws, step_w, logits] = layout.split(ws);
        let (h, e) = (d.hidden, d.embed);

        // Encoder over every source position, padding included (as d2l).
        states.fill(0.0);
        for t in 0..src_len {
            for (b, row) in input.chunks_exact_mut(e.max(1)).take(batch).enumerate() {
                let tok = src[b * src_len + t];
                row[..e].copy_from_slice(&self.encoder_embedding[tok * e..(tok + 1) * e]);
            }
            run_layers(self.encoder, batch, &input[..batch * e], states, gru_ws)?;
            let top = &states[(d.layers - 1) * batch * h..];
            for b in 0..batch {
                enc_out[(b * src_len + t) * h..(b * src_len + t + 1) * h].copy_from_slice(&top[b * h..(b + 1) * h]);
            }
        }

        let shape = AttentionShape { batch, queries: 1, keys: src_len, query_dim: h, key_dim: h, value_dim: h };
        let cache = self.attention.key_cache(&shape, enc_out, enc_out, cache_buf)?;
        let lens = ValidLens::PerBatch(src_valid_lens);
        let (top, row) = ((d.layers - 1) * batch * h, h + e);
        for s in 0..steps {
            // Query: the previous top-layer state. GRU input: [context | embedding].
            let (context, attn_ws) = attn_ws.split_at_mut(batch * h);
            self.attention.forward_cached(
                &cache,
                1,
                &states[top..top + batch * h],
                lens,
                context,
                Some(step_w),
                attn_ws,
            )?;
            for b in 0..batch {
                let prev = if s == 0 { options.bos } else { tokens[b * steps + s - 1] };
                let dst = &mut input[b * row..(b + 1) * row];
                dst[..h].copy_from_slice(&context[b * h..(b + 1) * h]);
                dst[h..].copy_from_slice(&self.decoder_embedding[prev * e..(prev + 1) * e]);
            }
            run_layers(self.decoder, batch, &input[..batch * row], states, gru_ws)?;
            affine(&states[top..top + batch * h], batch, h, self.dense_weight, self.dense_bias, logits)?;
            let mut all_done = options.stop_at.is_some();
            for b in 0..batch {
                // Once a sequence emits the stop id it emits nothing else,
                // so its previous token says whether it has stopped.
                let done = options.stop_at.filter(|&eos| s > 0 && tokens[b * steps + s - 1] == eos);
                let token = done.unwrap_or_else(|| argmax(&logits[b * d.vocab..(b + 1) * d.vocab]));
                tokens[b * steps + s] = token;
                all_done &= options.stop_at == Some(token);
                if let Some(w) = weights.as_deref_mut() {
                    let dst = &mut w[(b * steps + s) * src_len..(b * steps + s + 1) * src_len];
                    match done {
                        Some(_) => dst.fill(0.0),
                        None => dst.copy_from_slice(&step_w[b * src_len..(b + 1) * src_len]),
                    }
                }
            }
            if let (true, Some(eos)) = (all_done, options.stop_at) {
                for b in 0..batch {
                    tokens[b * steps + s + 1..(b + 1) * steps].fill(eos);
                    if let Some(w) = weights.as_deref_mut() {
                        w[(b * steps + s + 1) * src_len..(b + 1) * steps * src_len].fill(0.0);
                    }
                }
                break;
            }
        }
        Ok(())
    }
}

/// Runs every layer one step: layer 0 on `x`, layer `l` on layer `l−1`'s
/// new state. `states` is `(layers, batch, H)`.
fn run_layers(
    layers: &[GruLayer<'_>],
    batch: usize,
    x: &[f32],
    states: &mut [f32],
    ws: &mut [f32],
) -> Result<(), Error> {
    let mut below: Option<&[f32]> = None;
    let mut rest = states;
    for layer in layers {
        let (state, tail) = core::mem::take(&mut rest).split_at_mut(batch * layer.hidden());
        layer.step(batch, below.unwrap_or(x), state, ws)?;
        below = Some(state);
        rest = tail;
    }
    Ok(())
}

/// Index of the first maximum (NaN counts as the maximum, as in PyTorch).
fn argmax(x: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in x.iter().enumerate() {
        if v.is_nan() {
            return i;
        }
        if v > x[best] {
            best = i;
        }
    }
    best
}

/// Where each buffer lives in the workspace.
struct Layout {
    sizes: [usize; 8],
    total: usize,
}

impl Layout {
    fn new(d: Dims, batch: usize, src_len: usize, attention: &AdditiveAttention<'_>) -> Result<Layout, Error> {
        let m = |a: usize, b: usize| checked_mul("workspace", a, b);
        let bh = m(batch, d.hidden)?;
        let shape = AttentionShape {
            batch,
            queries: 1,
            keys: src_len,
            query_dim: d.hidden,
            key_dim: d.hidden,
            value_dim: d.hidden,
        };
        let sizes = [
            m(m(batch, src_len)?, d.hidden)?, // encoder outputs
            m(d.layers, bh)?,                 // GRU states
            m(batch, d.hidden + d.embed)?,    // GRU input rows
            m(bh, 6)?,                        // GRU gates
            KeyCache::buffer_len(batch, src_len, d.hidden, attention.query_dim())?, // key cache
            bh.checked_add(attention.cached_workspace_len(&shape, true)?)
                .ok_or(Error::Overflow { arg: "workspace" })?, // context + attention
            m(batch, src_len)?,               // step weights
            m(batch, d.vocab)?,               // logits
        ];
        let total =
            sizes.iter().try_fold(0usize, |a, &b| a.checked_add(b)).ok_or(Error::Overflow { arg: "workspace" })?;
        Ok(Layout { sizes, total })
    }

    fn split<'a>(&self, mut ws: &'a mut [f32]) -> [&'a mut [f32]; 8] {
        self.sizes.map(|n| {
            let (head, tail) = core::mem::take(&mut ws).split_at_mut(n);
            ws = tail;
            head
        })
    }
}
