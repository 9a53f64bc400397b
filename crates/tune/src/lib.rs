//! LoRA fine-tuning of llama-family GGUF models (`pipespec tune`): the frozen base dequantized
//! once, a differentiable forward pass on candle's autograd with trainable A/B pairs beside the
//! frozen matrices, AdamW with warm-up and decay, evaluation, and the adapter written in
//! llama.cpp's GGUF format.

pub mod base;
pub mod counters;
pub mod data;
pub mod error;
pub mod evaluate;
pub mod kill_revive;
pub mod modules;
pub mod net;
pub mod ops;
pub mod optim;
pub mod params;
pub mod report;
pub mod step;
pub mod tasks;
pub mod train;

pub use error::{Result, TuneError};
pub use train::{tune, TuneEvent, TuneInputs, TuneOptions};
