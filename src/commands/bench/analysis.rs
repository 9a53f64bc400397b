//! From records to findings: each strategy's summary, calibration, prediction and the notes on its error, overall and per category.

use pipespec_decode::Strategy;

use super::calibrate::LevelCalibration;
use super::diagnosis::{self, Context};
use super::engine::StrategyChain;
use super::prediction::{self, Prediction};
use super::record::TurnRecord;
use super::summary::{self, StrategySummary};

/// How a strategy was set up.
#[derive(Debug, Clone)]
pub struct StrategyInfo {
    pub strategy: Strategy,
    /// Names of the levels it uses, smallest first.
    pub levels: Vec<String>,
    /// Compute threads per level (0: the n-gram level).
    pub threads: Vec<usize>,
    pub window: usize,
    pub run_ahead: usize,
}

impl StrategyInfo {
    pub fn of(chain: &StrategyChain) -> StrategyInfo {
        StrategyInfo {
            strategy: chain.strategy,
            levels: chain.level_names(),
            threads: chain.threads.clone(),
            window: chain.speculation.window,
            run_ahead: chain.speculation.run_ahead,
        }
    }

    /// "a.gguf -> b.gguf".
    pub fn chain_label(&self) -> String {
        self.levels.join(" -> ")
    }
}

#[derive(Debug, Clone)]
pub struct StrategyAnalysis {
    pub info: StrategyInfo,
    pub summary: StrategySummary,
    /// One per used level; None when calibration failed.
    pub calibration: Option<Vec<LevelCalibration>>,
    pub prediction: Option<Prediction>,
    /// Why the prediction misses, when it does.
    pub notes: Vec<String>,
}

/// Every strategy's ms/token and speedup in one category.
#[derive(Debug, Clone)]
pub struct CategoryRow {
    pub category: String,
    /// In the strategies' order.
    pub summaries: Vec<StrategySummary>,
}

#[derive(Debug, Clone)]
pub struct Analysis {
    pub strategies: Vec<StrategyAnalysis>,
    pub categories: Vec<CategoryRow>,
}

/// Summarizes `records` for every strategy of `infos` (in the runs' order; ar among them),
/// with predictions where `calibration` (one list per strategy) is known.
pub fn analyze(
    records: &[TurnRecord],
    infos: &[StrategyInfo],
    calibration: Option<&[Vec<LevelCalibration>]>,
    cores: usize,
) -> Analysis {
    let reference = infos
        .iter()
        .position(|i| i.strategy == Strategy::Ar)
        .unwrap_or(0);
    let reference_step_s = calibration
        .and_then(|c| c.get(reference))
        .and_then(|levels| levels.last())
        .map(|level| level.cost.step_s);
    let strategies = infos
        .iter()
        .enumerate()
        .map(|(index, info)| {
            let summary = summary::summarize(records, info.strategy, (index, reference), None);
            let calibration = calibration.and_then(|c| c.get(index)).cloned();
            let prediction = match (&calibration, reference_step_s) {
                (Some(levels), Some(step_s)) => {
                    prediction::predict(&summary, levels, step_s, info.window)
                }
                _ => None,
            };
            let notes = match (&prediction, &calibration) {
                (Some(prediction), Some(levels)) => {
                    let context = Context {
                        window: info.window,
                        cores,
                    };
                    diagnosis::explain(&summary, prediction, levels, &context)
                }
                _ => Vec::new(),
            };
            StrategyAnalysis {
                info: info.clone(),
                summary,
                calibration,
                prediction,
                notes,
            }
        })
        .collect();
    let categories = summary::categories(records)
        .into_iter()
        .map(|category| CategoryRow {
            summaries: infos
                .iter()
                .enumerate()
                .map(|(index, info)| {
                    summary::summarize(records, info.strategy, (index, reference), Some(&category))
                })
                .collect(),
            category,
        })
        .collect();
    Analysis {
        strategies,
        categories,
    }
}
