//! `results.json`: every setting, summary, prediction and run, machine-readable; the key names and types are a stable schema (`schema_version`).

use anyhow::{Context, Result};
use pipespec_decode::LevelReport;
use serde_json::{json, Value};

use super::analysis::{Analysis, StrategyAnalysis};
use super::record::{Outcome, TurnRecord};
use super::run_info::RunInfo;
use super::summary::StrategySummary;

/// Bumped whenever a key is renamed, removed or changes type.
pub const SCHEMA_VERSION: u32 = 1;

/// The text of results.json: pretty-printed, keys sorted, a final newline.
pub fn to_text(info: &RunInfo, analysis: &Analysis, records: &[TurnRecord]) -> Result<String> {
    let json = to_json(info, analysis, records);
    let text = serde_json::to_string_pretty(&json).context("serializing results.json")?;
    Ok(text + "\n")
}

fn to_json(info: &RunInfo, analysis: &Analysis, records: &[TurnRecord]) -> Value {
    json!({
        "schema_version": SCHEMA_VERSION,
        "run": run_json(info),
        "strategies": analysis.strategies.iter().map(strategy_json).collect::<Vec<_>>(),
        "categories": analysis.categories.iter().map(|row| json!({
            "category": row.category,
            "strategies": row.summaries.iter().map(|s| json!({
                "name": s.strategy.as_str(),
                "turns": s.totals.turns,
                "ms_per_token": s.totals.ms_per_token(),
                "speedup": s.speedup(),
                "decode_speedup": s.decode_speedup(),
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "turns": records.iter().map(turn_json).collect::<Vec<_>>(),
    })
}

fn run_json(info: &RunInfo) -> Value {
    json!({
        "suite": info.suite,
        "categories": info.categories,
        "limit": info.limit,
        "all_turns": info.all_turns,
        "prompts": info.prompts,
        "turns": info.turns,
        "chain": info.chain,
        "max_new_tokens": info.max_new_tokens,
        "temperature": info.temperature,
        "seed": info.seed,
        "ignore_eos": info.ignore_eos,
        "ctx_size": info.ctx_size,
        "threads": info.threads,
        "window": info.window,
        "run_ahead": info.run_ahead,
        "outputs_compared": info.outputs_compared,
        "cores": info.cores,
        "os": info.os,
        "arch": info.arch,
        "pipespec_version": info.version,
        "elapsed_s": info.elapsed_s,
    })
}

fn strategy_json(analysis: &StrategyAnalysis) -> Value {
    let info = &analysis.info;
    json!({
        "name": info.strategy.as_str(),
        "levels": info.levels,
        "threads": info.threads,
        "window": info.window,
        "run_ahead": info.run_ahead,
        "calibration": analysis.calibration.as_ref().map(|levels| levels.iter().map(|level| json!({
            "name": level.name,
            "threads": level.threads,
            "step_s": level.cost.step_s,
            "verify_s": level.cost.verify_s,
            "verify_rows": level.verify_rows,
        })).collect::<Vec<_>>()),
        "summary": summary_json(&analysis.summary),
        "prediction": analysis.prediction.as_ref().map(|p| json!({
            "speedup": p.speedup,
            "paper_speedup": p.paper_speedup,
            "measured_decode_speedup": p.measured,
            "error": p.error(),
            "paper_error": p.paper_error(),
            "off": p.is_off(),
            "stages": p.stages.iter().map(|s| json!({"alpha": s.alpha, "window": s.window})).collect::<Vec<_>>(),
            "notes": analysis.notes,
        })),
    })
}

fn summary_json(summary: &StrategySummary) -> Value {
    let totals = &summary.totals;
    json!({
        "turns": totals.turns,
        "errors": summary.errors,
        "mismatches": summary.mismatches,
        "prompt_tokens": totals.prompt_tokens,
        "generated_tokens": totals.generated_tokens,
        "wall_s": totals.wall_s,
        "ms_per_token": totals.ms_per_token(),
        "decode_tok_s": totals.decode_tokens_per_second(),
        "mean_ttft_s": totals.mean_ttft_s(),
        "speedup": summary.speedup(),
        "decode_speedup": summary.decode_speedup(),
        "mean_accepted_length": summary.mean_accepted_length(),
        "rollbacks": summary.rollbacks(),
        "levels": summary.levels.iter().map(LevelReport::to_json).collect::<Vec<_>>(),
    })
}

fn turn_json(record: &TurnRecord) -> Value {
    json!({
        "prompt_index": record.prompt_index,
        "id": record.id,
        "category": record.category,
        "turn": record.turn,
        "prompt_tokens": record.prompt_tokens,
        "runs": record.runs.iter().map(|run| {
            let (output, mismatch, error) = match &run.outcome {
                Outcome::Finished { output, mismatch } => (Some(output), mismatch.as_ref(), None),
                Outcome::Failed(message) => (None, None, Some(message)),
            };
            let generation = output.map(|o| &o.generation);
            let target_passes = output.and_then(|o| o.levels.last()).map(|l| l.metrics.forward_passes);
            json!({
                "strategy": run.strategy.as_str(),
                "status": run.status(),
                "error": error,
                "mismatch": mismatch.map(|m| json!({"position": m.position, "expected": m.expected, "got": m.got})),
                "generated_tokens": generation.map(|g| g.tokens.len()),
                "finish_reason": generation.map(|g| g.finish_reason.as_str()),
                "wall_s": generation.map(|g| g.wall_s),
                "ttft_s": generation.map(|g| g.ttft_s),
                "prefill_s": generation.map(|g| g.prefill_s),
                "decode_tok_s": generation.map(|g| g.decode_tokens_per_second()),
                "ms_per_token": generation.map(|g| 1000.0 * g.wall_s / g.tokens.len() as f64),
                "mean_accepted_length": generation.zip(target_passes).map(|(g, passes)| g.tokens.len() as f64 / passes as f64),
                "levels": output.map(|o| o.levels.iter().map(LevelReport::to_json).collect::<Vec<_>>()),
            })
        }).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests;
