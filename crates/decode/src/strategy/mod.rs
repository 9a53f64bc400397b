//! Decoding strategies over a chain of levels (smallest first, target last), and what they report.

pub mod ar;
pub(crate) mod chain;
pub(crate) mod commit;
pub mod lookup;
pub mod pipespec;
pub mod sd;
pub mod staged;

use std::fmt;
use std::str::FromStr;

use crate::chain::LevelKind;
use crate::error::{DecodeError, Result};
use crate::generate::{GenerationConfig, GenerationOutput};
use crate::level::Level;
use crate::metrics::LevelReport;
use crate::speculation::{SpeculationConfig, DEFAULT_LOOKUP_WINDOW, DEFAULT_WINDOW};
use chain::{empty_chain, select};

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

    /// Indices of the chain levels this strategy uses, smallest first, from the kinds of the
    /// chain's levels (`ChainBuilder::kinds`, or `LevelKind::of` on live levels).
    pub fn levels(self, kinds: &[LevelKind]) -> Result<Vec<usize>> {
        match self {
            Strategy::Ar => match kinds.last() {
                Some(LevelKind::Model) => Ok(vec![kinds.len() - 1]),
                Some(LevelKind::Ngram) => Err(chain::not_a_verifier("ngram")),
                None => Err(empty_chain()),
            },
            Strategy::Sd => sd::levels(kinds),
            Strategy::Staged | Strategy::Pipespec => {
                if kinds.is_empty() {
                    return Err(empty_chain());
                }
                Ok((0..kinds.len()).collect())
            }
            Strategy::Lookup => lookup::levels(kinds),
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
                let indices = self.levels(&LevelKind::of_chain(chain))?;
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
            Strategy::Pipespec => pipespec::generate(chain, prompt, config, speculation, on_token),
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
