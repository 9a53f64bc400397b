//! The batch engine's and the KV budget's metrics: bytes of KV cache the running requests hold
//! and may hold, and per batched pass the sequences, rows and time.

use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use pipespec_decode::StepReport;

use super::{CountGauge, BUCKETS};

/// Upper bounds of the sequences-per-pass buckets.
const SEQUENCE_BUCKETS: [f64; 9] = [1.0, 2.0, 4.0, 8.0, 12.0, 16.0, 24.0, 32.0, 64.0];

/// Upper bounds of the rows-per-pass buckets.
const ROW_BUCKETS: [f64; 11] = [
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];

#[derive(Debug)]
pub struct BatchMetrics {
    /// KV cache bytes all running requests may hold together (`--kv-tokens`, every level).
    pub kv_budget_bytes: CountGauge,
    /// KV cache bytes reserved by the running requests (every level, at their full size).
    pub kv_reserved_bytes: CountGauge,
    step_sequences: Histogram,
    step_rows: Histogram,
    step_seconds: Histogram,
}

impl Default for BatchMetrics {
    fn default() -> Self {
        BatchMetrics {
            kv_budget_bytes: CountGauge::default(),
            kv_reserved_bytes: CountGauge::default(),
            step_sequences: Histogram::new(SEQUENCE_BUCKETS),
            step_rows: Histogram::new(ROW_BUCKETS),
            step_seconds: Histogram::new(BUCKETS),
        }
    }
}

impl BatchMetrics {
    /// Records one batched pass of the engine.
    pub fn record_step(&self, step: &StepReport) {
        self.step_sequences.observe(step.sequences as f64);
        self.step_rows.observe(step.rows as f64);
        self.step_seconds.observe(step.seconds);
    }

    pub(super) fn register(&self, registry: &mut Registry) {
        registry.register(
            "pipespec_kv_cache_budget_bytes",
            "KV cache bytes all running requests may hold together (every level)",
            self.kv_budget_bytes.clone(),
        );
        registry.register(
            "pipespec_kv_cache_reserved_bytes",
            "KV cache bytes held by the running requests (every level)",
            self.kv_reserved_bytes.clone(),
        );
        registry.register(
            "pipespec_batch_sequences",
            "Sequences in one batched forward pass of one model",
            self.step_sequences.clone(),
        );
        registry.register(
            "pipespec_batch_tokens",
            "Tokens (rows) fed by one batched forward pass of one model",
            self.step_rows.clone(),
        );
        registry.register(
            "pipespec_batch_pass_seconds",
            "Time of one batched forward pass of one model",
            self.step_seconds.clone(),
        );
    }
}
