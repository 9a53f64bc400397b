//! The differentiable forward pass: the llama decoder on a packed batch (examples one after
//! another, each attending to itself only), LoRA added beside each frozen matrix
//! (`y = W·x + scale·B·(A·x)`), and the mean cross-entropy of the label tokens.

use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use pipespec_model::lora::LoraTarget;

use crate::base::FrozenBase;
use crate::data::Example;
use crate::error::{invalid, Result};
use crate::ops::attention::{causal_attention, CausalAttention, Segment};
use crate::ops::linear::frozen_linear;
use crate::ops::norm::rms_norm;
use crate::params::LoraParams;

/// Token sequences packed one after another (no padding), with the rows whose next token is a
/// label.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenBatch {
    /// Every example's ids, one after another.
    pub ids: Vec<u32>,
    /// Each example's rows in `ids`.
    pub segments: Vec<Segment>,
    /// Rows whose output predicts a label.
    pub positions: Vec<u32>,
    /// The label each of `positions` predicts.
    pub labels: Vec<u32>,
}

impl TokenBatch {
    /// `examples` packed in order; every label token is predicted from the row before it.
    pub fn new(examples: &[&Example]) -> Result<TokenBatch> {
        let mut batch = TokenBatch {
            ids: Vec::new(),
            segments: Vec::with_capacity(examples.len()),
            positions: Vec::new(),
            labels: Vec::new(),
        };
        for example in examples {
            let (start, tokens) = (batch.ids.len(), &example.tokens);
            batch.ids.extend_from_slice(tokens);
            batch.segments.push(Segment {
                start,
                len: tokens.len(),
            });
            for position in 0..tokens.len().saturating_sub(1) {
                if example.label[position + 1] {
                    batch.positions.push((start + position) as u32);
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

    /// Tokens in the batch (none is padding).
    pub fn tokens(&self) -> usize {
        self.ids.len()
    }
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
    let eps = c.rms_norm_eps as f64;
    let pass = Pass {
        lora,
        scale: lora.map_or(0.0, LoraParams::scale),
    };
    let ids = Tensor::from_slice(&batch.ids, batch.ids.len(), &Device::Cpu)?;
    // A constant: the embedding is frozen, so its lookup needs no gradient.
    let mut hidden = base.embedding.index_select(&ids, 0)?.detach();
    let rotary = base.rotary(&batch.segments);
    let attention = CausalAttention {
        segments: Arc::new(batch.segments.clone()),
        heads: c.head_count,
        kv_heads: c.kv_head_count,
        head_dim: c.head_dim,
    };
    for (l, layer) in base.layers.iter().enumerate() {
        let at = Some(l);
        let x = rms_norm(&hidden, &layer.attention_norm, eps)?;
        let q = pass.project(&x, &layer.q, layer.q_bias.as_ref(), at, LoraTarget::Q)?;
        let k = pass.project(&x, &layer.k, layer.k_bias.as_ref(), at, LoraTarget::K)?;
        let v = pass.project(&x, &layer.v, layer.v_bias.as_ref(), at, LoraTarget::V)?;
        let attended = causal_attention(&rotary.apply(&q)?, &rotary.apply(&k)?, &v, &attention)?;
        let o = pass.project(&attended, &layer.output, None, at, LoraTarget::Output)?;
        hidden = (hidden + o)?;
        let x = rms_norm(&hidden, &layer.ffn_norm, eps)?;
        let gate = pass.project(&x, &layer.gate, None, at, LoraTarget::Gate)?;
        let up = pass.project(&x, &layer.up, None, at, LoraTarget::Up)?;
        let mixed = (gate.silu()? * up)?;
        let down = pass.project(&mixed, &layer.down, None, at, LoraTarget::Down)?;
        hidden = (hidden + down)?;
    }
    // Only the rows with a label reach the head: the norm is per row, so selecting first
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
