//! The decode crate's error type.

use pipespec_model::ModelError;

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("invalid {name}: expected {bounds}, got {value}")]
    InvalidParameter {
        name: &'static str,
        bounds: &'static str,
        value: String,
    },
    #[error("the prompt is empty: there is nothing to condition on")]
    EmptyPrompt,
    #[error("the prompt has {prompt} tokens but the context holds {capacity}: shorten it or raise --ctx-size")]
    PromptTooLong { prompt: usize, capacity: usize },
    #[error("creating a compute pool of {threads} threads: {reason}")]
    ThreadPool { threads: usize, reason: String },
    #[error("batched decoding: {0}")]
    Batch(String),
    #[error(transparent)]
    Model(#[from] ModelError),
}

pub type Result<T> = std::result::Result<T, DecodeError>;
