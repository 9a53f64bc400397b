//! How a pass gets run: its owner queues it, then waits until its answer is there, leading a
//! step itself whenever one is due and no other thread leads one. A step is due once every
//! member has a pass waiting, or the oldest has waited `max_wait`.

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
        let since = state
            .ready_since
            .or_else(|| state.pending.iter().map(|pass| pass.arrived).min())
            .unwrap_or_else(Instant::now);
        let waited = since.elapsed();
        if waiting >= state.members || state.stopped || waited >= shared.config.max_wait {
            state = lead(shared, state);
            continue;
        }
        let rest = shared.config.max_wait - waited;
        state = match shared.wake.wait_timeout(state, rest) {
            Ok((state, _)) => state,
            Err(poisoned) => poisoned.into_inner().0,
        };
    }
}

/// Runs one step over every waiting pass, outside the lock, and posts its answers.
fn lead<'a>(shared: &'a Shared, mut state: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
    state.stepping = true;
    let mut running = std::mem::take(&mut state.running);
    running.extend(state.pending.drain(..).map(Running::new));
    drop(state);
    let outcome = {
        let mut batch = lock(&shared.batch);
        catch_unwind(AssertUnwindSafe(|| {
            step::step(shared, &mut batch, &mut running)
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
    state.ready_since = (!running.is_empty()).then(Instant::now);
    state.running = running;
    state.stepping = false;
    shared.wake.notify_all();
    state
}
