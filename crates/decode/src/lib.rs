//! Sampling, verification and decoding strategies over the models of `pipespec-model`.

pub mod analytic;
pub mod error;
pub mod generate;
pub mod level;
pub mod metrics;
pub mod ngram;
pub mod pipeline;
pub mod sampling;
pub mod strategy;
pub mod verify;

pub use error::{DecodeError, Result};
pub use generate::{generate_autoregressive, FinishReason, GenerationConfig, GenerationOutput};
pub use level::{Drafts, Level, ModelLevel};
pub use metrics::{LevelMetrics, LevelReport};
pub use ngram::NgramLevel;
pub use sampling::{Sampler, SamplingParams};
pub use strategy::{
    default_run_ahead, DelayHook, SpeculationConfig, Strategy, StrategyOutput, DEFAULT_RUN_AHEAD,
    DEFAULT_WINDOW,
};
pub use verify::{verify_greedy, verify_sampling, Verdict};
