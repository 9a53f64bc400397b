//! `pipespec bench`'s flags, resolved and checked: the suite, the strategies, and the generation and speculation settings.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use pipespec_decode::{SamplingParams, SpeculationConfig, Strategy};

use crate::cli::{BenchArgs, LoraArgs};
use crate::loading::{self, ChainEntry};
use crate::suites::Suite;

/// Everything a bench run needs to know, checked.
#[derive(Debug, Clone)]
pub struct BenchSettings {
    pub suite: Suite,
    pub categories: Vec<String>,
    pub limit: Option<usize>,
    pub all_turns: bool,
    /// The strategies asked for, `ar` first; None: every strategy the chain can run.
    pub strategies: Option<Vec<Strategy>>,
    pub chain: Vec<ChainEntry>,
    pub max_new_tokens: usize,
    pub out: PathBuf,
    pub threads: Vec<usize>,
    /// Overrides each strategy's default window.
    pub window: Option<usize>,
    /// Overrides `window` for one strategy.
    pub strategy_windows: StrategyWindows,
    /// None: `default_run_ahead` for the chain.
    pub run_ahead: Option<usize>,
    pub ctx_size: Option<usize>,
    pub seed: u64,
    pub sampling: SamplingParams,
    pub ignore_eos: bool,
    /// (shortest, longest) suffix the ngram level matches.
    pub ngram: (usize, usize),
    /// Adapters on the target (and drafters).
    pub lora: LoraArgs,
}

impl BenchSettings {
    pub fn resolve(args: BenchArgs) -> Result<BenchSettings> {
        if args.max_new_tokens == 0 {
            bail!("--max-new-tokens must be at least 1");
        }
        if args.limit == Some(0) {
            bail!("--limit must be at least 1");
        }
        if args.out.is_file() {
            bail!("--out {} is a file: give a folder", args.out.display());
        }
        let sampling = SamplingParams {
            temperature: args.temperature,
            ..SamplingParams::greedy()
        };
        sampling.validate().context("--temperature")?;
        let (window, strategy_windows) = windows(&args.window)?;
        let settings = BenchSettings {
            suite: Suite::parse(&args.suite)?,
            categories: args
                .categories
                .iter()
                .map(|c| c.trim().to_string())
                .collect(),
            limit: args.limit,
            all_turns: args.all_turns,
            strategies: strategies(&args.strategies),
            chain: loading::chain_entries(&args.chain, args.model.model.as_deref())?,
            max_new_tokens: args.max_new_tokens,
            out: args.out,
            threads: args.threads,
            window,
            strategy_windows,
            run_ahead: args.run_ahead,
            ctx_size: args.ctx_size,
            seed: args.seed,
            sampling,
            ignore_eos: args.ignore_eos,
            ngram: (args.ngram_min, args.ngram_max),
            lora: args.lora,
        };
        for strategy in Strategy::ALL {
            settings
                .speculation(strategy)
                .validate()
                .context("--window/--run-ahead")?;
        }
        Ok(settings)
    }

    /// How `strategy` speculates: its `--window` (`STRATEGY=N`, else `N`, else its own
    /// default window), `--run-ahead`.
    pub fn speculation(&self, strategy: Strategy) -> SpeculationConfig {
        let window = self
            .strategy_windows
            .iter()
            .find(|(s, _)| *s == strategy)
            .map(|&(_, w)| w)
            .or(self.window)
            .unwrap_or(strategy.default_window());
        SpeculationConfig {
            run_ahead: self.run_ahead.unwrap_or(pipespec_decode::DEFAULT_RUN_AHEAD),
            ..SpeculationConfig::with_window(window)
        }
    }

    /// Greedy outputs must equal ar's token for token; sampled ones only in distribution.
    pub fn compares_outputs(&self) -> bool {
        self.sampling.is_greedy()
    }
}

/// Windows given for one strategy each.
pub type StrategyWindows = Vec<(Strategy, usize)>;

/// `--window`'s entries: `N` (every strategy; given once) and `STRATEGY=N` (one strategy).
fn windows(entries: &[String]) -> Result<(Option<usize>, StrategyWindows)> {
    let count = |text: &str| -> Result<usize> {
        text.trim().parse().with_context(|| {
            format!("--window {text:?}: expected a number of tokens, e.g. 6 or pipespec=8")
        })
    };
    let mut all = None;
    let mut per_strategy: StrategyWindows = Vec::new();
    for entry in entries {
        match entry.split_once('=') {
            Some((name, value)) => {
                let strategy: Strategy = name
                    .trim()
                    .parse()
                    .with_context(|| format!("--window {entry:?}"))?;
                if per_strategy.iter().any(|(s, _)| *s == strategy) {
                    bail!("--window gives {strategy} twice");
                }
                per_strategy.push((strategy, count(value)?));
            }
            None if all.is_some() => bail!("--window gives the window for every strategy twice"),
            None => all = Some(count(entry)?),
        }
    }
    Ok((all, per_strategy))
}

/// The strategies named, without repeats, `ar` (the reference) first; None when none is named.
fn strategies(named: &[crate::cli::StrategyArg]) -> Option<Vec<Strategy>> {
    if named.is_empty() {
        return None;
    }
    let mut list = vec![Strategy::Ar];
    for strategy in named.iter().map(|&s| Strategy::from(s)) {
        if !list.contains(&strategy) {
            list.push(strategy);
        }
    }
    Some(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn windows_are_given_for_all_or_per_strategy() {
        assert_eq!(windows(&[]).unwrap(), (None, vec![]));
        assert_eq!(
            windows(&entries(&["6", "pipespec=8", " lookup = 3"])).unwrap(),
            (
                Some(6),
                vec![(Strategy::Pipespec, 8), (Strategy::Lookup, 3)]
            )
        );
        for (bad, says) in [
            (&["6", "7"][..], "every strategy twice"),
            (&["sd=4", "sd=5"][..], "sd twice"),
            (&["fast=4"][..], "fast"),
            (&["pipespec=many"][..], "expected a number"),
            (&["-1"][..], "expected a number"),
        ] {
            let error = format!("{:#}", windows(&entries(bad)).unwrap_err());
            assert!(error.contains(says), "{bad:?}: {error}");
        }
    }
}
