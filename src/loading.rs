//! Resolving model paths, loading a model with its tokenizer, building thread pools and prompts.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use pipespec_model::chat::{ChatMessage, ChatTemplate};
use pipespec_model::tokenizer::Tokenizer;
use pipespec_model::Model;

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

/// The prompt's token ids: raw text tokenized as is, or wrapped in the model's chat template.
pub fn prompt_tokens(loaded: &LoadedModel, prompt: &str, raw: bool) -> Result<Vec<u32>> {
    if prompt.trim().is_empty() {
        bail!("the prompt is empty: give a prompt as an argument or on stdin");
    }
    let tokenizer = &loaded.tokenizer;
    if raw {
        return Ok(tokenizer.encode(prompt, true)?);
    }
    let source = loaded
        .model
        .file()
        .get_str("tokenizer.chat_template")
        .context("the model has no chat template (tokenizer.chat_template); use --raw to send the prompt as is")?;
    let template = ChatTemplate::new(source, tokenizer.bos_token_text(), tokenizer.eos_token_text())?;
    let text = template.apply(&[ChatMessage::new("user", prompt)], true)?;
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
