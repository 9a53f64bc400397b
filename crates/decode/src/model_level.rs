//! The model level: a `Session` (its own KV cache) and the tokens it holds, its passes run
//! alone or inside a batch engine's steps.

use std::sync::Arc;
use std::time::Instant;

use pipespec_model::{Model, Session};

use crate::batch::{BatchClient, BatchedSession};
use crate::error::{DecodeError, Result};
use crate::level::{CachedSequence, Drafts, Level};
use crate::metrics::LevelMetrics;
use crate::sampling::{Sampler, SamplingParams};

/// How a level's forward passes run.
enum Passes {
    /// On the session's own pool, one sequence per pass.
    Solo(Session),
    /// As one sequence of a batch engine's steps.
    Batched(BatchedSession),
}

impl Passes {
    fn model(&self) -> &Arc<Model> {
        match self {
            Passes::Solo(session) => session.model(),
            Passes::Batched(batched) => batched.model(),
        }
    }

    fn capacity(&self) -> usize {
        match self {
            Passes::Solo(session) => session.capacity(),
            Passes::Batched(batched) => batched.capacity(),
        }
    }

    /// Feeds `tokens` at `start` and returns the logits of the last `rows` of them.
    fn forward(&mut self, tokens: &[u32], start: usize, rows: usize) -> Result<&[f32]> {
        match self {
            Passes::Solo(session) => Ok(if rows == 1 {
                // Chunked and computing only the last row's head: prompt-sized feeds stay cheap.
                session.forward_last(tokens, start)?
            } else {
                let vocab = session.model().config.vocab_size;
                let all = session.forward(tokens, start)?;
                &all[all.len() - rows * vocab..]
            }),
            Passes::Batched(batched) => batched.forward(tokens, start, rows),
        }
    }
}

/// Which counter a forward pass's time goes to.
#[derive(Debug, Clone, Copy)]
enum Phase {
    Prefill,
    Decode,
}

/// A model level: a session (its own KV cache) plus a record of the tokens that cache holds.
pub struct ModelLevel {
    name: String,
    passes: Passes,
    /// The tokens whose keys and values the cache holds, in position order.
    fed: Vec<u32>,
    /// Logits after the last fed token; `fed` ends where they apply whenever this is Some.
    last_row: Option<Vec<f32>>,
    /// Reused buffers of the drafting loop.
    probabilities: Vec<f32>,
    sequence: Vec<u32>,
    metrics: LevelMetrics,
    /// The level's own pool and a wider one it may borrow (`pipespec`'s core lending).
    pools: Option<LendingPools>,
}

struct LendingPools {
    own: Arc<rayon::ThreadPool>,
    wide: Arc<rayon::ThreadPool>,
}

impl ModelLevel {
    /// A level that runs its passes itself, on its session's pool.
    pub fn new(name: impl Into<String>, session: Session) -> ModelLevel {
        ModelLevel::with_passes(name.into(), Passes::Solo(session))
    }

    /// A level whose passes join the steps of a batch engine, its cache holding `cached`.
    pub(crate) fn batched(name: String, cached: CachedSequence, client: BatchClient) -> ModelLevel {
        let CachedSequence {
            mut session,
            mut tokens,
        } = cached;
        tokens.truncate(session.len());
        session.truncate(tokens.len());
        let mut level =
            ModelLevel::with_passes(name, Passes::Batched(BatchedSession::new(session, client)));
        level.fed = tokens;
        level
    }

    fn with_passes(name: String, passes: Passes) -> ModelLevel {
        ModelLevel {
            name,
            passes,
            fed: Vec::new(),
            last_row: None,
            probabilities: Vec::new(),
            sequence: Vec::new(),
            metrics: LevelMetrics::default(),
            pools: None,
        }
    }

    /// Lets the level run on `wide` (its own cores and those of other levels) when a
    /// pipeline says the other levels are idle.
    pub fn with_borrowable_pool(mut self, wide: Arc<rayon::ThreadPool>) -> ModelLevel {
        if let Passes::Solo(session) = &self.passes {
            self.pools = Some(LendingPools {
                own: session.pool().clone(),
                wide,
            });
        }
        self
    }

    /// `logits`, with the time of any pass added to `clock` (None when the caller times itself).
    fn feed(&mut self, sequence: &[u32], rows: usize, clock: Option<Phase>) -> Result<&[f32]> {
        if rows == 0 || rows > sequence.len() {
            return Err(DecodeError::InvalidParameter {
                name: "rows",
                bounds: "between 1 and the sequence length",
                value: format!("{rows} of {}", sequence.len()),
            });
        }
        let common = self
            .fed
            .iter()
            .zip(sequence)
            .take_while(|(a, b)| a == b)
            .count();
        if rows == 1
            && common == sequence.len()
            && self.fed.len() == common
            && self.last_row.is_some()
        {
            // The last pass already ended here (prefill, or a draft step read twice): no work.
            return Ok(self.last_row.as_deref().unwrap_or_default());
        }
        // Logits are not kept per position, so the rows asked for are always recomputed.
        let keep = common.min(sequence.len() - rows);
        self.fed.truncate(keep);
        self.last_row = None;
        let tokens = &sequence[keep..];
        let start = Instant::now();
        let vocab = self.passes.model().config.vocab_size;
        let logits = self.passes.forward(tokens, keep, rows)?;
        self.metrics.forward_passes += 1;
        let seconds = start.elapsed().as_secs_f64();
        match clock {
            Some(Phase::Prefill) => self.metrics.prefill_s += seconds,
            Some(Phase::Decode) => self.metrics.decode_s += seconds,
            None => {}
        }
        self.fed.extend_from_slice(tokens);
        let mut last = self.last_row.take().unwrap_or_default();
        last.clear();
        last.extend_from_slice(&logits[logits.len() - vocab..]);
        self.last_row = Some(last);
        Ok(logits)
    }
}

impl Level for ModelLevel {
    fn name(&self) -> &str {
        &self.name
    }

    fn can_verify(&self) -> bool {
        true
    }

    fn vocab_size(&self) -> Option<usize> {
        Some(self.passes.model().config.vocab_size)
    }

    fn capacity(&self) -> Option<usize> {
        Some(self.passes.capacity())
    }

    fn prefill(&mut self, prompt: &[u32]) -> Result<()> {
        self.feed(prompt, 1, Some(Phase::Prefill))?;
        Ok(())
    }

    fn logits(&mut self, sequence: &[u32], rows: usize) -> Result<&[f32]> {
        self.feed(sequence, rows, Some(Phase::Decode))
    }

    fn draft(
        &mut self,
        sequence: &[u32],
        count: usize,
        sampling: &SamplingParams,
        sampler: &mut Sampler,
        drafts: &mut Drafts,
    ) -> Result<()> {
        let start = Instant::now();
        let mut extended = std::mem::take(&mut self.sequence);
        let mut probabilities = std::mem::take(&mut self.probabilities);
        extended.clear();
        extended.extend_from_slice(sequence);
        let mut result = Ok(());
        for _ in 0..count {
            let row = match self.feed(&extended, 1, None) {
                Ok(row) => row,
                Err(error) => {
                    result = Err(error);
                    break;
                }
            };
            let token = sampler.sample(row, sampling, &mut probabilities);
            let distribution = (!sampling.is_greedy()).then_some(&probabilities[..]);
            drafts.push(token, distribution);
            extended.push(token);
        }
        self.sequence = extended;
        self.probabilities = probabilities;
        self.metrics.decode_s += start.elapsed().as_secs_f64();
        result
    }

    fn metrics(&self) -> &LevelMetrics {
        &self.metrics
    }

    fn metrics_mut(&mut self) -> &mut LevelMetrics {
        &mut self.metrics
    }

    fn can_borrow_cores(&self) -> bool {
        self.pools.is_some()
    }

    fn into_cache(self: Box<Self>) -> Option<CachedSequence> {
        let session = match self.passes {
            Passes::Solo(session) => session,
            Passes::Batched(batched) => batched.into_session()?,
        };
        Some(CachedSequence {
            session,
            tokens: self.fed,
        })
    }

    fn borrow_cores(&mut self, borrow: bool) {
        if let (Some(pools), Passes::Solo(session)) = (&self.pools, &mut self.passes) {
            let pool = if borrow { &pools.wide } else { &pools.own };
            if !Arc::ptr_eq(session.pool(), pool) {
                session.set_pool(pool.clone());
            }
        }
    }
}
