//! `ScaledDotProductAttention` against PyTorch (golden cases, f32 and
//! bf16/f16/q8 K/V) and an f64 reference on the values as stored (proptest
//! over storage types, masks, both causal alignments, GQA and shapes that
//! cross tile and chunk edges), through both the FlashAttention (or
//! streaming) path and the weights path.

mod common;
use common::{Golden, assert_allclose, backends, reference};
use proptest::prelude::*;
use simd_attention::io::{StoredTensor, TensorFile};
use simd_attention::ops::{ScaledDotProductAttention, SdpaInputs, SdpaMask, SdpaShape, TILE_KEYS, TILE_QUERIES};
use simd_attention::simd::with_backend;
use simd_attention::storage::Storage;

#[derive(Clone, Debug)]
enum MaskData {
    None,
    Causal,
    CausalLowerRight,
    Keep(Vec<bool>, usize, usize),
    Additive(Vec<f32>, usize, usize),
}

impl MaskData {
    fn as_mask(&self) -> SdpaMask<'_> {
        match self {
            MaskData::None => SdpaMask::None,
            MaskData::Causal => SdpaMask::Causal,
            MaskData::CausalLowerRight => SdpaMask::CausalLowerRight,
            MaskData::Keep(m, batch, heads) => SdpaMask::Keep { mask: m, batch: *batch, heads: *heads },
            MaskData::Additive(m, batch, heads) => SdpaMask::Additive { mask: m, batch: *batch, heads: *heads },
        }
    }
}

#[derive(Clone, Debug)]
struct Case {
    shape: SdpaShape,
    query: StoredTensor,
    key: StoredTensor,
    value: StoredTensor,
    mask: MaskData,
    scale: Option<f32>,
}

impl Case {
    /// The output through the flash path and through the weights path.
    fn run(&self) -> (Vec<f32>, Vec<f32>) {
        let s = &self.shape;
        let op = ScaledDotProductAttention { scale: self.scale };
        let n_out = s.batch * s.q_heads * s.q_len * s.v_dim;
        let mut flash = vec![f32::NAN; n_out];
        let inputs = SdpaInputs {
            query: self.query.as_stored(),
            key: self.key.as_stored(),
            value: self.value.as_stored(),
            mask: self.mask.as_mask(),
        };
        let mut ws = vec![f32::NAN; op.workspace_len(s, false).unwrap()];
        op.forward(s, inputs, &mut flash, None, &mut ws).unwrap();
        let mut direct = vec![f32::NAN; n_out];
        let mut weights = vec![f32::NAN; s.batch * s.q_heads * s.q_len * s.kv_len];
        let mut ws = vec![f32::NAN; op.workspace_len(s, true).unwrap()];
        op.forward(s, inputs, &mut direct, Some(&mut weights), &mut ws).unwrap();
        (flash, direct)
    }

    fn reference(&self) -> Vec<f64> {
        let s = &self.shape;
        let dims = [s.batch, s.q_heads, s.kv_heads, s.q_len, s.kv_len, s.qk_dim, s.v_dim];
        let scale = self.scale.map_or(1.0 / (s.qk_dim as f64).sqrt(), |x| x as f64);
        let at = |batch: usize, heads: usize, b: usize, h: usize, i: usize, j: usize| {
            let (b, h) = (if batch == 1 { 0 } else { b }, if heads == 1 { 0 } else { h });
            ((b * heads + h) * s.q_len + i) * s.kv_len + j
        };
        let allowed = |b, h, i, j| match &self.mask {
            MaskData::Causal => j <= i,
            MaskData::CausalLowerRight => j + s.q_len <= i + s.kv_len,
            MaskData::Keep(m, batch, heads) => m[at(*batch, *heads, b, h, i, j)],
            _ => true,
        };
        let bias = |b, h, i, j| match &self.mask {
            MaskData::Additive(m, batch, heads) => m[at(*batch, *heads, b, h, i, j)] as f64,
            _ => 0.0,
        };
        let (q, k, v) = (self.query.widened(s.qk_dim), self.key.widened(s.qk_dim), self.value.widened(s.v_dim));
        reference::sdpa(dims, &q, &k, &v, scale, allowed, bias)
    }
}

fn golden(name: &str) -> (Case, Vec<f32>) {
    let g = Golden::load(name);
    let (q, k, v) = (g.shape("query"), g.shape("key"), g.shape("value"));
    let shape =
        SdpaShape { batch: q[0], q_heads: q[1], kv_heads: k[1], q_len: q[2], kv_len: k[2], qk_dim: q[3], v_dim: v[3] };
    let mask = match (g.meta("mask").as_deref(), g.meta("is_causal").as_deref()) {
        (_, Some("true")) => MaskData::Causal,
        (Some("bool"), _) => {
            let dims = g.shape("attn_mask");
            let st = safetensors::SafeTensors::deserialize(
                &std::fs::read(format!("{}/tests/data/{name}.safetensors", env!("CARGO_MANIFEST_DIR"))).unwrap(),
            )
            .unwrap()
            .tensor("attn_mask")
            .unwrap()
            .data()
            .iter()
            .map(|&b| b != 0)
            .collect();
            MaskData::Keep(st, dims[0], dims[1])
        }
        (Some("float"), _) => {
            let dims = g.shape("attn_mask");
            MaskData::Additive(g.f32s("attn_mask"), dims[0], dims[1])
        }
        _ => MaskData::None,
    };
    let scale = g.meta("scale").map(|s| s.parse().unwrap());
    // K and V (and the query) at their stored precision, through the
    // library's own loader.
    let file =
        TensorFile::read(format!("{}/tests/data/{name}.safetensors", env!("CARGO_MANIFEST_DIR")).as_ref()).unwrap();
    let [query, key, value] =
        [("query", false), ("key", true), ("value", true)].map(|(t, q8)| file.stored(t, q8).unwrap().1);
    let case = Case { shape, query, key, value, mask, scale };
    (case, g.f32s("expected.output"))
}

#[test]
fn golden_pytorch_cases_on_every_backend() {
    let reduced = ["sdpa-bf16-all-bf16", "sdpa-bf16-decode", "sdpa-f16-bool", "sdpa-q8-decode", "sdpa-q8-odd-dims"];
    for name in ["sdpa-plain", "sdpa-bool-mask", "sdpa-causal", "sdpa-gqa-scale"].into_iter().chain(reduced) {
        let (case, want) = golden(name);
        for backend in backends() {
            let (flash, direct) = with_backend(backend, || case.run()).unwrap();
            assert_allclose(&flash, &want, 5e-5, 1e-4, &format!("{name} flash on {backend}"));
            assert_allclose(&direct, &want, 5e-5, 1e-4, &format!("{name} with weights on {backend}"));
        }
    }
}

/// A storage type: any of the four for K and V, no q8 for the query.
fn arb_storage(kv: bool) -> impl Strategy<Value = Storage> {
    let float = prop_oneof![Just(Storage::F32), Just(Storage::Bf16), Just(Storage::F16)];
    if kv { prop_oneof![3 => float, 1 => Just(Storage::Q8)].boxed() } else { float.boxed() }
}

fn arb_case() -> impl Strategy<Value = Case> {
    let lens = prop_oneof![1usize..9, Just(TILE_QUERIES), TILE_KEYS - 1..TILE_KEYS + 70];
    // Flash rows cross several key tiles; decoding rows (few queries) stream
    // keys in chunks of 4096 on 64-bit hosts: cross a chunk boundary too.
    let lens = prop_oneof![
        3 => (lens.clone(), lens.clone()),
        1 => (lens, 1020usize..1030),
        1 => (1usize..6, 4090usize..4110)
    ];
    let storages = (arb_storage(false), arb_storage(true));
    let dims = (0usize..9, prop_oneof![3 => 1usize..7, 1 => 30usize..40]);
    (1usize..3, 1usize..4, 1usize..3, lens, dims, 0usize..6, storages).prop_flat_map(
        |(batch, kv_heads, group, (q_len, kv_len), (e, ev), mask_kind, (q_storage, kv_storage))| {
            let q_heads = kv_heads * group;
            let shape = SdpaShape { batch, q_heads, kv_heads, q_len, kv_len, qk_dim: e, v_dim: ev };
            // Mostly ordinary values, with zeros and values that are
            // subnormal in bf16 or f16.
            let value = prop_oneof![8 => -2.0f32..2.0, 1 => Just(0.0f32), 1 => -1e-6f32..1e-6, 1 => -1e-39f32..1e-39];
            let v = move |n: usize| prop::collection::vec(value.clone(), n);
            let mask_heads = if mask_kind % 2 == 0 { 1 } else { q_heads };
            let per = mask_heads * q_len * kv_len;
            let mask = match mask_kind {
                0 => Just(MaskData::None).boxed(),
                1 => Just(MaskData::Causal).boxed(),
                5 => Just(MaskData::CausalLowerRight).boxed(),
                2 | 3 => prop::collection::vec(prop::bool::weighted(0.8), batch * per)
                    .prop_map(move |m| MaskData::Keep(m, batch, mask_heads))
                    .boxed(),
                _ => prop::collection::vec(prop_oneof![4 => -2.0f32..2.0, 1 => Just(f32::NEG_INFINITY)], per)
                    .prop_map(move |m| MaskData::Additive(m, 1, mask_heads))
                    .boxed(),
            };
            let scale = prop_oneof![Just(None), (0.05f32..1.0).prop_map(Some)];
            (
                v(batch * q_heads * q_len * e),
                v(batch * kv_heads * kv_len * e),
                v(batch * kv_heads * kv_len * ev),
                mask,
                scale,
            )
                .prop_map(move |(query, key, value, mask, scale)| Case {
                    shape,
                    query: StoredTensor::from_f32(&query, e, q_storage).unwrap(),
                    key: StoredTensor::from_f32(&key, e, kv_storage).unwrap(),
                    value: StoredTensor::from_f32(&value, ev, kv_storage).unwrap(),
                    mask,
                    scale,
                })
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(120))]

    #[test]
    fn matches_f64_reference(case in arb_case()) {
        let want = case.reference();
        for backend in backends() {
            let (flash, direct) = with_backend(backend, || case.run()).unwrap();
            for (i, &w) in want.iter().enumerate() {
                for (path, got) in [("flash", flash[i]), ("weights", direct[i])] {
                    prop_assert!((got as f64 - w).abs() <= 5e-5 + 1e-4 * w.abs(), "{} on {}: out[{}] {} vs {}", path, backend, i, got, w);
                }
            }
        }
    }
}

/// ±inf and NaN stored in bf16 or f16 K (or V) reach the output as the f64
/// reference on the same values has them: the same NaN and infinite
/// entries, on every path and backend, and the finite ones within
/// tolerance. No mask, so that no weight is exactly 0 (`0 · inf` is NaN in
/// every engine that multiplies masked weights, PyTorch's included, while
/// the reference skips masked keys).
#[test]
fn non_finite_half_values_propagate_as_in_the_reference() {
    let specials = [f32::INFINITY, f32::NEG_INFINITY, f32::NAN];
    let mut rng = common::Rng(11);
    for storage in [Storage::Bf16, Storage::F16] {
        for in_keys in [true, false] {
            for (q_len, kv_len) in [(1, 4200), (3, 40), (70, 300)] {
                let shape = SdpaShape { batch: 1, q_heads: 2, kv_heads: 1, q_len, kv_len, qk_dim: 9, v_dim: 5 };
                let mut v = |n: usize| (0..n).map(|_| rng.unit() * 4.0 - 2.0).collect::<Vec<f32>>();
                let query = v(2 * q_len * 9);
                let (mut key, mut value) = (v(kv_len * 9), v(kv_len * 5));
                let target = if in_keys { &mut key } else { &mut value };
                for (i, &x) in specials.iter().enumerate() {
                    let at = (i * 7919 + 13) % target.len();
                    target[at] = x;
                }
                let case = Case {
                    shape,
                    query: StoredTensor::F32(query),
                    key: StoredTensor::from_f32(&key, 9, storage).unwrap(),
                    value: StoredTensor::from_f32(&value, 5, storage).unwrap(),
                    mask: MaskData::None,
                    scale: None,
                };
                let want = case.reference();
                assert!(want.iter().any(|w| !w.is_finite()), "the specials reached no output");
                for backend in backends() {
                    let (flash, direct) = with_backend(backend, || case.run()).unwrap();
                    for (path, got) in [("flash", &flash), ("weights", &direct)] {
                        for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
                            let ok = if w.is_nan() {
                                g.is_nan()
                            } else if w.is_infinite() {
                                g as f64 == w
                            } else {
                                (g as f64 - w).abs() <= 5e-5 + 1e-4 * w.abs()
                            };
                            assert!(
                                ok,
                                "{storage:?} specials in {} ({q_len}x{kv_len}), {path} on {backend}: out[{i}] {g} vs {w}",
                                if in_keys { "keys" } else { "values" }
                            );
                        }
                    }
                }
            }
        }
    }
}

/// Both paths of `case` on every backend, within the golden tolerance of
/// the f64 reference.
fn assert_near_reference(case: &Case, label: &str) {
    let want = case.reference();
    for backend in backends() {
        let (flash, direct) = with_backend(backend, || case.run()).unwrap();
        for (path, got) in [("decode", &flash), ("weights", &direct)] {
            for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (g as f64 - w).abs() <= 5e-5 + 1e-4 * w.abs(),
                    "{label}, {path} on {backend}: out[{i}] {g} vs {w}"
                );
            }
        }
    }
}

/// q8 decoding at the common head widths (64, 128, 256) and an odd one
/// (96), over key counts whose runs end mid-step and mid-chunk, with
/// scattered masks and peaked softmaxes: the f64 reference on every
/// backend. Then scales the quantizer never writes but the format allows:
/// a negative one, and a block of zeros (scale 0).
#[test]
fn q8_decode_matches_the_reference_at_common_head_widths() {
    let mut rng = common::Rng(29);
    let shapes = [(64, 1029), (128, 4096), (128, 37), (256, 4100), (96, 100), (128, 8208)];
    for (case_index, (ev, kv_len)) in shapes.into_iter().enumerate() {
        for variant in 0..4 {
            let shape = SdpaShape { batch: 1, q_heads: 2, kv_heads: 1, q_len: 1, kv_len, qk_dim: 16, v_dim: ev };
            let peak = if variant == 1 { 6.0 } else { 1.0 };
            let mut v = |n: usize, k: f32| (0..n).map(|_| (rng.unit() * 4.0 - 2.0) * k).collect::<Vec<f32>>();
            let (query, key, value) = (v(2 * 16, peak), v(kv_len * 16, 1.0), v(kv_len * ev, 1.0));
            let mut value = StoredTensor::from_f32(&value, ev, Storage::Q8).unwrap();
            if let StoredTensor::Q8 { values, scales } = &mut value {
                match variant {
                    // A negative scale (its values negated: the same numbers).
                    2 => {
                        scales[5] = -scales[5];
                        let width = ev.div_ceil(32);
                        let (row, block) = (5 / width, 5 % width);
                        for q in &mut values[row * ev + 32 * block..(row * ev + 32 * block + 32).min((row + 1) * ev)] {
                            *q = q.saturating_neg();
                        }
                    }
                    // A block of zeros, as the quantizer stores one.
                    3 => {
                        scales[7] = 0.0;
                    }
                    _ => {}
                }
            }
            let mask = if variant == 0 && case_index % 2 == 0 {
                MaskData::Keep((0..kv_len).map(|j| j % 11 != 4).collect(), 1, 1)
            } else {
                MaskData::None
            };
            let case = Case {
                shape,
                query: StoredTensor::F32(query),
                key: StoredTensor::from_f32(&key, 16, Storage::Q8).unwrap(),
                value,
                mask,
                scale: None,
            };
            assert_near_reference(&case, &format!("Ev {ev}, S {kv_len}, variant {variant}"));
        }
    }
}

/// q8 keys at the widths the decode scores in int32 where the CPU has
/// AVX-512 VNNI (`kernels::q8_key_pass`: 64, 128, 192 and 256) and one it
/// leaves to the f32 pass (96), over key counts that fill whole groups of
/// 16 rows, end mid-group and cross a chunk: the f64 reference on every
/// backend. The queries: ordinary, peaked, with a block of zeros beside a
/// block a thousand times smaller, scaled down to 2⁻⁸³ (still in fixed
/// point) and to 2⁻¹¹⁰ (the f32 pass). The keys: bytes at -128 and 127,
/// a negative scale and a block of zeros.
#[test]
fn q8_keys_match_the_reference_at_the_integer_pass_widths() {
    let mut rng = common::Rng(31);
    let shapes = [(64, 1029), (128, 4100), (128, 16), (128, 37), (192, 100), (256, 515), (96, 100)];
    for (e, kv_len) in shapes {
        for variant in 0..6 {
            let shape = SdpaShape { batch: 1, q_heads: 2, kv_heads: 1, q_len: 1, kv_len, qk_dim: e, v_dim: 24 };
            let mut v = |n: usize, k: f32| (0..n).map(|_| (rng.unit() * 4.0 - 2.0) * k).collect::<Vec<f32>>();
            let mut query = v(2 * e, if variant == 1 { 6.0 } else { 1.0 });
            let (key, value) = (v(kv_len * e, 1.0), v(kv_len * 24, 1.0));
            match variant {
                2 => {
                    query[..32].fill(0.0);
                    query[32..64].iter_mut().for_each(|q| *q *= 1e-3);
                }
                3 => query.iter_mut().for_each(|q| *q *= 2f32.powi(-83)),
                4 => query.iter_mut().for_each(|q| *q *= 2f32.powi(-110)),
                _ => {}
            }
            let mut key = StoredTensor::from_f32(&key, e, Storage::Q8).unwrap();
            if let (5, StoredTensor::Q8 { values, scales }) = (variant, &mut key) {
                for (j, q) in values.iter_mut().enumerate() {
                    if j % 7 == 0 {
                        *q = if j % 2 == 0 { -128 } else { 127 };
                    }
                }
                scales[3] = -scales[3];
                scales[10] = 0.0;
            }
            let case = Case {
                shape,
                query: StoredTensor::F32(query),
                key,
                value: StoredTensor::from_f32(&value, 24, Storage::Q8).unwrap(),
                mask: MaskData::None,
                scale: None,
            };
            assert_near_reference(&case, &format!("E {e}, S {kv_len}, variant {variant}"));
        }
    }
}
