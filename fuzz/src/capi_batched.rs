//! d2l's batched operators through the C API (`simd_attention_dot_forward`,
//! `_bilinear_forward`, `_mha_forward`, `_additive_forward`) and
//! Nadaraya–Watson regression, every argument carved from the bytes:
//! lengths one off, NULL inputs and parameter descriptors, shapes that
//! overflow, mask kinds the operators do not take, parameters of the wrong
//! size, heads that do not divide the width, and weights written over the
//! output.
//!
//! It checks that no call crashes; that a refused one returns a negative
//! status and writes no output and no workspace; and that an accepted one
//! gives the bits of the Rust operator over the same slices.

use crate::{c_len, c_ptr, same_bits, size, values};
use arbitrary::Unstructured;
use simd_attention::capi::*;
use simd_attention::ops::{
    AdditiveAttention, Attention, AttentionInputs, AttentionShape, BilinearAttention, DotProductAttention, Linear,
    MhaDims, MultiHeadAttention, NadarayaWatson, ValidLens,
};

/// A `valid_lens` mask as C passes it: any kind (the causal and undefined
/// ones refused), a length now and then one off, `NULL` data or no mask.
struct LensMask {
    kind: simd_attention_mask_kind,
    lens: Vec<usize>,
    null: bool,
    absent: bool,
}

impl LensMask {
    fn carve(u: &mut Unstructured<'_>, s: &simd_attention_shape) -> LensMask {
        let kinds = [
            SIMD_ATTENTION_MASK_NONE,
            SIMD_ATTENTION_MASK_VALID_LENS,
            SIMD_ATTENTION_MASK_VALID_LENS_PER_QUERY,
            SIMD_ATTENTION_MASK_CAUSAL,
            9,
        ];
        let kind = kinds[if u.ratio(1u8, 8).unwrap_or(false) { 3 + size(u, 1) } else { size(u, 2) }];
        let rows = if kind == SIMD_ATTENTION_MASK_VALID_LENS { s.batch } else { s.batch.saturating_mul(s.queries) };
        let lens = (0..c_len(u, rows)).map(|_| size(u, s.keys.saturating_add(1).min(64))).collect();
        let null = u.ratio(1u8, 64).unwrap_or(false);
        let absent = kind == SIMD_ATTENTION_MASK_NONE && u.ratio(1u8, 2).unwrap_or(false);
        LensMask { kind, lens, null, absent }
    }

    fn c(&self) -> simd_attention_mask {
        let valid_lens = if self.null { core::ptr::null() } else { self.lens.as_ptr() };
        simd_attention_mask {
            kind: self.kind,
            valid_lens,
            keep: core::ptr::null(),
            additive: core::ptr::null(),
            len: self.lens.len(),
            batch: 0,
            heads: 0,
        }
    }

    /// The same mask in Rust, once C has taken it.
    fn rust(&self) -> ValidLens<'_> {
        match self.kind {
            SIMD_ATTENTION_MASK_VALID_LENS => ValidLens::PerBatch(&self.lens),
            SIMD_ATTENTION_MASK_VALID_LENS_PER_QUERY => ValidLens::PerQuery(&self.lens),
            _ => ValidLens::All,
        }
    }
}

/// A C buffer of about `needed` floats (see [`c_len`]).
fn carved(u: &mut Unstructured<'_>, needed: usize, finite: bool) -> Vec<f32> {
    let len = c_len(u, needed);
    values(u, len, finite)
}

/// One of the batched operators' forwards, or Nadaraya–Watson, carved and
/// checked against the Rust operator.
pub fn capi_batched(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let op = size(&mut u, 4);
    if op == 4 {
        return nadaraya_watson(&mut u);
    }
    let mut s = simd_attention_shape {
        batch: size(&mut u, 3),
        queries: size(&mut u, 5),
        keys: size(&mut u, 9),
        query_dim: size(&mut u, 6),
        key_dim: size(&mut u, 6),
        value_dim: size(&mut u, 5),
    };
    if op == 0 && u.ratio(1u8, 2).unwrap_or(false) {
        s.key_dim = s.query_dim;
    }
    if u.ratio(1u8, 32).unwrap_or(false) {
        s.batch = usize::MAX / 2 + size(&mut u, 3);
    }
    let rows = |n: usize, width: usize| s.batch.saturating_mul(n).saturating_mul(width);
    let queries = carved(&mut u, rows(s.queries, s.query_dim), false);
    let keys = carved(&mut u, rows(s.keys, s.key_dim), false);
    let vals = carved(&mut u, rows(s.keys, s.value_dim), false);
    let inputs = simd_attention_inputs {
        queries: c_ptr(&mut u, &queries),
        queries_len: queries.len(),
        keys: c_ptr(&mut u, &keys),
        keys_len: keys.len(),
        values: c_ptr(&mut u, &vals),
        values_len: vals.len(),
    };
    // The parameters, each of about the size the shape asks for.
    let (heads, hidden) = (size(&mut u, 3), size(&mut u, 6));
    let widths = [s.query_dim, s.key_dim, s.value_dim, hidden];
    let mats: Vec<Vec<f32>> = widths.iter().map(|&w| carved(&mut u, hidden.saturating_mul(w), true)).collect();
    let biases: Vec<Option<Vec<f32>>> =
        (0..4).map(|_| u.ratio(1u8, 2).unwrap_or(false).then(|| carved(&mut u, hidden, true))).collect();
    let linear = |i: usize| simd_attention_linear {
        weight: mats[i].as_ptr(),
        weight_len: mats[i].len(),
        bias: biases[i].as_ref().map_or(core::ptr::null(), |b| b.as_ptr()),
        bias_len: biases[i].as_ref().map_or(0, |b| b.len()),
    };
    let mha = simd_attention_mha_params {
        w_q: linear(0),
        w_k: linear(1),
        w_v: linear(2),
        w_o: linear(3),
        num_heads: heads,
        num_hiddens: hidden,
    };
    let w_a = carved(&mut u, s.query_dim.saturating_mul(s.key_dim), true);
    let w_v = carved(&mut u, hidden, true);
    let additive = simd_attention_additive_params::over(&mats[0], &mats[1], &w_v, hidden, s.query_dim, s.key_dim);
    // Now and then no parameters at all.
    let mha_ptr: *const simd_attention_mha_params =
        if u.ratio(1u8, 32).unwrap_or(false) { core::ptr::null() } else { &mha };
    let additive_ptr: *const simd_attention_additive_params =
        if u.ratio(1u8, 32).unwrap_or(false) { core::ptr::null() } else { &additive };
    let mask = LensMask::carve(&mut u, &s);
    let c_mask = mask.c();
    let mask_ptr: *const simd_attention_mask = if mask.absent { core::ptr::null() } else { &c_mask };

    // The outputs, sized from the workspace query when it answers.
    let with_weights = u.ratio(1u8, 2).unwrap_or(false);
    let mut ws_len = 0usize;
    // SAFETY: valid descriptors and a `size_t` to write.
    let sized = unsafe {
        match op {
            0 => simd_attention_dot_workspace_len(s, with_weights, &mut ws_len),
            1 => simd_attention_bilinear_workspace_len(w_a.as_ptr(), w_a.len(), s, with_weights, &mut ws_len),
            2 => simd_attention_mha_workspace_len(mha_ptr, s, with_weights, &mut ws_len),
            _ => simd_attention_additive_workspace_len(additive_ptr, s, with_weights, &mut ws_len),
        }
    };
    let ws_len = if sized == 0 { c_len(&mut u, ws_len.min(1 << 20)) } else { size(&mut u, 64) };
    let (width, sets) = if op == 2 { (hidden, heads) } else { (s.value_dim, 1) };
    let out_len = c_len(&mut u, rows(s.queries, width));
    let w_len = if with_weights { c_len(&mut u, rows(s.queries, s.keys).saturating_mul(sets)) } else { 0 };
    let (mut out, mut weights, mut ws) = (vec![7.0f32; out_len], vec![7.0f32; w_len], vec![7.0f32; ws_len]);
    // Now and then the weights over the output (as long as it is).
    let over_out = with_weights && u.ratio(1u8, 16).unwrap_or(false);
    let (w_ptr, w_len) = match (with_weights, over_out) {
        (false, _) => (core::ptr::null_mut(), 0),
        (true, false) => (weights.as_mut_ptr(), w_len),
        (true, true) => (out.as_mut_ptr(), w_len.min(out_len)),
    };
    if over_out {
        // The call's weights are `out[..w_len]`: accepted only when empty.
        weights.clear();
    }
    let (o, wsp) = (out.as_mut_ptr(), ws.as_mut_ptr());
    // SAFETY: every pointer is NULL or points to as many elements as its
    // length says; only the overlap of weights and out is the caller's
    // error, which the call must refuse.
    let rc = unsafe {
        match op {
            0 => simd_attention_dot_forward(s, inputs, mask_ptr, o, out_len, w_ptr, w_len, wsp, ws_len),
            1 => simd_attention_bilinear_forward(
                w_a.as_ptr(),
                w_a.len(),
                s,
                inputs,
                mask_ptr,
                o,
                out_len,
                w_ptr,
                w_len,
                wsp,
                ws_len,
            ),
            2 => simd_attention_mha_forward(mha_ptr, s, inputs, mask_ptr, o, out_len, w_ptr, w_len, wsp, ws_len),
            _ => simd_attention_additive_forward(
                additive_ptr,
                s,
                inputs,
                mask_ptr,
                o,
                out_len,
                w_ptr,
                w_len,
                wsp,
                ws_len,
            ),
        }
    };
    let refused = crate::refused(rc);
    if over_out && out_len > 0 && w_len > 0 {
        assert!(refused, "weights written over the output were accepted");
    }
    if refused {
        assert!(out.iter().chain(&weights).chain(&ws).all(|&v| v == 7.0), "a refused call (status {rc}) wrote");
        return;
    }
    // Accepted: no NULL went through, and the Rust operator over the same
    // slices gives the same bits.
    let rust_shape = AttentionShape::from(s);
    let rust_inputs = AttentionInputs { queries: &queries, keys: &keys, values: &vals, valid_lens: mask.rust() };
    let (mut want, mut want_w) = (vec![0.0; out_len], vec![0.0; w_len]);
    let mut rust_ws = vec![0.0; ws_len];
    let mut run = |a: &dyn Attention| {
        let w = with_weights.then_some(&mut want_w[..]);
        a.forward(&rust_shape, rust_inputs, &mut want, w, &mut rust_ws).expect("C accepted what Rust refuses")
    };
    let lin = |i: usize| Linear { weight: &mats[i], bias: biases[i].as_deref() };
    match op {
        0 => run(&DotProductAttention),
        1 => run(&BilinearAttention::new(&w_a, s.query_dim, s.key_dim).unwrap()),
        2 => {
            let dims = MhaDims { heads, hidden, query_dim: s.query_dim, key_dim: s.key_dim, value_dim: s.value_dim };
            run(&MultiHeadAttention::new(lin(0), lin(1), lin(2), lin(3), dims).unwrap())
        }
        _ => run(&AdditiveAttention::new(&mats[0], &mats[1], &w_v, hidden, s.query_dim, s.key_dim).unwrap()),
    }
    assert!(same_bits(&out, &want) && same_bits(&weights, &want_w), "C and Rust differ (operator {op})");
}

/// Nadaraya–Watson with its own carved shape: `n` queries of `m` points,
/// the lengths of inputs and outputs about what the shape needs.
fn nadaraya_watson(u: &mut Unstructured<'_>) {
    let (n, m) = (size(u, 8), size(u, 12));
    let points = n * m;
    let (q, k, v) = (carved(u, n, false), carved(u, points, false), carved(u, points, false));
    let inputs = simd_attention_inputs {
        queries: c_ptr(u, &q),
        queries_len: q.len(),
        keys: c_ptr(u, &k),
        keys_len: k.len(),
        values: c_ptr(u, &v),
        values_len: v.len(),
    };
    let w = crate::moderate(u);
    let out_len = c_len(u, n);
    let w_len = c_len(u, points);
    let (mut out, mut weights) = (vec![7.0f32; out_len], vec![7.0f32; w_len]);
    let over_out = u.ratio(1u8, 16).unwrap_or(false);
    let (w_ptr, w_len) = if over_out { (out.as_mut_ptr(), w_len.min(out_len)) } else { (weights.as_mut_ptr(), w_len) };
    if over_out {
        // As in `capi_batched`: accepted only when empty.
        weights.clear();
    }
    // SAFETY: as in `capi_batched`.
    let rc = unsafe { simd_attention_nadaraya_watson(w, n, m, inputs, out.as_mut_ptr(), out_len, w_ptr, w_len) };
    let refused = crate::refused(rc);
    if over_out && out_len > 0 && w_len > 0 {
        assert!(refused, "weights written over the output were accepted");
    }
    if refused {
        assert!(out.iter().chain(&weights).all(|&x| x == 7.0), "a refused call (status {rc}) wrote");
        return;
    }
    assert!(q.len() == n && k.len() == points && v.len() == points, "a length other than the shape's was accepted");
    let (mut want, mut want_w) = (vec![0.0; out_len], vec![0.0; w_len]);
    NadarayaWatson { w }.forward(&q, &k, &v, &mut want, &mut want_w).expect("C accepted what Rust refuses");
    assert!(same_bits(&out, &want) && same_bits(&weights, &want_w), "C and Rust differ (Nadaraya-Watson)");
}
