//! The optimizer: AdamW (candle-nn's update, kept per module so a revived module starts afresh) with a learning rate that warms up linearly and then
//! decays (cosine, linear or not at all), and gradients clipped to a global norm first.

use std::collections::hash_map::Entry;
use std::collections::HashMap;

use candle_core::{DType, Tensor, Var};

use crate::error::{invalid, Result};
use crate::modules::bank::ModuleGrads;
use crate::params::{LoraParams, TrainModule};
use crate::step::ModuleKey;

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

/// One tensor's AdamW moments.
struct Moments {
    m: Tensor,
    v: Tensor,
}

/// A module's optimizer state: its own step count (so a revived module's bias correction
/// starts over) and the moments of `A` and `B`.
struct ModuleState {
    steps: i32,
    a: Moments,
    b: Moments,
}

const BETA1: f64 = 0.9;
const BETA2: f64 = 0.999;
const EPS: f64 = 1e-8;

/// AdamW (the update of candle-nn's, per module) with global-norm clipping; modules without a
/// gradient in a step (killed ones) are left as they are.
pub struct Optimizer {
    weight_decay: f64,
    clip: f64,
    state: HashMap<ModuleKey, ModuleState>,
}

impl Moments {
    fn zeros(like: &Tensor) -> Result<Moments> {
        Ok(Moments {
            m: like.zeros_like()?,
            v: like.zeros_like()?,
        })
    }

    /// One AdamW update of `theta` by `grad`.
    fn update(
        &mut self,
        theta: &Var,
        grad: &Tensor,
        steps: i32,
        rate: f64,
        decay: f64,
    ) -> Result<()> {
        // Detached: a gradient may still hold the graph it came from, and moments built on it
        // would chain every step's graph (activations included) to the next.
        let grad = grad.detach();
        self.m = ((&self.m * BETA1)? + (&grad * (1.0 - BETA1))?)?.detach();
        self.v = ((&self.v * BETA2)? + (grad.sqr()? * (1.0 - BETA2))?)?.detach();
        let m_hat = (&self.m * (1.0 / (1.0 - BETA1.powi(steps))))?;
        let v_hat = (&self.v * (1.0 / (1.0 - BETA2.powi(steps))))?;
        let decayed = (theta.as_tensor() * (1.0 - rate * decay))?;
        let adjusted = (m_hat / (v_hat.sqrt()? + EPS)?)?;
        theta.set(&(decayed - (adjusted * rate)?)?)?;
        Ok(())
    }
}

impl Optimizer {
    /// `clip` ≤ 0 turns clipping off.
    pub fn new(weight_decay: f64, clip: f64) -> Optimizer {
        Optimizer {
            weight_decay,
            clip,
            state: HashMap::new(),
        }
    }

    /// Forgets a module's moments and step count (a revived module starts afresh).
    pub fn reset(&mut self, key: ModuleKey) {
        self.state.remove(&key);
    }

    /// Clips `grads` to the global norm and takes one AdamW step at `rate` on every module that
    /// has a gradient. Returns the norm before clipping.
    pub fn step(
        &mut self,
        params: &LoraParams,
        grads: &HashMap<ModuleKey, ModuleGrads>,
        rate: f64,
    ) -> Result<f64> {
        // In the modules' order, so that the sum is the same in every run.
        let present: Vec<(&TrainModule, &ModuleGrads)> = params
            .modules
            .iter()
            .filter_map(|m| grads.get(&(m.layer, m.target)).map(|g| (m, g)))
            .collect();
        let mut square = 0.0;
        for (_, g) in &present {
            for t in [&g.a, &g.b] {
                square += t
                    .sqr()?
                    .sum_all()?
                    .to_dtype(DType::F64)?
                    .to_scalar::<f64>()?;
            }
        }
        let norm = square.sqrt();
        if !norm.is_finite() {
            return Err(invalid(format!(
                "the gradient norm became {norm}: lower --lr"
            )));
        }
        let factor = if self.clip > 0.0 && norm > self.clip {
            self.clip / (norm + 1e-6)
        } else {
            1.0
        };
        for (module, g) in present {
            let key = (module.layer, module.target);
            let state = match self.state.entry(key) {
                Entry::Occupied(e) => e.into_mut(),
                Entry::Vacant(e) => e.insert(ModuleState {
                    steps: 0,
                    a: Moments::zeros(module.a.as_tensor())?,
                    b: Moments::zeros(module.b.as_tensor())?,
                }),
            };
            state.steps += 1;
            let (grad_a, grad_b) = if factor == 1.0 {
                (g.a.clone(), g.b.clone())
            } else {
                ((&g.a * factor)?, (&g.b * factor)?)
            };
            let decay = self.weight_decay;
            state
                .a
                .update(&module.a, &grad_a, state.steps, rate, decay)?;
            state
                .b
                .update(&module.b, &grad_b, state.steps, rate, decay)?;
        }
        Ok(norm)
    }
}
