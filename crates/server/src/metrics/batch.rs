//! The batch engine's and the KV budget's metrics: bytes of KV cache the running requests hold
//! and may hold, and per batched pass the sequences, rows and time.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use pipespec_decode::batch::policy::PolicyEstimate;
use pipespec_decode::StepReport;

use super::{CountGauge, BUCKETS};

/// Upper bounds of the sequences-per-pass buckets.
const SEQUENCE_BUCKETS: [f64; 9] = [1.0, 2.0, 4.0, 8.0, 12.0, 16.0, 24.0, 32.0, 64.0];

/// Upper bounds of the rows-per-pass buckets.
const ROW_BUCKETS: [f64; 11] = [
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];

/// `pipespec_policy_rounds_total`'s label: what the policy chose for a round.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RoundLabels {
    choice: &'static str,
}

#[derive(Debug)]
pub struct BatchMetrics {
    /// KV cache bytes all running requests may hold together (`--kv-tokens`, every level).
    pub kv_budget_bytes: CountGauge,
    /// KV cache bytes reserved by the running requests (every level, at their full size).
    pub kv_reserved_bytes: CountGauge,
    step_sequences: Histogram,
    step_rows: Histogram,
    step_seconds: Histogram,
    /// The policy's last estimates (tok/s of the batch): `ar`, and the default strategy.
    policy_autoregressive: Gauge<f64, AtomicU64>,
    policy_speculative: Gauge<f64, AtomicU64>,
    policy_rounds: Family<RoundLabels, Counter>,
    cache_reuses: Counter,
}

impl Default for BatchMetrics {
    fn default() -> Self {
        BatchMetrics {
            kv_budget_bytes: CountGauge::default(),
            kv_reserved_bytes: CountGauge::default(),
            step_sequences: Histogram::new(SEQUENCE_BUCKETS),
            step_rows: Histogram::new(ROW_BUCKETS),
            step_seconds: Histogram::new(BUCKETS),
            policy_autoregressive: Gauge::default(),
            policy_speculative: Gauge::default(),
            policy_rounds: Family::default(),
            cache_reuses: Counter::default(),
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

    /// A request admitted, the KV bytes now reserved, and whether it reuses an idle cache.
    pub fn record_admission(&self, reserved_bytes: usize, reused: bool) {
        self.kv_reserved_bytes.set(reserved_bytes as u64);
        if reused {
            self.cache_reuses.inc();
        }
    }

    /// The estimates behind the policy's last choice.
    pub fn record_policy(&self, estimate: &PolicyEstimate) {
        self.policy_autoregressive.set(estimate.autoregressive);
        self.policy_speculative.set(estimate.speculative);
    }

    /// A round the policy let speculate, or turned into a single target step.
    pub fn record_round(&self, speculate: bool) {
        let choice = if speculate { "speculate" } else { "ar" };
        self.policy_rounds
            .get_or_create(&RoundLabels { choice })
            .inc();
    }

    pub(super) fn register(&self, registry: &mut Registry) {
        registry.register(
            "pipespec_kv_cache_budget_bytes",
            "KV cache bytes all running requests may hold together (every level)",
            self.kv_budget_bytes.clone(),
        );
        registry.register(
            "pipespec_kv_cache_reserved_bytes",
            "KV cache bytes held by the running requests and the idle caches kept for prefix reuse (every level)",
            self.kv_reserved_bytes.clone(),
        );
        registry.register(
            "pipespec_kv_cache_reuses",
            "Requests that took an idle cache (feeding only what its prefix lacks)",
            self.cache_reuses.clone(),
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
        registry.register(
            "pipespec_policy_ar_tokens_per_second",
            "The batching policy's last estimate of the batch's tok/s with ar",
            self.policy_autoregressive.clone(),
        );
        registry.register(
            "pipespec_policy_speculative_tokens_per_second",
            "The batching policy's last estimate of the batch's tok/s with the default strategy",
            self.policy_speculative.clone(),
        );
        registry.register(
            "pipespec_policy_rounds",
            "Rounds of requests the policy may steer, by its choice (speculate, or an ar step)",
            self.policy_rounds.clone(),
        );
    }
}
