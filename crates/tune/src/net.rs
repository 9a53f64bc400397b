//! The differentiable forward pass: the llama decoder on a right-padded batch, LoRA added beside
//! each frozen matrix (`y = W·x + scale·B·(A·x)`), and the mean cross-entropy of the label tokens.
//! Right padding keeps it exact: causal attention never lets a real position see a pad.

use candle_core::{DType, Device, Tensor, D};
use pipespec_model::config::RopeStyle;
use pipespec_model::lora::LoraTarget;

use crate::base::FrozenBase;
use crate::data::Example;
use crate::error::{invalid, Result};
use crate::frozen::frozen_linear;
use crate::params::LoraParams;

/// Token sequences padded to one length, with the positions whose next token is a label.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenBatch {
    pub rows: usize,
    pub len: usize,
    /// `rows × len` ids, pads 0.
    pub ids: Vec<u32>,
    /// Flat indices (`row · len + position`) whose output predicts a label.
    pub positions: Vec<u32>,
    /// The label each of `positions` predicts.
    pub labels: Vec<u32>,
    /// Tokens that are not padding.
    pub real_tokens: usize,
}

impl TokenBatch {
    /// `examples` right-padded to the longest; every label token is predicted from the
    /// position before it.
    pub fn new(examples: &[&Example]) -> Result<TokenBatch> {
        let len = examples.iter().map(|e| e.tokens.len()).max().unwrap_or(0);
        let mut batch = TokenBatch {
            rows: examples.len(),
            len,
            ids: vec![0; examples.len() * len],
            positions: Vec::new(),
            labels: Vec::new(),
            real_tokens: 0,
        };
        for (row, example) in examples.iter().enumerate() {
            let tokens = &example.tokens;
            batch.ids[row * len..row * len + tokens.len()].copy_from_slice(tokens);
            batch.real_tokens += tokens.len();
            for position in 0..tokens.len().saturating_sub(1) {
                if example.label[position + 1] {
                    batch.positions.push((row * len + position) as u32);
                    batch.labels.push(tokens[position + 1]);
                }
            }
        }
        if batch.labels.is_empty() {
            return Err(invalid(
                "a batch holds no label token (each needs a token before it)",
            ));
        }
        Ok(batch)
    }
}

/// `x / rms(x) · weight` over the last dimension.
fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
    let mean_square = x.sqr()?.mean_keepdim(D::Minus1)?;
    let scaled = x.broadcast_div(&(mean_square + eps)?.sqrt()?)?;
    Ok(scaled.broadcast_mul(weight)?)
}

/// Softmax over the last dimension (composed, so autograd sees every step).
fn softmax(x: &Tensor) -> Result<Tensor> {
    let max = x.max_keepdim(D::Minus1)?.detach();
    let exp = x.broadcast_sub(&max)?.exp()?;
    Ok(exp.broadcast_div(&exp.sum_keepdim(D::Minus1)?)?)
}

/// Rotates `x` of `[rows, len, heads, head_dim]` by the tables (`[len, pairs]`).
fn rope(
    x: &Tensor,
    cos: &Tensor,
    sin: &Tensor,
    style: RopeStyle,
    rope_dim: usize,
) -> Result<Tensor> {
    let (rows, len, heads, head_dim) = x.dims4()?;
    let pairs = rope_dim / 2;
    let rotated_part = x.narrow(3, 0, rope_dim)?;
    let (first, second) = match style {
        RopeStyle::Interleaved => {
            let split = rotated_part.reshape((rows, len, heads, pairs, 2))?;
            (
                split.narrow(4, 0, 1)?.squeeze(4)?,
                split.narrow(4, 1, 1)?.squeeze(4)?,
            )
        }
        RopeStyle::Neox => (
            rotated_part.narrow(3, 0, pairs)?,
            rotated_part.narrow(3, pairs, pairs)?,
        ),
    };
    let cos = cos.reshape((1, len, 1, pairs))?;
    let sin = sin.reshape((1, len, 1, pairs))?;
    let new_first = (first.broadcast_mul(&cos)? - second.broadcast_mul(&sin)?)?;
    let new_second = (first.broadcast_mul(&sin)? + second.broadcast_mul(&cos)?)?;
    let rotated = match style {
        RopeStyle::Interleaved => {
            Tensor::stack(&[new_first, new_second], 4)?.reshape((rows, len, heads, rope_dim))?
        }
        RopeStyle::Neox => Tensor::cat(&[new_first, new_second], 3)?,
    };
    if rope_dim == head_dim {
        return Ok(rotated);
    }
    let rest = x.narrow(3, rope_dim, head_dim - rope_dim)?;
    Ok(Tensor::cat(&[rotated, rest], 3)?)
}

/// The pieces every projection of one pass shares.
struct Pass<'a> {
    lora: Option<&'a LoraParams>,
    scale: f64,
}

impl Pass<'_> {
    /// `x·Wᵀ (+ bias) + scale·(x·Aᵀ)·Bᵀ` for `x` of `[tokens, n_in]`.
    fn project(
        &self,
        x: &Tensor,
        weight: &Tensor,
        bias: Option<&Tensor>,
        layer: Option<usize>,
        target: LoraTarget,
    ) -> Result<Tensor> {
        let mut y = frozen_linear(x, weight)?;
        if let Some(bias) = bias {
            y = y.broadcast_add(bias)?;
        }
        if let Some(module) = self.lora.and_then(|l| l.get(layer, target)) {
            let delta = x.matmul(&module.a.t()?)?.matmul(&module.b.t()?)?;
            y = (y + (delta * self.scale)?)?;
        }
        Ok(y)
    }
}

/// The mean cross-entropy of `batch`'s labels under the base with `lora` added.
pub fn loss(base: &FrozenBase, lora: Option<&LoraParams>, batch: &TokenBatch) -> Result<Tensor> {
    let c = &base.config;
    let (rows, len) = (batch.rows, batch.len);
    let tokens = rows * len;
    let eps = c.rms_norm_eps as f64;
    let pass = Pass {
        lora,
        scale: lora.map_or(0.0, LoraParams::scale),
    };
    let ids = Tensor::from_slice(&batch.ids, tokens, &Device::Cpu)?;
    // A constant: the embedding is frozen, so its lookup needs no gradient.
    let mut hidden = base.embedding.index_select(&ids, 0)?.detach();
    let (cos, sin) = base.rope_tables(len)?;
    let mask: Vec<f32> = (0..len * len)
        .map(|i| {
            if i % len > i / len {
                f32::NEG_INFINITY
            } else {
                0.0
            }
        })
        .collect();
    let mask = Tensor::from_vec(mask, (len, len), &Device::Cpu)?.to_dtype(base.dtype)?;
    let (heads, kv_heads, head_dim) = (c.head_count, c.kv_head_count, c.head_dim);
    let attention_scale = 1.0 / (head_dim as f64).sqrt();
    for (l, layer) in base.layers.iter().enumerate() {
        let at = Some(l);
        let x = rms_norm(&hidden, &layer.attention_norm, eps)?;
        let q = pass.project(&x, &layer.q, layer.q_bias.as_ref(), at, LoraTarget::Q)?;
        let k = pass.project(&x, &layer.k, layer.k_bias.as_ref(), at, LoraTarget::K)?;
        let v = pass.project(&x, &layer.v, layer.v_bias.as_ref(), at, LoraTarget::V)?;
        let q = rope(
            &q.reshape((rows, len, heads, head_dim))?,
            &cos,
            &sin,
            c.rope_style,
            c.rope_dim,
        )?;
        let k = rope(
            &k.reshape((rows, len, kv_heads, head_dim))?,
            &cos,
            &sin,
            c.rope_style,
            c.rope_dim,
        )?;
        let v = v.reshape((rows, len, kv_heads, head_dim))?;
        let q = q.transpose(1, 2)?.contiguous()?;
        let group = heads / kv_heads;
        let repeat = |t: Tensor| -> Result<Tensor> {
            let t = t.transpose(1, 2)?;
            Ok(t.unsqueeze(2)?
                .broadcast_as((rows, kv_heads, group, len, head_dim))?
                .reshape((rows, heads, len, head_dim))?
                .contiguous()?)
        };
        let (k, v) = (repeat(k)?, repeat(v)?);
        let scores = (q.matmul(&k.t()?.contiguous()?)? * attention_scale)?.broadcast_add(&mask)?;
        let attended = softmax(&scores)?.matmul(&v)?;
        let attended = attended
            .transpose(1, 2)?
            .reshape((tokens, heads * head_dim))?;
        let o = pass.project(&attended, &layer.output, None, at, LoraTarget::Output)?;
        hidden = (hidden + o)?;
        let x = rms_norm(&hidden, &layer.ffn_norm, eps)?;
        let gate = pass.project(&x, &layer.gate, None, at, LoraTarget::Gate)?;
        let up = pass.project(&x, &layer.up, None, at, LoraTarget::Up)?;
        let mixed = (gate.silu()? * up)?;
        let down = pass.project(&mixed, &layer.down, None, at, LoraTarget::Down)?;
        hidden = (hidden + down)?;
    }
    // Only the positions with a label reach the head: the norm is per row, so selecting first
    // changes nothing but the cost.
    let positions = Tensor::from_slice(&batch.positions, batch.positions.len(), &Device::Cpu)?;
    let selected = rms_norm(&hidden.index_select(&positions, 0)?, &base.output_norm, eps)?;
    let logits = pass.project(&selected, &base.head, None, None, LoraTarget::Head)?;
    let labels = Tensor::from_slice(&batch.labels, (batch.labels.len(), 1), &Device::Cpu)?;
    let picked = logits.gather(&labels, 1)?.squeeze(1)?;
    let per_token = (logits.log_sum_exp(1)? - picked)?;
    Ok(per_token.mean_all()?)
}

/// The loss as a number.
pub fn scalar(loss: &Tensor) -> Result<f64> {
    Ok(loss.to_dtype(DType::F64)?.to_scalar::<f64>()?)
}
