//! A step: one batched pass of one model over its running passes (decode and verification
//! rows whole, prompts in chunks); the passes it finishes are answered.
//!
//! The model is the one most sequences wait on, the smaller on a tie, so requests that
//! speculate fall into phase: they draft together and verify together, and the target's
//! weights are read once per round for all of them rather than at every draft step (a pass
//! costs about as much for a few rows as for one), while a batch mostly decoding with the
//! target alone is not held up by a few drafting requests. A pass that waited `MAX_SKIPS`
//! steps forces its model's turn.

use std::sync::Arc;
use std::time::Instant;

use pipespec_model::{Batch, BatchItem, Model};

use super::{Pass, Reply, Shared, StepReport};
use crate::error::{DecodeError, Result};

/// The smallest prompt chunk worth a place in a step; the oldest prompt gets at least this
/// many rows every step, so decoding many sequences never starves a prefill.
const MIN_CHUNK: usize = 32;

/// Steps a pass may wait while other models run before its model's turn is forced: long
/// enough for drafting requests to finish their windows (the default window is 6) and verify
/// with the others.
const MAX_SKIPS: usize = 8;

/// A pass the engine holds, with how many of its tokens earlier steps fed.
pub(super) struct Running {
    pass: Pass,
    done: usize,
    /// Steps that ran another model while this pass waited.
    skipped: usize,
}

impl Running {
    pub(super) fn new(pass: Pass) -> Running {
        Running {
            pass,
            done: 0,
            skipped: 0,
        }
    }

    fn model(&self) -> &Arc<Model> {
        self.pass.session.model()
    }

    fn left(&self) -> usize {
        self.pass.tokens.len() - self.done
    }

    /// Whether the pass is a prompt to feed in chunks rather than a few rows to run whole.
    fn chunked(&self) -> bool {
        self.left() > self.pass.head_rows + MIN_CHUNK
    }

    /// The answer of a pass that ended with `outcome`: (its id, the reply).
    fn answer(self, outcome: Result<()>) -> (u64, Reply) {
        let Pass {
            id,
            session,
            tokens,
            logits,
            ..
        } = self.pass;
        (
            id,
            Reply {
                session,
                tokens,
                logits,
                outcome,
            },
        )
    }

    /// The answer of a pass that failed with `error`.
    pub(super) fn fail(self, error: DecodeError) -> (u64, Reply) {
        self.answer(Err(error))
    }
}

/// One batched pass of the model `pick_model` names; returns the answers of the passes it
/// finished and leaves the rest in `running`.
pub(super) fn step(
    shared: &Shared,
    batch: &mut Batch,
    running: &mut Vec<Running>,
    gap_seconds: Option<f64>,
) -> Vec<(u64, Reply)> {
    let Some(model) = pick_model(running) else {
        return Vec::new();
    };
    let plan = plan(running, &model, shared.config.step_tokens);
    let mut planned = plan.iter().map(|&(index, _)| index).peekable();
    for (index, r) in running.iter_mut().enumerate() {
        if planned.next_if_eq(&index).is_none() {
            r.skipped += 1;
        } else {
            r.skipped = 0;
        }
    }
    let mut finished = run_plan(shared, batch, running, &model, &plan, gap_seconds);
    finished.sort_by_key(|(index, _)| std::cmp::Reverse(*index));
    finished
        .into_iter()
        .map(|(index, outcome)| running.remove(index).answer(outcome))
        .collect()
}

/// The model of the pass that waited `MAX_SKIPS` steps or more (the longest), else the model
/// most passes wait on, the smallest (in weight bytes) of those tied.
fn pick_model(running: &[Running]) -> Option<Arc<Model>> {
    if let Some(starved) = running
        .iter()
        .filter(|r| r.skipped >= MAX_SKIPS)
        .max_by_key(|r| r.skipped)
    {
        return Some(starved.model().clone());
    }
    let mut counts: Vec<(&Arc<Model>, usize)> = Vec::new();
    for r in running {
        match counts.iter_mut().find(|(m, _)| Arc::ptr_eq(m, r.model())) {
            Some((_, count)) => *count += 1,
            None => counts.push((r.model(), 1)),
        }
    }
    counts
        .into_iter()
        .max_by_key(|(model, count)| (*count, std::cmp::Reverse(model.weight_bytes())))
        .map(|(model, _)| model.clone())
}

/// Which passes of `model` this step feeds, and how many tokens of each: (index, tokens),
/// in index order. Decode and verification rows run whole; prompt chunks fill up to
/// `step_tokens`, the oldest prompt always getting at least `MIN_CHUNK`.
fn plan(running: &[Running], model: &Arc<Model>, step_tokens: usize) -> Vec<(usize, usize)> {
    let of_model = || {
        running
            .iter()
            .enumerate()
            .filter(|(_, r)| Arc::ptr_eq(r.model(), model))
    };
    let mut plan: Vec<(usize, usize)> = of_model()
        .filter(|(_, r)| !r.chunked())
        .map(|(index, r)| (index, r.left()))
        .collect();
    let mut used: usize = plan.iter().map(|(_, rows)| rows).sum();
    for (nth, (index, r)) in of_model().filter(|(_, r)| r.chunked()).enumerate() {
        let room = step_tokens.saturating_sub(used);
        let room = if nth == 0 { room.max(MIN_CHUNK) } else { room };
        if room < MIN_CHUNK {
            break;
        }
        // a chunk before the last leaves at least the head rows for the last
        let rows = if r.left() <= room {
            r.left()
        } else {
            room.min(r.left() - r.pass.head_rows)
        };
        plan.push((index, rows));
        used += rows;
    }
    plan.sort_unstable();
    plan
}

/// Runs one batched pass over `plan`; returns the passes it finished (fed to their end, or
/// failed) with their outcome.
fn run_plan(
    shared: &Shared,
    batch: &mut Batch,
    running: &mut [Running],
    model: &Arc<Model>,
    plan: &[(usize, usize)],
    gap_seconds: Option<f64>,
) -> Vec<(usize, Result<()>)> {
    if plan.is_empty() {
        return Vec::new();
    }
    let started = Instant::now();
    let mut planned = plan.iter().peekable();
    let mut items = Vec::with_capacity(plan.len());
    for (index, r) in running.iter_mut().enumerate() {
        let Some(&(_, rows)) = planned.next_if(|(at, _)| *at == index) else {
            continue;
        };
        let last = r.done + rows == r.pass.tokens.len();
        items.push(BatchItem {
            session: &mut r.pass.session,
            tokens: &r.pass.tokens[r.done..r.done + rows],
            start: r.pass.start + r.done,
            head_rows: if last { r.pass.head_rows } else { 0 },
        });
    }
    let outcomes = batch.forward(&shared.pool, &mut items);
    drop(items);
    if let Some(observer) = &shared.observer {
        observer(
            model,
            &StepReport {
                sequences: plan.len(),
                rows: plan.iter().map(|(_, rows)| rows).sum(),
                longest: plan.iter().map(|&(_, rows)| rows).max().unwrap_or(0),
                seconds: started.elapsed().as_secs_f64(),
                gap_seconds,
            },
        );
    }
    let outcomes = match outcomes {
        Ok(outcomes) => outcomes,
        Err(error) => {
            let message = format!("a batched pass failed: {error}");
            return plan
                .iter()
                .map(|&(index, _)| (index, Err(DecodeError::Batch(message.clone()))))
                .collect();
        }
    };
    let mut finished = Vec::new();
    for (&(index, rows), outcome) in plan.iter().zip(outcomes) {
        let r = &mut running[index];
        match outcome {
            Ok(logits) => {
                r.done += rows;
                if r.done == r.pass.tokens.len() {
                    r.pass.logits.clear();
                    r.pass.logits.extend_from_slice(&batch.logits()[logits]);
                    finished.push((index, Ok(())));
                }
            }
            Err(error) => finished.push((index, Err(error.into()))),
        }
    }
    finished
}
