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
    let digits = [3usize, 1, 4, 1, 5, 9];
    let mut src: Vec<usize> = digits.iter().map(|d| model.token_id(&d.to_string()).unwrap()).collect();
    src.push(model.eos);
    let len = src.len();
    src.resize(model.num_steps, model.pad);
    let options = DecodeOptions { num_steps: model.num_steps, bos: model.bos, stop_at: Some(model.eos) };
    let (tokens, weights) = model.decode(1, model.num_steps, &src, &[len], options).unwrap();
    let words: Vec<&str> = tokens.iter().take_while(|&&t| t != model.eos).map(|&t| model.vocab[t].as_str()).collect();
    assert_eq!(words.join(" "), "9 5 1 4 1 3");
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
