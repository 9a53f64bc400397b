//! How a pass gets run: its owner queues it, then waits until its answer is there, leading a
//! step itself whenever one is due and no other thread leads one. A step is due once every
//! member has a pass waiting, or no pass arrived for `quiet` (the missing members are busy
//! elsewhere), or the waiting lasted `max_wait`: members answered by a large step come back one
//! by one, and a step that left before they all did would split them into two phases.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::MutexGuard;
use std::time::Instant;

use super::step::{self, Running};
use super::{lock, Pass, Reply, Shared, State};
use crate::error::DecodeError;

/// Queues `pass` and returns its reply; gives the pass back when the engine has stopped.
pub(super) fn run(shared: &Shared, mut pass: Pass) -> Result<Reply, Box<Pass>> {
    let mut state = lock(&shared.state);
    if state.stopped {
        return Err(Box::new(pass));
    }
    let id = state.next_id;
    state.next_id += 1;
    pass.id = id;
    state.last_arrival = Some(pass.arrived);
    state.pending.push(pass);
    shared.wake.notify_all();
    loop {
        if let Some(reply) = state.replies.remove(&id) {
            return Ok(reply);
        }
        if state.stepping {
            state = shared.wake.wait(state).unwrap_or_else(|e| e.into_inner());
            continue;
        }
        let waiting = state.pending.len() + state.running.len();
        // waiting starts when both a pass and the engine were ready: a pass that arrived
        // during a step has not waited for the others yet
        let oldest = state.pending.iter().map(|pass| pass.arrived).min();
        let later = |a: Option<Instant>, b: Option<Instant>| match (a, b) {
            (Some(a), Some(b)) => a.max(b),
            (a, b) => a.or(b).unwrap_or_else(Instant::now),
        };
        let waited = later(state.ready_since, oldest).elapsed();
        let quiet = later(state.ready_since, state.last_arrival).elapsed();
        let config = &shared.config;
        if waiting >= state.members
            || state.stopped
            || quiet >= config.quiet
            || waited >= config.max_wait
        {
            state = lead(shared, state);
            continue;
        }
        let rest = (config.quiet - quiet).min(config.max_wait - waited);
        state = match shared.wake.wait_timeout(state, rest) {
            Ok((state, _)) => state,
            Err(poisoned) => poisoned.into_inner().0,
        };
    }
}

/// Runs one step over every waiting pass, outside the lock, and posts its answers.
fn lead<'a>(shared: &'a Shared, mut state: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
    state.stepping = true;
    let gap = state
        .ready_since
        .map(|ended| ended.elapsed())
        .filter(|gap| *gap <= shared.config.max_wait)
        .map(|gap| gap.as_secs_f64());
    let mut running = std::mem::take(&mut state.running);
    running.extend(state.pending.drain(..).map(Running::new));
    drop(state);
    let outcome = {
        let mut batch = lock(&shared.batch);
        catch_unwind(AssertUnwindSafe(|| {
            step::step(shared, &mut batch, &mut running, gap)
        }))
    };
    let finished = outcome.unwrap_or_else(|_| {
        // A bug in a pass: answer every pass of the step with an error instead of hanging.
        running
            .drain(..)
            .map(|r| r.fail(DecodeError::Batch("a batched pass panicked".into())))
            .collect()
    });
    let mut state = lock(&shared.state);
    state.replies.extend(finished);
    state.ready_since = Some(Instant::now());
    state.running = running;
    state.stepping = false;
    shared.wake.notify_all();
    state
}
