//! Predicted speedups: the analytical model fed with the bench's measured acceptance and calibrated level costs, set beside the measured speedup.

use pipespec_decode::analytic::{self, LevelCost, StageAcceptance};
use pipespec_decode::{LevelReport, Strategy};

use super::calibrate::LevelCalibration;
use super::summary::StrategySummary;

/// How far a prediction may be off before the report looks for the assumption that fails.
pub const TOLERANCE: f64 = 0.2;

#[derive(Debug, Clone)]
pub struct Prediction {
    /// One per verifying stage: the acceptance the model was given.
    pub stages: Vec<StageAcceptance>,
    /// Decode speedup over ar from the calibrated costs.
    pub speedup: f64,
    /// The same with every verification costing one 1-token step, as the paper's formulas count.
    pub paper_speedup: f64,
    /// The measured decode speedup.
    pub measured: f64,
}

impl Prediction {
    /// predicted / measured - 1.
    pub fn error(&self) -> f64 {
        self.speedup / self.measured - 1.0
    }

    pub fn paper_error(&self) -> f64 {
        self.paper_speedup / self.measured - 1.0
    }

    /// Whether either prediction misses the measurement by more than [`TOLERANCE`].
    pub fn is_off(&self) -> bool {
        !(self.error().abs() <= TOLERANCE && self.paper_error().abs() <= TOLERANCE)
    }
}

/// The model's acceptance for each stage of `levels` (all but the last, which drafts nothing):
/// alpha from the mean accepted run, the window from the mean draft per verification
/// (`window` when a level was never verified).
pub fn stage_acceptance(levels: &[LevelReport], window: usize) -> Vec<StageAcceptance> {
    let drafters = &levels[..levels.len().saturating_sub(1)];
    drafters
        .iter()
        .map(|level| {
            let m = &level.metrics;
            if m.n_verifications == 0 {
                return StageAcceptance {
                    alpha: 0.0,
                    window: window as f64,
                };
            }
            let drafted = m.n_drafted as f64 / m.n_verifications as f64;
            StageAcceptance {
                alpha: analytic::alpha_from_mean_accepted(
                    m.mean_accepted_per_verification(),
                    drafted,
                ),
                window: drafted,
            }
        })
        .collect()
}

/// The prediction for `summary`'s strategy from its levels' calibration and ar's one-token step
/// (`reference_step_s`); None without a turn to compare or a calibration to use.
pub fn predict(
    summary: &StrategySummary,
    calibration: &[LevelCalibration],
    reference_step_s: f64,
    window: usize,
) -> Option<Prediction> {
    let measured = summary.decode_speedup();
    if summary.totals.turns == 0
        || !measured.is_finite()
        || calibration.len() != summary.levels.len()
    {
        return None;
    }
    let stages = stage_acceptance(&summary.levels, window);
    let costs: Vec<LevelCost> = calibration.iter().map(|c| c.cost).collect();
    let paper_costs: Vec<LevelCost> = costs
        .iter()
        .map(|c| LevelCost {
            verify_s: c.step_s,
            ..*c
        })
        .collect();
    let speedup_with = |costs: &[LevelCost]| match summary.strategy {
        Strategy::Ar => 1.0,
        Strategy::Pipespec => {
            reference_step_s * analytic::pipeline_tokens_per_second(costs, &stages)
        }
        Strategy::Sd | Strategy::Staged | Strategy::Lookup => {
            reference_step_s / analytic::synchronous_seconds_per_token(costs, &stages)
        }
    };
    Some(Prediction {
        speedup: speedup_with(&costs),
        paper_speedup: speedup_with(&paper_costs),
        stages,
        measured,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::commands::bench::summary::Totals;
    use pipespec_decode::LevelMetrics;

    /// A two-level summary: 40 verifications of 2 drafts, 30 accepted (mean 0.75: alpha 0.5),
    /// decoding `speedup` times as fast as ar.
    pub fn summary(strategy: Strategy, speedup: f64) -> StrategySummary {
        let level = |name: &str, metrics: LevelMetrics| LevelReport {
            name: name.into(),
            metrics,
        };
        let totals = |decode_s: f64| Totals {
            turns: 2,
            prompt_tokens: 20,
            generated_tokens: 102,
            wall_s: decode_s + 0.2,
            ttft_s: 0.2,
            decode_tokens: 100,
            decode_s,
        };
        StrategySummary {
            strategy,
            totals: totals(1.0 / speedup),
            reference: totals(1.0),
            levels: vec![
                level(
                    "draft",
                    LevelMetrics {
                        n_drafted: 80,
                        n_accepted: 30,
                        n_verifications: 40,
                        decode_s: 0.1 / speedup,
                        ..Default::default()
                    },
                ),
                level(
                    "target",
                    LevelMetrics {
                        forward_passes: 42,
                        decode_s: 0.8 / speedup,
                        ..Default::default()
                    },
                ),
            ],
            errors: 0,
            mismatches: 0,
        }
    }

    pub fn calibration(step_s: f64, verify_s: f64) -> Vec<LevelCalibration> {
        let level = |name: &str, step_s: f64, verify_s: f64| LevelCalibration {
            name: name.into(),
            threads: 1,
            verify_rows: 3,
            cost: LevelCost { step_s, verify_s },
        };
        vec![level("draft", 1.0, 1.0), level("target", step_s, verify_s)]
    }

    /// The prediction for `strategy` measured at `measured`, with a 10 s target step and a
    /// 13 s verification.
    fn predicted(strategy: Strategy, measured: f64) -> Option<Prediction> {
        predict(
            &summary(strategy, measured),
            &calibration(10.0, 13.0),
            10.0,
            2,
        )
    }

    #[test]
    fn predictions_by_hand() {
        // alpha 0.5, w 2: E = (1 - 0.125) / 0.5 = 1.75 tokens a round. SD round: 2 * 1 + 13 =
        // 15 s, so 15 / 1.75 = 8.5714 s a token against ar's 10: 1.1667x; with a verification
        // costing a step (the paper), (2 + 10) / 1.75 = 6.857: 1.4583x.
        let sd = predicted(Strategy::Sd, 1.1667).unwrap();
        let stage = sd.stages[0];
        assert!((stage.alpha - 0.5).abs() < 1e-9 && (stage.window - 2.0).abs() < 1e-9);
        assert!((sd.speedup - 1.16667).abs() < 1e-4, "{}", sd.speedup);
        assert!(
            (sd.paper_speedup - 1.45833).abs() < 1e-4,
            "{}",
            sd.paper_speedup
        );
        assert!(sd.error().abs() < 1e-3 && sd.measured > 1.16);
        assert!(sd.is_off(), "the paper's model is 25% off");
        // pipespec: rho = 0.5 / (1 - 0.125 + 0.5) = 0.363636, E[N] = 0.636364 + 0.363636 * 1.75
        // = 1.272727 tokens a step of 0.363636 * 13 + 0.636364 * 10 = 11.0909 s: 0.114754/s,
        // 1.1475x; the drafter (1 s a token) allows 1.272727 / (0.363636 * 2) = 1.75/s.
        let pipespec = predicted(Strategy::Pipespec, 1.0).unwrap();
        assert!(
            (pipespec.speedup - 1.14754).abs() < 1e-4,
            "{}",
            pipespec.speedup
        );
        let ar = predicted(Strategy::Ar, 1.0).unwrap();
        assert_eq!((ar.speedup, ar.error()), (1.0, 0.0));
        // A calibration of other levels than the summary's: no prediction.
        let other = &calibration(10.0, 13.0)[..1];
        assert!(predict(&summary(Strategy::Sd, 1.0), other, 10.0, 2).is_none());
    }
}
