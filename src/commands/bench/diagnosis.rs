//! Why a prediction misses: each assumption of the analytical model checked against the bench's own measurements, the failing ones stated.

use pipespec_decode::Strategy;

use super::calibrate::LevelCalibration;
use super::prediction::Prediction;
use super::summary::StrategySummary;

/// A measured ratio beyond this much from the model's assumption is named as a cause.
const THRESHOLD: f64 = 0.2;

/// What the bench saw of the machine and the settings, for the checks.
pub struct Context {
    /// The configured window of the strategy.
    pub window: usize,
    pub cores: usize,
}

/// The assumptions that fail for a prediction off by more than the tolerance, most specific
/// first; one line saying none stands out when every check passes.
pub fn explain(
    summary: &StrategySummary,
    prediction: &Prediction,
    calibration: &[LevelCalibration],
    context: &Context,
) -> Vec<String> {
    if !prediction.is_off() || summary.strategy == Strategy::Ar {
        return Vec::new();
    }
    let (Some(target), Some(target_cost), Some(stage)) = (
        summary.levels.last(),
        calibration.last(),
        prediction.stages.last(),
    ) else {
        return Vec::new();
    };
    let mut notes = Vec::new();
    let pipeline = summary.strategy == Strategy::Pipespec;
    let threads: usize = calibration.iter().map(|c| c.threads).sum();
    if pipeline && threads > context.cores {
        notes.push(format!(
            "levels contend for cores: {threads} compute threads on {} cores (the model assumes each level runs at its calibrated speed)",
            context.cores
        ));
    }
    let cost = target_cost.cost;
    let verify_ratio = cost.verify_s / cost.step_s;
    if verify_ratio > 1.0 + THRESHOLD {
        notes.push(format!(
            "verification cost grows with window: a pass over {} rows costs {verify_ratio:.2}x a 1-token step (the paper's formulas count it as one step)",
            target_cost.verify_rows
        ));
    }
    if stage.window < (1.0 - THRESHOLD) * context.window as f64 {
        notes.push(format!(
            "drafts fall short of the window: {:.1} of {} tokens per verification on average",
            stage.window, context.window
        ));
    }
    // The target's passes after prefill (one prefill pass per turn), and how many verified drafts.
    let passes = target
        .metrics
        .forward_passes
        .saturating_sub(summary.totals.turns);
    let verifications = summary
        .levels
        .iter()
        .rev()
        .nth(1)
        .map_or(0, |l| l.metrics.n_verifications)
        .min(passes);
    if passes > 0 {
        let plain = passes - verifications;
        let share = plain as f64 / passes as f64;
        if share > THRESHOLD {
            notes.push(format!(
                "the drafter had nothing to propose for {:.0}% of the target's passes (one-token steps, not verifications)",
                100.0 * share
            ));
        }
        let expected =
            (verifications as f64 * cost.verify_s + plain as f64 * cost.step_s) / passes as f64;
        let actual = target.metrics.decode_s / passes as f64;
        let slowdown = actual / expected;
        if slowdown > 1.0 + THRESHOLD {
            notes.push(if pipeline {
                format!(
                    "levels contend for cores and memory bandwidth: the target's passes took {slowdown:.2}x their calibrated time while the other levels ran"
                )
            } else {
                format!(
                    "forward passes ran {slowdown:.2}x slower than calibrated (a longer context as the reply grows, or other load on the machine)"
                )
            });
        }
    }
    if pipeline {
        let m = &target.metrics;
        let idle = m.idle_s / (m.busy_s + m.idle_s);
        if idle > THRESHOLD {
            notes.push(format!(
                "the target waited for drafts {:.0}% of the time: drafting, not verification, limits the pipeline",
                100.0 * idle
            ));
        }
    } else {
        let in_passes: f64 = summary.levels.iter().map(|l| l.metrics.decode_s).sum();
        let outside = 1.0 - in_passes / summary.totals.decode_s;
        if outside > THRESHOLD {
            notes.push(format!(
                "{:.0}% of decode time is spent outside forward passes (sampling, verification, bookkeeping)",
                100.0 * outside
            ));
        }
    }
    if notes.is_empty() {
        notes.push(
            "no measured assumption fails by more than 20%: acceptance likely varies by position and prompt (the model uses one mean alpha)"
                .into(),
        );
    }
    notes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::bench::prediction::predict;
    use crate::commands::bench::prediction::tests::{calibration, summary};

    const CONTEXT: Context = Context {
        window: 2,
        cores: 2,
    };

    fn notes(strategy: Strategy, measured: f64, step_s: f64, verify_s: f64) -> Vec<String> {
        let summary = summary(strategy, measured);
        let calibration = calibration(step_s, verify_s);
        let prediction = predict(&summary, &calibration, step_s, 2).unwrap();
        explain(&summary, &prediction, &calibration, &CONTEXT)
    }

    #[test]
    fn a_close_prediction_needs_no_explanation() {
        // Verification as cheap as a step: both models predict (2 + 10) / 1.75 -> 1.4583x.
        assert!(notes(Strategy::Sd, 1.4583, 10.0, 10.0).is_empty());
    }

    #[test]
    fn the_failing_assumptions_are_named() {
        // Predicted 1.1667x, measured 0.8x; a verification costs 1.3 steps. The target's 40
        // passes after prefill all verified, in 1 s in all against 40 * 13 s calibrated: not
        // slower. Time outside passes: 1 - 1.125 / 1.25 = 10%, under the threshold.
        let sd = notes(Strategy::Sd, 0.8, 10.0, 13.0);
        assert!(
            sd.iter()
                .any(|n| n.starts_with("verification cost grows with window")),
            "{sd:?}"
        );
        assert!(
            !sd.iter().any(|n| n.contains("slower than calibrated")),
            "{sd:?}"
        );
        // Calibrated at a tenth of the time the passes took in the run: they ran slower.
        let slow = notes(Strategy::Sd, 0.8, 0.001, 0.0013);
        assert!(
            slow.iter().any(|n| n.contains("slower than calibrated")),
            "{slow:?}"
        );
        let pipespec = notes(Strategy::Pipespec, 0.5, 0.001, 0.0013);
        assert!(
            pipespec
                .iter()
                .any(|n| n.starts_with("levels contend for cores")),
            "{pipespec:?}"
        );
        // Off, with every check passing: the catch-all.
        let other = notes(Strategy::Sd, 2.0, 10.0, 10.0);
        assert_eq!(other.len(), 1);
        assert!(
            other[0].starts_with("no measured assumption fails"),
            "{other:?}"
        );
    }
}
