//! The one JSON object `generate --json` prints: the reply, its timings, the settings and every level's counters.

use anyhow::{Context, Result};
use pipespec_decode::{LevelReport, SpeculationConfig, Strategy, StrategyOutput};
use serde::Serialize;

/// What `generate --json` prints: a stable schema, like results.json's.
#[derive(Serialize)]
struct GenerateJson<'a> {
    /// The generated tokens, decoded.
    text: &'a str,
    tokens: &'a [u32],
    prompt_tokens: usize,
    /// `stop`, `length` or `cancelled`.
    finish_reason: &'static str,
    wall_s: f64,
    ttft_s: f64,
    prefill_tok_s: f64,
    decode_tok_s: f64,
    strategy: &'static str,
    window: usize,
    run_ahead: usize,
    /// Every level the strategy used, smallest first.
    levels: &'a [LevelReport],
}

/// The line `generate --json` prints for `output`, whose tokens decode to `text`.
pub fn json_line(
    text: &str,
    strategy: Strategy,
    speculation: &SpeculationConfig,
    output: &StrategyOutput,
) -> Result<String> {
    let generation = &output.generation;
    let reply = GenerateJson {
        text,
        tokens: &generation.tokens,
        prompt_tokens: generation.prompt_tokens,
        finish_reason: generation.finish_reason.as_str(),
        wall_s: generation.wall_s,
        ttft_s: generation.ttft_s,
        prefill_tok_s: generation.prefill_tokens_per_second(),
        decode_tok_s: generation.decode_tokens_per_second(),
        strategy: strategy.as_str(),
        window: speculation.window,
        run_ahead: speculation.run_ahead,
        levels: &output.levels,
    };
    // Through a Value, as the line was always printed: keys sorted.
    let value = serde_json::to_value(&reply).context("serializing the reply as JSON")?;
    Ok(value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use pipespec_decode::{FinishReason, GenerationOutput, LevelMetrics};
    use serde_json::json;

    fn output() -> StrategyOutput {
        StrategyOutput {
            generation: GenerationOutput {
                tokens: vec![5, 6, 7],
                prompt_tokens: 4,
                finish_reason: FinishReason::Stop,
                prefill_s: 0.5,
                ttft_s: 0.75,
                wall_s: 2.0,
            },
            levels: vec![
                LevelReport {
                    name: "ngram".into(),
                    metrics: LevelMetrics {
                        n_drafted: 10,
                        n_accepted: 4,
                        n_verifications: 3,
                        decode_s: 0.25,
                        busy_s: 0.125,
                        idle_s: 0.5,
                        rollbacks_received: 1,
                        borrowed_passes: 2,
                        ..Default::default()
                    },
                },
                LevelReport {
                    name: "target.gguf".into(),
                    metrics: LevelMetrics {
                        forward_passes: 5,
                        prefill_s: 0.5,
                        decode_s: 1.25,
                        rollbacks_sent: 1,
                        ..Default::default()
                    },
                },
            ],
        }
    }

    /// Pinned from the `json!` literal `generate --json` printed before the output became a type:
    /// same keys, same values, same text (keys sorted).
    #[test]
    fn the_json_line_is_pinned() {
        let speculation = SpeculationConfig {
            run_ahead: 16,
            ..SpeculationConfig::with_window(3)
        };
        let line = json_line("a reply", Strategy::Lookup, &speculation, &output()).unwrap();
        let ngram = json!({
            "name": "ngram",
            "n_drafted": 10,
            "n_accepted": 4,
            "acceptance_rate": 0.4,
            "n_verifications": 3,
            "mean_accepted_per_verification": 4.0 / 3.0,
            "forward_passes": 0,
            "prefill_s": 0.0,
            "decode_s": 0.25,
            "busy_s": 0.125,
            "idle_s": 0.5,
            "rollbacks_received": 1,
            "rollbacks_sent": 0,
            "borrowed_passes": 2,
        });
        let target = json!({
            "name": "target.gguf",
            "n_drafted": 0,
            "n_accepted": 0,
            "acceptance_rate": 0.0,
            "n_verifications": 0,
            "mean_accepted_per_verification": 0.0,
            "forward_passes": 5,
            "prefill_s": 0.5,
            "decode_s": 1.25,
            "busy_s": 0.0,
            "idle_s": 0.0,
            "rollbacks_received": 0,
            "rollbacks_sent": 1,
            "borrowed_passes": 0,
        });
        let expected = json!({
            "text": "a reply",
            "tokens": [5, 6, 7],
            "prompt_tokens": 4,
            "finish_reason": "stop",
            "wall_s": 2.0,
            "ttft_s": 0.75,
            "prefill_tok_s": 8.0,
            "decode_tok_s": 1.6,
            "strategy": "lookup",
            "window": 3,
            "run_ahead": 16,
            "levels": [ngram, target],
        });
        assert_eq!(line, expected.to_string());
    }
}
