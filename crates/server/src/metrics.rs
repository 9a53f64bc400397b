//! Server counters and latency histograms, rendered in the Prometheus text format.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use pipespec_decode::LevelReport;

/// Upper bounds (seconds) of the latency buckets.
const BUCKETS: [f64; 16] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

/// A cumulative histogram with fixed buckets.
#[derive(Debug, Default)]
pub struct Histogram {
    state: Mutex<HistogramState>,
}

#[derive(Debug, Default)]
struct HistogramState {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    pub fn observe(&self, seconds: f64) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        for (bound, count) in BUCKETS.iter().zip(state.counts.iter_mut()) {
            if seconds <= *bound {
                *count += 1;
            }
        }
        state.count += 1;
        state.sum += seconds;
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (bound, count) in BUCKETS.iter().zip(state.counts.iter()) {
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {count}");
        }
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", state.count);
        let _ = writeln!(out, "{name}_sum {}", state.sum);
        let _ = writeln!(out, "{name}_count {}", state.count);
    }
}

/// A per-level metric: name, help, and how to read it from the totals.
type LevelFamily = (&'static str, &'static str, fn(&LevelTotals) -> u64);

/// Per-level drafting counters summed over requests.
#[derive(Debug, Default, Clone)]
struct LevelTotals {
    drafted: u64,
    accepted: u64,
    verifications: u64,
    forward_passes: u64,
}

/// Everything `/metrics` shows.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Responses by (endpoint, HTTP status).
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    /// Generations by finish reason.
    finished: Mutex<BTreeMap<&'static str, u64>>,
    pub prompt_tokens: AtomicU64,
    pub completion_tokens: AtomicU64,
    pub time_to_first_token: Histogram,
    pub inter_token: Histogram,
    pub request_duration: Histogram,
    pub queue_wait: Histogram,
    levels: Mutex<BTreeMap<(usize, String), LevelTotals>>,
    pub queue_depth: AtomicUsize,
    pub in_flight: AtomicUsize,
    pub slots: AtomicUsize,
    pub slot_cache_bytes: AtomicUsize,
}

impl Metrics {
    pub fn record_response(&self, endpoint: &str, status: u16) {
        let mut requests = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        *requests.entry((endpoint.to_string(), status)).or_default() += 1;
    }

    /// Records a finished generation's counters.
    pub fn record_generation(
        &self,
        finish_reason: &'static str,
        prompt_tokens: usize,
        completion_tokens: usize,
        levels: &[LevelReport],
    ) {
        *self
            .finished
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(finish_reason)
            .or_default() += 1;
        self.prompt_tokens
            .fetch_add(prompt_tokens as u64, Ordering::Relaxed);
        self.completion_tokens
            .fetch_add(completion_tokens as u64, Ordering::Relaxed);
        let mut totals = self.levels.lock().unwrap_or_else(|e| e.into_inner());
        for (index, level) in levels.iter().enumerate() {
            let entry = totals.entry((index, level.name.clone())).or_default();
            entry.drafted += level.metrics.n_drafted as u64;
            entry.accepted += level.metrics.n_accepted as u64;
            entry.verifications += level.metrics.n_verifications as u64;
            entry.forward_passes += level.metrics.forward_passes as u64;
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP pipespec_requests_total HTTP responses by endpoint and status.\n# TYPE pipespec_requests_total counter"
        );
        for ((endpoint, status), count) in self
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "pipespec_requests_total{{endpoint=\"{endpoint}\",status=\"{status}\"}} {count}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP pipespec_generations_total Generations by finish reason.\n# TYPE pipespec_generations_total counter"
        );
        for (reason, count) in self
            .finished
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "pipespec_generations_total{{finish_reason=\"{reason}\"}} {count}"
            );
        }
        counter(
            &mut out,
            "pipespec_prompt_tokens_total",
            "Prompt tokens processed.",
            self.prompt_tokens.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "pipespec_completion_tokens_total",
            "Tokens generated.",
            self.completion_tokens.load(Ordering::Relaxed),
        );
        self.time_to_first_token.render(
            &mut out,
            "pipespec_time_to_first_token_seconds",
            "From arrival (queueing included) to the first generated token.",
        );
        self.inter_token.render(
            &mut out,
            "pipespec_inter_token_seconds",
            "Between consecutive generated tokens of a request.",
        );
        self.request_duration.render(
            &mut out,
            "pipespec_request_duration_seconds",
            "From arrival to the end of generation.",
        );
        self.queue_wait.render(
            &mut out,
            "pipespec_queue_wait_seconds",
            "Time a request waited for a slot.",
        );
        let levels = self.levels.lock().unwrap_or_else(|e| e.into_inner());
        let families: [LevelFamily; 4] = [
            (
                "pipespec_level_drafted_tokens_total",
                "Tokens a level drafted that the next level checked.",
                |t| t.drafted,
            ),
            (
                "pipespec_level_accepted_tokens_total",
                "Drafted tokens the next level accepted.",
                |t| t.accepted,
            ),
            (
                "pipespec_level_verifications_total",
                "Verifications that checked a level's drafts.",
                |t| t.verifications,
            ),
            (
                "pipespec_level_forward_passes_total",
                "Forward passes a level ran.",
                |t| t.forward_passes,
            ),
        ];
        for (name, help, value) in families {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for ((index, level), totals) in levels.iter() {
                let _ = writeln!(
                    out,
                    "{name}{{index=\"{index}\",level=\"{level}\"}} {}",
                    value(totals)
                );
            }
        }
        let name = "pipespec_level_acceptance_ratio";
        let _ = writeln!(
            out,
            "# HELP {name} Accepted over drafted tokens, since start.\n# TYPE {name} gauge"
        );
        for ((index, level), totals) in levels.iter() {
            let ratio = if totals.drafted == 0 {
                0.0
            } else {
                totals.accepted as f64 / totals.drafted as f64
            };
            let _ = writeln!(out, "{name}{{index=\"{index}\",level=\"{level}\"}} {ratio}");
        }
        drop(levels);
        gauge(
            &mut out,
            "pipespec_queue_depth",
            "Requests waiting for a slot.",
            self.queue_depth.load(Ordering::Relaxed),
        );
        gauge(
            &mut out,
            "pipespec_in_flight",
            "Generations running.",
            self.in_flight.load(Ordering::Relaxed),
        );
        gauge(
            &mut out,
            "pipespec_slots",
            "Generation slots (max concurrent).",
            self.slots.load(Ordering::Relaxed),
        );
        gauge(
            &mut out,
            "pipespec_slot_kv_cache_bytes",
            "KV cache bytes of every level of one slot.",
            self.slot_cache_bytes.load(Ordering::Relaxed),
        );
        out
    }
}

fn counter(out: &mut String, name: &str, help: &str, value: u64) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
    );
}

fn gauge(out: &mut String, name: &str, help: &str, value: usize) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
    );
}
