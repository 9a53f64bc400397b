//! The real engine the bench drives: one loaded chain per strategy (lookup with an ngram level in front, pipespec with a compute pool per level), the target's chat template.

use anyhow::{bail, Context, Result};
use pipespec_decode::{
    Cores, GenerationConfig, Level, LevelKind, SpeculationConfig, Strategy, StrategyOutput,
};
use pipespec_model::chat::ChatMessage;

use super::harness::Engine;
use super::settings::BenchSettings;
use crate::loading::{self, ChainEntry, LoadedModel};

/// A strategy with the chain it runs on.
pub struct StrategyChain {
    pub strategy: Strategy,
    pub levels: Vec<Box<dyn Level>>,
    /// Indices of `levels` the strategy uses, smallest first.
    pub used: Vec<usize>,
    /// Compute threads of each used level (0 for the n-gram level, which computes nothing).
    pub threads: Vec<usize>,
    pub speculation: SpeculationConfig,
}

impl StrategyChain {
    /// Names of the used levels, smallest first.
    pub fn level_names(&self) -> Vec<String> {
        self.used
            .iter()
            .map(|&i| self.levels[i].name().to_string())
            .collect()
    }
}

pub struct ChainEngine {
    target: LoadedModel,
    pub chains: Vec<StrategyChain>,
    strategies: Vec<Strategy>,
    pub config: GenerationConfig,
}

impl ChainEngine {
    /// Loads a chain for every strategy asked for, or for every strategy the chain can run.
    pub fn load(settings: &BenchSettings) -> Result<ChainEngine> {
        let explicit = settings.strategies.is_some();
        let candidates = settings
            .strategies
            .clone()
            .unwrap_or_else(|| Strategy::ALL.to_vec());
        let total = (!settings.threads.is_empty()).then(|| settings.threads.iter().sum());
        let shared_pool = loading::thread_pool(total)?;
        let mut chains = Vec::new();
        let mut target = None;
        for strategy in candidates {
            let mut entries = settings.chain.clone();
            if strategy == Strategy::Lookup && !entries.contains(&ChainEntry::Ngram) {
                entries.insert(0, ChainEntry::Ngram);
            }
            let mut speculation = settings.speculation(strategy);
            // pipespec runs its levels at once, each on its own pool; the others share one.
            let cores = if strategy == Strategy::Pipespec {
                loading::pipespec_cores(&entries, &settings.threads)?
            } else {
                Cores::Shared(shared_pool.clone())
            };
            let chain = loading::load_chain(
                &entries,
                settings.ngram,
                settings.ctx_size,
                cores,
                &settings.lora,
            )?;
            chain.builder.fit(&mut speculation, settings.run_ahead);
            let level_threads = chain.builder.level_threads();
            let used = match runnable_levels(strategy, &chain.builder.kinds()) {
                Ok(used) => used,
                Err(error) if explicit => {
                    return Err(error.context(format!("--strategies {strategy} with this --chain")))
                }
                Err(error) => {
                    eprintln!("pipespec: skipping {strategy}: {error:#}");
                    continue;
                }
            };
            let threads = used
                .iter()
                .map(|&i| match entries[i] {
                    ChainEntry::Ngram => 0,
                    ChainEntry::Model(_) => level_threads[i],
                })
                .collect();
            let levels = chain.builder.build()?;
            target.get_or_insert(chain.target);
            chains.push(StrategyChain {
                strategy,
                levels,
                used,
                threads,
                speculation,
            });
        }
        let Some(target) = target else {
            bail!("no strategy can run on this chain");
        };
        let config = GenerationConfig {
            max_tokens: settings.max_new_tokens,
            sampling: settings.sampling,
            seed: settings.seed,
            stop_ids: target.tokenizer.end_of_generation_ids().to_vec(),
            ignore_eos: settings.ignore_eos,
        };
        Ok(ChainEngine {
            strategies: chains.iter().map(|c| c.strategy).collect(),
            target,
            chains,
            config,
        })
    }

    /// Runs every strategy once on `prompt` for a few tokens (page cache, allocator, thread
    /// start-up), outside the measurements.
    pub fn warm_up(&mut self, prompt: &[u32]) {
        const WARM_UP_TOKENS: usize = 8;
        let config = GenerationConfig {
            max_tokens: self.config.max_tokens.min(WARM_UP_TOKENS),
            ..self.config.clone()
        };
        for chain in &mut self.chains {
            let result = chain.strategy.generate(
                &mut chain.levels,
                prompt,
                &config,
                &chain.speculation,
                &mut |_| true,
            );
            if let Err(error) = result {
                eprintln!("pipespec: warm-up of {} failed: {error:#}", chain.strategy);
            }
        }
    }
}

/// The levels `strategy` uses on a chain of `kinds`; the multi-level strategies need two at least.
fn runnable_levels(strategy: Strategy, kinds: &[LevelKind]) -> Result<Vec<usize>> {
    let used = strategy.levels(kinds)?;
    if strategy != Strategy::Ar && used.len() < 2 {
        bail!("{strategy} needs a draft level and a target: give --chain DRAFT.gguf,TARGET.gguf");
    }
    Ok(used)
}

impl Engine for ChainEngine {
    fn strategies(&self) -> &[Strategy] {
        &self.strategies
    }

    fn prompt_tokens(&self, conversation: &[ChatMessage]) -> Result<Vec<u32>> {
        loading::conversation_tokens(&self.target, conversation)
    }

    fn decode(&self, tokens: &[u32]) -> Result<String> {
        self.target
            .tokenizer
            .decode(tokens, false)
            .context("decoding ar's reply")
    }

    fn generate(&mut self, strategy: usize, prompt: &[u32]) -> Result<StrategyOutput> {
        let chain = &mut self.chains[strategy];
        Ok(chain.strategy.generate(
            &mut chain.levels,
            prompt,
            &self.config,
            &chain.speculation,
            &mut |_| true,
        )?)
    }
}
