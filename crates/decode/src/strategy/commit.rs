//! The committed output of a run: stop ids, the token budget, cancellation and timings, applied the same way by every strategy.

use std::time::Instant;

use crate::generate::{FinishReason, GenerationConfig, GenerationOutput};

/// Tokens committed so far and whether generation is over.
pub(crate) struct Committed<'a> {
    config: &'a GenerationConfig,
    budget: usize,
    start: Instant,
    tokens: Vec<u32>,
    ttft_s: Option<f64>,
    finish: Option<FinishReason>,
}

impl<'a> Committed<'a> {
    pub(crate) fn new(config: &'a GenerationConfig, budget: usize, start: Instant) -> Self {
        Committed {
            config,
            budget,
            start,
            tokens: Vec::with_capacity(budget),
            ttft_s: None,
            finish: (budget == 0).then_some(FinishReason::Length),
        }
    }

    pub(crate) fn is_done(&self) -> bool {
        self.finish.is_some()
    }

    /// Tokens still allowed.
    pub(crate) fn remaining(&self) -> usize {
        self.budget - self.tokens.len()
    }

    /// Commits `tokens` in order until a stop id, the budget or a cancel ends generation (a stop
    /// id is not emitted, as in `generate_autoregressive`). Returns how many were committed.
    pub(crate) fn commit(
        &mut self,
        tokens: &[u32],
        on_token: &mut dyn FnMut(u32) -> bool,
    ) -> usize {
        let before = self.tokens.len();
        for &token in tokens {
            if self.finish.is_some() {
                break;
            }
            if !self.config.ignore_eos && self.config.stop_ids.contains(&token) {
                self.finish = Some(FinishReason::Stop);
                break;
            }
            self.tokens.push(token);
            if self.ttft_s.is_none() {
                self.ttft_s = Some(self.start.elapsed().as_secs_f64());
            }
            if !on_token(token) {
                self.finish = Some(FinishReason::Cancelled);
            } else if self.tokens.len() == self.budget {
                self.finish = Some(FinishReason::Length);
            }
        }
        self.tokens.len() - before
    }

    pub(crate) fn tokens(&self) -> &[u32] {
        &self.tokens
    }

    pub(crate) fn into_output(self, prompt_tokens: usize, prefill_s: f64) -> GenerationOutput {
        let wall_s = self.start.elapsed().as_secs_f64();
        GenerationOutput {
            prompt_tokens,
            finish_reason: self.finish.unwrap_or(FinishReason::Length),
            prefill_s,
            ttft_s: self.ttft_s.unwrap_or(wall_s),
            wall_s,
            tokens: self.tokens,
        }
    }
}
