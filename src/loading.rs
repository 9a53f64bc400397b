//! Resolving model paths, loading a model with its tokenizer, building thread pools and prompts.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use pipespec_decode::{default_run_ahead, Level, ModelLevel, NgramLevel, SpeculationConfig};
use pipespec_model::chat::{ChatMessage, ChatTemplate};
use pipespec_model::tokenizer::Tokenizer;
use pipespec_model::{Model, Session};

use crate::fetch;

/// The given path, or the default model (fetched if missing).
pub fn resolve_model_path(model: Option<&Path>) -> Result<PathBuf> {
    match model {
        Some(path) => Ok(path.to_path_buf()),
        None => fetch::ensure_default_model(),
    }
}

/// A model and the tokenizer from the same file.
pub struct LoadedModel {
    pub model: Arc<Model>,
    pub tokenizer: Arc<Tokenizer>,
}

pub fn load(path: &Path) -> Result<LoadedModel> {
    let model = Model::load(path).with_context(|| format!("loading model {}", path.display()))?;
    let tokenizer = Tokenizer::from_gguf(model.file())
        .with_context(|| format!("loading the tokenizer of {}", path.display()))?;
    Ok(LoadedModel {
        model,
        tokenizer: Arc::new(tokenizer),
    })
}

/// A rayon pool of `threads` workers (all cores when None).
pub fn thread_pool(threads: Option<usize>) -> Result<Arc<rayon::ThreadPool>> {
    let count = match threads {
        Some(0) => bail!("--threads must be at least 1"),
        Some(n) => n,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(count)
        .thread_name(|i| format!("pipespec-compute-{i}"))
        .build()
        .context("creating the compute thread pool")?;
    Ok(Arc::new(pool))
}

/// One compute pool per level of `entries` for `pipespec`: each model level gets its own
/// budget (`threads`: one count per model level, or one total to split; absent: every core,
/// split); the n-gram level computes nothing and gets none (its slot reuses a 1-thread pool).
pub fn level_pools(
    entries: &[ChainEntry],
    threads: &[usize],
) -> Result<Vec<Arc<rayon::ThreadPool>>> {
    let models = entries
        .iter()
        .filter(|e| matches!(e, ChainEntry::Model(_)))
        .count();
    if threads.contains(&0) {
        bail!("--threads must be at least 1 per level");
    }
    let budgets: Vec<usize> = match threads {
        [] | [_] => {
            let total = match threads {
                [n] => *n,
                _ => std::thread::available_parallelism().map_or(1, |n| n.get()),
            };
            // Evenly, the remainder to the levels nearest the target (the costliest).
            (0..models)
                .map(|i| (total / models + usize::from(models - i <= total % models)).max(1))
                .collect()
        }
        list if list.len() == models => list.to_vec(),
        list => bail!(
            "--threads has {} entries but the chain has {models} model levels: give one count, or one per model level",
            list.len()
        ),
    };
    let mut budgets = budgets.into_iter();
    entries
        .iter()
        .map(|entry| match entry {
            ChainEntry::Ngram => thread_pool(Some(1)),
            ChainEntry::Model(_) => thread_pool(budgets.next()),
        })
        .collect()
}

/// The prompt's token ids: raw text tokenized as is, or wrapped in the model's chat template.
pub fn prompt_tokens(loaded: &LoadedModel, prompt: &str, raw: bool) -> Result<Vec<u32>> {
    if prompt.trim().is_empty() {
        bail!("the prompt is empty: give a prompt as an argument or on stdin");
    }
    if raw {
        return Ok(loaded.tokenizer.encode(prompt, true)?);
    }
    conversation_tokens(loaded, &[ChatMessage::new("user", prompt)])
}

/// The token ids of `messages` rendered by the model's chat template, ending with the header
/// that opens the assistant's reply.
pub fn conversation_tokens(loaded: &LoadedModel, messages: &[ChatMessage]) -> Result<Vec<u32>> {
    let tokenizer = &loaded.tokenizer;
    let source = loaded
        .model
        .file()
        .get_str("tokenizer.chat_template")
        .context("the model has no chat template (tokenizer.chat_template); use --raw to send the prompt as is")?;
    let template = ChatTemplate::new(
        source,
        tokenizer.bos_token_text(),
        tokenizer.eos_token_text(),
    )?;
    let text = template.apply(messages, true)?;
    // The template writes any BOS itself; special tokens in it are matched whole.
    Ok(tokenizer.encode(&text, false)?)
}

/// The KV cache size: the flag, or the smaller of the model's context and 4096.
pub fn context_size(model: &Model, flag: Option<usize>) -> Result<usize> {
    let trained = model.config.context_length;
    match flag {
        Some(0) => bail!("--ctx-size must be at least 1"),
        Some(n) => Ok(n),
        None => Ok(trained.min(4096)),
    }
}

/// One entry of `--chain`.
#[derive(Debug, Clone, PartialEq)]
pub enum ChainEntry {
    Ngram,
    Model(PathBuf),
}

/// The chain's entries: `--chain` when given (its last entry must be a model, the target), else
/// the target alone from `--model` or the default model.
pub fn chain_entries(chain: &[String], model: Option<&Path>) -> Result<Vec<ChainEntry>> {
    if chain.is_empty() {
        return Ok(vec![ChainEntry::Model(resolve_model_path(model)?)]);
    }
    let entries: Vec<ChainEntry> = chain
        .iter()
        .map(|entry| match entry.trim() {
            "ngram" => Ok(ChainEntry::Ngram),
            "" => bail!("--chain has an empty entry: write levels as A.gguf,ngram,B.gguf"),
            path => Ok(ChainEntry::Model(PathBuf::from(path))),
        })
        .collect::<Result<_>>()?;
    if !matches!(entries.last(), Some(ChainEntry::Model(_))) {
        bail!("the last level of --chain must be a GGUF file (the target), not ngram");
    }
    Ok(entries)
}

/// The levels of a chain, smallest first, with the target's model and tokenizer.
pub struct LoadedChain {
    pub levels: Vec<Box<dyn Level>>,
    pub target: LoadedModel,
}

/// Loads every level of `entries`: each model level gets its own session (KV cache) of
/// `capacity` positions (the target's context unless `ctx_size` is given); every model must
/// share the target's tokenizer. A file named twice is mapped once and its weights shared.
/// With one compute pool per level: `pools[i]` for `entries[i]`.
pub fn load_chain_with_pools(
    entries: &[ChainEntry],
    ngram: (usize, usize),
    ctx_size: Option<usize>,
    pools: &[Arc<rayon::ThreadPool>],
) -> Result<LoadedChain> {
    load_chain_lending(entries, ngram, ctx_size, pools, None)
}

/// `pipespec`'s chain: one pool per level (`level_pools`). With one thread count for the whole
/// chain (or none) and two model levels or more, the cores are lent: each model level runs on a
/// pool of every level's threads whenever the other model levels are all parked, and the caller
/// should let verifiers wait for full windows (`SpeculationConfig::fill_window`) so that they
/// do park. Counts given per level are kept strictly.
pub fn load_pipespec_chain(
    entries: &[ChainEntry],
    ngram: (usize, usize),
    ctx_size: Option<usize>,
    threads: &[usize],
) -> Result<PipespecChain> {
    let pools = level_pools(entries, threads)?;
    let models = entries
        .iter()
        .filter(|e| matches!(e, ChainEntry::Model(_)))
        .count();
    let total: usize = (0..entries.len())
        .filter(|&i| matches!(entries[i], ChainEntry::Model(_)))
        .map(|i| pools[i].current_num_threads())
        .sum();
    let wide = if threads.len() <= 1 && models > 1 {
        Some(thread_pool(Some(total))?)
    } else {
        None
    };
    let lends_cores = wide.is_some();
    let chain = load_chain_lending(entries, ngram, ctx_size, &pools, wide)?;
    Ok(PipespecChain {
        chain,
        level_threads: pools.iter().map(|p| p.current_num_threads()).collect(),
        lends_cores,
    })
}

/// A chain loaded for `pipespec`.
pub struct PipespecChain {
    pub chain: LoadedChain,
    /// Each level's own threads (the n-gram level's slot holds 1 but computes nothing).
    pub level_threads: Vec<usize>,
    /// Whether idle levels lend their cores (then verifiers should fill their windows).
    pub lends_cores: bool,
}

impl PipespecChain {
    /// Fits `speculation` to how this chain shares cores: verifiers fill their windows when
    /// cores are lent, and the run-ahead is the user's (`run_ahead`) or the default for it.
    pub fn fit(&self, speculation: &mut SpeculationConfig, run_ahead: Option<usize>) {
        speculation.fill_window = self.lends_cores;
        speculation.run_ahead =
            run_ahead.unwrap_or_else(|| default_run_ahead(speculation.window, self.lends_cores));
    }
}

/// `load_chain_with_pools`, with `wide`: a pool every model level may borrow.
fn load_chain_lending(
    entries: &[ChainEntry],
    ngram: (usize, usize),
    ctx_size: Option<usize>,
    pools: &[Arc<rayon::ThreadPool>],
    wide: Option<Arc<rayon::ThreadPool>>,
) -> Result<LoadedChain> {
    if pools.len() != entries.len() {
        bail!(
            "{} compute pools for {} levels: one per level",
            pools.len(),
            entries.len()
        );
    }
    let target_path = match entries.last() {
        Some(ChainEntry::Model(path)) => path.clone(),
        _ => bail!("the last level of a chain must be a model (the target)"),
    };
    let target = load(&target_path)?;
    let capacity = context_size(&target.model, ctx_size)?;
    let mut levels: Vec<Box<dyn Level>> = Vec::with_capacity(entries.len());
    for (index, entry) in entries.iter().enumerate() {
        match entry {
            ChainEntry::Ngram => {
                let level = NgramLevel::new(ngram.0, ngram.1).context("--ngram-min/--ngram-max")?;
                levels.push(Box::new(level));
            }
            ChainEntry::Model(path) => {
                let model = if index + 1 == entries.len() {
                    target.model.clone()
                } else {
                    let level = load(path)?;
                    check_same_tokenizer(&level.tokenizer, path, &target.tokenizer, &target_path)?;
                    level.model
                };
                let session = Session::new(model, capacity, pools[index].clone());
                let mut level = ModelLevel::new(level_name(path), session);
                if let Some(wide) = &wide {
                    level = level.with_borrowable_pool(wide.clone());
                }
                levels.push(Box::new(level));
            }
        }
    }
    Ok(LoadedChain { levels, target })
}

/// A level's label: its file name.
/// A level's display name: its file name.
pub fn level_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |name| name.to_string_lossy().into_owned(),
    )
}

/// Drafts are checked token id by token id, so every level must read ids the same way.
pub fn check_same_tokenizer(
    tokenizer: &Tokenizer,
    path: &Path,
    target: &Tokenizer,
    target_path: &Path,
) -> Result<()> {
    let (ours, theirs) = (tokenizer.tokens(), target.tokens());
    if ours == theirs {
        return Ok(());
    }
    let detail = match ours.iter().zip(theirs).position(|(a, b)| a != b) {
        Some(id) => format!(
            "token {id} is {:?} in one and {:?} in the other",
            ours[id], theirs[id]
        ),
        None => format!("{} tokens vs {}", ours.len(), theirs.len()),
    };
    bail!(
        "{} and {} have different tokenizers ({detail}): every level of a chain must share the target's tokenizer",
        path.display(),
        target_path.display()
    )
}
