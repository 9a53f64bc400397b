//! The types above the queue: a validated generation (`Job`), what a worker reports about it (`Event`) and its outcome (`Summary`); routes send them, the scheduler queues them, workers run them.

use std::sync::Arc;
use std::time::Instant;

use pipespec_decode::{GenerationConfig, LevelReport, SpeculationConfig, Strategy};
use pipespec_model::LoraStack;
use tokio::sync::mpsc;

use crate::errors::ApiError;

/// One validated generation, ready for a slot.
pub struct Job {
    pub prompt: Vec<u32>,
    pub config: GenerationConfig,
    pub strategy: Strategy,
    /// Whether the batching policy may pick the strategy and window (see `validate::Params`).
    pub policy_may_choose: bool,
    pub speculation: SpeculationConfig,
    pub stop: Vec<String>,
    /// When the request arrived: latencies are measured from here.
    pub arrived: Instant,
    /// Where the worker sends text and the outcome; closed when the client went away.
    pub events: mpsc::UnboundedSender<Event>,
    /// The adapters of the `--lora-modules` entry the request named, in place of the
    /// target's own (None: the chain as loaded).
    pub adapter: Option<Arc<LoraStack>>,
}

/// What a worker reports about a job.
#[derive(Debug)]
pub enum Event {
    /// Newly released text (never empty).
    Text(String),
    Done(Summary),
    Failed(ApiError),
}

/// A finished generation.
#[derive(Debug, Clone)]
pub struct Summary {
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    pub finish_reason: &'static str,
    pub strategy: Strategy,
    pub window: usize,
    pub levels: Vec<LevelReport>,
    pub queue_s: f64,
    pub ttft_s: f64,
    pub wall_s: f64,
}
