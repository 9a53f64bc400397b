//! `pipespec bench`'s flags, resolved and checked: the suite, the strategies, and the generation and speculation settings.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use pipespec_decode::{SamplingParams, SpeculationConfig, Strategy};

use crate::cli::BenchArgs;
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
    pub run_ahead: usize,
    pub ctx_size: Option<usize>,
    pub seed: u64,
    pub sampling: SamplingParams,
    pub ignore_eos: bool,
    /// (shortest, longest) suffix the ngram level matches.
    pub ngram: (usize, usize),
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
            window: args.window,
            run_ahead: args.run_ahead,
            ctx_size: args.ctx_size,
            seed: args.seed,
            sampling,
            ignore_eos: args.ignore_eos,
            ngram: (args.ngram_min, args.ngram_max),
        };
        for strategy in Strategy::ALL {
            settings
                .speculation(strategy)
                .validate()
                .context("--window/--run-ahead")?;
        }
        Ok(settings)
    }

    /// How `strategy` speculates: `--window` or its own default window, `--run-ahead`.
    pub fn speculation(&self, strategy: Strategy) -> SpeculationConfig {
        SpeculationConfig {
            run_ahead: self.run_ahead,
            ..SpeculationConfig::with_window(self.window.unwrap_or(strategy.default_window()))
        }
    }

    /// Greedy outputs must equal ar's token for token; sampled ones only in distribution.
    pub fn compares_outputs(&self) -> bool {
        self.sampling.is_greedy()
    }
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
