//! Resolving model paths, loading a model with its tokenizer and a chain's levels, building prompts.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use pipespec_decode::chain::{self, ChainBuilder, Cores, LevelKind, LevelSpec};
use pipespec_model::chat::{ChatMessage, ChatTemplate};
use pipespec_model::tokenizer::Tokenizer;
use pipespec_model::Model;

use crate::adapters;
use crate::cli::LoraArgs;
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
    if threads == Some(0) {
        bail!("--threads must be at least 1");
    }
    chain::thread_pool(threads).context("creating the compute thread pool")
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

impl ChainEntry {
    pub fn kind(&self) -> LevelKind {
        match self {
            ChainEntry::Ngram => LevelKind::Ngram,
            ChainEntry::Model(_) => LevelKind::Model,
        }
    }
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

/// A chain ready to be built (as often as needed), with the target's model and tokenizer.
pub struct LoadedChain {
    pub builder: ChainBuilder,
    pub target: LoadedModel,
}

/// Loads every level of `entries` onto `cores`, with `lora`'s adapters: each model level gets a KV cache of
/// `capacity` positions (the target's context unless `ctx_size` is given); every model must
/// share the target's tokenizer. A file named twice is mapped once and its weights shared.
pub fn load_chain(
    entries: &[ChainEntry],
    ngram: (usize, usize),
    ctx_size: Option<usize>,
    cores: Cores,
    lora: &LoraArgs,
) -> Result<LoadedChain> {
    let (specs, target) = load_specs(entries, ngram)?;
    let specs = adapters::apply(specs, lora)?;
    let capacity = context_size(&target.model, ctx_size)?;
    let builder = ChainBuilder::new(specs, capacity, cores).context("building the chain")?;
    Ok(LoadedChain { builder, target })
}

/// `pipespec`'s cores for `entries`: one pool per model level (`threads`: one count per
/// model level, kept strictly, or one total to split; absent: every core, split); with a total
/// and two model levels or more, idle levels lend their cores (`ChainBuilder::fit` then lets
/// verifiers fill their windows so that drafters park).
pub fn pipespec_cores(entries: &[ChainEntry], threads: &[usize]) -> Result<Cores> {
    let kinds: Vec<LevelKind> = entries.iter().map(ChainEntry::kind).collect();
    if threads.contains(&0) {
        bail!("--threads must be at least 1 per level");
    }
    Cores::per_level(&kinds, threads).context("--threads")
}

/// The levels of `entries` as specs, each file loaded once, with the target.
pub fn load_specs(
    entries: &[ChainEntry],
    ngram: (usize, usize),
) -> Result<(Vec<LevelSpec>, LoadedModel)> {
    let target_path = match entries.last() {
        Some(ChainEntry::Model(path)) => path.clone(),
        _ => bail!("the last level of --chain must be a GGUF file (the target), not ngram"),
    };
    let target = load(&target_path)?;
    let mut specs = Vec::with_capacity(entries.len());
    for (index, entry) in entries.iter().enumerate() {
        specs.push(match entry {
            ChainEntry::Ngram => LevelSpec::Ngram {
                min: ngram.0,
                max: ngram.1,
            },
            ChainEntry::Model(path) => {
                let model = if index + 1 == entries.len() {
                    target.model.clone()
                } else {
                    let level = load(path)?;
                    check_same_tokenizer(&level.tokenizer, path, &target.tokenizer, &target_path)?;
                    level.model
                };
                LevelSpec::model(level_name(path), model)
            }
        });
    }
    Ok((specs, target))
}

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
