//! Decoding strategies over a chain of levels (smallest first, target last), and what they report.

pub mod ar;
pub(crate) mod commit;
pub mod lookup;
pub mod sd;
pub mod staged;

use std::fmt;
use std::str::FromStr;

use crate::error::{DecodeError, Result};
use crate::generate::{token_budget, GenerationConfig, GenerationOutput};
use crate::level::Level;
use crate::metrics::LevelReport;
use crate::sampling::Sampler;
use crate::verify::{verify_sampling, Verdict};

/// Draft tokens per verification. Measured on SmolLM2-135M (2 threads): `sd` with its Q4_1 copy
/// drafting for the f32 file accepts ~90% and gains most at 6-8 (1.3-1.6x ar, vs 1.25x at 2-3);
/// `lookup` on the Q4_1 file is flat between 2 and 6. 6 keeps the bonus of long accepted runs
/// without paying for many rejected rows when acceptance is low.
pub const DEFAULT_WINDOW: usize = 6;

/// `lookup`'s window: n-gram drafts are accepted ~30-45% of the time, and on long prompts each
/// extra verified row costs attention over the whole context. Measured on 6 Spec-Bench
/// summarization and RAG prompts with the f32 target (2 threads): windows 2-3 gave 1.23-1.25x
/// ar, 4-6 gave 1.18-1.21x, 10 gave 1.08x.
pub const DEFAULT_LOOKUP_WINDOW: usize = 3;

/// The largest window accepted: drafts keep one vocabulary row each when sampling.
pub const MAX_WINDOW: usize = 64;

/// How far (in tokens) a `pipespec` level may run ahead of the next level by default: a few
/// windows, so a fast drafter keeps a block ready while the target verifies the last one.
pub const DEFAULT_RUN_AHEAD: usize = 16;

/// `pipespec`'s run-ahead when none is given. When its levels lend each other their cores they
/// share one memory bandwidth, and a drafter that runs past the window it will be checked on
/// only slows the verification it waits for (measured on 2 cores: 0.89x `staged` at 16 against
/// 0.96x at the window), so the bound is the window; otherwise `DEFAULT_RUN_AHEAD`.
pub fn default_run_ahead(window: usize, lends_cores: bool) -> usize {
    if lends_cores {
        window
    } else {
        DEFAULT_RUN_AHEAD
    }
}

/// The largest run-ahead accepted.
pub const MAX_RUN_AHEAD: usize = 1024;

/// A test hook of `pipespec`: the pause a level takes before its `step`-th forward pass, to
/// exercise many interleavings.
pub type DelayHook = fn(level: usize, step: usize) -> std::time::Duration;

/// A speculative-sampling verifier; tests swap in a wrong one to prove their power.
pub type SamplingVerifier =
    fn(&[u32], Option<&[f32]>, &[f32], usize, &mut Sampler, &mut Vec<f32>) -> Verdict;

/// How speculation runs.
#[derive(Debug, Clone, Copy)]
pub struct SpeculationConfig {
    /// Tokens each level drafts past the committed output per round.
    pub window: usize,
    pub sampling_verifier: SamplingVerifier,
    /// `pipespec`: the most tokens a level may be ahead of the next level.
    pub run_ahead: usize,
    /// `pipespec`: a verifier waits until the level above has drafted a full window (or
    /// parked) instead of verifying whatever is there.
    pub fill_window: bool,
    /// `pipespec`, tests only: a pause before each forward pass of each level.
    pub delay: Option<DelayHook>,
}

impl Default for SpeculationConfig {
    fn default() -> Self {
        SpeculationConfig {
            window: DEFAULT_WINDOW,
            sampling_verifier: verify_sampling,
            run_ahead: DEFAULT_RUN_AHEAD,
            fill_window: false,
            delay: None,
        }
    }
}

impl SpeculationConfig {
    pub fn with_window(window: usize) -> Self {
        SpeculationConfig {
            window,
            ..Default::default()
        }
    }

    pub fn validate(&self) -> Result<()> {
        if self.window == 0 || self.window > MAX_WINDOW {
            return Err(DecodeError::InvalidParameter {
                name: "window",
                bounds: "1..=64",
                value: self.window.to_string(),
            });
        }
        if self.run_ahead == 0 || self.run_ahead > MAX_RUN_AHEAD {
            return Err(DecodeError::InvalidParameter {
                name: "run_ahead",
                bounds: "1..=1024",
                value: self.run_ahead.to_string(),
            });
        }
        Ok(())
    }
}

/// A run's output with the counters of every level it used, smallest first.
#[derive(Debug, Clone)]
pub struct StrategyOutput {
    pub generation: GenerationOutput,
    pub levels: Vec<LevelReport>,
}

/// The strategies a chain can run with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// The target alone.
    Ar,
    /// The last two model levels.
    Sd,
    /// Every level, synchronously.
    Staged,
    /// The n-gram drafter and the target.
    Lookup,
    /// Every level, asynchronously: one thread per level.
    Pipespec,
}

impl Strategy {
    /// The window used when none is given: the best measured for this strategy.
    pub fn default_window(self) -> usize {
        match self {
            Strategy::Lookup => DEFAULT_LOOKUP_WINDOW,
            _ => DEFAULT_WINDOW,
        }
    }

    pub const ALL: [Strategy; 5] = [
        Strategy::Ar,
        Strategy::Sd,
        Strategy::Staged,
        Strategy::Lookup,
        Strategy::Pipespec,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Ar => "ar",
            Strategy::Sd => "sd",
            Strategy::Staged => "staged",
            Strategy::Lookup => "lookup",
            Strategy::Pipespec => "pipespec",
        }
    }

    /// Indices of the chain levels this strategy uses, smallest first.
    pub fn levels(self, chain: &[Box<dyn Level>]) -> Result<Vec<usize>> {
        match self {
            Strategy::Ar => match chain.last() {
                Some(target) => check_verifier(&**target).map(|_| vec![chain.len() - 1]),
                None => Err(empty_chain()),
            },
            Strategy::Sd => sd::levels(chain),
            Strategy::Staged | Strategy::Pipespec => {
                if chain.is_empty() {
                    return Err(empty_chain());
                }
                Ok((0..chain.len()).collect())
            }
            Strategy::Lookup => lookup::levels(chain),
        }
    }

    /// Generates from `prompt` with the levels of `chain` this strategy uses. `on_token` sees
    /// each token as it is committed and returns false to cancel.
    pub fn generate(
        self,
        chain: &mut [Box<dyn Level>],
        prompt: &[u32],
        config: &GenerationConfig,
        speculation: &SpeculationConfig,
        on_token: &mut dyn FnMut(u32) -> bool,
    ) -> Result<StrategyOutput> {
        match self {
            Strategy::Ar => {
                let target = chain.last_mut().ok_or_else(empty_chain)?;
                ar::generate(target.as_mut(), prompt, config, on_token)
            }
            // The two-level strategies are the staged core over the levels they use.
            Strategy::Sd | Strategy::Lookup => {
                let indices = self.levels(chain)?;
                staged::generate(
                    &mut select(chain, &indices),
                    prompt,
                    config,
                    speculation,
                    on_token,
                )
            }
            Strategy::Staged => {
                let all: Vec<usize> = (0..chain.len()).collect();
                staged::generate(
                    &mut select(chain, &all),
                    prompt,
                    config,
                    speculation,
                    on_token,
                )
            }
            Strategy::Pipespec => {
                crate::pipeline::generate(chain, prompt, config, speculation, on_token)
            }
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Strategy {
    type Err = DecodeError;

    fn from_str(name: &str) -> Result<Strategy> {
        Strategy::ALL
            .into_iter()
            .find(|s| s.as_str() == name)
            .ok_or_else(|| DecodeError::InvalidParameter {
                name: "strategy",
                bounds: "one of ar, sd, staged, lookup, pipespec",
                value: name.into(),
            })
    }
}

fn empty_chain() -> DecodeError {
    DecodeError::InvalidParameter {
        name: "chain",
        bounds: "at least one level",
        value: "none".into(),
    }
}

/// Fails unless `level` can verify (score tokens).
pub(crate) fn check_verifier(level: &dyn Level) -> Result<()> {
    if level.can_verify() {
        Ok(())
    } else {
        Err(not_a_verifier(level.name()))
    }
}

fn not_a_verifier(name: &str) -> DecodeError {
    DecodeError::InvalidParameter {
        name: "chain",
        bounds: "a model at every level above the first (ngram can only draft)",
        value: name.into(),
    }
}

/// The levels of `chain` at `indices` (ascending), as the slice the staged core takes.
pub(crate) fn select<'a>(
    chain: &'a mut [Box<dyn Level>],
    indices: &[usize],
) -> Vec<&'a mut dyn Level> {
    chain
        .iter_mut()
        .enumerate()
        .filter(|(i, _)| indices.contains(i))
        .map(|(_, level)| level.as_mut() as &mut dyn Level)
        .collect()
}

pub(crate) fn report(level: &dyn Level) -> LevelReport {
    LevelReport {
        name: level.name().into(),
        metrics: level.metrics().clone(),
    }
}

/// What every multi-level strategy checks and sets up before its first pass: the parameters,
/// a chain whose levels above the first can verify and share one vocabulary, the token budget
/// the smallest cache allows, and fresh metrics. Returns (vocabulary size, token budget).
pub(crate) fn prepare_chain<L, D>(
    levels: &mut [L],
    prompt: &[u32],
    config: &GenerationConfig,
    speculation: &SpeculationConfig,
) -> Result<(usize, usize)>
where
    L: std::ops::DerefMut<Target = D>,
    D: Level + ?Sized,
{
    config.sampling.validate()?;
    speculation.validate()?;
    if levels.len() < 2 {
        return Err(DecodeError::InvalidParameter {
            name: "chain",
            bounds: "at least two levels (drafter(s), then the target)",
            value: format!("{} level(s)", levels.len()),
        });
    }
    for level in &levels[1..] {
        if !level.can_verify() {
            return Err(not_a_verifier(level.name()));
        }
    }
    let sizes: Vec<(&str, usize)> = levels
        .iter()
        .filter_map(|level| Some((level.name(), level.vocab_size()?)))
        .collect();
    let &(target_name, vocab) = sizes.last().ok_or(DecodeError::InvalidParameter {
        name: "chain",
        bounds: "a target with logits",
        value: "none".into(),
    })?;
    if let Some((name, size)) = sizes.iter().find(|(_, size)| *size != vocab) {
        return Err(DecodeError::InvalidParameter {
            name: "chain",
            bounds: "levels with the same vocabulary",
            value: format!("{name} has {size} tokens, {target_name} {vocab}"),
        });
    }
    let capacity = levels
        .iter()
        .filter_map(|l| l.capacity())
        .min()
        .unwrap_or(usize::MAX);
    let budget = token_budget(prompt, capacity, config.max_tokens)?;
    for level in levels.iter_mut() {
        *level.metrics_mut() = Default::default();
    }
    Ok((vocab, budget))
}
