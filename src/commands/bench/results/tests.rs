//! results.json pinned: fixed runs, summaries, calibrations and predictions against the text that the `json!` literals wrote before the schema became types.

use pipespec_decode::analytic::StageAcceptance;
use pipespec_decode::{LevelMetrics, LevelReport, Strategy, StrategyOutput};

use super::super::analysis::{Analysis, CategoryRow, StrategyAnalysis, StrategyInfo};
use super::super::harness::tests::output;
use super::super::prediction::tests::{calibration, summary};
use super::super::prediction::Prediction;
use super::super::record::{Mismatch, Outcome, RunRecord, TurnRecord};
use super::super::run_info::RunInfo;
use super::super::summary::{StrategySummary, Totals};
use super::to_text;

fn run_info() -> RunInfo {
    RunInfo {
        suite: "prompts.jsonl".into(),
        categories: vec!["echo".into()],
        limit: Some(2),
        all_turns: true,
        prompts: 2,
        turns: 3,
        chain: vec!["draft.gguf".into(), "target.gguf".into()],
        max_new_tokens: 12,
        // Not a binary fraction: pins how an f32 setting is written (widened to f64).
        temperature: 0.7,
        seed: 7,
        ignore_eos: false,
        ctx_size: None,
        threads: vec![1, 1],
        window: Some(4),
        run_ahead: None,
        outputs_compared: false,
        cores: 2,
        os: "linux",
        arch: "x86_64",
        version: "0.1.0",
        elapsed_s: 3.5,
    }
}

fn info(strategy: Strategy, levels: &[&str], window: usize, run_ahead: usize) -> StrategyInfo {
    StrategyInfo {
        strategy,
        levels: levels.iter().map(|l| l.to_string()).collect(),
        threads: vec![1; levels.len()],
        window,
        run_ahead,
    }
}

/// No turn compared: every ratio is 0 / 0, which results.json writes as null.
fn empty_summary(strategy: Strategy) -> StrategySummary {
    StrategySummary {
        strategy,
        totals: Totals::default(),
        reference: Totals::default(),
        levels: Vec::new(),
        errors: 1,
        mismatches: 0,
    }
}

fn analysis() -> Analysis {
    let ar = StrategyAnalysis {
        info: info(Strategy::Ar, &["target.gguf"], 6, 6),
        summary: summary(Strategy::Ar, 1.0),
        calibration: None,
        prediction: None,
        notes: Vec::new(),
    };
    let sd = StrategyAnalysis {
        info: info(Strategy::Sd, &["draft.gguf", "target.gguf"], 4, 16),
        summary: summary(Strategy::Sd, 1.25),
        calibration: Some(calibration(10.0, 13.0)),
        prediction: Some(Prediction {
            stages: vec![StageAcceptance {
                alpha: 0.5,
                window: 2.0,
            }],
            speedup: 1.5,
            paper_speedup: 2.0,
            measured: 1.25,
        }),
        notes: vec!["the drafter is slow".into()],
    };
    Analysis {
        strategies: vec![ar, sd],
        categories: vec![CategoryRow {
            category: "echo".into(),
            summaries: vec![summary(Strategy::Ar, 1.0), empty_summary(Strategy::Sd)],
        }],
    }
}

fn level(name: &str, forward_passes: usize, n_drafted: usize, n_accepted: usize) -> LevelReport {
    LevelReport {
        name: name.into(),
        metrics: LevelMetrics {
            n_drafted,
            n_accepted,
            n_verifications: n_drafted.div_ceil(4),
            forward_passes,
            decode_s: 0.0625,
            ..Default::default()
        },
    }
}

fn with_levels(mut output: StrategyOutput, levels: Vec<LevelReport>) -> StrategyOutput {
    output.levels = levels;
    output
}

fn finished(strategy: Strategy, output: StrategyOutput, mismatch: Option<Mismatch>) -> RunRecord {
    RunRecord {
        strategy,
        outcome: Outcome::Finished { output, mismatch },
    }
}

fn failed(strategy: Strategy) -> RunRecord {
    RunRecord {
        strategy,
        outcome: Outcome::Failed("the prompt does not fit".into()),
    }
}

fn records() -> Vec<TurnRecord> {
    let turn = |prompt_index: usize, id: &str, prompt_tokens: Option<usize>, runs| TurnRecord {
        prompt_index,
        id: id.into(),
        category: "echo".into(),
        turn: 0,
        prompt_tokens,
        runs,
    };
    vec![
        turn(
            0,
            "1",
            Some(9),
            vec![
                finished(
                    Strategy::Ar,
                    with_levels(output(vec![1, 2, 3, 4], 9), vec![level("target", 5, 0, 0)]),
                    None,
                ),
                finished(
                    Strategy::Sd,
                    with_levels(
                        output(vec![1, 2, 5], 9),
                        vec![level("draft", 6, 8, 3), level("target", 2, 0, 0)],
                    ),
                    Mismatch::between(&[1, 2, 3, 4], &[1, 2, 5]),
                ),
            ],
        ),
        // Nothing generated and no level counters: the per-token figures are null.
        turn(
            1,
            "x",
            Some(3),
            vec![
                finished(Strategy::Ar, output(Vec::new(), 3), None),
                failed(Strategy::Sd),
            ],
        ),
        turn(
            2,
            "y",
            None,
            vec![failed(Strategy::Ar), failed(Strategy::Sd)],
        ),
    ]
}

/// `pinned_results.json` is what the `json!` literals wrote for these inputs: the same keys,
/// values and bytes (sorted keys, nulls for 0 / 0, the widened f32) must come out.
#[test]
fn results_json_is_pinned() {
    let text = to_text(&run_info(), &analysis(), &records()).unwrap();
    assert_eq!(text, include_str!("pinned_results.json"));
}
