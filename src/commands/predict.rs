//! `pipespec predict`: the paper's analytical model for given acceptance rates, windows and cost ratio.

use anyhow::{bail, Result};
use pipespec_decode::analytic;

use crate::cli::PredictArgs;

/// One value per verifying stage: the list given, or one value repeated for every stage.
fn per_stage<T: Copy>(values: &[T], stages: usize, name: &str) -> Result<Vec<T>> {
    match values.len() {
        1 => Ok(vec![values[0]; stages]),
        n if n == stages => Ok(values.to_vec()),
        n => bail!("--{name} has {n} values but the chain has {stages} verifying stages (--levels minus 1)"),
    }
}

pub fn run(args: PredictArgs) -> Result<()> {
    let stages = match args.levels {
        Some(levels) if levels < 2 => {
            bail!("--levels must be at least 2 (a draft and a target), got {levels}")
        }
        Some(levels) => levels - 1,
        None => args.alpha.len().max(args.gamma.len()),
    };
    if args.alpha.is_empty() || args.gamma.is_empty() {
        bail!("give --alpha and --gamma");
    }
    let alphas = per_stage(&args.alpha, stages, "alpha")?;
    let gammas = per_stage(&args.gamma, stages, "gamma")?;
    if let Some(c) = args.cost_ratio {
        if !(c.is_finite() && c >= 0.0) {
            bail!("invalid --cost-ratio: expected a finite number >= 0 (draft time per token / target time per token), got {c}");
        }
    }
    for (&alpha, &gamma) in alphas.iter().zip(&gammas) {
        analytic::validate(alpha, gamma)?;
    }
    println!("stage  alpha  gamma  rho_i  E[N_i]  tokens/verification");
    for (i, (&alpha, &gamma)) in alphas.iter().zip(&gammas).enumerate() {
        println!(
            "{:>5}  {alpha:>5.3}  {gamma:>5}  {:.3}  {:.3}  {:.3}",
            i + 1,
            analytic::verification_probability(alpha, gamma),
            analytic::expected_tokens_per_step(alpha, gamma),
            analytic::tokens_per_verification(alpha, gamma),
        );
    }
    let (alpha, gamma) = (alphas[stages - 1], gammas[stages - 1]);
    if let Some(c) = args.cost_ratio {
        println!(
            "sd speedup (last stage, C = {c}): {:.3}",
            analytic::sd_speedup(alpha, gamma, c)
        );
    }
    println!(
        "pipespec bound (last stage): {:.3}",
        analytic::pipespec_bound(alpha, gamma)
    );
    Ok(())
}
