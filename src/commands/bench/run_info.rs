//! Where and how a bench ran: the settings and the machine, as results.json and the report state them.

use serde::Serialize;

use super::settings::BenchSettings;
use crate::loading::ChainEntry;

/// results.json's `run` object, key for field.
#[derive(Debug, Clone, Serialize)]
pub struct RunInfo {
    pub suite: String,
    pub categories: Vec<String>,
    pub limit: Option<usize>,
    pub all_turns: bool,
    /// Prompts selected, and the turns they made.
    pub prompts: usize,
    pub turns: usize,
    pub chain: Vec<String>,
    pub max_new_tokens: usize,
    pub temperature: f32,
    pub seed: u64,
    pub ignore_eos: bool,
    pub ctx_size: Option<usize>,
    pub threads: Vec<usize>,
    pub window: Option<usize>,
    /// None: pipespec's default for the chain.
    pub run_ahead: Option<usize>,
    pub outputs_compared: bool,
    pub cores: usize,
    pub os: &'static str,
    pub arch: &'static str,
    #[serde(rename = "pipespec_version")]
    pub version: &'static str,
    /// The whole bench, loading and calibration included.
    pub elapsed_s: f64,
}

impl RunInfo {
    pub fn new(settings: &BenchSettings, prompts: usize, turns: usize) -> RunInfo {
        RunInfo {
            suite: settings.suite.label(),
            categories: settings.categories.clone(),
            limit: settings.limit,
            all_turns: settings.all_turns,
            prompts,
            turns,
            chain: settings
                .chain
                .iter()
                .map(|entry| match entry {
                    ChainEntry::Ngram => "ngram".to_string(),
                    ChainEntry::Model(path) => path.display().to_string(),
                })
                .collect(),
            max_new_tokens: settings.max_new_tokens,
            temperature: settings.sampling.temperature,
            seed: settings.seed,
            ignore_eos: settings.ignore_eos,
            ctx_size: settings.ctx_size,
            threads: settings.threads.clone(),
            window: settings.window,
            run_ahead: settings.run_ahead,
            outputs_compared: settings.compares_outputs(),
            cores: available_cores(),
            os: std::env::consts::OS,
            arch: std::env::consts::ARCH,
            version: env!("CARGO_PKG_VERSION"),
            elapsed_s: 0.0,
        }
    }
}

pub fn available_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
