//! `lookup`: the n-gram drafter (prompt lookup) in front of the target: which levels it uses; it runs on the staged core.

use crate::error::{DecodeError, Result};
use crate::level::Level;

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
