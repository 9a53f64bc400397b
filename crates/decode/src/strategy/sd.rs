//! `sd`: standard two-level speculative decoding: which levels it uses (the chain's last two model levels); it runs on the staged core.

use crate::error::{DecodeError, Result};
use crate::level::Level;

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
