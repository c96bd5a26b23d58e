//! Puts `memory.x` on the linker's path, and turns the demo model and the
//! golden cases (`tests/data/*.safetensors`) into static arrays in flash:
//! the firmware has no filesystem.
//!
//! Each file becomes one `Case` (see `src/golden.rs`): its metadata and its
//! tensors by name, each with its shape and its values in the stored type.
//! The model's GRU and dense weights are written transposed, `(in, out)`
//! with the suffix `.T`, the layout a decoder step reads in place
//! (`Weight::Columns`); the host loader transposes them once at load time,
//! the firmware has it done here, so that no RAM holds a copy.

use safetensors::{Dtype, SafeTensors};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The model, then every golden case the firmware checks.
const FILES: [&str; 12] = [
    "reverse-bahdanau",
    "seq2seq-reverse-decode",
    "additive-lens1d-edges",
    "additive-lens2d",
    "sdpa-plain",
    "sdpa-causal",
    "sdpa-bool-mask",
    "sdpa-gqa-scale",
    "sdpa-f16-bool",
    "sdpa-bf16-all-bf16",
    "sdpa-bf16-decode",
    "sdpa-q8-decode",
];

/// Model tensors stored transposed (`Weight::Columns`).
fn transposed(name: &str) -> bool {
    name.contains(".rnn.") && name.contains(".weight_") || name == "decoder.dense.weight"
}

fn main() {
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    std::fs::copy("memory.x", out.join("memory.x")).unwrap();
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory.x");

    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data");
    let mut code = String::new();
    for (i, file) in FILES.iter().enumerate() {
        let path = data.join(format!("{file}.safetensors"));
        println!("cargo:rerun-if-changed={}", path.display());
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        write_case(&mut code, i, file, &bytes);
    }
    let ident = |f: &str| f.replace('-', "_").to_uppercase();
    let cases: Vec<String> = FILES[1..].iter().map(|f| format!("&{}", ident(f))).collect();
    writeln!(code, "pub static ALL_CASES: [&Case; {}] = [{}];", cases.len(), cases.join(", ")).unwrap();
    std::fs::write(out.join("golden_data.rs"), code).unwrap();
}

fn write_case(code: &mut String, index: usize, file: &str, bytes: &[u8]) {
    let (_, header) = SafeTensors::read_metadata(bytes).unwrap();
    let tensors = SafeTensors::deserialize(bytes).unwrap();
    let mut names: Vec<String> = tensors.names().into_iter().map(String::from).collect();
    names.sort();
    let mut entries = String::new();
    for (t, name) in names.iter().enumerate() {
        let view = tensors.tensor(name).unwrap();
        let (mut shape, raw) = (view.shape().to_vec(), view.data());
        let symbol = format!("CASE_{index}_T{t}");
        let (ty, variant, values) = match view.dtype() {
            Dtype::F32 => {
                let mut v: Vec<f32> = raw.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
                let mut name = name.to_string();
                if file == "reverse-bahdanau" && transposed(&name) {
                    let [rows, cols] = shape[..] else { panic!("{name}: not 2-D") };
                    v = (0..rows * cols).map(|i| v[(i % rows) * cols + i / rows]).collect();
                    shape = vec![cols, rows];
                    name.push_str(".T");
                }
                let lits: Vec<String> = v.iter().map(|&x| f32_literal(x)).collect();
                writeln!(entries, "    Tensor {{ name: {name:?}, shape: &{shape:?}, data: Data::F32(&{symbol}) }},")
                    .unwrap();
                ("f32", "", lits)
            }
            Dtype::BF16 | Dtype::F16 => {
                let bits = raw.chunks_exact(2).map(|b| format!("{:#x}", u16::from_le_bytes([b[0], b[1]]))).collect();
                let variant = if view.dtype() == Dtype::BF16 { "Bf16" } else { "F16" };
                ("u16", variant, bits)
            }
            Dtype::I8 => ("i8", "I8", raw.iter().map(|&b| (b as i8).to_string()).collect()),
            Dtype::U8 | Dtype::BOOL => ("u8", "U8", raw.iter().map(|b| b.to_string()).collect()),
            Dtype::I64 => (
                "i64",
                "I64",
                raw.chunks_exact(8).map(|b| i64::from_le_bytes(b.try_into().unwrap()).to_string()).collect(),
            ),
            other => panic!("{file}: {name}: unsupported dtype {other:?}"),
        };
        if !variant.is_empty() {
            writeln!(entries, "    Tensor {{ name: {name:?}, shape: &{shape:?}, data: Data::{variant}(&{symbol}) }},")
                .unwrap();
        }
        writeln!(code, "static {symbol}: [{ty}; {}] = [{}];", values.len(), values.join(",")).unwrap();
    }
    let mut meta: Vec<(String, String)> = header.metadata().clone().unwrap_or_default().into_iter().collect();
    meta.sort();
    let ident = file.replace('-', "_").to_uppercase();
    // Numeric metadata parsed here, so the firmware carries no float parser.
    let numbers: Vec<String> = meta
        .iter()
        .filter_map(|(k, v)| v.parse::<f32>().ok().map(|x| format!("({k:?}, {})", f32_literal(x))))
        .collect();
    writeln!(code, "pub static {ident}: Case = Case {{\n    name: {file:?},\n    meta: &{meta:?},").unwrap();
    writeln!(code, "    numbers: &[{}],", numbers.join(", ")).unwrap();
    writeln!(code, "    tensors: &[\n{entries}    ],\n}};").unwrap();
}

/// A Rust literal that reads back as exactly `x`.
fn f32_literal(x: f32) -> String {
    if x.is_nan() {
        "f32::NAN".into()
    } else if x.is_infinite() {
        if x > 0.0 { "f32::INFINITY".into() } else { "f32::NEG_INFINITY".into() }
    } else {
        // `{:?}` is the shortest decimal that round-trips; it always has a
        // `.` or an exponent, so it is an f32 literal.
        format!("{x:?}")
    }
}
