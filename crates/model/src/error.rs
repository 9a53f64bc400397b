//! The model crate's error type: every message names the operation, the file or tensor, and the values involved.

use std::path::PathBuf;

/// Errors from reading GGUF files, building models and tokenizers, and running forward passes.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("cannot open model file {path}: {reason}")]
    Open {
        path: PathBuf,
        reason: std::io::Error,
    },
    #[error("{path} is not a GGUF file (magic bytes {magic:?}, expected \"GGUF\")")]
    NotGguf { path: PathBuf, magic: Vec<u8> },
    #[error("{path}: unsupported GGUF version {version} (supported: 2 and 3)")]
    UnsupportedVersion { path: PathBuf, version: u32 },
    #[error("{path}: corrupt or truncated GGUF file at byte {offset}: {what}")]
    Corrupt {
        path: PathBuf,
        offset: usize,
        what: String,
    },
    #[error("{path}: metadata key `{key}` is missing")]
    MissingKey { path: PathBuf, key: String },
    #[error("{path}: metadata key `{key}` has type {found}, expected {expected}")]
    WrongType {
        path: PathBuf,
        key: String,
        found: &'static str,
        expected: &'static str,
    },
    #[error("{path}: tensor `{name}` is missing")]
    MissingTensor { path: PathBuf, name: String },
    #[error("{path}: tensor `{name}` has shape {found:?}, expected {expected:?}")]
    TensorShape {
        path: PathBuf,
        name: String,
        found: Vec<usize>,
        expected: Vec<usize>,
    },
    #[error("{path}: tensor `{name}` has unsupported type {dtype}")]
    UnsupportedTensorType {
        path: PathBuf,
        name: String,
        dtype: String,
    },
    #[error("{path}: unsupported architecture `{arch}` (supported: llama, qwen2)")]
    UnsupportedArchitecture { path: PathBuf, arch: String },
    #[error("{path}: invalid model configuration: {what}")]
    InvalidConfig { path: PathBuf, what: String },
    #[error("token id {id} is out of range for a vocabulary of {vocab_size} tokens")]
    UnknownToken { id: u32, vocab_size: usize },
    #[error("context overflow: {needed} positions needed but the KV cache holds {capacity} (--ctx-size)")]
    ContextOverflow { needed: usize, capacity: usize },
    #[error("forward pass at position {start}, but the KV cache holds only {held} positions: positions must follow what is held")]
    PositionGap { start: usize, held: usize },
    #[error("forward pass called with no tokens")]
    EmptyInput,
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("chat template: {0}")]
    ChatTemplate(String),
    #[error("LoRA adapter {path}: {what}")]
    Adapter { path: PathBuf, what: String },
    #[error("kernel: {0}")]
    Kernel(String),
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, ModelError>;
