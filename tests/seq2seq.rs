//! The trained d2l Bahdanau model (tests/data/reverse-bahdanau) against
//! PyTorch's greedy decode (tests/data/seq2seq-reverse-decode): tokens up
//! to and including the first `<eos>` exactly, attention weights within
//! 5e-5, on every backend.

mod common;
use common::{Golden, backends};
use simd_attention::io::{TensorFile, seq2seq::Seq2SeqModel};
use simd_attention::models::DecodeOptions;
use simd_attention::simd::with_backend;

fn model() -> Seq2SeqModel {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/reverse-bahdanau.safetensors");
    Seq2SeqModel::load(&TensorFile::read(path.as_ref()).unwrap()).unwrap()
}

#[test]
fn golden_greedy_decode_on_every_backend() {
    let model = model();
    let g = Golden::load("seq2seq-reverse-decode");
    let (src, shape) = (g.lens("src"), g.shape("src"));
    let (batch, src_len) = (shape[0], shape[1]);
    let lens = g.lens("src_valid_lens");
    let steps: usize = g.meta("num_steps").unwrap().parse().unwrap();
    let bos: usize = g.meta("bos").unwrap().parse().unwrap();
    let want_tokens = g.lens("expected.tokens");
    let want_weights = g.f32s("expected.attention_weights");
    for backend in backends() {
        let options = DecodeOptions { num_steps: steps, bos, stop_at: None };
        let (tokens, weights) =
            with_backend(backend, || model.decode(batch, src_len, &src, &lens, options)).unwrap().unwrap();
        for b in 0..batch {
            let want = &want_tokens[b * steps..(b + 1) * steps];
            let end = want.iter().position(|&t| t == model.eos).map_or(steps, |p| p + 1);
            assert_eq!(&tokens[b * steps..b * steps + end], &want[..end], "sequence {b} on {backend}");
            for s in 0..end {
                for t in 0..src_len {
                    let i = (b * steps + s) * src_len + t;
                    assert!(
                        (weights[i] - want_weights[i]).abs() <= 5e-5,
                        "{backend}: weights[{b},{s},{t}] {} vs {}",
                        weights[i],
                        want_weights[i]
                    );
                }
            }
        }
    }
}

#[test]
fn reverses_digits_and_stops_at_eos() {
    let model = model();
    let source = model.source(&["3", "1", "4", "1", "5", "9"]).unwrap();
    let (src, len) = (source.ids, source.valid_len);
    let options = DecodeOptions { num_steps: model.num_steps, bos: model.bos, stop_at: Some(model.eos) };
    let (tokens, weights) = model.decode(1, model.num_steps, &src, &[len], options).unwrap();
    assert_eq!(model.words(&tokens).join(" "), "9 5 1 4 1 3");
    // Past <eos>: eos tokens and zero weights.
    let end = tokens.iter().position(|&t| t == model.eos).unwrap();
    assert!(tokens[end..].iter().all(|&t| t == model.eos));
    assert!(weights[(end + 1) * model.num_steps..].iter().all(|&w| w == 0.0));
    // Weights over the source sum to 1 and vanish past its valid length.
    for row in weights[..(end + 1) * model.num_steps].chunks(model.num_steps) {
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        assert!(row[len..].iter().all(|&w| w == 0.0));
    }
}

/// A source is its tokens' ids, `<eos>`, then `<pad>` to `num_steps`
/// (d2l's preprocessing); an unknown token or one too many is refused,
/// naming `source`. `words` reads ids back up to `<eos>`.
#[test]
fn sources_are_padded_ids_and_words_stop_at_eos() {
    let model = model();
    let id = |t: &str| model.token_id(t).unwrap();
    let source = model.source(&["7", "0"]).unwrap();
    let mut want = vec![id("7"), id("0"), model.eos];
    want.resize(model.num_steps, model.pad);
    assert_eq!((source.ids, source.valid_len), (want, 3));
    let empty = model.source::<&str>(&[]).unwrap();
    assert_eq!((empty.ids[0], empty.valid_len), (model.eos, 1));
    let unknown = model.source(&["7", "x"]).unwrap_err().to_string();
    assert!(unknown.contains("`source`") && unknown.contains("unknown token `x`"), "{unknown}");
    let most = model.num_steps - 1;
    assert!(model.source(&vec!["1"; most]).is_ok());
    let long = model.source(&vec!["1"; most + 1]).unwrap_err().to_string();
    assert!(long.contains(&format!("at most {most} tokens, got {}", most + 1)), "{long}");
    assert_eq!(model.words(&[id("4"), id("2"), model.eos, id("9")]), ["4", "2"]);
    assert_eq!(model.words(&[id("4"), model.vocab.len(), id("2")]), ["4"]);
}

/// An empty batch has nothing to write and returns at once, however many
/// steps or source positions it asks for (it used to run them all).
#[test]
fn an_empty_batch_returns_at_once() {
    let model = model();
    let options = DecodeOptions { num_steps: 1 << 40, bos: model.bos, stop_at: None };
    let (tokens, weights) = model.decode(0, 1 << 40, &[], &[], options).unwrap();
    assert!(tokens.is_empty() && weights.is_empty());
}
