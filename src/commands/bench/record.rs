//! What a bench run records: every prompt turn, and each strategy's outcome on it.

use pipespec_decode::{Strategy, StrategyOutput};
use serde::Serialize;

/// One turn of one prompt, run by every strategy.
#[derive(Debug, Clone)]
pub struct TurnRecord {
    /// Position of the prompt among those selected.
    pub prompt_index: usize,
    pub id: String,
    pub category: String,
    /// 0 for the first user turn.
    pub turn: usize,
    /// None when the prompt could not be built (every run then failed).
    pub prompt_tokens: Option<usize>,
    /// One per strategy, in the order of the bench's strategy list.
    pub runs: Vec<RunRecord>,
}

/// One strategy on one turn.
#[derive(Debug, Clone)]
pub struct RunRecord {
    pub strategy: Strategy,
    pub outcome: Outcome,
}

#[derive(Debug, Clone)]
pub enum Outcome {
    /// The strategy generated; `mismatch` is set when its greedy output differs from ar's.
    Finished {
        output: StrategyOutput,
        mismatch: Option<Mismatch>,
    },
    /// The strategy failed (context overflow, a bad chain...): the message.
    Failed(String),
}

/// The first position where an output leaves the reference's (results.json's `mismatch`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Mismatch {
    pub position: usize,
    /// The reference's token there; None where the reference had ended.
    pub expected: Option<u32>,
    /// This output's token there; None where this output had ended.
    pub got: Option<u32>,
}

impl Mismatch {
    /// None when the outputs are equal.
    pub fn between(reference: &[u32], output: &[u32]) -> Option<Mismatch> {
        if reference == output {
            return None;
        }
        let position = reference
            .iter()
            .zip(output)
            .take_while(|(a, b)| a == b)
            .count();
        Some(Mismatch {
            position,
            expected: reference.get(position).copied(),
            got: output.get(position).copied(),
        })
    }
}

impl RunRecord {
    /// `ok`, `mismatch` or `error`: the status results.json gives each run.
    pub fn status(&self) -> &'static str {
        match &self.outcome {
            Outcome::Finished { mismatch: None, .. } => "ok",
            Outcome::Finished { .. } => "mismatch",
            Outcome::Failed(_) => "error",
        }
    }

    /// The output of a run that finished and matched the reference.
    pub fn correct_output(&self) -> Option<&StrategyOutput> {
        match &self.outcome {
            Outcome::Finished {
                output,
                mismatch: None,
            } => Some(output),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_difference_is_found() {
        assert_eq!(Mismatch::between(&[1, 2, 3], &[1, 2, 3]), None);
        let differs = Mismatch::between(&[1, 2, 3], &[1, 5, 3]).unwrap();
        assert_eq!(
            (differs.position, differs.expected, differs.got),
            (1, Some(2), Some(5))
        );
        let shorter = Mismatch::between(&[1, 2, 3], &[1, 2]).unwrap();
        assert_eq!(
            (shorter.position, shorter.expected, shorter.got),
            (2, Some(3), None)
        );
        let longer = Mismatch::between(&[1], &[1, 4]).unwrap();
        assert_eq!(
            (longer.position, longer.expected, longer.got),
            (1, None, Some(4))
        );
    }
}
