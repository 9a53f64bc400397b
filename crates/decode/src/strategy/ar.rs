//! `ar`: the target alone, one token per forward pass: the output every other strategy must reproduce.

use std::time::Instant;

use crate::error::Result;
use crate::generate::{token_budget, GenerationConfig};
use crate::level::Level;
use crate::sampling::Sampler;
use crate::strategy::chain::{check_verifier, report};
use crate::strategy::commit::Committed;
use crate::strategy::StrategyOutput;

/// Generates with `target` alone; the same draws as `generate_autoregressive` for the same seed.
pub fn generate(
    target: &mut dyn Level,
    prompt: &[u32],
    config: &GenerationConfig,
    on_token: &mut dyn FnMut(u32) -> bool,
) -> Result<StrategyOutput> {
    config.sampling.validate()?;
    check_verifier(target)?;
    let budget = token_budget(
        prompt,
        target.capacity().unwrap_or(usize::MAX),
        config.max_tokens,
    )?;
    *target.metrics_mut() = Default::default();
    let mut sampler = Sampler::new(config.seed);
    let mut probabilities = Vec::new();
    let start = Instant::now();
    let mut committed = Committed::new(config, budget, start);
    let mut prefill_s = 0.0;
    if budget > 0 {
        target.prefill(prompt)?;
        prefill_s = start.elapsed().as_secs_f64();
        let mut sequence = prompt.to_vec();
        loop {
            let next = sampler.sample(
                target.logits(&sequence, 1)?,
                &config.sampling,
                &mut probabilities,
            );
            committed.commit(&[next], on_token);
            if committed.is_done() {
                break;
            }
            sequence.push(next);
        }
    }
    Ok(StrategyOutput {
        generation: committed.into_output(prompt.len(), prefill_s),
        levels: vec![report(target)],
    })
}
