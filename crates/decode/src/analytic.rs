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
    if alpha >= 1.0 {
        return gamma as f64 + 1.0;
    }
    (1.0 - alpha.powi(gamma as i32 + 1)) / (1.0 - alpha)
}

/// rho_i: the steady-state probability that a step of the stage is a verification,
/// alpha / (1 - alpha^(gamma+1) + alpha).
pub fn verification_probability(alpha: f64, gamma: usize) -> f64 {
    alpha / (1.0 - alpha.powi(gamma as i32 + 1) + alpha)
}

/// E[N_i]: expected tokens per step of the stage, (1 - rho) + rho * (1 - alpha^(gamma+1)) / (1 - alpha).
pub fn expected_tokens_per_step(alpha: f64, gamma: usize) -> f64 {
    let rho = verification_probability(alpha, gamma);
    (1.0 - rho) + rho * tokens_per_verification(alpha, gamma)
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
    fn bad_parameters_are_named() {
        assert!(validate(1.2, 4).unwrap_err().to_string().contains("alpha"));
        assert!(validate(0.5, 0).unwrap_err().to_string().contains("gamma"));
        assert!(validate(0.5, 4).is_ok());
    }
}
