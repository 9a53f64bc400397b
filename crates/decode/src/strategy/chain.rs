//! What every strategy checks and sets up on a chain before its first pass, and what it reports after.

use crate::error::{DecodeError, Result};
use crate::generate::{token_budget, GenerationConfig};
use crate::level::Level;
use crate::metrics::LevelReport;
use crate::speculation::SpeculationConfig;

pub(crate) fn empty_chain() -> DecodeError {
    DecodeError::InvalidParameter {
        name: "chain",
        bounds: "at least one level",
        value: "none".into(),
    }
}

/// Fails unless `level` can verify (score tokens).
pub(crate) fn check_verifier(level: &dyn Level) -> Result<()> {
    if level.can_verify() {
        Ok(())
    } else {
        Err(not_a_verifier(level.name()))
    }
}

pub(crate) fn not_a_verifier(name: &str) -> DecodeError {
    DecodeError::InvalidParameter {
        name: "chain",
        bounds: "a model at every level above the first (ngram can only draft)",
        value: name.into(),
    }
}

/// The levels of `chain` at `indices` (ascending), as the slice the staged core takes.
pub(crate) fn select<'a>(
    chain: &'a mut [Box<dyn Level>],
    indices: &[usize],
) -> Vec<&'a mut dyn Level> {
    chain
        .iter_mut()
        .enumerate()
        .filter(|(i, _)| indices.contains(i))
        .map(|(_, level)| level.as_mut() as &mut dyn Level)
        .collect()
}

pub(crate) fn report(level: &dyn Level) -> LevelReport {
    LevelReport {
        name: level.name().into(),
        metrics: level.metrics().clone(),
    }
}

/// What every multi-level strategy checks and sets up before its first pass: the parameters,
/// a chain whose levels above the first can verify and share one vocabulary, the token budget
/// the smallest cache allows, and fresh metrics. Returns (vocabulary size, token budget).
pub(crate) fn prepare_chain<L, D>(
    levels: &mut [L],
    prompt: &[u32],
    config: &GenerationConfig,
    speculation: &SpeculationConfig,
) -> Result<(usize, usize)>
where
    L: std::ops::DerefMut<Target = D>,
    D: Level + ?Sized,
{
    config.sampling.validate()?;
    speculation.validate()?;
    if levels.len() < 2 {
        return Err(DecodeError::InvalidParameter {
            name: "chain",
            bounds: "at least two levels (drafter(s), then the target)",
            value: format!("{} level(s)", levels.len()),
        });
    }
    for level in &levels[1..] {
        if !level.can_verify() {
            return Err(not_a_verifier(level.name()));
        }
    }
    let sizes: Vec<(&str, usize)> = levels
        .iter()
        .filter_map(|level| Some((level.name(), level.vocab_size()?)))
        .collect();
    let &(target_name, vocab) = sizes.last().ok_or(DecodeError::InvalidParameter {
        name: "chain",
        bounds: "a target with logits",
        value: "none".into(),
    })?;
    if let Some((name, size)) = sizes.iter().find(|(_, size)| *size != vocab) {
        return Err(DecodeError::InvalidParameter {
            name: "chain",
            bounds: "levels with the same vocabulary",
            value: format!("{name} has {size} tokens, {target_name} {vocab}"),
        });
    }
    let capacity = levels
        .iter()
        .filter_map(|l| l.capacity())
        .min()
        .unwrap_or(usize::MAX);
    let budget = token_budget(prompt, capacity, config.max_tokens)?;
    for level in levels.iter_mut() {
        *level.metrics_mut() = Default::default();
    }
    Ok((vocab, budget))
}
