//! Hostile case files through `attn run`: each is refused with status 2,
//! one line on stderr naming the problem, and no output file; inputs that
//! are valid but extreme succeed with the right numbers.
#![cfg(feature = "cli")]

mod common;
use common::{Golden, Scratch};
use safetensors::{Dtype, tensor::TensorView};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// A tensor to write: name, dtype, shape and raw little-endian bytes.
struct T(&'static str, Dtype, Vec<usize>, Vec<u8>);

fn f32s(name: &'static str, shape: &[usize], values: impl Fn(usize) -> f32) -> T {
    let n: usize = shape.iter().product();
    T(name, Dtype::F32, shape.to_vec(), (0..n).flat_map(|i| values(i).to_le_bytes()).collect())
}

fn i64s(name: &'static str, shape: &[usize], values: &[i64]) -> T {
    T(name, Dtype::I64, shape.to_vec(), values.iter().flat_map(|v| v.to_le_bytes()).collect())
}

fn write(dir: &Scratch, name: &str, meta: &[(&str, &str)], tensors: &[T]) -> PathBuf {
    let views: Vec<_> = tensors.iter().map(|T(n, d, s, b)| (*n, TensorView::new(*d, s.clone(), b).unwrap())).collect();
    let meta: HashMap<String, String> = meta.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let path = dir.path(name);
    std::fs::write(&path, safetensors::serialize(views, Some(meta)).unwrap()).unwrap();
    path
}

fn run(input: &Path, output: &Path) -> std::process::Output {
    common::command(env!("CARGO_BIN_EXE_attn")).arg("run").arg(input).arg("-o").arg(output).output().unwrap()
}

fn refused(dir: &Scratch, input: &Path, needle: &str) {
    let out = dir.path("out.safetensors");
    let run = run(input, &out);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{}: {stderr}", input.display());
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains(needle), "{stderr} lacks `{needle}`");
    assert!(!out.exists());
}

/// A valid dot-product case (B=2, Q=3, K=4, d=5) with optional replacements.
fn dot_case(dir: &Scratch, name: &str, replace: Vec<T>, meta: &[(&str, &str)]) -> PathBuf {
    let mut tensors = vec![
        f32s("queries", &[2, 3, 5], |i| (i as f32 * 0.37).sin()),
        f32s("keys", &[2, 4, 5], |i| (i as f32 * 0.11).cos()),
        f32s("values", &[2, 4, 5], |i| i as f32 * 0.01),
        i64s("valid_lens", &[2], &[2, 4]),
    ];
    for r in replace {
        tensors.retain(|t| t.0 != r.0);
        tensors.push(r);
    }
    let mut all_meta = vec![("kind", "dot")];
    all_meta.extend_from_slice(meta);
    write(dir, name, &all_meta, &tensors)
}

#[test]
fn malformed_files_are_refused() {
    let dir = Scratch::new("hostile-malformed");
    let valid = std::fs::read(dot_case(&dir, "valid.safetensors", vec![], &[])).unwrap();
    let truncated = dir.path("truncated.safetensors");
    std::fs::write(&truncated, &valid[..valid.len() - 7]).unwrap();
    refused(&dir, &truncated, "not a valid safetensors file");
    let random = dir.path("random.safetensors");
    std::fs::write(&random, (0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect::<Vec<_>>())
        .unwrap();
    refused(&dir, &random, "not a valid safetensors file");
    let huge_header = dir.path("huge-header.safetensors");
    let mut bytes = (1u64 << 62).to_le_bytes().to_vec();
    bytes.extend_from_slice(b"{}");
    std::fs::write(&huge_header, bytes).unwrap();
    refused(&dir, &huge_header, "not a valid safetensors file");
    // A header whose shape multiplies past usize.
    let header = r#"{"queries":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,4]}}"#;
    let overflow = dir.path("overflow.safetensors");
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(&[0; 4]);
    std::fs::write(&overflow, bytes).unwrap();
    refused(&dir, &overflow, "not a valid safetensors file");
}

#[test]
fn wrong_content_is_refused() {
    let dir = Scratch::new("hostile-wrong-content");
    refused(
        &dir,
        &write(&dir, "no-kind.safetensors", &[], &[f32s("queries", &[1, 1, 1], |_| 0.0)]),
        "metadata `kind`: missing",
    );
    refused(
        &dir,
        &dot_case(&dir, "int-queries.safetensors", vec![i64s("queries", &[2, 3, 5], &[1; 30])], &[]),
        "tensor `queries`: expected dtype",
    );
    refused(
        &dir,
        &dot_case(&dir, "float-lens.safetensors", vec![f32s("valid_lens", &[2], |_| 2.0)], &[]),
        "tensor `valid_lens`: expected dtype",
    );
    refused(
        &dir,
        &dot_case(&dir, "negative-lens.safetensors", vec![i64s("valid_lens", &[2], &[2, -1])], &[]),
        "negative length",
    );
    refused(
        &dir,
        &dot_case(&dir, "lens-shape.safetensors", vec![i64s("valid_lens", &[3], &[1, 2, 3])], &[]),
        "tensor `valid_lens`: expected shape (2)",
    );
    refused(
        &dir,
        &dot_case(&dir, "key-len.safetensors", vec![f32s("values", &[2, 3, 5], |_| 0.0)], &[]),
        "tensor `values`: expected shape (2, 4, _)",
    );
    refused(
        &dir,
        &dot_case(&dir, "width.safetensors", vec![f32s("keys", &[2, 4, 6], |_| 0.0)], &[]),
        "`shape.key_dim`: expected dimension 5, got 6",
    );
    let mha = |heads: &'static str| {
        let w = |n: &'static str, out: usize, inp: usize| f32s(n, &[out, inp], |i| (i % 7) as f32 * 0.1);
        write(
            &dir,
            "mha-heads.safetensors",
            &[("kind", "mha"), ("num_heads", heads), ("num_hiddens", "16"), ("bias", "false")],
            &[
                f32s("queries", &[1, 2, 8], |_| 0.5),
                f32s("keys", &[1, 3, 8], |_| 0.5),
                f32s("values", &[1, 3, 8], |_| 0.5),
                w("W_q.weight", 16, 8),
                w("W_k.weight", 16, 8),
                w("W_v.weight", 16, 8),
                w("W_o.weight", 16, 16),
            ],
        )
    };
    refused(&dir, &mha("3"), "`num_heads`: expected dimension 16, got 3");
    refused(&dir, &mha("x"), "metadata `num_heads`: not a whole number");
}

#[test]
fn extreme_but_valid_inputs_give_the_right_numbers() {
    let dir = Scratch::new("hostile-extreme");
    // NaN in one query row: that output row is NaN, no other.
    let nan_row = dot_case(
        &dir,
        "nan-row.safetensors",
        vec![f32s("queries", &[2, 3, 5], |i| if i / 5 == 4 { f32::NAN } else { 0.3 })],
        &[],
    );
    let out = dir.path("nan-out.safetensors");
    assert!(run(&nan_row, &out).status.success());
    let file = simd_attention::io::TensorFile::read(&out).unwrap();
    let output = file.f32s("output").unwrap().data;
    for (row, chunk) in output.chunks(5).enumerate() {
        assert_eq!(chunk.iter().all(|v| v.is_nan()), row == 4, "row {row}: {chunk:?}");
        assert!(row == 4 || chunk.iter().all(|v| v.is_finite()));
    }
    // ±1e30 inputs to additive attention: finite outputs.
    let g = Golden::load("additive-nomask");
    let shape = |n: &str| g.shape(n);
    let flip = |i: usize| if i.is_multiple_of(3) { 1e30 } else { -1e30 };
    let path = write(
        &dir,
        "additive-1e30.safetensors",
        &[("kind", "additive"), ("num_hiddens", "64")],
        &[
            f32s("queries", &shape("queries"), flip),
            f32s("keys", &shape("keys"), |i| flip(i + 1)),
            f32s("values", &shape("values"), |i| i as f32 * 1e-3),
            f32s("W_q.weight", &shape("W_q.weight"), |i| g.f32s("W_q.weight")[i]),
            f32s("W_k.weight", &shape("W_k.weight"), |i| g.f32s("W_k.weight")[i]),
            f32s("w_v.weight", &shape("w_v.weight"), |i| g.f32s("w_v.weight")[i]),
        ],
    );
    let out = dir.path("additive-1e30-out.safetensors");
    let run = run(&path, &out);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let file = simd_attention::io::TensorFile::read(&out).unwrap();
    assert!(file.f32s("output").unwrap().data.iter().all(|v| v.is_finite()));
    assert!(file.f32s("attention_weights").unwrap().data.iter().all(|v| v.is_finite()));
}

#[test]
fn huge_dimensions_from_a_small_file_are_refused() {
    let dir = Scratch::new("hostile-huge-dims");
    // Zero-width queries and keys name 2^40 weights in a few hundred bytes.
    let empty = |name: &'static str, shape: &[usize]| T(name, Dtype::F32, shape.to_vec(), Vec::new());
    let path = write(
        &dir,
        "huge-dims.safetensors",
        &[("kind", "dot")],
        &[empty("queries", &[1, 1 << 20, 0]), empty("keys", &[1, 1 << 20, 0]), empty("values", &[1, 1 << 20, 0])],
    );
    refused(&dir, &path, "exceed the limit");
    let g = Golden::load("seq2seq-reverse-decode");
    let src = i64s("src", &g.shape("src"), &g.lens("src").iter().map(|&t| t as i64).collect::<Vec<_>>());
    let lens = i64s(
        "src_valid_lens",
        &g.shape("src_valid_lens"),
        &g.lens("src_valid_lens").iter().map(|&t| t as i64).collect::<Vec<_>>(),
    );
    let steps = write(
        &dir,
        "huge-steps.safetensors",
        &[("kind", "seq2seq_decode"), ("num_steps", "1000000000000")],
        &[src, lens],
    );
    refused(&dir, &steps, "exceed the limit");
}
