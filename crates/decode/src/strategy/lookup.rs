//! `lookup`: the n-gram drafter (prompt lookup) in front of the target.

use crate::error::{DecodeError, Result};
use crate::generate::GenerationConfig;
use crate::level::Level;
use crate::strategy::{select, staged, SpeculationConfig, StrategyOutput};

/// Indices of the levels `lookup` uses: the first level that cannot verify (the n-gram
/// drafter) and the target.
pub fn levels(chain: &[Box<dyn Level>]) -> Result<Vec<usize>> {
    let drafter = chain.iter().position(|level| !level.can_verify());
    match drafter {
        Some(drafter) if drafter + 1 < chain.len() => Ok(vec![drafter, chain.len() - 1]),
        _ => Err(DecodeError::InvalidParameter {
            name: "chain",
            bounds: "an ngram level before the target for lookup",
            value: chain
                .iter()
                .map(|level| level.name())
                .collect::<Vec<_>>()
                .join(","),
        }),
    }
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
