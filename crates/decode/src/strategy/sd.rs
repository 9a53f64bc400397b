//! `sd`: standard two-level speculative decoding: the chain's last two model levels, a draft window of `window` tokens.

use crate::error::{DecodeError, Result};
use crate::generate::GenerationConfig;
use crate::level::Level;
use crate::strategy::{select, staged, SpeculationConfig, StrategyOutput};

/// Indices of the levels `sd` uses: the last two that can verify (the n-gram drafter cannot).
pub fn levels(chain: &[Box<dyn Level>]) -> Result<Vec<usize>> {
    let models: Vec<usize> = (0..chain.len())
        .filter(|&i| chain[i].can_verify())
        .collect();
    if models.len() < 2 {
        return Err(DecodeError::InvalidParameter {
            name: "chain",
            bounds: "at least two model levels for sd (draft, target)",
            value: format!("{} model level(s)", models.len()),
        });
    }
    Ok(models[models.len() - 2..].to_vec())
}

pub fn generate(
    chain: &mut [Box<dyn Level>],
    prompt: &[u32],
    config: &GenerationConfig,
    speculation: &SpeculationConfig,
    on_token: &mut dyn FnMut(u32) -> bool,
) -> Result<StrategyOutput> {
    let indices = levels(chain)?;
    staged::generate(
        &mut select(chain, &indices),
        prompt,
        config,
        speculation,
        on_token,
    )
}
