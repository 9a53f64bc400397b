//! `lookup`: the n-gram drafter (prompt lookup) in front of the target: which levels it uses; it runs on the staged core.

use crate::chain::LevelKind;
use crate::error::{DecodeError, Result};

/// Indices of the levels `lookup` uses: the first n-gram level and the target.
pub fn levels(kinds: &[LevelKind]) -> Result<Vec<usize>> {
    let drafter = kinds.iter().position(|&kind| kind == LevelKind::Ngram);
    match drafter {
        Some(drafter) if drafter + 1 < kinds.len() => Ok(vec![drafter, kinds.len() - 1]),
        _ => Err(DecodeError::InvalidParameter {
            name: "chain",
            bounds: "an ngram level before the target for lookup",
            value: kinds
                .iter()
                .map(|kind| kind.as_str())
                .collect::<Vec<_>>()
                .join(","),
        }),
    }
}
