//! The optimizer: AdamW (candle-nn's) with a learning rate that warms up linearly and then
//! decays (cosine, linear or not at all), and gradients clipped to a global norm first.

use candle_core::{DType, Tensor, Var};
use candle_nn::{AdamW, Optimizer as _, ParamsAdamW};

use crate::error::{invalid, Result};

/// How the rate falls after the warm-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decay {
    Cosine,
    Linear,
    Constant,
}

impl Decay {
    pub fn parse(name: &str) -> Result<Decay> {
        match name {
            "cosine" => Ok(Decay::Cosine),
            "linear" => Ok(Decay::Linear),
            "constant" => Ok(Decay::Constant),
            other => Err(invalid(format!(
                "unknown schedule `{other}`: cosine, linear or constant"
            ))),
        }
    }
}

/// The learning rate of every step of a run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    pub peak: f64,
    pub warmup: usize,
    pub total: usize,
    pub decay: Decay,
}

impl Schedule {
    /// The rate of step `step` (0-based): `peak·(step+1)/warmup` during the warm-up, then the
    /// decay from `peak` towards 0 at `total`.
    pub fn rate(&self, step: usize) -> f64 {
        if step < self.warmup {
            return self.peak * (step + 1) as f64 / self.warmup as f64;
        }
        let span = self.total.saturating_sub(self.warmup).max(1);
        let progress = ((step - self.warmup) as f64 / span as f64).min(1.0);
        match self.decay {
            Decay::Cosine => self.peak * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()),
            Decay::Linear => self.peak * (1.0 - progress),
            Decay::Constant => self.peak,
        }
    }
}

/// AdamW over the trainable tensors, with clipping.
pub struct Optimizer {
    adamw: AdamW,
    vars: Vec<Var>,
    clip: f64,
}

impl Optimizer {
    /// `clip` ≤ 0 turns clipping off.
    pub fn new(vars: Vec<Var>, weight_decay: f64, clip: f64) -> Result<Optimizer> {
        let params = ParamsAdamW {
            lr: 0.0,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay,
        };
        Ok(Optimizer {
            adamw: AdamW::new(vars.clone(), params)?,
            vars,
            clip,
        })
    }

    /// Backward from `loss`, clip, one AdamW step at `rate`. Returns the gradient's global
    /// norm before clipping.
    pub fn step(&mut self, loss: &Tensor, rate: f64) -> Result<f64> {
        let mut grads = loss.backward()?;
        let mut square = 0.0;
        for var in &self.vars {
            if let Some(grad) = grads.get(var) {
                square += grad
                    .sqr()?
                    .sum_all()?
                    .to_dtype(DType::F64)?
                    .to_scalar::<f64>()?;
            }
        }
        let norm = square.sqrt();
        if self.clip > 0.0 && norm > self.clip {
            let factor = self.clip / (norm + 1e-6);
            for var in &self.vars {
                if let Some(grad) = grads.remove(var) {
                    grads.insert(var, (grad * factor)?);
                }
            }
        }
        self.adamw.set_learning_rate(rate);
        self.adamw.step(&grads)?;
        Ok(norm)
    }
}
