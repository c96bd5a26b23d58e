//! Every golden case through `io::case::run_case` and through the `attn run`
//! binary with one and two threads (byte-identical files), plus the
//! refusals: one line on stderr, status 2, no output file.
#![cfg(feature = "cli")]

mod common;
use common::{Golden, Scratch, assert_allclose};
use simd_attention::io::case::{CaseTensor, run_case};
use simd_attention::io::{TensorFile, seq2seq::Seq2SeqModel};
use std::path::{Path, PathBuf};

const CASES: [&str; 22] = [
    "additive-d2l-toy",
    "additive-lens1d-edges",
    "additive-lens2d",
    "additive-nomask",
    "additive-saturated",
    "bilinear-lens1d",
    "dot-lens1d",
    "dot-nomask",
    "masked-softmax-1d",
    "masked-softmax-2d",
    "mha-2heads",
    "mha-4heads-2d",
    "nadaraya-watson",
    "sdpa-bool-mask",
    "sdpa-causal",
    "sdpa-gqa-scale",
    "sdpa-plain",
    "sdpa-bf16-all-bf16",
    "sdpa-bf16-decode",
    "sdpa-f16-bool",
    "sdpa-q8-decode",
    "sdpa-q8-odd-dims",
];

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(format!("{name}.safetensors"))
}

fn attn(args: &[&std::ffi::OsStr]) -> std::process::Output {
    common::command(env!("CARGO_BIN_EXE_attn")).args(args).output().unwrap()
}

/// Checks a results file (or the library's results) against the golden expectations.
fn check_against_golden(name: &str, results: &TensorFile) {
    let golden = Golden::load(name);
    for tensor in ["output", "attention_weights"] {
        if golden.has(&format!("expected.{tensor}")) {
            let got = results.f32s(tensor).unwrap();
            assert_eq!(got.shape, golden.shape(&format!("expected.{tensor}")), "{name} {tensor} shape");
            assert_allclose(
                &got.data,
                &golden.f32s(&format!("expected.{tensor}")),
                5e-5,
                1e-4,
                &format!("{name} {tensor}"),
            );
        }
    }
}

#[test]
fn golden_cases_through_the_library() {
    for name in CASES {
        let file = TensorFile::read(&data(name)).unwrap();
        let results = run_case(&file, None).unwrap();
        let golden = Golden::load(name);
        for (tensor, t) in results {
            let CaseTensor::F32(t) = t else { panic!("{name} {tensor}: not f32") };
            assert_allclose(
                &t.data,
                &golden.f32s(&format!("expected.{tensor}")),
                5e-5,
                1e-4,
                &format!("{name} {tensor}"),
            );
        }
    }
}

#[test]
fn golden_cases_through_attn_run_with_one_and_two_threads() {
    let dir = Scratch::new("cli-golden");
    for name in CASES {
        let mut files = Vec::new();
        for threads in ["1", "2"] {
            let out = dir.path(&format!("{name}-{threads}.safetensors"));
            let run = attn(&[
                "run".as_ref(),
                data(name).as_os_str(),
                "-o".as_ref(),
                out.as_os_str(),
                "--threads".as_ref(),
                threads.as_ref(),
            ]);
            assert!(run.status.success(), "{name}: {}", String::from_utf8_lossy(&run.stderr));
            check_against_golden(name, &TensorFile::read(&out).unwrap());
            files.push(std::fs::read(&out).unwrap());
        }
        assert_eq!(files[0], files[1], "{name}: --threads 1 and 2 differ");
    }
}

/// Runs `attn run` on `input`, expecting refusal: status 2, one stderr line
/// containing `needle`, and no output file.
fn refused(input: &Path, output: &Path, needle: &str) {
    let run = attn(&["run".as_ref(), input.as_os_str(), "-o".as_ref(), output.as_os_str()]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains(needle), "{stderr} lacks {needle}");
    assert!(!output.exists(), "{} was written", output.display());
}

#[test]
fn bad_input_is_refused_with_status_2_and_no_output() {
    let dir = Scratch::new("cli-refused");
    let out = dir.path("refused.safetensors");
    refused(&dir.path("does-not-exist"), &out, "does-not-exist");
    let garbage = dir.path("garbage.safetensors");
    std::fs::write(&garbage, b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}").unwrap();
    refused(&garbage, &out, "not a valid safetensors file");
    let empty = dir.path("empty.safetensors");
    std::fs::write(&empty, b"").unwrap();
    refused(&empty, &out, "not a valid safetensors file");
    // A valid file whose kind is unknown, and one missing a tensor.
    let write_case = |name: &str, kind: &str, tensors: &[(&str, Vec<usize>)]| {
        let bytes: Vec<Vec<u8>> = tensors.iter().map(|(_, s)| vec![0u8; 4 * s.iter().product::<usize>()]).collect();
        let views: Vec<_> = tensors
            .iter()
            .zip(&bytes)
            .map(|((n, s), b)| {
                (*n, safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b).unwrap())
            })
            .collect();
        let meta = std::collections::HashMap::from([("kind".to_string(), kind.to_string())]);
        let path = dir.path(name);
        std::fs::write(&path, safetensors::serialize(views, Some(meta)).unwrap()).unwrap();
        path
    };
    refused(&write_case("unknown.safetensors", "telepathy", &[]), &out, "unknown kind `telepathy`");
    let missing = write_case("missing.safetensors", "dot", &[("queries", vec![1, 2, 3]), ("keys", vec![1, 2, 3])]);
    refused(&missing, &out, "missing tensor `values`");
    let mismatched = write_case(
        "mismatch.safetensors",
        "dot",
        &[("queries", vec![2, 2, 3]), ("keys", vec![1, 2, 3]), ("values", vec![1, 2, 3])],
    );
    refused(&mismatched, &out, "tensor `keys`: expected shape (2, _, _), found [1, 2, 3]");
    // An output path that cannot be written.
    refused(&data("dot-lens1d"), Path::new("/nonexistent-dir/out.safetensors"), "/nonexistent-dir/out.safetensors");
}

fn model_path() -> PathBuf {
    data("reverse-bahdanau")
}

#[test]
fn seq2seq_case_through_library_and_attn_run() {
    let dir = Scratch::new("cli-seq2seq");
    let model = Seq2SeqModel::load(&TensorFile::read(&model_path()).unwrap()).unwrap();
    let golden = Golden::load("seq2seq-reverse-decode");
    let want_tokens = golden.lens("expected.tokens");
    let want_weights = golden.f32s("expected.attention_weights");
    let check = |tokens: &[i64], weights: &[f32]| {
        let steps = 10;
        for b in 0..tokens.len() / steps {
            let want = &want_tokens[b * steps..(b + 1) * steps];
            let end = want.iter().position(|&t| t == model.eos).map_or(steps, |p| p + 1);
            let got: Vec<usize> = tokens[b * steps..b * steps + end].iter().map(|&t| t as usize).collect();
            assert_eq!(got, &want[..end], "sequence {b}");
            let w = (b * steps) * 10..(b * steps + end) * 10;
            assert_allclose(&weights[w.clone()], &want_weights[w], 5e-5, 0.0, &format!("sequence {b} weights"));
        }
    };
    let file = TensorFile::read(&data("seq2seq-reverse-decode")).unwrap();
    let results = run_case(&file, Some(&model)).unwrap();
    let (CaseTensor::I64(tokens), CaseTensor::F32(weights)) = (&results[0].1, &results[1].1) else { panic!("dtypes") };
    check(&tokens.data, &weights.data);
    for model_arg in [Some(model_path()), None] {
        let out = dir.path("seq2seq.safetensors");
        let mut args: Vec<std::ffi::OsString> =
            vec!["run".into(), data("seq2seq-reverse-decode").into(), "-o".into(), out.clone().into()];
        if let Some(m) = &model_arg {
            args.extend(["--model".into(), m.clone().into()]);
        }
        let run = common::command(env!("CARGO_BIN_EXE_attn")).args(&args).output().unwrap();
        assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
        let written = TensorFile::read(&out).unwrap();
        let tokens = written.i64s("tokens").unwrap();
        check(&tokens.data, &written.f32s("attention_weights").unwrap().data);
    }
}

#[test]
fn decode_reverses_digits_and_refuses_unknown_tokens() {
    let run =
        attn(&["decode".as_ref(), "3".as_ref(), "1".as_ref(), "4".as_ref(), "1".as_ref(), "5".as_ref(), "9".as_ref()]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    assert_eq!(String::from_utf8_lossy(&run.stdout).lines().next(), Some("9 5 1 4 1 3"));
    let run = attn(&["decode".as_ref(), "3".as_ref(), "x".as_ref()]);
    assert_eq!(run.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(stderr.lines().count(), 1);
    assert!(stderr.contains("unknown token `x`"), "{stderr}");
}

#[test]
fn demo_decodes_and_reports() {
    let run = attn(&["demo".as_ref(), "--seed".as_ref(), "7".as_ref(), "--count".as_ref(), "5".as_ref()]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(stdout.contains("exact match: 5/5"), "{stdout}");
    assert!(stdout.contains("decode time per token:"), "{stdout}");
    assert!(stdout.contains('█') || stdout.contains('▓'), "{stdout}");
}

#[test]
fn bench_json_is_one_document_with_every_field() {
    let args = ["bench", "--workload", "add-decode", "--samples", "5", "--json"];
    let run = common::command(env!("CARGO_BIN_EXE_attn")).args(args).output().unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(doc["threads"], 1);
    assert_eq!(doc["backend"], simd_attention::backend().name());
    let r = &doc["results"][0];
    assert_eq!(r["workload"], "add-decode");
    assert_eq!(r["samples"], 5);
    let (min, med, max) =
        (r["min_ms"].as_f64().unwrap(), r["median_ms"].as_f64().unwrap(), r["max_ms"].as_f64().unwrap());
    assert!(0.0 < min && min <= med && med <= max, "{r}");
    // The roofline of this core, and the work that places the workload under it.
    let (peak, bw) = (doc["roofline"]["fma_gflops"].as_f64().unwrap(), doc["roofline"]["read_gbs"].as_f64().unwrap());
    assert!(peak > 0.1 && bw > 0.1, "{doc}");
    assert_eq!(r["flop"].as_f64(), Some(21_702_016.0), "{r}");
    assert!(r["bytes"].is_null(), "{r}");
    let bad = common::command(env!("CARGO_BIN_EXE_attn")).args(["bench", "--workload", "warp"]).output().unwrap();
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn bench_draws_the_roofline_and_refuses_a_bad_plot_path() {
    let dir = Scratch::new("bench-plot");
    let chart = dir.path("roofline.svg");
    let args = ["bench", "--workload", "sdpa-decode,seq2seq-token-b1", "--samples", "5", "--json", "--plot"];
    let run = common::command(env!("CARGO_BIN_EXE_attn")).args(args).arg(&chart).output().unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    let (decode, token) = (&doc["results"][0], &doc["results"][1]);
    // sdpa-decode reads 64 heads of K and V (4096 × 128) and the query, once.
    assert_eq!(decode["bytes"].as_f64(), Some(4.0 * (64 * (1 + 2 * 4096) * 128) as f64), "{decode}");
    assert!(decode["flop"].is_null() && token["bytes"].is_null(), "{doc}");
    assert!(token["flop"].as_f64().unwrap() > 1e5, "{token}");
    let svg = std::fs::read_to_string(&chart).unwrap();
    assert!(svg.contains("sdpa-decode") && svg.contains("FMA peak"), "{svg:.200}");

    let bad = dir.path("roofline.gif");
    let run = common::command(env!("CARGO_BIN_EXE_attn")).args(["bench", "--plot"]).arg(&bad).output().unwrap();
    assert_eq!(run.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("unsupported extension `.gif`") && stderr.lines().count() == 1, "{stderr}");
    assert!(!bad.exists());
}

/// The q8 case's refusals: a scale tensor missing or of the wrong shape, an
/// unknown block, a non-finite scale, and an I8 query.
#[test]
fn bad_q8_cases_are_refused_with_status_2_and_no_output() {
    let dir = Scratch::new("cli-q8-refused");
    let out = dir.path("refused.safetensors");
    let bytes = std::fs::read(data("sdpa-q8-decode")).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let meta = header.metadata().clone().unwrap();
    // Rewrites the case with `edit` applied to its (name, dtype, shape, bytes) list.
    type Tensors = Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)>;
    let variant = |name: &str, edit: &dyn Fn(&mut Tensors, &mut std::collections::HashMap<String, String>)| {
        let mut tensors: Tensors =
            file.tensors().into_iter().map(|(n, t)| (n, t.dtype(), t.shape().to_vec(), t.data().to_vec())).collect();
        let mut meta = meta.clone();
        edit(&mut tensors, &mut meta);
        let views: Vec<_> = tensors
            .iter()
            .map(|(n, d, s, b)| (n.as_str(), safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap()))
            .collect();
        let path = dir.path(name);
        std::fs::write(&path, safetensors::serialize(views, Some(meta)).unwrap()).unwrap();
        path
    };
    let no_scale = variant("no-scale.safetensors", &|t, _| t.retain(|(n, ..)| n != "key_scale"));
    refused(&no_scale, &out, "missing tensor `key_scale`");
    let bad_shape = variant("bad-shape.safetensors", &|t, _| {
        let scale = t.iter_mut().find(|(n, ..)| n == "key_scale").unwrap();
        scale.2 = vec![1, 4, 100, 4];
    });
    refused(&bad_shape, &out, "tensor `key_scale`: expected shape (1, 4, 200, 2)");
    let bad_block = variant("bad-block.safetensors", &|_, m| {
        m.insert("block".into(), "16".into());
    });
    refused(&bad_block, &out, "metadata `block`");
    let nan_scale = variant("nan-scale.safetensors", &|t, _| {
        let scale = t.iter_mut().find(|(n, ..)| n == "value_scale").unwrap();
        scale.3[8..12].copy_from_slice(&f32::NAN.to_le_bytes());
    });
    refused(&nan_scale, &out, "tensor `value_scale`: scale 2 is NaN, not finite");
    let i8_query = variant("i8-query.safetensors", &|t, _| {
        let q = t.iter_mut().find(|(n, ..)| n == "query").unwrap();
        q.1 = safetensors::Dtype::I8;
        q.3.truncate(q.3.len() / 4);
    });
    refused(&i8_query, &out, "tensor `query`: expected dtype F32, F64, BF16 or F16, found I8");
}
