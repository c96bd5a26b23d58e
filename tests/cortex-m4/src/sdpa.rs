//! Scaled dot-product attention on golden cases, K and V in f32, bf16,
//! f16 and q8 at their stored precision: heads of at most
//! `STREAM_MAX_QUERIES` queries take the streamed decode path, the others
//! the flash tiles. Output within 5e-5 + 1e-4·|expected|, as on the host.

use crate::check::{Failure, Tally, Usage, compare, take};
use crate::golden::{self, Case, Data};
use simd_attention::ops::{STREAM_MAX_QUERIES, ScaledDotProductAttention, SdpaInputs, SdpaMask, SdpaShape};
use simd_attention::storage::Stored;

/// Mask values this firmware has room for.
const MAX_MASK: usize = 256;

pub fn run(tally: &mut Tally, arena: &mut [f32]) {
    let cases = [
        &golden::SDPA_PLAIN,
        &golden::SDPA_CAUSAL,
        &golden::SDPA_BOOL_MASK,
        &golden::SDPA_GQA_SCALE,
        &golden::SDPA_F16_BOOL,
        &golden::SDPA_BF16_ALL_BF16,
        &golden::SDPA_BF16_DECODE,
        &golden::SDPA_Q8_DECODE,
    ];
    for case in cases {
        let streamed = case.shape("query").is_ok_and(|q| q.get(2).is_some_and(|&l| l <= STREAM_MAX_QUERIES));
        let mut line = [0u8; 48];
        tally.check(label(&mut line, case.name, streamed), || attend(case, arena));
    }
}

/// `<case> (stream|flash)`.
fn label<'a>(buf: &'a mut [u8; 48], name: &'a str, streamed: bool) -> &'a str {
    let path: &[u8] = if streamed { b" (stream)" } else { b" (flash)" };
    let n = name.len().min(buf.len() - path.len());
    buf[..n].copy_from_slice(&name.as_bytes()[..n]);
    buf[n..n + path.len()].copy_from_slice(path);
    core::str::from_utf8(&buf[..n + path.len()]).unwrap_or(name)
}

/// A tensor at its stored precision (I8 with its `<name>_scale`).
fn stored(case: &Case, name: &'static str, scale: &'static str) -> Result<Stored<'static>, Failure> {
    Ok(match case.tensor(name)?.data {
        Data::F32(v) => Stored::F32(v),
        Data::Bf16(v) => Stored::Bf16(golden::as_bf16(v)),
        Data::F16(v) => Stored::F16(golden::as_f16(v)),
        Data::I8(values) => Stored::Q8 { values, scales: case.f32s(scale)? },
        _ => return Err(Failure::Case(name)),
    })
}

fn attend(case: &Case, arena: &mut [f32]) -> Result<Usage, Failure> {
    let (q, k, v) = (case.shape("query")?, case.shape("key")?, case.shape("value")?);
    let shape =
        SdpaShape { batch: q[0], q_heads: q[1], kv_heads: k[1], q_len: q[2], kv_len: k[2], qk_dim: q[3], v_dim: v[3] };
    let mut keep = [false; MAX_MASK];
    let mask = match (case.meta("is_causal"), case.meta("mask")) {
        (Some("true"), _) => SdpaMask::Causal,
        (_, Some("bool")) => {
            let t = case.tensor("attn_mask")?;
            let (Data::U8(m), [batch, heads, ..]) = (t.data, t.shape) else { return Err(Failure::Case("attn_mask")) };
            let dst = keep.get_mut(..m.len()).ok_or(Failure::Case("attn_mask"))?;
            for (d, &b) in dst.iter_mut().zip(m) {
                *d = b != 0;
            }
            SdpaMask::Keep { mask: dst, batch: *batch, heads: *heads }
        }
        (_, Some("float")) => {
            let [batch, heads, ..] = case.shape("attn_mask")? else { return Err(Failure::Case("attn_mask")) };
            SdpaMask::Additive { mask: case.f32s("attn_mask")?, batch: *batch, heads: *heads }
        }
        _ => SdpaMask::None,
    };
    let op = ScaledDotProductAttention { scale: case.number("scale") };
    let inputs = SdpaInputs {
        query: stored(case, "query", "query_scale")?,
        key: stored(case, "key", "key_scale")?,
        value: stored(case, "value", "value_scale")?,
        mask,
    };
    let mut used = 0;
    let mut rest = &mut *arena;
    let out = take(&mut rest, shape.batch * shape.q_heads * shape.q_len * shape.v_dim, &mut used)?;
    let workspace = take(&mut rest, op.workspace_len(&shape, false)?, &mut used)?;
    op.forward(&shape, inputs, out, None, workspace)?;
    let max_error = compare("output", out, case.f32s("expected.output")?, 5e-5, 1e-4)?;
    Ok(Usage { max_error, scratch: used, stack: 0 })
}
