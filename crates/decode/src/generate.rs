//! Autoregressive generation on one model: the reference every speculative strategy must reproduce.

use std::time::Instant;

use pipespec_model::Session;

use crate::error::{DecodeError, Result};
use crate::sampling::{Sampler, SamplingParams};

/// What to generate and when to stop.
#[derive(Debug, Clone)]
pub struct GenerationConfig {
    pub max_tokens: usize,
    pub sampling: SamplingParams,
    pub seed: u64,
    /// End-of-generation ids; generation stops before emitting one (unless `ignore_eos`).
    pub stop_ids: Vec<u32>,
    pub ignore_eos: bool,
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// An end-of-generation token.
    Stop,
    /// The token budget or the context was used up.
    Length,
    /// The caller asked to stop.
    Cancelled,
}

impl FinishReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::Cancelled => "cancelled",
        }
    }
}

/// Generated ids and the timings around them.
#[derive(Debug, Clone)]
pub struct GenerationOutput {
    pub tokens: Vec<u32>,
    pub prompt_tokens: usize,
    pub finish_reason: FinishReason,
    /// Prompt processing time (all levels).
    pub prefill_s: f64,
    /// From the start of prefill to the first generated token.
    pub ttft_s: f64,
    /// From the start of prefill to the last token.
    pub wall_s: f64,
}

impl GenerationOutput {
    pub fn prefill_tokens_per_second(&self) -> f64 {
        rate(self.prompt_tokens, self.prefill_s)
    }

    /// Tokens after the first, over the time after the first.
    pub fn decode_tokens_per_second(&self) -> f64 {
        rate(
            self.tokens.len().saturating_sub(1),
            self.wall_s - self.ttft_s,
        )
    }
}

fn rate(count: usize, seconds: f64) -> f64 {
    if seconds > 0.0 {
        count as f64 / seconds
    } else {
        0.0
    }
}

/// Checks the prompt against the session's capacity and returns how many tokens may follow it.
pub fn token_budget(prompt: &[u32], capacity: usize, max_tokens: usize) -> Result<usize> {
    if prompt.is_empty() {
        return Err(DecodeError::EmptyPrompt);
    }
    if prompt.len() >= capacity {
        return Err(DecodeError::PromptTooLong {
            prompt: prompt.len(),
            capacity,
        });
    }
    // The last generated token is never fed, so the cache needs prompt + budget - 1 positions.
    Ok(max_tokens.min(capacity + 1 - prompt.len()))
}

/// Generates from `prompt` one token per forward pass. `on_token` sees each token as it is
/// committed and returns false to cancel.
pub fn generate_autoregressive(
    session: &mut Session,
    prompt: &[u32],
    config: &GenerationConfig,
    on_token: &mut dyn FnMut(u32) -> bool,
) -> Result<GenerationOutput> {
    config.sampling.validate()?;
    let budget = token_budget(prompt, session.capacity(), config.max_tokens)?;
    let mut sampler = Sampler::new(config.seed);
    let mut probs = Vec::new();
    let start = Instant::now();
    let mut tokens = Vec::with_capacity(budget);
    let mut finish_reason = FinishReason::Length;
    let mut prefill_s = 0.0;
    let mut ttft_s = 0.0;
    if budget > 0 {
        let logits = session.forward_last(prompt, 0)?;
        prefill_s = start.elapsed().as_secs_f64();
        let mut next = sampler.sample(logits, &config.sampling, &mut probs);
        loop {
            if !config.ignore_eos && config.stop_ids.contains(&next) {
                finish_reason = FinishReason::Stop;
                break;
            }
            tokens.push(next);
            if tokens.len() == 1 {
                ttft_s = start.elapsed().as_secs_f64();
            }
            if !on_token(next) {
                finish_reason = FinishReason::Cancelled;
                break;
            }
            if tokens.len() == budget {
                break;
            }
            let position = prompt.len() + tokens.len() - 1;
            let logits = session.forward(&[next], position)?;
            next = sampler.sample(logits, &config.sampling, &mut probs);
        }
    }
    let wall_s = start.elapsed().as_secs_f64();
    if tokens.is_empty() {
        ttft_s = wall_s;
    }
    Ok(GenerationOutput {
        tokens,
        prompt_tokens: prompt.len(),
        finish_reason,
        prefill_s,
        ttft_s,
        wall_s,
    })
}
