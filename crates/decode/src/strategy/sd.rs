//! `sd`: standard two-level speculative decoding: which levels it uses (the chain's last two model levels); it runs on the staged core.

use crate::chain::LevelKind;
use crate::error::{DecodeError, Result};

/// Indices of the levels `sd` uses: the last two model levels (the n-gram drafter cannot verify).
pub fn levels(kinds: &[LevelKind]) -> Result<Vec<usize>> {
    let models: Vec<usize> = (0..kinds.len())
        .filter(|&i| kinds[i] == LevelKind::Model)
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
