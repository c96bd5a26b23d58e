//! Plain f64 references of the operators, written for clarity, not speed.
//! Each follows d2l's PyTorch code line by line.

/// d2l `valid_lens` for a reference call.
#[derive(Clone, Debug)]
pub enum Lens {
    All,
    PerBatch(Vec<usize>),
    PerQuery(Vec<usize>),
}

impl Lens {
    pub fn get(&self, b: usize, q: usize, queries: usize) -> Option<usize> {
        match self {
            Lens::All => None,
            Lens::PerBatch(l) => Some(l[b]),
            Lens::PerQuery(l) => Some(l[b * queries + q]),
        }
    }

    /// Sets to NaN every row of `rows` (`(B, keys, width)` each, as
    /// `(values, width)`) past the valid length of every query row of its
    /// batch entry: rows that no query row weighs (a row keeping nothing
    /// weighs every key).
    pub fn poison_padding(&self, batch: usize, queries: usize, keys: usize, mut rows: [(&mut [f32], usize); 2]) {
        for b in 0..batch {
            let kept = |q| match self.get(b, q, queries) {
                Some(0) | None => keys,
                Some(len) => len.min(keys),
            };
            let used = (0..queries).map(kept).max().unwrap_or(0);
            for (x, width) in rows.iter_mut() {
                x[(b * keys + used) * *width..(b + 1) * keys * *width].fill(f32::NAN);
            }
        }
    }
}

/// `y = W x`, `W` row-major `(out, in)`.
pub fn linear(w: &[f32], x: &[f64], out: usize) -> Vec<f64> {
    let inp = x.len();
    (0..out).map(|o| (0..inp).map(|i| w[o * inp + i] as f64 * x[i]).sum()).collect()
}

/// d2l `masked_softmax` of one row: keys past `len` get 0; `len = 0` is uniform.
pub fn masked_softmax_row(scores: &[f64], len: Option<usize>) -> Vec<f64> {
    let k = scores.len();
    let kept = len.map_or(k, |l| l.min(k));
    if kept == 0 {
        return vec![1.0 / k as f64; k];
    }
    let max = scores[..kept].iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = scores[..kept].iter().map(|s| (s - max).exp()).collect();
    let sum: f64 = e.iter().sum();
    (0..k).map(|j| if j < kept { e[j] / sum } else { 0.0 }).collect()
}

/// Shapes for the batched references: B, Q, K, and value_dim.
#[derive(Clone, Copy, Debug)]
pub struct Dims {
    pub batch: usize,
    pub queries: usize,
    pub keys: usize,
    pub value_dim: usize,
}

/// Output `(B, Q, vd)` and weights `(B, Q, K)` from a per-pair score.
pub fn attend(
    dims: Dims,
    lens: &Lens,
    values: &[f32],
    score: impl Fn(usize, usize, usize) -> f64,
) -> (Vec<f64>, Vec<f64>) {
    let Dims { batch, queries, keys, value_dim } = dims;
    let mut out = vec![0.0; batch * queries * value_dim];
    let mut weights = vec![0.0; batch * queries * keys];
    for b in 0..batch {
        for q in 0..queries {
            let scores: Vec<f64> = (0..keys).map(|k| score(b, q, k)).collect();
            let w = masked_softmax_row(&scores, lens.get(b, q, queries));
            for (k, &wk) in w.iter().enumerate() {
                weights[(b * queries + q) * keys + k] = wk;
                for d in 0..value_dim {
                    out[(b * queries + q) * value_dim + d] += wk * values[(b * keys + k) * value_dim + d] as f64;
                }
            }
        }
    }
    (out, weights)
}

/// d2l `AdditiveAttention`: `w_v · tanh(W_q q + W_k k)`.
#[allow(clippy::too_many_arguments)]
pub fn additive(
    dims: Dims,
    queries: &[f32],
    keys: &[f32],
    values: &[f32],
    lens: &Lens,
    w_q: &[f32],
    w_k: &[f32],
    w_v: &[f32],
) -> (Vec<f64>, Vec<f64>) {
    let hidden = w_v.len();
    let qd = queries.len() / (dims.batch * dims.queries).max(1);
    let kd = keys.len() / (dims.batch * dims.keys).max(1);
    let as64 = |x: &[f32]| x.iter().map(|&v| v as f64).collect::<Vec<_>>();
    let a: Vec<Vec<f64>> = queries.chunks(qd.max(1)).map(|q| linear(w_q, &as64(q), hidden)).collect();
    let bk: Vec<Vec<f64>> = keys.chunks(kd.max(1)).map(|k| linear(w_k, &as64(k), hidden)).collect();
    attend(dims, lens, values, |b, q, k| {
        let (a, bk) = (&a[b * dims.queries + q], &bk[b * dims.keys + k]);
        (0..hidden).map(|h| w_v[h] as f64 * (a[h] + bk[h]).tanh()).sum()
    })
}

/// How far the additive scores `(B, Q, K)` can move when nothing but the
/// tanh arguments `W_q q + W_k k` is rounded to f32, as every f32 engine
/// must round them. Large inputs whose projections nearly cancel make this
/// the dominant error, beyond any fixed tolerance: an argument of 0.2 left
/// by two projections of 3.7e3 is already uncertain by 2.4e-4. Per score,
/// `Σ_h |w_v[h]| · max sech² over [x_h ± δ_h] · δ_h`, where `δ_h` is
/// Higham's `γ_n` bound for a sum of `n = qd + kd + 1` terms:
/// `γ_n (Σ_i |W_q[h,i] q_i| + Σ_j |W_k[h,j] k_j|)`.
pub fn additive_argument_slack(
    dims: Dims,
    queries: &[f32],
    keys: &[f32],
    w_q: &[f32],
    w_k: &[f32],
    w_v: &[f32],
) -> Vec<f64> {
    let hidden = w_v.len();
    let qd = queries.len() / (dims.batch * dims.queries).max(1);
    let kd = keys.len() / (dims.batch * dims.keys).max(1);
    let n = (qd + kd + 1) as f64;
    let gamma = n * f32::EPSILON as f64 / 2.0 / (1.0 - n * f32::EPSILON as f64 / 2.0);
    let as64 = |x: &[f32]| x.iter().map(|&v| v as f64).collect::<Vec<_>>();
    let abs = |x: &[f32]| x.iter().map(|v| v.abs()).collect::<Vec<_>>();
    let (aq, ak) = (abs(w_q), abs(w_k));
    let projections = |x: &[f32], dim: usize, w: &[f32], aw: &[f32]| -> Vec<(Vec<f64>, Vec<f64>)> {
        x.chunks(dim.max(1)).map(|r| (linear(w, &as64(r), hidden), linear(aw, &as64(&abs(r)), hidden))).collect()
    };
    let (a, b) = (projections(queries, qd, w_q, &aq), projections(keys, kd, w_k, &ak));
    let mut slack = Vec::with_capacity(dims.batch * dims.queries * dims.keys);
    for bi in 0..dims.batch {
        for q in 0..dims.queries {
            let (a, a_abs) = &a[bi * dims.queries + q];
            for k in 0..dims.keys {
                let (b, b_abs) = &b[bi * dims.keys + k];
                slack.push(
                    (0..hidden)
                        .map(|h| {
                            let (x, delta) = ((a[h] + b[h]).abs(), gamma * (a_abs[h] + b_abs[h]));
                            let sech = 1.0 / (x - delta).max(0.0).cosh();
                            (w_v[h] as f64).abs() * sech * sech * delta
                        })
                        .sum(),
                );
            }
        }
    }
    slack
}

/// Rows of `x` (`rows × dim`) as f64 vectors.
pub fn rows(x: &[f32], dim: usize) -> Vec<Vec<f64>> {
    x.chunks(dim.max(1)).map(|r| r.iter().map(|&v| v as f64).collect()).collect()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// d2l `DotProductAttention`: `q·k / √d`.
pub fn dot_product(dims: Dims, queries: &[f32], keys: &[f32], values: &[f32], lens: &Lens) -> (Vec<f64>, Vec<f64>) {
    let d = queries.len() / (dims.batch * dims.queries).max(1);
    let (q, k) = (rows(queries, d), rows(keys, d));
    attend(dims, lens, values, |b, i, j| dot(&q[b * dims.queries + i], &k[b * dims.keys + j]) / (d as f64).sqrt())
}

/// Bilinear: `qᵀ W_a k`.
pub fn bilinear(
    dims: Dims,
    queries: &[f32],
    keys: &[f32],
    values: &[f32],
    lens: &Lens,
    w_a: &[f32],
) -> (Vec<f64>, Vec<f64>) {
    let qd = queries.len() / (dims.batch * dims.queries).max(1);
    let kd = keys.len() / (dims.batch * dims.keys).max(1);
    let (q, k) = (rows(queries, qd), rows(keys, kd));
    attend(dims, lens, values, |b, i, j| dot(&q[b * dims.queries + i], &linear(w_a, &k[b * dims.keys + j], qd)))
}

/// d2l `MultiHeadAttention` without biases: returns output `(B, Q, H)` and
/// weights `(B·heads, Q, K)`.
#[allow(clippy::too_many_arguments)]
pub fn multi_head(
    dims: Dims,
    heads: usize,
    hidden: usize,
    queries: &[f32],
    keys: &[f32],
    values: &[f32],
    lens: &Lens,
    w: [&[f32]; 4],
) -> (Vec<f64>, Vec<f64>) {
    let Dims { batch, queries: nq, keys: nk, .. } = dims;
    let project = |x: &[f32], rows_n: usize, w: &[f32]| -> Vec<Vec<f64>> {
        let inp = x.len() / rows_n.max(1);
        rows(x, inp).iter().map(|r| linear(w, r, hidden)).collect()
    };
    let (q, k, v) =
        (project(queries, batch * nq, w[0]), project(keys, batch * nk, w[1]), project(values, batch * nk, w[2]));
    let width = hidden / heads;
    let mut concat = vec![vec![0.0f64; hidden]; batch * nq];
    let mut weights = vec![0.0; batch * heads * nq * nk];
    for b in 0..batch {
        for h in 0..heads {
            let cols = h * width..(h + 1) * width;
            for i in 0..nq {
                let scores: Vec<f64> = (0..nk)
                    .map(|j| dot(&q[b * nq + i][cols.clone()], &k[b * nk + j][cols.clone()]) / (width as f64).sqrt())
                    .collect();
                let wrow = masked_softmax_row(&scores, lens.get(b, i, nq));
                for j in 0..nk {
                    weights[((b * heads + h) * nq + i) * nk + j] = wrow[j];
                    for c in cols.clone() {
                        concat[b * nq + i][c] += wrow[j] * v[b * nk + j][c];
                    }
                }
            }
        }
    }
    let out = concat.iter().flat_map(|r| linear(w[3], r, hidden)).collect();
    (out, weights)
}

/// PyTorch `scaled_dot_product_attention` in f64 for one call.
/// `allowed(b, h, i, j)` says whether a key takes part, `bias(b, h, i, j)`
/// is added to the scaled score; rows with no key give zeros.
#[allow(clippy::too_many_arguments)]
pub fn sdpa(
    dims: [usize; 7],
    query: &[f32],
    key: &[f32],
    value: &[f32],
    scale: f64,
    allowed: impl Fn(usize, usize, usize, usize) -> bool,
    bias: impl Fn(usize, usize, usize, usize) -> f64,
) -> Vec<f64> {
    let [batch, hq, hkv, l, s, e, ev] = dims;
    let group = hq / hkv.max(1);
    let mut out = vec![0.0; batch * hq * l * ev];
    for b in 0..batch {
        for h in 0..hq {
            let kv = b * hkv + h / group.max(1);
            for i in 0..l {
                let q = &query[((b * hq + h) * l + i) * e..][..e];
                let scores: Vec<Option<f64>> = (0..s)
                    .map(|j| {
                        let k = &key[(kv * s + j) * e..][..e];
                        let dot: f64 = q.iter().zip(k).map(|(&x, &y)| x as f64 * y as f64).sum();
                        // The empty product (E = 0) is 0, unscaled, as the engine documents.
                        let v = if e == 0 { 0.0 } else { dot * scale } + bias(b, h, i, j);
                        (allowed(b, h, i, j) && v != f64::NEG_INFINITY).then_some(v)
                    })
                    .collect();
                let max = scores.iter().flatten().cloned().fold(f64::NEG_INFINITY, f64::max);
                if max == f64::NEG_INFINITY {
                    continue;
                }
                let sum: f64 = scores.iter().flatten().map(|v| (v - max).exp()).sum();
                for (j, sc) in scores.iter().enumerate() {
                    if let Some(v) = sc {
                        let w = (v - max).exp() / sum;
                        for d in 0..ev {
                            out[((b * hq + h) * l + i) * ev + d] += w * value[(kv * s + j) * ev + d] as f64;
                        }
                    }
                }
            }
        }
    }
    out
}

/// `σ(x) = 1/(1 + e^{−x})`, the GRU gate, without overflow for very
/// negative `x`.
pub fn sigmoid(x: f64) -> f64 {
    if x < 0.0 { x.exp() / (1.0 + x.exp()) } else { 1.0 / (1.0 + (-x).exp()) }
}
