//! results.json's `turns`: every prompt turn and each strategy's run on it.

use pipespec_decode::LevelReport;
use serde::Serialize;

use super::super::record::{Mismatch, Outcome, RunRecord, TurnRecord};

/// One turn of one prompt.
#[derive(Serialize)]
pub struct TurnJson<'a> {
    prompt_index: usize,
    id: &'a str,
    category: &'a str,
    turn: usize,
    /// null when the prompt could not be built.
    prompt_tokens: Option<usize>,
    runs: Vec<TurnRunJson<'a>>,
}

/// One strategy's run on a turn; the output's figures are null when it failed.
#[derive(Serialize)]
struct TurnRunJson<'a> {
    strategy: &'static str,
    /// `ok`, `mismatch` or `error`.
    status: &'static str,
    error: Option<&'a str>,
    mismatch: Option<&'a Mismatch>,
    generated_tokens: Option<usize>,
    finish_reason: Option<&'static str>,
    wall_s: Option<f64>,
    ttft_s: Option<f64>,
    prefill_s: Option<f64>,
    decode_tok_s: Option<f64>,
    ms_per_token: Option<f64>,
    /// Tokens per forward pass of the target; null without level counters.
    mean_accepted_length: Option<f64>,
    levels: Option<&'a [LevelReport]>,
}

impl<'a> From<&'a TurnRecord> for TurnJson<'a> {
    fn from(record: &'a TurnRecord) -> Self {
        TurnJson {
            prompt_index: record.prompt_index,
            id: &record.id,
            category: &record.category,
            turn: record.turn,
            prompt_tokens: record.prompt_tokens,
            runs: record.runs.iter().map(TurnRunJson::from).collect(),
        }
    }
}

impl<'a> From<&'a RunRecord> for TurnRunJson<'a> {
    fn from(run: &'a RunRecord) -> Self {
        let (output, mismatch, error) = match &run.outcome {
            Outcome::Finished { output, mismatch } => (Some(output), mismatch.as_ref(), None),
            Outcome::Failed(message) => (None, None, Some(message.as_str())),
        };
        let generation = output.map(|o| &o.generation);
        let target_passes = output
            .and_then(|o| o.levels.last())
            .map(|l| l.metrics.forward_passes);
        TurnRunJson {
            strategy: run.strategy.as_str(),
            status: run.status(),
            error,
            mismatch,
            generated_tokens: generation.map(|g| g.tokens.len()),
            finish_reason: generation.map(|g| g.finish_reason.as_str()),
            wall_s: generation.map(|g| g.wall_s),
            ttft_s: generation.map(|g| g.ttft_s),
            prefill_s: generation.map(|g| g.prefill_s),
            decode_tok_s: generation.map(|g| g.decode_tokens_per_second()),
            ms_per_token: generation.map(|g| 1000.0 * g.wall_s / g.tokens.len() as f64),
            mean_accepted_length: generation
                .zip(target_passes)
                .map(|(g, passes)| g.tokens.len() as f64 / passes as f64),
            levels: output.map(|o| o.levels.as_slice()),
        }
    }
}
