//! The default strategy inside the batch: a request that names no strategy gets the server's
//! default while speculation pays at the current batch size and `ar`'s single target steps once
//! it stops paying (the analytical model over pass costs fitted from the batch engine's passes
//! and the acceptance seen so far), decided every round for `sd`, `staged` and `lookup` until a
//! request stops speculating (for good: its drafters would have to catch up), at admission for
//! `pipespec`. A request that names a strategy always gets it, and a seeded
//! sampled one keeps the default (its text follows its strategy's draws).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use pipespec_decode::analytic::tokens_per_verification;
use pipespec_decode::batch::policy::{estimate, PassCost, PolicyEstimate};
use pipespec_decode::{LevelKind, LevelReport, LevelSpec, StepReport, Strategy, WindowHook};
use pipespec_model::Model;

use crate::job::Job;
use crate::metrics::Metrics;

/// How many sequences decode together now (running and about to join).
pub type BatchSize = Arc<dyn Fn() -> usize + Send + Sync>;

/// Drafted tokens seen before the observed acceptance replaces the prior.
const MIN_DRAFTED: usize = 64;

/// The acceptance assumed before enough drafts were seen.
const PRIOR_ACCEPTANCE: f64 = 0.6;

/// Pass costs per chain level, and drafted/accepted counts per strategy.
pub struct Policy {
    models: Vec<Option<Arc<Model>>>,
    kinds: Vec<LevelKind>,
    costs: Mutex<Vec<PassCost>>,
    /// (drafted, accepted, verifications) of the level below the target, per strategy (index
    /// in `Strategy::ALL`).
    acceptance: Mutex<Vec<(usize, usize, usize)>>,
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
            acceptance: Mutex::new(vec![(0, 0, 0); Strategy::ALL.len()]),
        }
    }

    /// Adds a batched pass of `model` to the cost fits of the levels it serves.
    pub fn observe_pass(&self, model: &Arc<Model>, step: &StepReport) {
        let mut costs = lock(&self.costs);
        for (cost, level) in costs.iter_mut().zip(&self.models) {
            if level.as_ref().is_some_and(|m| Arc::ptr_eq(m, model)) {
                cost.observe_pass(step.sequences, step.rows, step.seconds);
                if let Some(gap) = step.gap_seconds {
                    cost.observe_gap(gap);
                }
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
        let metrics = &drafter.metrics;
        acceptance[slot].0 += metrics.n_drafted;
        acceptance[slot].1 += metrics.n_accepted;
        acceptance[slot].2 += metrics.n_verifications;
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
        let (drafted, accepted, verifications) = lock(&self.acceptance)[index_of(strategy)?];
        // tokens a round yields: measured (accepted drafts plus the verifier's own token per
        // verification) once enough drafts were judged, else the analytical model's
        let tokens = if drafted >= MIN_DRAFTED && verifications > 0 {
            (accepted + verifications) as f64 / verifications as f64
        } else {
            tokens_per_verification(PRIOR_ACCEPTANCE, window)
        };
        let costs = lock(&self.costs);
        let draft = (self.kinds[drafter] == LevelKind::Model).then(|| &costs[drafter]);
        estimate(&costs[target], draft, tokens, window, sequences)
    }

    /// What a request runs: `strategy` when it named one or speculation pays with `sequences`
    /// sequences decoding together (or nothing is known yet), else `ar`; with the estimate
    /// the choice came from, if one was made.
    pub fn choose(
        &self,
        strategy: Strategy,
        named: bool,
        window: usize,
        sequences: usize,
    ) -> (Strategy, Option<PolicyEstimate>) {
        if named || strategy == Strategy::Ar {
            return (strategy, None);
        }
        match self.estimate(strategy, window, sequences) {
            Some(estimate) if !estimate.speculation_pays() => (Strategy::Ar, Some(estimate)),
            estimate => (strategy, estimate),
        }
    }
}

impl Policy {
    /// Lets the policy pick `job`'s strategy where it may: a synchronous speculative default
    /// gets a per-round window hook (its window while speculation pays at `batch_size()`
    /// sequences, 0 once it does not), `pipespec` is kept or turned into `ar` now, for
    /// `sequences` sequences.
    pub fn fit_job(
        self: &Arc<Self>,
        job: &mut Job,
        sequences: usize,
        batch_size: BatchSize,
        metrics: Arc<Metrics>,
    ) {
        if !job.policy_may_choose {
            return;
        }
        let strategy = job.strategy;
        match strategy {
            Strategy::Ar => {}
            Strategy::Pipespec => {
                let (chosen, estimate) =
                    self.choose(strategy, false, job.speculation.window, sequences);
                if let Some(estimate) = estimate {
                    metrics.batch.record_policy(&estimate);
                }
                job.strategy = chosen;
            }
            Strategy::Sd | Strategy::Staged | Strategy::Lookup => {
                let policy = self.clone();
                // Once a request stops speculating it does not start again: its drafters
                // would first have to feed everything generated since (a prefill's cost).
                let stopped = AtomicBool::new(false);
                let hook: WindowHook = Arc::new(move |window| {
                    let speculate = !stopped.load(Ordering::Relaxed) && {
                        let estimate = policy.estimate(strategy, window, batch_size());
                        if let Some(estimate) = &estimate {
                            metrics.batch.record_policy(estimate);
                        }
                        estimate.is_none_or(|e| e.speculation_pays())
                    };
                    stopped.store(!speculate, Ordering::Relaxed);
                    metrics.batch.record_round(speculate);
                    if speculate {
                        window
                    } else {
                        0
                    }
                });
                job.speculation.window_hook = Some(hook);
            }
        }
    }
}

fn index_of(strategy: Strategy) -> Option<usize> {
    Strategy::ALL.iter().position(|&s| s == strategy)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
