//! Sampling, verification and decoding strategies over the models of `pipespec-model`.

pub mod error;
pub mod generate;
pub mod sampling;

pub use error::{DecodeError, Result};
pub use generate::{generate_autoregressive, FinishReason, GenerationConfig, GenerationOutput};
pub use sampling::{Sampler, SamplingParams};
