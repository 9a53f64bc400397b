//! The errors of fine-tuning, each naming what was wrong and where.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum TuneError {
    #[error(transparent)]
    Model(#[from] pipespec_model::ModelError),
    #[error(transparent)]
    Decode(#[from] pipespec_decode::DecodeError),
    #[error("tensor arithmetic failed: {0}")]
    Candle(#[from] candle_core::Error),
    #[error("{path}:{line}: {what}")]
    Data {
        path: PathBuf,
        line: usize,
        what: String,
    },
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
    /// Training stopped after `steps` steps; `partial` is the adapter as trained so far.
    #[error("stopped after step {steps}: {cause}")]
    Interrupted {
        steps: usize,
        partial: Box<pipespec_model::lora::LoraAdapter>,
        cause: Box<TuneError>,
    },
}

pub type Result<T> = std::result::Result<T, TuneError>;

/// A `TuneError::Invalid` from anything printable.
pub fn invalid(what: impl Into<String>) -> TuneError {
    TuneError::Invalid(what.into())
}
