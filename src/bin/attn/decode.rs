//! `attn decode` and `attn demo`: greedy decoding with a trained d2l
//! Bahdanau seq2seq, the embedded one (tests/data/reverse-bahdanau, trained
//! in PyTorch to reverse strings of 3 to 8 digits) unless `--model` says
//! otherwise.

use crate::heatmap::{terminal_heatmap, write_heatmap};
use simd_attention::io::TensorFile;
use simd_attention::io::seq2seq::{Seq2SeqModel, Source};
use simd_attention::models::DecodeOptions;
use std::path::Path;
use std::time::Instant;

/// The demo's model, inside the binary so `attn demo` works from anywhere.
const EMBEDDED_MODEL: &[u8] = include_bytes!("../../../tests/data/reverse-bahdanau.safetensors");

/// Loads `path`, or the embedded model.
pub fn load_model(path: Option<&Path>) -> Result<Seq2SeqModel, String> {
    let file = match path {
        Some(p) => TensorFile::read(p),
        None => TensorFile::from_bytes(EMBEDDED_MODEL.to_vec()),
    }
    .map_err(|e| e.to_string())?;
    Seq2SeqModel::load(&file).map_err(|e| match path {
        Some(p) => format!("{}: {e}", p.display()),
        None => e.to_string(),
    })
}

/// Token strings → ids + `<eos>`, padded with `<pad>` to `num_steps`.
pub(crate) fn encode(model: &Seq2SeqModel, tokens: &[String]) -> Result<Source, String> {
    model.source(tokens).map_err(|e| e.to_string())
}

/// Decodes a batch of sources; returns tokens `(B, steps)` and weights `(B, steps, src_len)`.
fn decode_batch(model: &Seq2SeqModel, sources: &[Source], stop: bool) -> Result<(Vec<usize>, Vec<f32>), String> {
    let src: Vec<usize> = sources.iter().flat_map(|s| s.ids.iter().copied()).collect();
    let lens: Vec<usize> = sources.iter().map(|s| s.valid_len).collect();
    let options = DecodeOptions { num_steps: model.num_steps, bos: model.bos, stop_at: stop.then_some(model.eos) };
    model.decode(sources.len(), model.num_steps, &src, &lens, options).map_err(|e| e.to_string())
}

/// The attention of one decoded sequence: rows are output tokens up to and
/// including `<eos>`, columns the source tokens up to its valid length.
fn attention_map(
    model: &Seq2SeqModel,
    source: &Source,
    tokens: &[usize],
    weights: &[f32],
) -> (Vec<f32>, Vec<String>, Vec<String>) {
    let steps = tokens.iter().position(|&t| t == model.eos).map_or(tokens.len(), |p| p + 1);
    let cols = source.valid_len;
    let map =
        (0..steps).flat_map(|s| weights[s * model.num_steps..s * model.num_steps + cols].iter().copied()).collect();
    let rows = tokens[..steps].iter().map(|&t| model.vocab[t].clone()).collect();
    let col_labels = source.ids[..cols].iter().map(|&t| model.vocab[t].clone()).collect();
    (map, rows, col_labels)
}

pub fn decode(model: Option<&Path>, heatmap: Option<&Path>, tokens: &[String]) -> Result<(), String> {
    let model = load_model(model)?;
    let source = encode(&model, tokens)?;
    let (out, weights) = decode_batch(&model, std::slice::from_ref(&source), true)?;
    println!("{}", model.words(&out).join(" "));
    if let Some(path) = heatmap {
        let (map, rows, cols) = attention_map(&model, &source, &out, &weights);
        write_heatmap(path, &map, &rows, &cols, &format!("attention: {}", tokens.join(" ")))?;
    }
    Ok(())
}

/// xorshift64*: reproducible digit strings without a dependency.
pub(crate) struct Rng(pub u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) % n
    }

    /// 3 to 8 random digits, as the model was trained on.
    pub fn digits(&mut self) -> Vec<String> {
        let len = 3 + self.below(6) as usize;
        (0..len).map(|_| self.below(10).to_string()).collect()
    }
}

/// Seconds per decoded token over `runs` decodes of `sources` (fixed
/// `num_steps` steps, no early stop, so every run does the same work).
fn time_per_token(model: &Seq2SeqModel, sources: &[Source], runs: usize) -> Result<f64, String> {
    decode_batch(model, sources, false)?;
    let mut best = f64::INFINITY;
    for _ in 0..runs {
        let start = Instant::now();
        decode_batch(model, sources, false)?;
        best = best.min(start.elapsed().as_secs_f64());
    }
    Ok(best / (sources.len() * model.num_steps) as f64)
}

fn micros(seconds: f64) -> String {
    format!("{:.1} µs", seconds * 1e6)
}

pub fn demo(heatmap: Option<&Path>, count: usize, seed: Option<u64>) -> Result<(), String> {
    if count == 0 {
        return Err("--count: expected at least 1, got 0".to_string());
    }
    let model = load_model(None)?;
    let seed = seed.unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64)
    });
    let mut rng = Rng(seed | 1);
    println!("simd-attention demo: a d2l Bahdanau seq2seq (GRU encoder/decoder, additive attention),");
    println!(
        "trained in PyTorch to reverse digit strings, decoded greedily on the {} backend.",
        simd_attention::backend()
    );
    println!("seed {seed}\n");
    let strings: Vec<Vec<String>> = (0..count).map(|_| rng.digits()).collect();
    let sources = strings.iter().map(|s| encode(&model, s)).collect::<Result<Vec<_>, _>>()?;
    let (tokens, weights) = decode_batch(&model, &sources, true)?;
    let steps = model.num_steps;
    let mut correct = 0;
    for (i, s) in strings.iter().enumerate() {
        let out = model.words(&tokens[i * steps..(i + 1) * steps]);
        let want: Vec<&str> = s.iter().rev().map(String::as_str).collect();
        let ok = out == want;
        correct += usize::from(ok);
        println!("  {:<16} → {:<16} {}", s.join(" "), out.join(" "), if ok { "✓" } else { "✗" });
    }
    println!("\nexact match: {correct}/{count}");
    let batch_64: Vec<Source> = (0..64).map(|_| encode(&model, &rng.digits())).collect::<Result<_, _>>()?;
    let one = time_per_token(&model, &sources[..1], 50)?;
    let many = time_per_token(&model, &batch_64, 10)?;
    println!("decode time per token: {} at batch 1, {} at batch 64", micros(one), micros(many));
    let (map, rows, cols) = attention_map(&model, &sources[0], &tokens[..steps], &weights[..steps * steps]);
    println!("\nattention of \"{}\" (source across, output down):", strings[0].join(" "));
    print!("{}", terminal_heatmap(&map, &rows, &cols));
    if let Some(path) = heatmap {
        write_heatmap(path, &map, &rows, &cols, &format!("attention: {}", strings[0].join(" ")))?;
        println!("heatmap written to {}", path.display());
    }
    Ok(())
}
