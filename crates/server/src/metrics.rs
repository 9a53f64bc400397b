//! Server counters, gauges and latency histograms in a `prometheus-client` registry, rendered in the Prometheus text format (label values escaped).

use std::sync::atomic::AtomicU64;
use std::sync::Mutex;

use pipespec_decode::LevelReport;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

mod batch;
pub use batch::BatchMetrics;

/// Upper bounds (seconds) of the latency buckets.
const BUCKETS: [f64; 16] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

/// `pipespec_requests_total`'s labels.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResponseLabels {
    endpoint: String,
    status: u16,
}

/// `pipespec_generations_total`'s label.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FinishLabels {
    finish_reason: String,
}

/// The labels of the per-level families: the level's place in the chain and its name.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LevelLabels {
    index: usize,
    level: String,
}

/// A gauge of a count (queue depth, slots, bytes).
pub type CountGauge = Gauge<u64, AtomicU64>;

/// Per-level drafting counters summed over requests, and their ratio.
#[derive(Debug, Default)]
struct LevelFamilies {
    drafted: Family<LevelLabels, Counter>,
    accepted: Family<LevelLabels, Counter>,
    verifications: Family<LevelLabels, Counter>,
    forward_passes: Family<LevelLabels, Counter>,
    acceptance_ratio: Family<LevelLabels, Gauge<f64, AtomicU64>>,
}

/// Everything `/metrics` shows: the handles callers update, and the registry that renders them.
#[derive(Debug)]
pub struct Metrics {
    /// Responses by (endpoint, HTTP status).
    requests: Family<ResponseLabels, Counter>,
    /// Generations by finish reason.
    finished: Family<FinishLabels, Counter>,
    prompt_tokens: Counter,
    completion_tokens: Counter,
    pub time_to_first_token: Histogram,
    pub inter_token: Histogram,
    pub request_duration: Histogram,
    pub queue_wait: Histogram,
    /// Held while a generation's level counters and the ratio derived from them are updated.
    levels: Mutex<LevelFamilies>,
    pub queue_depth: CountGauge,
    pub in_flight: CountGauge,
    pub slots: CountGauge,
    pub batch: BatchMetrics,
    registry: Registry,
}

impl Default for Metrics {
    fn default() -> Metrics {
        let histogram = || Histogram::new(BUCKETS);
        let metrics = Metrics {
            requests: Family::default(),
            finished: Family::default(),
            prompt_tokens: Counter::default(),
            completion_tokens: Counter::default(),
            time_to_first_token: histogram(),
            inter_token: histogram(),
            request_duration: histogram(),
            queue_wait: histogram(),
            levels: Mutex::new(LevelFamilies::default()),
            queue_depth: CountGauge::default(),
            in_flight: CountGauge::default(),
            slots: CountGauge::default(),
            batch: BatchMetrics::default(),
            registry: Registry::default(),
        };
        metrics.registered()
    }
}

impl Metrics {
    /// Registers every metric, in the order `/metrics` lists them. Counter names leave out
    /// `_total`, which the encoder appends to their samples; help texts leave out their final
    /// period, which the registry appends.
    fn registered(mut self) -> Metrics {
        let registry = &mut self.registry;
        registry.register(
            "pipespec_requests",
            "HTTP responses by endpoint and status",
            self.requests.clone(),
        );
        registry.register(
            "pipespec_generations",
            "Generations by finish reason",
            self.finished.clone(),
        );
        registry.register(
            "pipespec_prompt_tokens",
            "Prompt tokens processed",
            self.prompt_tokens.clone(),
        );
        registry.register(
            "pipespec_completion_tokens",
            "Tokens generated",
            self.completion_tokens.clone(),
        );
        registry.register(
            "pipespec_time_to_first_token_seconds",
            "From arrival (queueing included) to the first generated token",
            self.time_to_first_token.clone(),
        );
        registry.register(
            "pipespec_inter_token_seconds",
            "Between consecutive generated tokens of a request",
            self.inter_token.clone(),
        );
        registry.register(
            "pipespec_request_duration_seconds",
            "From arrival to the end of generation",
            self.request_duration.clone(),
        );
        registry.register(
            "pipespec_queue_wait_seconds",
            "Time a request waited for admission",
            self.queue_wait.clone(),
        );
        let levels = self.levels.get_mut().unwrap_or_else(|e| e.into_inner());
        registry.register(
            "pipespec_level_drafted_tokens",
            "Tokens a level drafted that the next level checked",
            levels.drafted.clone(),
        );
        registry.register(
            "pipespec_level_accepted_tokens",
            "Drafted tokens the next level accepted",
            levels.accepted.clone(),
        );
        registry.register(
            "pipespec_level_verifications",
            "Verifications that checked a level's drafts",
            levels.verifications.clone(),
        );
        registry.register(
            "pipespec_level_forward_passes",
            "Forward passes a level ran",
            levels.forward_passes.clone(),
        );
        registry.register(
            "pipespec_level_acceptance_ratio",
            "Accepted over drafted tokens, since start",
            levels.acceptance_ratio.clone(),
        );
        registry.register(
            "pipespec_queue_depth",
            "Requests waiting for admission",
            self.queue_depth.clone(),
        );
        registry.register(
            "pipespec_in_flight",
            "Generations running",
            self.in_flight.clone(),
        );
        registry.register(
            "pipespec_slots",
            "Requests decoded at once at most (--max-concurrent)",
            self.slots.clone(),
        );
        self.batch.register(registry);
        self
    }

    pub fn record_response(&self, endpoint: &str, status: u16) {
        self.requests
            .get_or_create(&ResponseLabels {
                endpoint: endpoint.to_string(),
                status,
            })
            .inc();
    }

    /// Records a finished generation's counters.
    pub fn record_generation(
        &self,
        finish_reason: &'static str,
        prompt_tokens: usize,
        completion_tokens: usize,
        levels: &[LevelReport],
    ) {
        self.finished
            .get_or_create(&FinishLabels {
                finish_reason: finish_reason.to_string(),
            })
            .inc();
        self.prompt_tokens.inc_by(prompt_tokens as u64);
        self.completion_tokens.inc_by(completion_tokens as u64);
        let families = self.levels.lock().unwrap_or_else(|e| e.into_inner());
        for (index, level) in levels.iter().enumerate() {
            let labels = LevelLabels {
                index,
                level: level.name.clone(),
            };
            let metrics = &level.metrics;
            let drafted = families.drafted.get_or_create(&labels);
            let accepted = families.accepted.get_or_create(&labels);
            drafted.inc_by(metrics.n_drafted as u64);
            accepted.inc_by(metrics.n_accepted as u64);
            let ratio = if drafted.get() == 0 {
                0.0
            } else {
                accepted.get() as f64 / drafted.get() as f64
            };
            families.acceptance_ratio.get_or_create(&labels).set(ratio);
            families
                .verifications
                .get_or_create(&labels)
                .inc_by(metrics.n_verifications as u64);
            families
                .forward_passes
                .get_or_create(&labels)
                .inc_by(metrics.forward_passes as u64);
        }
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests;
