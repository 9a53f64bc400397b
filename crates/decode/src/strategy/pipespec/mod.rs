//! `pipespec`: the asynchronous k-level pipeline. Every level runs its own loop on its own OS thread, owning its model and cache; levels coordinate only through the tracks they publish.
//!
//! Level 0 drafts continuously; each middle level verifies what the level above published (one
//! pass over [last token, drafts...]) or, with nothing to verify, takes a one-token step of its
//! own; the target (on the calling thread) verifies and commits. A level whose track differs
//! from the next level's adopts that track from the first differing position (its cache
//! realigns and feeds every adopted token): rejections cascade upward that way, and `Track::epoch`
//! counts them. A level never runs more than `run_ahead` tokens ahead of the next. Stages share
//! one mutex-guarded board, held only to plan and publish, never across a forward pass; an idle
//! stage parks on a condition variable.
//!
//! Core lending (`SpeculationConfig::fill_window` with levels that `can_borrow_cores`): a
//! verifier waits for a full window while the level above is still drafting, and a model level
//! runs on the cores of every other model level while they are all parked (a drafter only while
//! the next level still lacks a full window), on its own cores otherwise. Verification passes
//! cost about the same for 2 rows as for 7, so fewer, fuller ones leave the drafter more time on
//! all the cores; a target whose drafters are parked (run-ahead reached) verifies on all of them.

mod gate;
mod shared;
mod stage;

use std::time::Instant;

use crate::error::{DecodeError, Result};
use crate::generate::GenerationConfig;
use crate::level::Level;
use crate::speculation::SpeculationConfig;
use crate::strategy::chain::{prepare_chain, report};
use crate::strategy::commit::Committed;
use crate::strategy::StrategyOutput;

use gate::{Gate, OpenOnDrop};
use shared::{Shared, StopOnDrop};
use stage::{Stage, StageConfig, StageStats};

/// Runs every level of `chain` (smallest first, target last) as one asynchronous pipeline.
/// Returns once every stage thread has been joined.
pub fn generate(
    chain: &mut [Box<dyn Level>],
    prompt: &[u32],
    config: &GenerationConfig,
    speculation: &SpeculationConfig,
    on_token: &mut dyn FnMut(u32) -> bool,
) -> Result<StrategyOutput> {
    let (vocab, budget) = prepare_chain(chain, prompt, config, speculation)?;
    let start = Instant::now();
    let mut committed = Committed::new(config, budget, start);
    let mut prefill_s = 0.0;
    if budget > 0 {
        let stage_config = StageConfig {
            prompt,
            budget,
            window: speculation.window,
            run_ahead: speculation.run_ahead,
            sampling: config.sampling,
            verifier: speculation.sampling_verifier,
            delay: speculation.delay,
            fill_window: speculation.fill_window,
            vocab,
            target: chain.len() - 1,
            computes: chain.iter().map(|level| level.can_verify()).collect(),
        };
        let stats = run_stages(
            chain,
            &stage_config,
            config.seed,
            &mut committed,
            on_token,
            &mut prefill_s,
            start,
        )?;
        for (index, stats) in stats.iter().enumerate() {
            record(chain, index, stats);
        }
    }
    Ok(StrategyOutput {
        generation: committed.into_output(prompt.len(), prefill_s),
        levels: chain.iter().map(|level| report(&**level)).collect(),
    })
}

/// Spawns a thread per level below the target, runs the target here, joins them all; returns
/// each stage's statistics, smallest level first, or the first error.
fn run_stages(
    chain: &mut [Box<dyn Level>],
    config: &StageConfig<'_>,
    seed: u64,
    committed: &mut Committed<'_>,
    on_token: &mut dyn FnMut(u32) -> bool,
    prefill_s: &mut f64,
    start: Instant,
) -> Result<Vec<StageStats>> {
    let shared = Shared::new(chain.len());
    let Some((target, uppers)) = chain.split_last_mut() else {
        return Err(DecodeError::InvalidParameter {
            name: "chain",
            bounds: "at least one level",
            value: "none".into(),
        });
    };
    let target_index = uppers.len();
    let gate = Gate::default();
    let (target_result, upper_results) = std::thread::scope(|scope| {
        let (shared, gate) = (&shared, &gate);
        let handles: Vec<_> = uppers
            .iter_mut()
            .enumerate()
            .map(|(index, level)| {
                scope.spawn(move || {
                    // Whatever ends this stage (an error, a panic) stops the others.
                    let _stop = StopOnDrop(shared);
                    let mut stage = Stage::new(
                        index,
                        level.as_mut(),
                        shared,
                        config,
                        stage_seed(seed, index),
                    );
                    // Prefilled once the target sent its first token: that token needs
                    // only the target's prefill.
                    let result = match gate.wait() {
                        true => stage.prefill().and_then(|_| stage.run()),
                        false => Ok(()),
                    };
                    (result, stage.stats)
                })
            })
            .collect();
        let target_result = {
            let _stop = StopOnDrop(shared);
            let _open = OpenOnDrop(gate);
            let mut stage = Stage::new(target_index, target.as_mut(), shared, config, seed);
            let mut first_sent = |token| {
                let go_on = on_token(token);
                gate.open(true);
                go_on
            };
            let result = stage.prefill().and_then(|_| {
                // The other levels prefill on their own threads once the first token is out.
                *prefill_s = start.elapsed().as_secs_f64();
                stage.run_target(committed, &mut first_sent)
            });
            (result, stage.stats)
        };
        let upper_results: Vec<_> = handles.into_iter().map(|h| h.join()).collect();
        (target_result, upper_results)
    });
    let mut all = Vec::with_capacity(target_index + 1);
    let mut first_error = target_result.0.err();
    for joined in upper_results {
        // A stage panic is a bug: carry it to the caller as the panic it was.
        let (result, stats) = joined.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        if let (None, Err(error)) = (&first_error, result) {
            first_error = Some(error);
        }
        all.push(stats);
    }
    all.push(target_result.1);
    match first_error {
        Some(error) => Err(error),
        None => Ok(all),
    }
}

/// Each level samples from its own stream.
fn stage_seed(seed: u64, index: usize) -> u64 {
    seed ^ 0x9E37_79B9_7F4A_7C15u64.wrapping_mul(index as u64 + 1)
}

/// Adds a stage's statistics to its level's counters, and its verification of the level
/// above to that level's drafting counters.
fn record(chain: &mut [Box<dyn Level>], index: usize, stats: &StageStats) {
    let metrics = chain[index].metrics_mut();
    metrics.busy_s += stats.busy_s;
    metrics.idle_s += stats.idle_s;
    metrics.rollbacks_received += stats.rollbacks_received;
    metrics.rollbacks_sent += stats.rollbacks_sent;
    metrics.borrowed_passes += stats.borrowed_passes;
    if index > 0 {
        let upstream = chain[index - 1].metrics_mut();
        upstream.n_drafted += stats.upstream_drafted;
        upstream.n_accepted += stats.upstream_accepted;
        upstream.n_verifications += stats.upstream_verifications;
    }
}
