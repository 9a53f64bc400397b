//! One engine per loaded chain: the forward passes of every running request are gathered
//! into steps, one batched pass per model, so many sequences share each read of the weights.
//!
//! A request's levels (`ChainBuilder::build_batched`) hand their session to the engine for each
//! pass and block until it comes back with the logits, so strategies run unchanged, each on its
//! own thread, and stay exact: the batched pass gives every sequence the logits it would get
//! alone. A step runs once every member chain has a pass waiting (or no pass arrived for
//! `quiet`: the missing members are busy elsewhere), on the
//! thread of one of the waiting requests (the leader: no hand-off to an engine thread, so one
//! stream decodes as fast as without batching); prompts longer than the step's room are fed in
//! chunks over several steps, so a long prompt never stalls the others.

mod client;
mod leader;
pub mod policy;
mod step;

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use pipespec_model::{Batch, Model, Session};

use crate::error::{DecodeError, Result};

pub(crate) use client::{BatchClient, BatchedSession};

/// Rows of one model's pass a step aims at, prompt chunks filling what decoding leaves.
pub const DEFAULT_STEP_TOKENS: usize = 128;

/// How long a step waits after the last arrival for members that have not sent their pass yet.
pub const DEFAULT_QUIET: Duration = Duration::from_millis(2);

/// The longest a step waits for missing members, however steadily passes arrive.
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_millis(20);

/// How the engine forms its steps.
#[derive(Debug, Clone, Copy)]
pub struct BatchConfig {
    /// Rows per model per step that prompt chunks may fill up to (decode and verification rows
    /// always run whole; the oldest prompt gets a chunk of at least `MIN_CHUNK` each step).
    pub step_tokens: usize,
    /// A step stops waiting for missing members once no pass arrived for this long...
    pub quiet: Duration,
    /// ...or once it waited this long in all.
    pub max_wait: Duration,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            step_tokens: DEFAULT_STEP_TOKENS,
            quiet: DEFAULT_QUIET,
            max_wait: DEFAULT_MAX_WAIT,
        }
    }
}

/// What one model's batched pass of a step held (for metrics).
#[derive(Debug, Clone, Copy)]
pub struct StepReport {
    /// Sequences in the pass.
    pub sequences: usize,
    /// Rows (tokens) fed, every sequence's together.
    pub rows: usize,
    /// Rows of the sequence that fed the most.
    pub longest: usize,
    pub seconds: f64,
    /// Seconds since the previous step ended (its members coming back), when that was no
    /// longer than `BatchConfig::max_wait`: the overhead of a step beyond its pass.
    pub gap_seconds: Option<f64>,
}

/// Called after every batched pass, with the model it ran.
pub type StepObserver = Box<dyn Fn(&Arc<Model>, &StepReport) + Send + Sync>;

/// A request's pass as the engine holds it until it is answered.
pub(crate) struct Pass {
    pub session: Session,
    pub tokens: Vec<u32>,
    pub start: usize,
    pub head_rows: usize,
    /// Filled with the head rows' logits.
    pub logits: Vec<f32>,
    /// Names the pass's reply.
    pub id: u64,
    pub arrived: Instant,
}

/// A pass answered: the session and the buffers back, and its logits or why it failed.
pub(crate) struct Reply {
    pub session: Session,
    /// The pass's tokens, for the next pass to reuse.
    pub tokens: Vec<u32>,
    pub logits: Vec<f32>,
    pub outcome: Result<()>,
}

#[derive(Default)]
struct State {
    /// Member chains: a step waits for a pass from each (see `BatchConfig::quiet`).
    members: usize,
    /// Passes no step has taken yet.
    pending: Vec<Pass>,
    /// Passes partly fed (prompt chunks), between steps.
    running: Vec<step::Running>,
    /// Answered passes, by id, until their owners take them.
    replies: HashMap<u64, Reply>,
    /// Whether a leader is running a step.
    stepping: bool,
    /// When the last step ended.
    ready_since: Option<Instant>,
    /// When the last pass arrived.
    last_arrival: Option<Instant>,
    next_id: u64,
    stopped: bool,
}

struct Shared {
    state: Mutex<State>,
    /// Signalled when a pass arrives, a step ends or a member leaves.
    wake: Condvar,
    config: BatchConfig,
    pool: Arc<rayon::ThreadPool>,
    observer: Option<StepObserver>,
    /// The buffers of the batched passes, used by one leader at a time.
    batch: Mutex<Batch>,
}

/// The batch engine of one chain's models, computing on `pool`.
pub struct BatchEngine {
    shared: Arc<Shared>,
}

impl BatchEngine {
    /// An engine whose `observer` hears of every batched pass.
    pub fn start(
        pool: Arc<rayon::ThreadPool>,
        config: BatchConfig,
        observer: Option<StepObserver>,
    ) -> Result<BatchEngine> {
        if config.step_tokens == 0 {
            return Err(DecodeError::InvalidParameter {
                name: "step tokens",
                bounds: "at least 1",
                value: "0".into(),
            });
        }
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
            config,
            pool,
            observer,
            batch: Mutex::new(Batch::new()),
        });
        Ok(BatchEngine { shared })
    }

    /// A new member (one chain's levels): the engine waits for its passes while it lives.
    pub(crate) fn join(&self) -> Membership {
        lock(&self.shared.state).members += 1;
        Membership {
            shared: self.shared.clone(),
        }
    }

    /// Chains currently members.
    pub fn members(&self) -> usize {
        lock(&self.shared.state).members
    }
}

impl Drop for BatchEngine {
    /// Refuses new passes; those already in run to their end (their owners lead the steps).
    fn drop(&mut self) {
        lock(&self.shared.state).stopped = true;
        self.shared.wake.notify_all();
    }
}

/// One chain's membership; leaving (drop) lets steps stop waiting for it.
pub(crate) struct Membership {
    shared: Arc<Shared>,
}

impl Membership {
    /// Runs `pass` in a step (leading one when it is this thread's turn) and returns its
    /// answer; gives the pass back when the engine has stopped.
    fn run(&self, pass: Pass) -> std::result::Result<Reply, Box<Pass>> {
        leader::run(&self.shared, pass)
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        let mut state = lock(&self.shared.state);
        state.members = state.members.saturating_sub(1);
        drop(state);
        self.shared.wake.notify_all();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
