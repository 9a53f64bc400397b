//! Sampling, verification and decoding strategies over the models of `pipespec-model`.

pub mod analytic;
pub mod batch;
pub mod chain;
pub mod error;
pub mod generate;
pub mod level;
pub mod metrics;
mod model_level;
pub mod ngram;
pub mod sampling;
pub mod speculation;
pub mod strategy;
pub mod verify;

pub use batch::{BatchConfig, BatchEngine, StepReport};
pub use chain::{ChainBuilder, Cores, LevelKind, LevelSpec};
pub use error::{DecodeError, Result};
pub use generate::{generate_autoregressive, FinishReason, GenerationConfig, GenerationOutput};
pub use level::{CachedSequence, Drafts, Level, ModelLevel};
pub use metrics::{LevelMetrics, LevelReport};
pub use ngram::NgramLevel;
pub use sampling::{Sampler, SamplingParams};
pub use speculation::{
    default_run_ahead, DelayHook, SpeculationConfig, WindowHook, DEFAULT_RUN_AHEAD, DEFAULT_WINDOW,
};
pub use strategy::{Strategy, StrategyOutput};
pub use verify::{verify_greedy, verify_sampling, Verdict};
