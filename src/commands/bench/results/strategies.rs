//! results.json's `strategies`: how each strategy was set up, its levels' calibration, its summary and its prediction.

use pipespec_decode::analytic::StageAcceptance;
use pipespec_decode::LevelReport;
use serde::Serialize;

use super::super::analysis::StrategyAnalysis;
use super::super::calibrate::LevelCalibration;
use super::super::summary::StrategySummary;

/// One strategy.
#[derive(Serialize)]
pub struct StrategyJson<'a> {
    name: &'static str,
    levels: &'a [String],
    threads: &'a [usize],
    window: usize,
    run_ahead: usize,
    /// null when calibration failed.
    calibration: Option<Vec<CalibrationJson<'a>>>,
    summary: SummaryJson<'a>,
    /// null without a calibration or a turn to compare.
    prediction: Option<PredictionJson<'a>>,
}

/// One level's measured costs.
#[derive(Serialize)]
struct CalibrationJson<'a> {
    name: &'a str,
    threads: usize,
    step_s: f64,
    verify_s: f64,
    verify_rows: usize,
}

/// The analytical model's speedups beside the measured one, and why they miss.
#[derive(Serialize)]
struct PredictionJson<'a> {
    speedup: f64,
    paper_speedup: f64,
    measured_decode_speedup: f64,
    error: f64,
    paper_error: f64,
    off: bool,
    stages: Vec<StageJson>,
    notes: &'a [String],
}

/// One verifying stage's acceptance as the model was given it.
#[derive(Serialize)]
struct StageJson {
    alpha: f64,
    window: f64,
}

/// A strategy's totals over the turns it shares with ar, and its levels' summed counters.
#[derive(Serialize)]
struct SummaryJson<'a> {
    turns: usize,
    errors: usize,
    mismatches: usize,
    prompt_tokens: usize,
    generated_tokens: usize,
    wall_s: f64,
    ms_per_token: f64,
    decode_tok_s: f64,
    mean_ttft_s: f64,
    speedup: f64,
    decode_speedup: f64,
    mean_accepted_length: f64,
    rollbacks: usize,
    levels: &'a [LevelReport],
}

impl<'a> From<&'a StrategyAnalysis> for StrategyJson<'a> {
    fn from(analysis: &'a StrategyAnalysis) -> Self {
        let info = &analysis.info;
        StrategyJson {
            name: info.strategy.as_str(),
            levels: &info.levels,
            threads: &info.threads,
            window: info.window,
            run_ahead: info.run_ahead,
            calibration: analysis
                .calibration
                .as_ref()
                .map(|levels| levels.iter().map(CalibrationJson::from).collect()),
            summary: SummaryJson::from(&analysis.summary),
            prediction: analysis.prediction.as_ref().map(|p| PredictionJson {
                speedup: p.speedup,
                paper_speedup: p.paper_speedup,
                measured_decode_speedup: p.measured,
                error: p.error(),
                paper_error: p.paper_error(),
                off: p.is_off(),
                stages: p.stages.iter().map(StageJson::from).collect(),
                notes: &analysis.notes,
            }),
        }
    }
}

impl<'a> From<&'a LevelCalibration> for CalibrationJson<'a> {
    fn from(level: &'a LevelCalibration) -> Self {
        CalibrationJson {
            name: &level.name,
            threads: level.threads,
            step_s: level.cost.step_s,
            verify_s: level.cost.verify_s,
            verify_rows: level.verify_rows,
        }
    }
}

impl From<&StageAcceptance> for StageJson {
    fn from(stage: &StageAcceptance) -> Self {
        StageJson {
            alpha: stage.alpha,
            window: stage.window,
        }
    }
}

impl<'a> From<&'a StrategySummary> for SummaryJson<'a> {
    fn from(summary: &'a StrategySummary) -> Self {
        let totals = &summary.totals;
        SummaryJson {
            turns: totals.turns,
            errors: summary.errors,
            mismatches: summary.mismatches,
            prompt_tokens: totals.prompt_tokens,
            generated_tokens: totals.generated_tokens,
            wall_s: totals.wall_s,
            ms_per_token: totals.ms_per_token(),
            decode_tok_s: totals.decode_tokens_per_second(),
            mean_ttft_s: totals.mean_ttft_s(),
            speedup: summary.speedup(),
            decode_speedup: summary.decode_speedup(),
            mean_accepted_length: summary.mean_accepted_length(),
            rollbacks: summary.rollbacks(),
            levels: &summary.levels,
        }
    }
}
