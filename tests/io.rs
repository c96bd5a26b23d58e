//! Loading by state-dict name: prefixes, dtype conversion (F64, F16, BF16
//! to f32), shape checks, and errors that name the tensor.

use safetensors::{Dtype, tensor::TensorView};
use simd_attention::io::{LoadError, TensorFile, params::AdditiveParams};

/// A file from `(name, dtype, shape, bytes)` entries.
fn file(entries: &[(&str, Dtype, Vec<usize>, Vec<u8>)]) -> TensorFile {
    let views: Vec<_> = entries.iter().map(|(n, d, s, b)| (*n, TensorView::new(*d, s.clone(), b).unwrap())).collect();
    TensorFile::from_bytes(safetensors::serialize(views, None).unwrap()).unwrap()
}

fn f64_bytes(x: &[f64]) -> Vec<u8> {
    x.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn f16_bytes(x: &[f32]) -> Vec<u8> {
    x.iter().flat_map(|&v| half::f16::from_f32(v).to_le_bytes()).collect()
}

fn bf16_bytes(x: &[f32]) -> Vec<u8> {
    x.iter().flat_map(|&v| half::bf16::from_f32(v).to_le_bytes()).collect()
}

#[test]
fn converts_f64_f16_bf16_under_a_prefix() {
    let w_q = [0.5f64, -1.25, 2.0, 0.125, 3.0, -0.75];
    let w_k = [1.5f32, -2.0, 0.25, 0.5];
    let w_v = [0.75f32, -0.5];
    let f = file(&[
        ("decoder.attention.W_q.weight", Dtype::F64, vec![2, 3], f64_bytes(&w_q)),
        ("decoder.attention.W_k.weight", Dtype::F16, vec![2, 2], f16_bytes(&w_k)),
        ("decoder.attention.w_v.weight", Dtype::BF16, vec![1, 2], bf16_bytes(&w_v)),
    ]);
    let p = AdditiveParams::load(&f, "decoder.attention.").unwrap();
    assert_eq!(p.w_q.data, w_q.map(|v| v as f32));
    assert_eq!(p.w_q.shape, [2, 3]);
    assert_eq!(p.w_k.data, w_k);
    assert_eq!(p.w_v.data, w_v);
    let attn = p.attention().unwrap();
    assert_eq!(attn.hidden(), 2);
}

#[test]
fn errors_name_the_tensor_and_the_mismatch() {
    let ok =
        |n: &str, s: Vec<usize>| (n.to_string(), Dtype::F32, s.clone(), vec![0u8; 4 * s.iter().product::<usize>()]);
    let build = |entries: Vec<(String, Dtype, Vec<usize>, Vec<u8>)>| {
        let e: Vec<_> = entries.iter().map(|(n, d, s, b)| (n.as_str(), *d, s.clone(), b.clone())).collect();
        file(&e)
    };
    let missing = build(vec![ok("w_v.weight", vec![1, 4]), ok("W_q.weight", vec![4, 3])]);
    assert_eq!(AdditiveParams::load(&missing, "").unwrap_err().to_string(), "missing tensor `W_k.weight`");
    let misshapen =
        build(vec![ok("w_v.weight", vec![1, 4]), ok("W_q.weight", vec![5, 3]), ok("W_k.weight", vec![4, 2])]);
    assert_eq!(
        AdditiveParams::load(&misshapen, "").unwrap_err().to_string(),
        "tensor `W_q.weight`: expected shape (4, _), found [5, 3]"
    );
    let ints = build(vec![("w_v.weight".into(), Dtype::I64, vec![1, 4], vec![0; 32])]);
    assert_eq!(
        AdditiveParams::load(&ints, "").unwrap_err().to_string(),
        "tensor `w_v.weight`: expected dtype F32, F64, F16 or BF16, found I64"
    );
    let negative = build(vec![(
        "valid_lens".into(),
        Dtype::I64,
        vec![2],
        [3i64, -1].iter().flat_map(|v| v.to_le_bytes()).collect(),
    )]);
    assert!(matches!(negative.lengths("valid_lens"), Err(LoadError::Value { .. })));
    assert!(matches!(TensorFile::from_bytes(vec![0xff; 3]), Err(LoadError::Format(_))));
}
