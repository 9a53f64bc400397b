//! When speculation stops paying inside a batch: the analytical model with pass costs
//! measured on the engine's own batched passes.
//!
//! With `B` sequences, `ar` makes `B` tokens per target pass of `B` rows; two-level speculation
//! with window `w` and acceptance `alpha` makes `B * E` tokens, `E = (1 - alpha^(w+1)) /
//! (1 - alpha)`, per `w` draft passes of `B` rows and one target pass of `B * (w + 1)` rows. A
//! pass costs about the same for 1 row as for a few (the weights are read once) and grows with
//! the rows once compute dominates, so as `B` grows the verification rows stop being nearly
//! free and `ar` wins; the policy picks whichever yields more tokens per second.

/// Passes of a size a bucket keeps.
const KEPT: usize = 32;

/// Passes (of any size) a cost needs before it is trusted.
const MIN_PASSES: usize = 8;

/// Upper bounds of the row-count buckets: every size up to 8, then about a quarter apart.
const BUCKETS: [usize; 27] = [
    1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16, 20, 24, 28, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160,
    192, 256,
];

/// The seconds of one model's batched passes by row count: the recent passes of each size
/// bucket, interpolated between the sizes seen and scaled with the rows past the largest.
/// Also the sequences of its recent decode passes (a row or two each): drafting requests that
/// fall out of phase draft in more, smaller passes than the aligned `w` per round.
#[derive(Debug, Default, Clone)]
pub struct PassCost {
    /// Per bucket (plus one past the last): recent (rows, seconds).
    buckets: Vec<Vec<(f64, f64)>>,
    passes: usize,
    /// Sequences of recent decode passes.
    decode_sequences: std::collections::VecDeque<usize>,
    /// Recent gaps between a step and the one before (members coming back).
    gaps: std::collections::VecDeque<f64>,
}

impl PassCost {
    /// Adds the gap before a step of this model: the step's cost beyond its pass.
    pub fn observe_gap(&mut self, seconds: f64) {
        if self.gaps.len() == KEPT {
            self.gaps.pop_front();
        }
        self.gaps.push_back(seconds);
    }

    /// Mean gap before a step, 0 when none was seen.
    pub fn mean_gap(&self) -> f64 {
        let n = self.gaps.len();
        if n == 0 {
            return 0.0;
        }
        self.gaps.iter().sum::<f64>() / n as f64
    }

    /// Adds a pass of `sequences` sequences feeding `rows` rows in all.
    pub fn observe_pass(&mut self, sequences: usize, rows: usize, seconds: f64) {
        if sequences > 0 && rows <= 2 * sequences {
            if self.decode_sequences.len() == KEPT {
                self.decode_sequences.pop_front();
            }
            self.decode_sequences.push_back(sequences);
        }
        self.observe(rows, seconds);
    }

    /// Mean sequences of the recent decode passes, if any.
    pub fn mean_decode_sequences(&self) -> Option<f64> {
        let n = self.decode_sequences.len();
        (n > 0).then(|| self.decode_sequences.iter().sum::<usize>() as f64 / n as f64)
    }

    pub fn observe(&mut self, rows: usize, seconds: f64) {
        if self.buckets.is_empty() {
            self.buckets = vec![Vec::new(); BUCKETS.len() + 1];
        }
        let bucket = BUCKETS.partition_point(|&bound| bound < rows);
        let kept = &mut self.buckets[bucket];
        if kept.len() == KEPT {
            kept.remove(0);
        }
        kept.push((rows as f64, seconds));
        self.passes += 1;
    }

    /// (mean rows, mean seconds) of every bucket that saw passes, smallest first.
    fn points(&self) -> Vec<(f64, f64)> {
        self.buckets
            .iter()
            .filter(|kept| !kept.is_empty())
            .map(|kept| {
                let n = kept.len() as f64;
                let (rows, seconds) = kept.iter().fold((0.0, 0.0), |(r, s), (rows, seconds)| {
                    (r + rows, s + seconds)
                });
                (rows / n, seconds / n)
            })
            .collect()
    }

    /// Seconds of a step of `rows` rows once enough passes were seen: the pass interpolated
    /// between the nearest sizes seen (the smallest's time below them, proportional to the
    /// rows above), plus the mean gap before a step.
    pub fn seconds(&self, rows: usize) -> Option<f64> {
        self.pass_seconds(rows).map(|pass| pass + self.mean_gap())
    }

    fn pass_seconds(&self, rows: usize) -> Option<f64> {
        if self.passes < MIN_PASSES {
            return None;
        }
        let points = self.points();
        let x = rows as f64;
        let (first, last) = (*points.first()?, *points.last()?);
        if x <= first.0 {
            return Some(first.1);
        }
        if x >= last.0 {
            return Some(last.1 * x / last.0);
        }
        let above = points.iter().position(|&(r, _)| r >= x)?;
        let (low, high) = (points[above - 1], points[above]);
        Some(low.1 + (high.1 - low.1) * (x - low.0) / (high.0 - low.0))
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
/// the tokens a round yields (`tokens_per_verification(alpha, window)`, or measured) and the
/// window. Drafts cost `w * B / m` passes of `m`
/// sequences, `m` the drafter's recent mean (at most `B`): `w` passes of `B` when in phase.
/// None until the costs are known.
pub fn estimate(
    target: &PassCost,
    draft: Option<&PassCost>,
    tokens_per_round: f64,
    window: usize,
    sequences: usize,
) -> Option<PolicyEstimate> {
    let b = sequences.max(1);
    let target_pass = |rows| target.seconds(rows);
    let drafting = match draft {
        Some(cost) => {
            let m = cost
                .mean_decode_sequences()
                .unwrap_or(b as f64)
                .clamp(1.0, b as f64);
            let per_pass = cost.seconds(m.round() as usize)?;
            window as f64 * (b as f64 / m) * per_pass
        }
        None => 0.0,
    };
    let autoregressive = b as f64 / target_pass(b)?;
    let tokens = b as f64 * tokens_per_round;
    let speculative = tokens / (drafting + target_pass(b * (window + 1))?);
    Some(PolicyEstimate {
        autoregressive,
        speculative,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analytic::tokens_per_verification;

    fn cost(a: f64, b: f64) -> PassCost {
        let mut cost = PassCost::default();
        for rows in 1..=40 {
            cost.observe(rows, a + b * rows as f64);
        }
        cost
    }

    #[test]
    fn costs_interpolate_between_sizes_and_scale_past_the_largest() {
        let cost = cost(0.008, 0.0005);
        let at = |rows| cost.seconds(rows).unwrap();
        assert!((at(9) - (0.008 + 0.0005 * 9.0)).abs() < 1e-3 * 0.008);
        assert!(
            (at(1) - 0.0085).abs() < 1e-12,
            "below the smallest: its time"
        );
        // the last bucket holds 33..=40 rows: 36.5 on average
        let largest = 0.008 + 0.0005 * 36.5;
        assert!(
            (at(80) - largest * 80.0 / 36.5).abs() < 1e-9,
            "above: in proportion"
        );
        let mut few = PassCost::default();
        few.observe(4, 0.01);
        assert_eq!(few.seconds(4), None, "one pass is not a measurement");
        // a pass that costs the same up to 8 rows, then grows: no straight line fits it
        let mut bent = PassCost::default();
        for rows in 1..=64 {
            bent.observe(rows, 0.02_f64.max(0.0025 * rows as f64));
        }
        assert!((bent.seconds(1).unwrap() - 0.02).abs() < 1e-12);
        assert!((bent.seconds(48).unwrap() - 0.12).abs() < 0.01);
    }

    #[test]
    fn drafting_out_of_phase_costs_more_passes() {
        let target = cost(0.008, 0.0005);
        let mut draft = PassCost::default();
        for rows in 1..=40 {
            draft.observe(rows, 0.002 + 0.001 * rows as f64);
        }
        let aligned = estimate(
            &target,
            Some(&draft),
            tokens_per_verification(0.8, 4),
            4,
            16,
        )
        .unwrap();
        for _ in 0..50 {
            draft.observe_pass(8, 8, 0.01);
        }
        assert_eq!(draft.mean_decode_sequences(), Some(8.0));
        let split = estimate(
            &target,
            Some(&draft),
            tokens_per_verification(0.8, 4),
            4,
            16,
        )
        .unwrap();
        assert!(split.speculative < aligned.speculative);
        assert_eq!(split.autoregressive, aligned.autoregressive);
    }

    #[test]
    fn speculation_pays_in_small_batches_and_stops_in_large_ones() {
        // a pass reads the weights (8 ms) and adds 0.5 ms a row; the drafter is 10x cheaper
        let (target, draft) = (cost(0.008, 0.0005), cost(0.0008, 0.00005));
        let pays = |sequences| {
            estimate(
                &target,
                Some(&draft),
                tokens_per_verification(0.7, 4),
                4,
                sequences,
            )
            .unwrap()
            .speculation_pays()
        };
        assert!(pays(1) && pays(2));
        assert!(!pays(16) && !pays(64));
        // a drafter that is never right never pays
        let never = estimate(&target, Some(&draft), 1.0, 4, 1).unwrap();
        assert!(!never.speculation_pays());
    }
}
