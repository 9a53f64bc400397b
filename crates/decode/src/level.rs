//! The one trait strategies see of a chain level, the drafts a level proposes, and the model level that wraps a `Session`.

use std::sync::Arc;
use std::time::Instant;

use pipespec_model::Session;

use crate::error::{DecodeError, Result};
use crate::metrics::LevelMetrics;
use crate::sampling::{Sampler, SamplingParams};

/// Tokens a level proposes, with the distribution each was drawn from when that was not one-hot.
#[derive(Debug, Clone, Default)]
pub struct Drafts {
    pub tokens: Vec<u32>,
    /// (tokens, vocab) row-major; empty when every token was chosen deterministically (one-hot q),
    /// as a greedy model or the n-gram drafter does.
    pub distributions: Vec<f32>,
}

impl Drafts {
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    pub fn clear(&mut self) {
        self.tokens.clear();
        self.distributions.clear();
    }

    /// Appends a token; `distribution` is None for a deterministic choice. A block is either all
    /// deterministic or all with distributions, so verification can read rows by index.
    pub fn push(&mut self, token: u32, distribution: Option<&[f32]>) {
        debug_assert_eq!(
            distribution.is_some(),
            !self.distributions.is_empty() || self.tokens.is_empty(),
            "a draft block mixes one-hot and full distributions"
        );
        self.tokens.push(token);
        if let Some(row) = distribution {
            self.distributions.extend_from_slice(row);
        }
    }

    /// Keeps the first `len` tokens (and their rows).
    pub fn truncate(&mut self, len: usize) {
        if len < self.tokens.len() {
            if !self.distributions.is_empty() {
                let vocab = self.distributions.len() / self.tokens.len();
                self.distributions.truncate(len * vocab);
            }
            self.tokens.truncate(len);
        }
    }

    /// The rows of the distributions, None when the block is deterministic.
    pub fn distributions(&self) -> Option<&[f32]> {
        (!self.distributions.is_empty()).then_some(&self.distributions[..])
    }
}

/// One level of a chain as strategies see it: a sequence-in, logits-or-drafts-out view. A level
/// owns its state (a KV cache, or nothing) and brings it in line with whatever sequence it is
/// given, so strategies never track cache lengths and rollback is implicit. `Send` so a pipeline
/// can give each level its own thread.
pub trait Level: Send {
    /// A short label for reports: a file name, or `ngram`.
    fn name(&self) -> &str;

    /// Whether the level can score tokens (`logits`); the n-gram drafter cannot.
    fn can_verify(&self) -> bool;

    /// The vocabulary size of the logits rows; None for a level without logits.
    fn vocab_size(&self) -> Option<usize>;

    /// The most positions the level can hold; None when unbounded.
    fn capacity(&self) -> Option<usize>;

    /// Processes the prompt ahead of decoding (its time is reported as prefill).
    fn prefill(&mut self, prompt: &[u32]) -> Result<()>;

    /// Next-token logits after each of the last `rows` positions of `sequence`, (rows, vocab)
    /// row-major. Only what the level lacks is fed, in one forward pass: positions it holds that
    /// disagree with `sequence` are dropped first (the rollback).
    fn logits(&mut self, sequence: &[u32], rows: usize) -> Result<&[f32]>;

    /// Appends up to `count` proposed continuations of `sequence` to `drafts` (fewer when the
    /// level has nothing to propose).
    fn draft(
        &mut self,
        sequence: &[u32],
        count: usize,
        sampling: &SamplingParams,
        sampler: &mut Sampler,
        drafts: &mut Drafts,
    ) -> Result<()>;

    fn metrics(&self) -> &LevelMetrics;

    fn metrics_mut(&mut self) -> &mut LevelMetrics;

    /// `pipespec`: whether this level was given a wider pool to borrow the cores of idle levels.
    fn can_borrow_cores(&self) -> bool {
        false
    }

    /// `pipespec`: runs the next passes on the wider pool (`true`) or on the level's own.
    fn borrow_cores(&mut self, _borrow: bool) {}
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
    session: Session,
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
    pub fn new(name: impl Into<String>, session: Session) -> ModelLevel {
        ModelLevel {
            name: name.into(),
            session,
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
        self.pools = Some(LendingPools {
            own: self.session.pool().clone(),
            wide,
        });
        self
    }

    pub fn session(&self) -> &Session {
        &self.session
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
        self.session.truncate(keep);
        self.fed.truncate(keep);
        self.last_row = None;
        let tokens = &sequence[keep..];
        let start = Instant::now();
        let vocab = self.session.model().config.vocab_size;
        let logits = if rows == 1 {
            // Chunked and computing only the last row's head: prompt-sized feeds stay cheap.
            self.session.forward_last(tokens, keep)?
        } else {
            let all = self.session.forward(tokens, keep)?;
            &all[all.len() - rows * vocab..]
        };
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
        Some(self.session.model().config.vocab_size)
    }

    fn capacity(&self) -> Option<usize> {
        Some(self.session.capacity())
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

    fn borrow_cores(&mut self, borrow: bool) {
        if let Some(pools) = &self.pools {
            let pool = if borrow { &pools.wide } else { &pools.own };
            if !Arc::ptr_eq(self.session.pool(), pool) {
                self.session.set_pool(pool.clone());
            }
        }
    }
}
