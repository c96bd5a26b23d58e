//! The demo model (d2l's Bahdanau seq2seq that reverses digit strings)
//! built from borrowed flash slices, and its greedy decode of every
//! sequence of `seq2seq-reverse-decode`, one at a time, as a device would:
//! tokens up to and including `<eos>` exact, their attention weights
//! within 5e-5.

use crate::check::{Failure, Tally, Usage, compare, take};
use crate::golden::{Case, REVERSE_BAHDANAU, SEQ2SEQ_REVERSE_DECODE};
use simd_attention::models::{DecodeOptions, GruLayer, Seq2Seq, Weight};
use simd_attention::ops::AdditiveAttention;

/// The GRU tensors of each layer (the model has two), transposed by build.rs.
const ENCODER: [[&str; 4]; 2] = [
    [
        "encoder.rnn.rnn.weight_ih_l0.T",
        "encoder.rnn.rnn.weight_hh_l0.T",
        "encoder.rnn.rnn.bias_ih_l0",
        "encoder.rnn.rnn.bias_hh_l0",
    ],
    [
        "encoder.rnn.rnn.weight_ih_l1.T",
        "encoder.rnn.rnn.weight_hh_l1.T",
        "encoder.rnn.rnn.bias_ih_l1",
        "encoder.rnn.rnn.bias_hh_l1",
    ],
];
const DECODER: [[&str; 4]; 2] = [
    ["decoder.rnn.weight_ih_l0.T", "decoder.rnn.weight_hh_l0.T", "decoder.rnn.bias_ih_l0", "decoder.rnn.bias_hh_l0"],
    ["decoder.rnn.weight_ih_l1.T", "decoder.rnn.weight_hh_l1.T", "decoder.rnn.bias_ih_l1", "decoder.rnn.bias_hh_l1"],
];
/// Sequences per golden file, steps per decode and source length this
/// firmware has room for.
const MAX_BATCH: usize = 16;
const MAX_STEPS: usize = 16;
const MAX_SRC: usize = 16;

/// One GRU layer over flash slices, with the library's shape checks.
fn layer(model: &Case, names: [&'static str; 4]) -> Result<GruLayer<'static>, Failure> {
    let [w_ih, w_hh, b_ih, b_hh] = names;
    // Transposed: `(input, 3H)` and `(H, 3H)`.
    let (input, hidden) = (model.shape(w_ih)?[0], model.shape(w_hh)?[0]);
    Ok(GruLayer::new(
        Weight::Columns(model.f32s(w_ih)?),
        Weight::Columns(model.f32s(w_hh)?),
        model.f32s(b_ih)?,
        model.f32s(b_hh)?,
        input,
        hidden,
    )?)
}

fn meta_id(case: &Case, key: &'static str) -> Result<usize, Failure> {
    case.meta(key).and_then(|v| v.parse().ok()).ok_or(Failure::Case(key))
}

/// Runs one check per sequence; returns the largest usage of any.
pub fn run(tally: &mut Tally, arena: &mut [f32]) -> Usage {
    let (model, case) = (&REVERSE_BAHDANAU, &SEQ2SEQ_REVERSE_DECODE);
    let mut worst = Usage::default();
    let Ok(src_shape) = case.shape("src") else {
        tally.check("seq2seq: case", || Err(Failure::Case("src")));
        return worst;
    };
    let batch = src_shape.first().copied().unwrap_or(0).min(MAX_BATCH);
    for b in 0..batch {
        let mut name = [0u8; 16];
        let usage = tally.check(label(&mut name, b), || decode_one(model, case, b, arena));
        worst.scratch = worst.scratch.max(usage.scratch);
        worst.stack = worst.stack.max(usage.stack);
        worst.max_error = worst.max_error.max(usage.max_error);
    }
    worst
}

/// `seq2seq[b]`.
fn label(buf: &mut [u8; 16], b: usize) -> &str {
    let prefix = b"seq2seq[";
    buf[..prefix.len()].copy_from_slice(prefix);
    let mut n = prefix.len();
    if b >= 10 {
        buf[n] = b'0' + (b / 10 % 10) as u8;
        n += 1;
    }
    buf[n] = b'0' + (b % 10) as u8;
    buf[n + 1] = b']';
    core::str::from_utf8(&buf[..n + 2]).unwrap_or("seq2seq")
}

fn decode_one(model: &'static Case, case: &Case, b: usize, arena: &mut [f32]) -> Result<Usage, Failure> {
    let encoder = [layer(model, ENCODER[0])?, layer(model, ENCODER[1])?];
    let decoder = [layer(model, DECODER[0])?, layer(model, DECODER[1])?];
    let hidden = model.shape("decoder.attention.w_v.weight")?[1];
    let (w_q, w_k) = ("decoder.attention.W_q.weight", "decoder.attention.W_k.weight");
    let attention = AdditiveAttention::new(
        model.f32s(w_q)?,
        model.f32s(w_k)?,
        model.f32s("decoder.attention.w_v.weight")?,
        hidden,
        model.shape(w_q)?[1],
        model.shape(w_k)?[1],
    )?;
    let s2s = Seq2Seq {
        encoder_embedding: model.f32s("encoder.embedding.weight")?,
        encoder: &encoder,
        decoder_embedding: model.f32s("decoder.embedding.weight")?,
        decoder: &decoder,
        attention,
        dense_weight: Weight::Columns(model.f32s("decoder.dense.weight.T")?),
        dense_bias: model.f32s("decoder.dense.bias")?,
    };
    let eos = meta_id(model, "eos")?;
    let options = DecodeOptions { num_steps: meta_id(case, "num_steps")?, bos: meta_id(case, "bos")?, stop_at: None };
    let src_len = case.shape("src")?[1];
    let steps = options.num_steps;
    if src_len > MAX_SRC || steps > MAX_STEPS {
        return Err(Failure::Case("src"));
    }
    // This sequence's tokens and valid length, as usize.
    let (all_src, all_lens) = (case.i64s("src")?, case.i64s("src_valid_lens")?);
    let row = all_src.get(b * src_len..(b + 1) * src_len).ok_or(Failure::Case("src"))?;
    let mut src = [0usize; MAX_SRC];
    for (d, &s) in src.iter_mut().zip(row) {
        *d = usize::try_from(s).map_err(|_| Failure::Case("src"))?;
    }
    let len = all_lens.get(b).and_then(|&l| usize::try_from(l).ok()).ok_or(Failure::Case("src_valid_lens"))?;

    let mut used = 0;
    let mut rest = &mut *arena;
    let weights = take(&mut rest, steps * src_len, &mut used)?;
    let workspace = take(&mut rest, s2s.workspace_len(1, src_len)?, &mut used)?;
    let mut tokens = [0usize; MAX_STEPS];
    s2s.greedy_decode(1, src_len, &src[..src_len], &[len], options, &mut tokens[..steps], Some(weights), workspace)?;

    let want_tokens =
        case.i64s("expected.tokens")?.get(b * steps..(b + 1) * steps).ok_or(Failure::Case("expected.tokens"))?;
    let end = want_tokens.iter().position(|&t| t == eos as i64).map_or(steps, |p| p + 1);
    for (i, (&got, &want)) in tokens[..end].iter().zip(want_tokens).enumerate() {
        if got as i64 != want {
            return Err(Failure::Mismatch { what: "tokens", index: i, got: got as f32, want: want as f32 });
        }
    }
    let want_w = case.f32s("expected.attention_weights")?;
    let want_w = want_w
        .get(b * steps * src_len..(b * steps + end) * src_len)
        .ok_or(Failure::Case("expected.attention_weights"))?;
    let max_error = compare("weights", &weights[..end * src_len], want_w, 5e-5, 0.0)?;
    Ok(Usage { max_error, scratch: used, stack: 0 })
}
