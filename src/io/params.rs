//! Operator parameters loaded by d2l/PyTorch state-dict names.
//!
//! Each `load` takes a key prefix (`""` for a bare module, or say
//! `"decoder.attention."` inside a model), reads the tensors, checks their
//! shapes against each other, and returns owned parameters that lend the
//! borrowed operator from [`crate::ops`]. Sizes come from the tensors, so
//! any trained model of the same architecture loads.

use super::{LoadError, Tensor, TensorFile};
use crate::ops::{AdditiveAttention, BilinearAttention, Linear, MhaDims, MultiHeadAttention};
use alloc::format;
use alloc::string::String;

fn load(file: &TensorFile, prefix: &str, name: &str) -> Result<(String, Tensor<f32>), LoadError> {
    let full = format!("{prefix}{name}");
    let t = file.f32s(&full)?;
    Ok((full, t))
}

/// d2l `AdditiveAttention`: `W_q.weight` `(H, qd)`, `W_k.weight` `(H, kd)`,
/// `w_v.weight` `(1, H)`.
#[derive(Clone, Debug)]
pub struct AdditiveParams {
    /// `W_q.weight`.
    pub w_q: Tensor<f32>,
    /// `W_k.weight`.
    pub w_k: Tensor<f32>,
    /// `w_v.weight`.
    pub w_v: Tensor<f32>,
}

impl AdditiveParams {
    /// Loads `{prefix}W_q.weight`, `{prefix}W_k.weight`, `{prefix}w_v.weight`.
    pub fn load(file: &TensorFile, prefix: &str) -> Result<AdditiveParams, LoadError> {
        let (n_v, w_v) = load(file, prefix, "w_v.weight")?;
        w_v.expect_shape(&n_v, &[Some(1), None])?;
        let hidden = w_v.shape[1];
        let (n_q, w_q) = load(file, prefix, "W_q.weight")?;
        w_q.expect_shape(&n_q, &[Some(hidden), None])?;
        let (n_k, w_k) = load(file, prefix, "W_k.weight")?;
        w_k.expect_shape(&n_k, &[Some(hidden), None])?;
        Ok(AdditiveParams { w_q, w_k, w_v })
    }

    /// The operator over these weights.
    pub fn attention(&self) -> Result<AdditiveAttention<'_>, LoadError> {
        let hidden = self.w_v.shape[1];
        Ok(AdditiveAttention::new(
            &self.w_q.data,
            &self.w_k.data,
            &self.w_v.data,
            hidden,
            self.w_q.shape[1],
            self.w_k.shape[1],
        )?)
    }
}

/// Bilinear attention: `W_a.weight` `(qd, kd)`.
#[derive(Clone, Debug)]
pub struct BilinearParams {
    /// `W_a.weight`.
    pub w_a: Tensor<f32>,
}

impl BilinearParams {
    /// Loads `{prefix}W_a.weight`.
    pub fn load(file: &TensorFile, prefix: &str) -> Result<BilinearParams, LoadError> {
        let (name, w_a) = load(file, prefix, "W_a.weight")?;
        w_a.expect_shape(&name, &[None, None])?;
        Ok(BilinearParams { w_a })
    }

    /// The operator over these weights.
    pub fn attention(&self) -> Result<BilinearAttention<'_>, LoadError> {
        Ok(BilinearAttention::new(&self.w_a.data, self.w_a.shape[0], self.w_a.shape[1])?)
    }
}

/// One `nn.Linear`'s weight and optional bias.
#[derive(Clone, Debug)]
pub struct LinearParams {
    /// `weight` `(out, in)`.
    pub weight: Tensor<f32>,
    /// `bias` `(out,)`.
    pub bias: Option<Tensor<f32>>,
}

impl LinearParams {
    /// Loads `{prefix}{name}.weight` (`(out, in)`, `in` free when `None`)
    /// and, when `bias`, `{prefix}{name}.bias`.
    pub fn load(
        file: &TensorFile,
        prefix: &str,
        name: &str,
        out: usize,
        inp: Option<usize>,
        bias: bool,
    ) -> Result<LinearParams, LoadError> {
        let (n_w, weight) = load(file, prefix, &format!("{name}.weight"))?;
        weight.expect_shape(&n_w, &[Some(out), inp])?;
        let bias = if bias {
            let (n_b, b) = load(file, prefix, &format!("{name}.bias"))?;
            b.expect_shape(&n_b, &[Some(out)])?;
            Some(b)
        } else {
            None
        };
        Ok(LinearParams { weight, bias })
    }

    fn linear(&self) -> Linear<'_> {
        Linear { weight: &self.weight.data, bias: self.bias.as_ref().map(|b| &b.data[..]) }
    }
}

/// d2l `MultiHeadAttention`: `W_q`, `W_k`, `W_v`, `W_o` (+ biases).
#[derive(Clone, Debug)]
pub struct MhaParams {
    /// Number of heads.
    pub heads: usize,
    /// The four projections.
    pub w_q: LinearParams,
    /// See `w_q`.
    pub w_k: LinearParams,
    /// See `w_q`.
    pub w_v: LinearParams,
    /// See `w_q`.
    pub w_o: LinearParams,
}

impl MhaParams {
    /// Loads `{prefix}W_q.weight` … `{prefix}W_o.weight` (and `.bias` when
    /// `bias`); `num_hiddens` is read from `W_o`.
    pub fn load(file: &TensorFile, prefix: &str, heads: usize, bias: bool) -> Result<MhaParams, LoadError> {
        let (n_o, w_o) = load(file, prefix, "W_o.weight")?;
        w_o.expect_shape(&n_o, &[None, None])?;
        let hidden = w_o.shape[0];
        let w_o = LinearParams::load(file, prefix, "W_o", hidden, Some(hidden), bias)?;
        let w_q = LinearParams::load(file, prefix, "W_q", hidden, None, bias)?;
        let w_k = LinearParams::load(file, prefix, "W_k", hidden, None, bias)?;
        let w_v = LinearParams::load(file, prefix, "W_v", hidden, None, bias)?;
        Ok(MhaParams { heads, w_q, w_k, w_v, w_o })
    }

    /// The operator over these weights.
    pub fn attention(&self) -> Result<MultiHeadAttention<'_>, LoadError> {
        let dims = MhaDims {
            heads: self.heads,
            hidden: self.w_o.weight.shape[0],
            query_dim: self.w_q.weight.shape[1],
            key_dim: self.w_k.weight.shape[1],
            value_dim: self.w_v.weight.shape[1],
        };
        Ok(MultiHeadAttention::new(self.w_q.linear(), self.w_k.linear(), self.w_v.linear(), self.w_o.linear(), dims)?)
    }
}
