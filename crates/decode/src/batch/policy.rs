//! When speculation stops paying inside a batch: the analytical model with pass costs
//! calibrated from the engine's own batched passes.
//!
//! A batched pass of `rows` rows costs about `a + b * rows` (the weights are read once, `a`;
//! each row adds its compute, `b`). With `B` sequences, `ar` makes `B` tokens per target pass
//! of `B` rows; two-level speculation with window `w` and acceptance `alpha` makes
//! `B * E` tokens, `E = (1 - alpha^(w+1)) / (1 - alpha)`, per `w` draft passes of `B` rows and
//! one target pass of `B * (w + 1)` rows. As `B` grows the verification rows stop being
//! nearly free and `ar` wins; the policy picks whichever yields more tokens per second.

use std::collections::VecDeque;

use crate::analytic::tokens_per_verification;

/// Recent passes a cost fit keeps.
const KEPT: usize = 512;

/// Passes a fit needs before it is trusted.
const MIN_PASSES: usize = 16;

/// The seconds of one model's batched passes as `a + b * rows`, fitted by least squares over
/// its recent passes.
#[derive(Debug, Default, Clone)]
pub struct PassCost {
    passes: VecDeque<(f64, f64)>,
}

impl PassCost {
    pub fn observe(&mut self, rows: usize, seconds: f64) {
        if self.passes.len() == KEPT {
            self.passes.pop_front();
        }
        self.passes.push_back((rows as f64, seconds));
    }

    /// (a, b), once enough passes of at least two sizes were seen; b is never negative.
    pub fn fit(&self) -> Option<(f64, f64)> {
        let n = self.passes.len() as f64;
        if self.passes.len() < MIN_PASSES {
            return None;
        }
        let (sx, sy) = self
            .passes
            .iter()
            .fold((0.0, 0.0), |(sx, sy), (x, y)| (sx + x, sy + y));
        let (mx, my) = (sx / n, sy / n);
        let (sxx, sxy) = self.passes.iter().fold((0.0, 0.0), |(sxx, sxy), (x, y)| {
            (sxx + (x - mx) * (x - mx), sxy + (x - mx) * (y - my))
        });
        if sxx <= f64::EPSILON {
            return None;
        }
        let b = (sxy / sxx).max(0.0);
        Some(((my - b * mx).max(0.0), b))
    }

    /// Seconds of a pass of `rows` rows, once fitted.
    pub fn seconds(&self, rows: usize) -> Option<f64> {
        self.fit().map(|(a, b)| a + b * rows as f64)
    }
}

/// Tokens per second of each choice in a batch of `sequences`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PolicyEstimate {
    pub autoregressive: f64,
    pub speculative: f64,
}

impl PolicyEstimate {
    pub fn speculation_pays(&self) -> bool {
        self.speculative > self.autoregressive
    }
}

/// The model's estimate for `sequences` sequences decoding together: the target's and the
/// drafter's pass costs (`draft` None for a drafter that costs nothing, as the n-gram one),
/// the drafter's acceptance rate and the window. None until the costs are fitted.
pub fn estimate(
    target: &PassCost,
    draft: Option<&PassCost>,
    alpha: f64,
    window: usize,
    sequences: usize,
) -> Option<PolicyEstimate> {
    let b = sequences.max(1);
    let target_pass = |rows| target.seconds(rows);
    let draft_pass = match draft {
        Some(cost) => cost.seconds(b)?,
        None => 0.0,
    };
    let autoregressive = b as f64 / target_pass(b)?;
    let tokens = b as f64 * tokens_per_verification(alpha.clamp(0.0, 0.999), window);
    let speculative = tokens / (window as f64 * draft_pass + target_pass(b * (window + 1))?);
    Some(PolicyEstimate {
        autoregressive,
        speculative,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cost(a: f64, b: f64) -> PassCost {
        let mut cost = PassCost::default();
        for rows in 1..=40 {
            cost.observe(rows, a + b * rows as f64);
        }
        cost
    }

    #[test]
    fn a_fit_recovers_a_linear_cost_and_waits_for_two_sizes() {
        let (a, b) = cost(0.008, 0.0005).fit().unwrap();
        assert!((a - 0.008).abs() < 1e-9 && (b - 0.0005).abs() < 1e-9);
        let mut flat = PassCost::default();
        for _ in 0..40 {
            flat.observe(4, 0.01);
        }
        assert_eq!(flat.fit(), None);
        assert_eq!(PassCost::default().seconds(1), None);
    }

    #[test]
    fn speculation_pays_in_small_batches_and_stops_in_large_ones() {
        // a pass reads the weights (8 ms) and adds 0.5 ms a row; the drafter is 10x cheaper
        let (target, draft) = (cost(0.008, 0.0005), cost(0.0008, 0.00005));
        let pays = |sequences| {
            estimate(&target, Some(&draft), 0.7, 4, sequences)
                .unwrap()
                .speculation_pays()
        };
        assert!(pays(1) && pays(2));
        assert!(!pays(16) && !pays(64));
        // a drafter that is never right never pays
        let never = estimate(&target, Some(&draft), 0.0, 4, 1).unwrap();
        assert!(!never.speculation_pays());
    }
}
