//! The strategy when the caller asks for the weights: each head's whole
//! `(L, S)` weights are formed in the caller's buffer, a tile of
//! [`TILE_QUERIES`] rows at a time, through the same packed (and widened)
//! `Kᵀ` and `V` panels as [`super::flash`], then `out = weights · V`.

use super::{AnyHead, TILE_QUERIES};
use crate::kernels::packed_panels::{PanelProduct, packed_len};
use crate::kernels::softmax::softmax_row;
use crate::simd::{self, F32Vector, WithSimd};

impl AnyHead<'_> {
    /// Writes the head's weights (`L × S`) and `out = weights · V`.
    pub(super) fn with_weights(&self, weights: &mut [f32], out: &mut [f32], workspace: &mut [f32]) {
        simd::dispatch(WeightsRows { head: self, weights, out, workspace });
    }
}

/// [`AnyHead::with_weights`]'s body, for one backend (like the flash
/// loop, compiled once for every storage type).
struct WeightsRows<'h, 'a> {
    head: &'h AnyHead<'a>,
    weights: &'h mut [f32],
    out: &'h mut [f32],
    workspace: &'h mut [f32],
}

impl WithSimd for WeightsRows<'_, '_> {
    type Output = ();

    #[inline(always)]
    fn run<V: F32Vector>(self) {
        let WeightsRows { head: any, weights, out, workspace } = self;
        let head = any.query();
        let (e, l, s, ev) = (head.shape.qk_dim, head.shape.q_len, head.shape.kv_len, head.shape.v_dim);
        let (keys_t, rest) = workspace.split_at_mut(packed_len(e, s).unwrap_or(0));
        let (values, rest) = rest.split_at_mut(packed_len(s, ev).unwrap_or(0));
        let q_tile = &mut rest[..TILE_QUERIES * e];
        any.pack(s, keys_t, values);
        for i0 in (0..l).step_by(TILE_QUERIES) {
            let rows = i0..(i0 + TILE_QUERIES).min(l);
            let n = rows.len();
            let q = head.query_rows(rows.clone(), q_tile);
            let w = &mut weights[i0 * s..rows.end * s];
            let scores = PanelProduct {
                m: n,
                n: s,
                kc: e,
                alpha: head.scale,
                a: q,
                a_strides: (e, 1),
                packed: keys_t,
                packed_rows: e,
                k0: 0,
                beta: 0.0,
                c: &mut *w,
                c_row_stride: s,
            };
            scores.run::<V>();
            head.mask_rows((rows.clone(), 0..s), w, s, 1.0);
            for row in w.chunks_exact_mut(s.max(1)) {
                softmax_row::<V>(row);
            }
            PanelProduct {
                m: n,
                n: ev,
                kc: s,
                alpha: 1.0,
                a: w,
                a_strides: (s, 1),
                packed: values,
                packed_rows: s,
                k0: 0,
                beta: 0.0,
                c: &mut out[i0 * ev..rows.end * ev],
                c_row_stride: ev,
            }
            .run::<V>();
        }
    }
}
