//! The default strategy inside the batch: a request that names no strategy gets the server's
//! default while speculation pays at the current batch size, `ar` once it stops paying (the
//! analytical model over pass costs fitted from the batch engine's passes and the acceptance
//! seen so far). A request that names a strategy always gets it.

use std::sync::{Arc, Mutex};

use pipespec_decode::batch::policy::{estimate, PassCost, PolicyEstimate};
use pipespec_decode::{LevelKind, LevelReport, LevelSpec, StepReport, Strategy};
use pipespec_model::Model;

/// Drafted tokens seen before the observed acceptance replaces the prior.
const MIN_DRAFTED: usize = 64;

/// The acceptance assumed before enough drafts were seen.
const PRIOR_ACCEPTANCE: f64 = 0.6;

/// Pass costs per chain level, and drafted/accepted counts per strategy.
pub struct Policy {
    models: Vec<Option<Arc<Model>>>,
    kinds: Vec<LevelKind>,
    costs: Mutex<Vec<PassCost>>,
    /// (drafted, accepted) by the level below the target, per strategy (index in `ALL`).
    acceptance: Mutex<Vec<(usize, usize)>>,
}

impl Policy {
    pub fn new(specs: &[LevelSpec]) -> Policy {
        Policy {
            models: specs
                .iter()
                .map(|spec| match spec {
                    LevelSpec::Model { model, .. } => Some(model.clone()),
                    LevelSpec::Ngram { .. } => None,
                })
                .collect(),
            kinds: specs.iter().map(LevelSpec::kind).collect(),
            costs: Mutex::new(vec![PassCost::default(); specs.len()]),
            acceptance: Mutex::new(vec![(0, 0); Strategy::ALL.len()]),
        }
    }

    /// Adds a batched pass of `model` to the cost fits of the levels it serves.
    pub fn observe_pass(&self, model: &Arc<Model>, step: &StepReport) {
        let mut costs = lock(&self.costs);
        for (cost, level) in costs.iter_mut().zip(&self.models) {
            if level.as_ref().is_some_and(|m| Arc::ptr_eq(m, model)) {
                cost.observe(step.rows, step.seconds);
            }
        }
    }

    /// Adds what a finished generation's drafter proposed and got accepted.
    pub fn observe_generation(&self, strategy: Strategy, levels: &[LevelReport]) {
        let (Some(slot), Some(drafter)) = (
            index_of(strategy),
            levels.len().checked_sub(2).map(|i| &levels[i]),
        ) else {
            return;
        };
        let mut acceptance = lock(&self.acceptance);
        acceptance[slot].0 += drafter.metrics.n_drafted;
        acceptance[slot].1 += drafter.metrics.n_accepted;
    }

    /// The estimate for `strategy` with `window` among `sequences` running sequences; None for
    /// `ar` or before the costs are fitted.
    pub fn estimate(
        &self,
        strategy: Strategy,
        window: usize,
        sequences: usize,
    ) -> Option<PolicyEstimate> {
        let levels = strategy.levels(&self.kinds).ok()?;
        let (&target, rest) = levels.split_last()?;
        let &drafter = rest.last()?;
        let (drafted, accepted) = lock(&self.acceptance)[index_of(strategy)?];
        let alpha = if drafted >= MIN_DRAFTED {
            accepted as f64 / drafted as f64
        } else {
            PRIOR_ACCEPTANCE
        };
        let costs = lock(&self.costs);
        let draft = (self.kinds[drafter] == LevelKind::Model).then(|| &costs[drafter]);
        estimate(&costs[target], draft, alpha, window, sequences)
    }

    /// What a request runs: `strategy` when it named one or speculation pays with `sequences`
    /// sequences decoding together (or nothing is known yet), else `ar`.
    pub fn choose(
        &self,
        strategy: Strategy,
        named: bool,
        window: usize,
        sequences: usize,
    ) -> Strategy {
        if named || strategy == Strategy::Ar {
            return strategy;
        }
        match self.estimate(strategy, window, sequences) {
            Some(estimate) if !estimate.speculation_pays() => Strategy::Ar,
            _ => strategy,
        }
    }
}

fn index_of(strategy: Strategy) -> Option<usize> {
    Strategy::ALL.iter().position(|&s| s == strategy)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
