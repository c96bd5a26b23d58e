//! `ScaledDotProductAttention` against PyTorch (golden cases) and an f64
//! reference (proptest over masks, causal, GQA and shapes that cross tile
//! edges), through both the FlashAttention path and the weights path.

mod common;
use common::{Golden, assert_allclose, backends, reference};
use proptest::prelude::*;
use simd_attention::ops::{ScaledDotProductAttention, SdpaMask, SdpaShape, TILE_KEYS, TILE_QUERIES};
use simd_attention::simd::with_backend;

#[derive(Clone, Debug)]
enum MaskData {
    None,
    Causal,
    Keep(Vec<bool>, usize, usize),
    Additive(Vec<f32>, usize, usize),
}

impl MaskData {
    fn as_mask(&self) -> SdpaMask<'_> {
        match self {
            MaskData::None => SdpaMask::None,
            MaskData::Causal => SdpaMask::Causal,
            MaskData::Keep(m, batch, heads) => SdpaMask::Keep { mask: m, batch: *batch, heads: *heads },
            MaskData::Additive(m, batch, heads) => SdpaMask::Additive { mask: m, batch: *batch, heads: *heads },
        }
    }
}

#[derive(Clone, Debug)]
struct Case {
    shape: SdpaShape,
    query: Vec<f32>,
    key: Vec<f32>,
    value: Vec<f32>,
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
        let mut ws = vec![f32::NAN; op.workspace_len(s, false).unwrap()];
        op.forward(s, &self.query, &self.key, &self.value, self.mask.as_mask(), &mut flash, None, &mut ws).unwrap();
        let mut direct = vec![f32::NAN; n_out];
        let mut weights = vec![f32::NAN; s.batch * s.q_heads * s.q_len * s.kv_len];
        op.forward(
            s,
            &self.query,
            &self.key,
            &self.value,
            self.mask.as_mask(),
            &mut direct,
            Some(&mut weights),
            &mut [],
        )
        .unwrap();
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
            MaskData::Keep(m, batch, heads) => m[at(*batch, *heads, b, h, i, j)],
            _ => true,
        };
        let bias = |b, h, i, j| match &self.mask {
            MaskData::Additive(m, batch, heads) => m[at(*batch, *heads, b, h, i, j)] as f64,
            _ => 0.0,
        };
        reference::sdpa(dims, &self.query, &self.key, &self.value, scale, allowed, bias)
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
    let case = Case { shape, query: g.f32s("query"), key: g.f32s("key"), value: g.f32s("value"), mask, scale };
    (case, g.f32s("expected.output"))
}

#[test]
fn golden_pytorch_cases_on_every_backend() {
    for name in ["sdpa-plain", "sdpa-bool-mask", "sdpa-causal", "sdpa-gqa-scale"] {
        let (case, want) = golden(name);
        for backend in backends() {
            let (flash, direct) = with_backend(backend, || case.run()).unwrap();
            assert_allclose(&flash, &want, 5e-5, 1e-4, &format!("{name} flash on {backend}"));
            assert_allclose(&direct, &want, 5e-5, 1e-4, &format!("{name} with weights on {backend}"));
        }
    }
}

fn arb_case() -> impl Strategy<Value = Case> {
    let lens = prop_oneof![1usize..9, Just(TILE_QUERIES), TILE_KEYS - 1..TILE_KEYS + 70];
    // Decoding rows stream keys in chunks of 512: cross a chunk boundary too.
    let kv_lens = prop_oneof![3 => lens.clone(), 1 => 1020usize..1030];
    (1usize..3, 1usize..4, 1usize..3, lens, kv_lens, 0usize..9, 1usize..7, 0usize..5).prop_flat_map(
        |(batch, kv_heads, group, q_len, kv_len, e, ev, mask_kind)| {
            let q_heads = kv_heads * group;
            let shape = SdpaShape { batch, q_heads, kv_heads, q_len, kv_len, qk_dim: e, v_dim: ev };
            let v = |n: usize| prop::collection::vec(-2.0f32..2.0, n);
            let mask_heads = if mask_kind % 2 == 0 { 1 } else { q_heads };
            let per = mask_heads * q_len * kv_len;
            let mask = match mask_kind {
                0 => Just(MaskData::None).boxed(),
                1 => Just(MaskData::Causal).boxed(),
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
                    query,
                    key,
                    value,
                    mask,
                    scale,
                })
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(60))]

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
