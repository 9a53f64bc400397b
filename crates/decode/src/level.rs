//! The one trait strategies see of a chain level and the drafts a level proposes.

use pipespec_model::Session;

use crate::error::Result;
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

    /// The level's KV cache and the tokens it holds, to serve a later sequence that shares a
    /// prefix with them (None for a level without a cache).
    fn into_cache(self: Box<Self>) -> Option<CachedSequence> {
        None
    }

    /// `pipespec`: whether this level was given a wider pool to borrow the cores of idle levels.
    fn can_borrow_cores(&self) -> bool {
        false
    }

    /// `pipespec`: runs the next passes on the wider pool (`true`) or on the level's own.
    fn borrow_cores(&mut self, _borrow: bool) {}
}

pub use crate::model_level::ModelLevel;

/// A model level's KV cache and the tokens whose keys and values it holds, in position order.
pub struct CachedSequence {
    pub session: Session,
    pub tokens: Vec<u32>,
}
