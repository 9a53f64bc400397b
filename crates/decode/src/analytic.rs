//! The paper's analytical throughput model (PipeSpec, section 4): pure formulas, no measurement.

use crate::error::{DecodeError, Result};

/// Checks one stage's acceptance rate and window.
pub fn validate(alpha: f64, gamma: usize) -> Result<()> {
    if !(0.0..=1.0).contains(&alpha) {
        return Err(DecodeError::InvalidParameter {
            name: "alpha",
            bounds: "in [0, 1]",
            value: alpha.to_string(),
        });
    }
    if gamma == 0 {
        return Err(DecodeError::InvalidParameter {
            name: "gamma",
            bounds: "an integer >= 1",
            value: gamma.to_string(),
        });
    }
    Ok(())
}

/// Expected tokens one verification of `gamma` drafts yields: (1 - alpha^(gamma+1)) / (1 - alpha),
/// which is gamma + 1 when every draft is accepted.
pub fn tokens_per_verification(alpha: f64, gamma: usize) -> f64 {
    tokens_per_window(alpha, gamma as f64)
}

/// rho_i: the steady-state probability that a step of the stage is a verification,
/// alpha / (1 - alpha^(gamma+1) + alpha).
pub fn verification_probability(alpha: f64, gamma: usize) -> f64 {
    verification_share(alpha, gamma as f64)
}

/// E[N_i]: expected tokens per step of the stage, (1 - rho) + rho * (1 - alpha^(gamma+1)) / (1 - alpha).
pub fn expected_tokens_per_step(alpha: f64, gamma: usize) -> f64 {
    tokens_per_stage_step(alpha, gamma as f64)
}

/// Standard speculative decoding's expected speedup over the target alone, with
/// `cost_ratio` = draft time per token / target time per token:
/// (1 - alpha^(gamma+1)) / ((1 - alpha)(gamma * cost_ratio + 1)).
pub fn sd_speedup(alpha: f64, gamma: usize, cost_ratio: f64) -> f64 {
    tokens_per_verification(alpha, gamma) / (gamma as f64 * cost_ratio + 1.0)
}

/// The bound PipeSpec approaches once drafting no longer stalls the target:
/// (1 - alpha^(gamma+1)) / (1 - alpha).
pub fn pipespec_bound(alpha: f64, gamma: usize) -> f64 {
    tokens_per_verification(alpha, gamma)
}

// The formulas over a real-valued window: a measured mean draft length is rarely an integer.

fn tokens_per_window(alpha: f64, gamma: f64) -> f64 {
    if alpha >= 1.0 {
        return gamma + 1.0;
    }
    (1.0 - alpha.powf(gamma + 1.0)) / (1.0 - alpha)
}

fn verification_share(alpha: f64, gamma: f64) -> f64 {
    alpha / (1.0 - alpha.powf(gamma + 1.0) + alpha)
}

fn tokens_per_stage_step(alpha: f64, gamma: f64) -> f64 {
    let rho = verification_share(alpha, gamma);
    (1.0 - rho) + rho * tokens_per_window(alpha, gamma)
}

/// Accepted drafts expected per verification of `gamma` drafts when each is accepted with
/// probability `alpha` until the first rejection: alpha (1 - alpha^gamma) / (1 - alpha).
pub fn accepted_per_verification(alpha: f64, gamma: f64) -> f64 {
    tokens_per_window(alpha, gamma) - 1.0
}

/// The per-token acceptance rate alpha under which `gamma` drafts per verification yield
/// `mean_accepted` accepted drafts on average (the inverse of [`accepted_per_verification`]).
/// This, not accepted / drafted, is the paper's alpha: drafts after a rejection are never
/// judged, so accepted / drafted understates it (alpha 0.8, gamma 6 accepts 2.95 of 6: 0.49).
pub fn alpha_from_mean_accepted(mean_accepted: f64, gamma: f64) -> f64 {
    if gamma <= 0.0 || mean_accepted <= 0.0 {
        return 0.0;
    }
    if mean_accepted >= gamma {
        return 1.0;
    }
    // Increasing in alpha from 0 (alpha 0) to gamma (alpha 1): bisect.
    let (mut low, mut high) = (0.0f64, 1.0f64);
    for _ in 0..60 {
        let middle = 0.5 * (low + high);
        if accepted_per_verification(middle, gamma) < mean_accepted {
            low = middle;
        } else {
            high = middle;
        }
    }
    0.5 * (low + high)
}

/// What one level of a chain costs, measured in seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LevelCost {
    /// One decoding step of one token (for the n-gram drafter: one drafted token).
    pub step_s: f64,
    /// One verification pass: the drafts checked plus the last committed token, in one forward pass.
    pub verify_s: f64,
}

/// One verifying stage: how the next level judges the drafts of the level below it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StageAcceptance {
    /// The paper's per-token acceptance rate.
    pub alpha: f64,
    /// Drafts per verification (the window, or the measured mean when drafts fall short).
    pub window: f64,
}

/// `staged` (with `sd` and `lookup` as its two-level cases): seconds per committed token when
/// every level waits for the others. One round: level 0 drafts `window` tokens, one step each;
/// each middle level verifies its block in one pass, keeps tokens_per_window of it, and drafts
/// one step at a time until it is a window ahead again; the target verifies and commits
/// (1 - alpha^(w+1)) / (1 - alpha) tokens. `costs` has one entry per level, smallest first;
/// `stages` one per level after the first. Two levels give the SD cycle
/// (w t_draft + t_verify) / tokens_per_window.
pub fn synchronous_seconds_per_token(costs: &[LevelCost], stages: &[StageAcceptance]) -> f64 {
    let (Some(first), Some(target), Some(last)) = (costs.first(), costs.last(), stages.last())
    else {
        return f64::NAN;
    };
    if costs.len() != stages.len() + 1 || costs.len() < 2 {
        return f64::NAN;
    }
    let mut round = stages[0].window * first.step_s + target.verify_s;
    for (i, middle) in costs.iter().enumerate().take(costs.len() - 1).skip(1) {
        let kept = tokens_per_window(stages[i - 1].alpha, stages[i - 1].window);
        let refill = (stages[i].window - kept).max(0.0);
        round += middle.verify_s + refill * middle.step_s;
    }
    round / tokens_per_window(last.alpha, last.window)
}

/// `pipespec`: the target's committed tokens per second when every level runs at once. Each
/// verifying stage i makes E[N_i] tokens per step, a step being a verification with
/// probability rho_i (costing `verify_s`) and a one-token step otherwise (`step_s`). Its
/// verifications can go no faster than drafts arrive: each takes w upstream tokens, and there
/// are rho_i per E[N_i] committed tokens, so its rate is at most upstream * E[N_i] / (rho_i w).
/// Level 0 drafts one token per `step_s`.
pub fn pipeline_tokens_per_second(costs: &[LevelCost], stages: &[StageAcceptance]) -> f64 {
    if costs.len() != stages.len() + 1 || costs.len() < 2 {
        return f64::NAN;
    }
    let mut rate = 1.0 / costs[0].step_s; // infinite for a free drafter
    for (cost, stage) in costs[1..].iter().zip(stages) {
        let rho = verification_share(stage.alpha, stage.window);
        let step_s = rho * cost.verify_s + (1.0 - rho) * cost.step_s;
        let tokens_per_step = tokens_per_stage_step(stage.alpha, stage.window);
        let own = tokens_per_step / step_s;
        // Infinite when the stage never verifies (rho 0): it then needs no drafts.
        let fed = rate * tokens_per_step / (rho * stage.window);
        rate = own.min(fed);
    }
    rate
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 5e-4
    }

    #[test]
    fn the_papers_check_values() {
        for (alpha, gamma, rho, tokens) in [
            (0.5, 4, 0.340, 1.319),
            (0.8, 4, 0.543, 2.283),
            (0.8, 8, 0.480, 2.599),
        ] {
            let got_rho = verification_probability(alpha, gamma);
            let got_tokens = expected_tokens_per_step(alpha, gamma);
            assert!(
                close(got_rho, rho),
                "alpha {alpha} gamma {gamma}: rho {got_rho} != {rho}"
            );
            assert!(
                close(got_tokens, tokens),
                "alpha {alpha} gamma {gamma}: E[N] {got_tokens} != {tokens}"
            );
        }
    }

    #[test]
    fn hand_computed_speedups() {
        // alpha 0.8, gamma 4: (1 - 0.8^5) / 0.2 = (1 - 0.32768) / 0.2 = 3.3616.
        assert!(close(pipespec_bound(0.8, 4), 3.3616));
        // With a draft 10x cheaper: 3.3616 / (4 * 0.1 + 1) = 2.4011.
        assert!(close(sd_speedup(0.8, 4, 0.1), 2.4011));
        // A free draft reaches the bound; a draft as costly as the target halves it at gamma 1.
        assert!(close(sd_speedup(0.8, 4, 0.0), pipespec_bound(0.8, 4)));
        assert!(close(sd_speedup(0.5, 1, 1.0), 1.5 / 2.0));
    }

    #[test]
    fn the_extremes() {
        assert_eq!(tokens_per_verification(1.0, 5), 6.0);
        assert_eq!(expected_tokens_per_step(0.0, 5), 1.0);
        // Every step verifies and yields gamma + 1 tokens.
        assert!(close(expected_tokens_per_step(1.0, 3), 4.0));
        // The theorem: more than one token per target step whenever 0 < alpha < 1.
        for alpha in [0.05, 0.3, 0.6, 0.95] {
            for gamma in 1..10 {
                assert!(expected_tokens_per_step(alpha, gamma) > 1.0);
            }
        }
    }

    #[test]
    fn alpha_is_recovered_from_the_mean_accepted_run() {
        // alpha 0.8, 6 drafts: 0.8 (1 - 0.8^6) / 0.2 = 4 * 0.737856 = 2.951424 accepted.
        assert!(close(accepted_per_verification(0.8, 6.0), 2.951424));
        assert!(close(alpha_from_mean_accepted(2.951424, 6.0), 0.8));
        // One draft: accepted with probability alpha.
        assert!(close(alpha_from_mean_accepted(0.3, 1.0), 0.3));
        assert_eq!(alpha_from_mean_accepted(0.0, 6.0), 0.0);
        assert_eq!(alpha_from_mean_accepted(6.0, 6.0), 1.0);
    }

    fn cost(step_s: f64, verify_s: f64) -> LevelCost {
        LevelCost { step_s, verify_s }
    }

    fn stage(alpha: f64, window: f64) -> StageAcceptance {
        StageAcceptance { alpha, window }
    }

    #[test]
    fn synchronous_cycles_by_hand() {
        // SD, alpha 0.8, w 4, draft step 1, verification 10: (4 + 10) / 3.3616 = 4.16468 per
        // token, against a target step of 10: 2.4011x, the paper's formula at C = 0.1.
        let sd =
            synchronous_seconds_per_token(&[cost(1.0, 1.0), cost(10.0, 10.0)], &[stage(0.8, 4.0)]);
        assert!(close(sd, 4.16468), "{sd}");
        assert!(close(10.0 / sd, sd_speedup(0.8, 4, 0.1)));
        // A verification dearer than a step (14 vs 10) stretches the cycle: (4 + 14) / 3.3616.
        let dear =
            synchronous_seconds_per_token(&[cost(1.0, 1.0), cost(10.0, 14.0)], &[stage(0.8, 4.0)]);
        assert!(close(dear, 5.35459), "{dear}");
        // Three levels, w 4 each: level 1 keeps (1 - 0.5^5) / 0.5 = 1.9375 of level 0's block
        // and drafts 2.0625 more steps of 2; round = 4 * 1 + (3 + 2.0625 * 2) + 12 = 23.125;
        // the target commits 3.3616: 6.87917 per token.
        let staged = synchronous_seconds_per_token(
            &[cost(1.0, 1.0), cost(2.0, 3.0), cost(10.0, 12.0)],
            &[stage(0.5, 4.0), stage(0.8, 4.0)],
        );
        assert!(close(staged, 6.87917), "{staged}");
        assert!(synchronous_seconds_per_token(&[cost(1.0, 1.0)], &[]).is_nan());
    }

    #[test]
    fn pipeline_rates_by_hand() {
        // alpha 0.8, w 4: rho 0.54336, E[N] 2.28320. Steps cost 0.54336 * 12 + 0.45664 * 10 =
        // 11.0867 s: 0.205940 tokens/s, 2.059x a 10 s target step. A drafter at 1 s per token
        // allows 1 * 2.28320 / (0.54336 * 4) = 1.0505 tokens/s, more than enough.
        let costs = [cost(1.0, 1.0), cost(10.0, 12.0)];
        let rate = pipeline_tokens_per_second(&costs, &[stage(0.8, 4.0)]);
        assert!(close(rate, 0.205940), "{rate}");
        // A drafter at 10 s per token allows only 0.1 * 1.0505 = 0.10505 tokens/s.
        let slow =
            pipeline_tokens_per_second(&[cost(10.0, 10.0), cost(10.0, 12.0)], &[stage(0.8, 4.0)]);
        assert!(close(slow, 0.10505), "{slow}");
        // A stage that never verifies (alpha 0) needs no drafts: one token per step.
        let alone =
            pipeline_tokens_per_second(&[cost(100.0, 100.0), cost(10.0, 12.0)], &[stage(0.0, 4.0)]);
        assert!(close(alone, 0.1), "{alone}");
        // A free drafter (the n-gram level) never limits; with verification as cheap as a step
        // the target's rate is E[N] per step: the paper's check value 2.283.
        let free =
            pipeline_tokens_per_second(&[cost(0.0, 0.0), cost(1.0, 1.0)], &[stage(0.8, 4.0)]);
        assert!(close(free, 2.283), "{free}");
    }

    #[test]
    fn bad_parameters_are_named() {
        assert!(validate(1.2, 4).unwrap_err().to_string().contains("alpha"));
        assert!(validate(0.5, 0).unwrap_err().to_string().contains("gamma"));
        assert!(validate(0.5, 4).is_ok());
    }
}
