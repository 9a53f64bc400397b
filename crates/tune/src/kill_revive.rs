//! Kill-and-Revive (DLoRA): after a warm-up in which every module trains, a review every few
//! steps keeps only the modules that changed most active and freezes the rest, which then cost
//! the device nothing and cross no bytes. The rules chosen here (the paper leaves them open):
//!
//! - **Activity** of a module is the norm of its weight change, `‖s·B·A‖_F` (B starts at zero,
//!   so this is all it has changed the base), computed from the `r × r` Gram matrices, per step
//!   it has trained since it last (re)started: a revived module is not killed for being young.
//! - **Kill**: at a review, the `keep` share of all hosted modules with the highest activity
//!   stays active; the others are killed. A killed module's `B` is set to zero (so it adds
//!   nothing, in training and in the exported adapter alike) and its optimizer state dropped;
//!   `A` is kept.
//! - **Revive**: the cloud measures for every module, at no device cost, a sketch of the norm of
//!   the loss gradient with respect to a full update of its matrix (from the gradient at the
//!   module's output and its input, both on the cloud). At a review, a killed module whose mean
//!   signal since the last review is at least `revive_ratio` (2) times the median of the active
//!   modules' comes back (B zero, fresh optimizer state) and is exempt from that review's kill;
//!   the budget stays `keep`, and at most a quarter of it (at least one) changes hands at one
//!   review: every swap zeroes a trained module, so revival must be rare. No review follows
//!   the last step.

use std::collections::HashMap;

use candle_core::DType;
use pipespec_model::lora::LoraTarget;

use crate::error::{invalid, Result};
use crate::modules::{ActiveSet, ModuleBank};
use crate::ops::flops::product;
use crate::optim::Optimizer;
use crate::params::TrainModule;

/// The knobs, all flags of `pipespec tune`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KillReviveOptions {
    /// Share of hosted modules kept active after a review.
    pub keep: f64,
    /// Steps in which every module trains; None: a tenth of the run.
    pub warmup_steps: Option<usize>,
    /// Steps between reviews; None: a fifth of the run.
    pub review_steps: Option<usize>,
    /// Whether killed modules can come back.
    pub revive: bool,
    /// A killed module returns when its signal reaches this times the active median.
    pub revive_ratio: f64,
}

impl Default for KillReviveOptions {
    fn default() -> Self {
        KillReviveOptions {
            keep: 0.125,
            warmup_steps: None,
            review_steps: None,
            revive: true,
            revive_ratio: 2.0,
        }
    }
}

/// What one review did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Review {
    pub step: usize,
    pub killed: Vec<(usize, LoraTarget)>,
    pub revived: Vec<(usize, LoraTarget)>,
    pub active: usize,
    /// Operations of the activity norms, on the device.
    pub device_flops: u64,
}

/// The controller over one run.
pub struct KillRevive {
    options: KillReviveOptions,
    warmup: usize,
    period: usize,
    total: usize,
    signals: HashMap<(usize, LoraTarget), (f64, usize)>,
    /// The step each revived module came back at (the others started at 0).
    revived_at: HashMap<(usize, LoraTarget), usize>,
}

/// `‖s·B·A‖_F` from `trace((BᵀB)(AAᵀ))`, and the operations it took.
pub fn activity(module: &TrainModule, scale: f64) -> Result<(f64, u64)> {
    let (a, b) = (module.a.as_tensor(), module.b.as_tensor());
    let rank = a.dim(0)?;
    let gram_b = b.t()?.matmul(b)?;
    let gram_a = a.matmul(&a.t()?)?;
    let square = (gram_b * gram_a)?.sum_all()?.to_dtype(DType::F64)?;
    let value = square.to_scalar::<f64>()?.max(0.0).sqrt() * scale.abs();
    let flops = product(rank, module.n_out, rank) + product(rank, module.n_in, rank);
    Ok((value, flops + 2 * (rank * rank) as u64))
}

impl KillRevive {
    /// For a run of `total` steps.
    pub fn new(options: KillReviveOptions, total: usize) -> Result<KillRevive> {
        if !(options.keep > 0.0 && options.keep <= 1.0) {
            return Err(invalid(format!(
                "--keep must be in (0, 1], not {}",
                options.keep
            )));
        }
        if !(options.revive_ratio.is_finite() && options.revive_ratio >= 0.0) {
            return Err(invalid("--revive-ratio must be a number ≥ 0"));
        }
        Ok(KillRevive {
            options,
            warmup: options.warmup_steps.unwrap_or(total.div_ceil(10)).max(1),
            period: options.review_steps.unwrap_or(total.div_ceil(5)).max(1),
            total,
            signals: HashMap::new(),
            revived_at: HashMap::new(),
        })
    }

    /// The modules whose signal the cloud should measure in the next step: every hosted one
    /// once the first kill has happened and revival is on, else none.
    pub fn watch(&self, done_steps: usize, bank: &ModuleBank) -> ActiveSet {
        if self.options.revive && done_steps >= self.warmup {
            bank.all()
        } else {
            ActiveSet::default()
        }
    }

    /// Adds a step's signals.
    pub fn record(&mut self, signals: &[((usize, LoraTarget), f64)]) {
        for &(key, value) in signals {
            let entry = self.signals.entry(key).or_insert((0.0, 0));
            entry.0 += value;
            entry.1 += 1;
        }
    }

    fn mean_signal(&self, key: (usize, LoraTarget)) -> Option<f64> {
        self.signals
            .get(&key)
            .filter(|(_, n)| *n > 0)
            .map(|(sum, n)| sum / *n as f64)
    }

    /// After `done_steps` steps: a review when one is due (kills, revivals, and the bank's new
    /// active set), else None.
    pub fn review(
        &mut self,
        done_steps: usize,
        bank: &ModuleBank,
        optimizer: &mut Optimizer,
    ) -> Result<Option<Review>> {
        // No review after the last step: it would throw trained modules away for nothing.
        if done_steps >= self.total
            || done_steps < self.warmup
            || !(done_steps - self.warmup).is_multiple_of(self.period)
        {
            return Ok(None);
        }
        let (all, active) = (bank.all(), bank.active());
        let params = bank.params();
        let budget =
            ((self.options.keep * all.len() as f64).ceil() as usize).clamp(1, all.len().max(1));
        let mut revived = Vec::new();
        if self.options.revive {
            let mut active_signals: Vec<f64> =
                active.iter().filter_map(|k| self.mean_signal(k)).collect();
            active_signals.sort_by(f64::total_cmp);
            if let Some(&median) = active_signals.get(active_signals.len() / 2) {
                let mut candidates: Vec<((usize, LoraTarget), f64)> = all
                    .iter()
                    .filter(|&(l, t)| !active.contains(l, t))
                    .filter_map(|k| self.mean_signal(k).map(|s| (k, s)))
                    .filter(|&(_, s)| s >= self.options.revive_ratio * median && s > 0.0)
                    .collect();
                candidates.sort_by(|x, y| y.1.total_cmp(&x.1).then(x.0.cmp(&y.0)));
                revived = candidates
                    .into_iter()
                    .take((budget / 4).max(1))
                    .map(|(k, _)| k)
                    .collect();
            }
        }
        let mut device_flops = 0;
        let mut ranked = Vec::new();
        for key in active.iter() {
            let module = params
                .get(Some(key.0), key.1)
                .ok_or_else(|| invalid("an active module the run does not train"))?;
            let (value, flops) = activity(module, params.scale())?;
            device_flops += flops;
            let trained = done_steps - self.revived_at.get(&key).copied().unwrap_or(0);
            ranked.push((key, value / trained.max(1) as f64));
        }
        ranked.sort_by(|x, y| y.1.total_cmp(&x.1).then(x.0.cmp(&y.0)));
        let room = budget.saturating_sub(revived.len());
        let mut killed = Vec::new();
        let mut next = revived.clone();
        for (i, (key, _)) in ranked.into_iter().enumerate() {
            if i < room {
                next.push(key);
            } else {
                killed.push(key);
            }
        }
        for &(layer, target) in killed.iter().chain(&revived) {
            if let Some(module) = params.get(Some(layer), target) {
                module.b.set(&module.b.as_tensor().zeros_like()?)?;
            }
            optimizer.reset((Some(layer), target));
        }
        killed.sort();
        revived.sort();
        for &key in &revived {
            self.revived_at.insert(key, done_steps);
        }
        let next = ActiveSet::new(next);
        let review = Review {
            step: done_steps,
            killed,
            revived,
            active: next.len(),
            device_flops,
        };
        bank.set_active(next);
        self.signals.clear();
        Ok(Some(review))
    }
}
