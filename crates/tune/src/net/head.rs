//! The device's end of the pass: the final norm, the output head (with its LoRA module when
//! trained) and the mean cross-entropy of the labels, from the final hidden rows of the label
//! positions.

use candle_core::{Device, Tensor};
use pipespec_model::lora::LoraTarget;

use crate::base::FrozenBase;
use crate::error::Result;
use crate::ops::linear::frozen_linear;
use crate::ops::norm::rms_norm;
use crate::params::LoraParams;

/// The mean cross-entropy of `labels` predicted from `last` (`[labels, hidden]`, the final
/// hidden rows before the norm).
pub fn head_loss(
    base: &FrozenBase,
    lora: Option<&LoraParams>,
    last: &Tensor,
    labels: &[u32],
) -> Result<Tensor> {
    let eps = base.config.rms_norm_eps as f64;
    let normed = rms_norm(last, &base.output_norm, eps)?;
    let mut logits = frozen_linear(&normed, &base.head)?;
    if let Some(params) = lora {
        if let Some(module) = params.get(None, LoraTarget::Head) {
            let delta = normed.matmul(&module.a.t()?)?.matmul(&module.b.t()?)?;
            logits = (logits + (delta * params.scale())?)?;
        }
    }
    let labels = Tensor::from_slice(labels, (labels.len(), 1), &Device::Cpu)?;
    let picked = logits.gather(&labels, 1)?.squeeze(1)?;
    let per_token = (logits.log_sum_exp(1)? - picked)?;
    Ok(per_token.mean_all()?)
}
