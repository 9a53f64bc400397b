//! The exposition keeps today's families and reads back whole when a label value holds the characters that need escaping.

use pipespec_decode::{LevelMetrics, LevelReport};

use super::Metrics;

/// One sample line read back: its name, its label pairs unescaped, its value.
fn parse_sample(line: &str) -> (String, Vec<(String, String)>, f64) {
    let name_end = line
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or_else(|| panic!("no value in {line:?}"));
    let (name, mut rest) = line.split_at(name_end);
    let mut labels = Vec::new();
    if let Some(inner) = rest.strip_prefix('{') {
        rest = inner;
        loop {
            let inner = rest.strip_prefix(',').unwrap_or(rest);
            if let Some(after) = inner.strip_prefix('}') {
                rest = after;
                break;
            }
            let (key, after) = inner
                .split_once("=\"")
                .unwrap_or_else(|| panic!("no label value in {line:?}"));
            let mut value = String::new();
            let mut chars = after.char_indices();
            let end = loop {
                match chars.next() {
                    Some((i, '"')) => break i,
                    Some((_, '\\')) => match chars.next() {
                        Some((_, '\\')) => value.push('\\'),
                        Some((_, '"')) => value.push('"'),
                        Some((_, 'n')) => value.push('\n'),
                        other => panic!("bad escape {other:?} in {line:?}"),
                    },
                    Some((_, c)) => value.push(c),
                    None => panic!("unterminated label value in {line:?}"),
                }
            };
            labels.push((key.to_string(), value));
            rest = &after[end + 1..];
        }
    }
    let value = rest
        .strip_prefix(' ')
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no number after the labels in {line:?}"));
    (name.to_string(), labels, value)
}

#[test]
fn every_family_keeps_its_name_type_help_and_labels() {
    let metrics = Metrics::default();
    metrics.record_response("/v1/completions", 200);
    let level = LevelReport {
        name: "target".into(),
        metrics: LevelMetrics::default(),
    };
    metrics.record_generation("stop", 5, 2, &[level]);
    metrics.batch.record_round(true);
    let text = metrics.render();
    let families: Vec<(&str, &str, &str)> = text
        .lines()
        .filter_map(|line| line.strip_prefix("# HELP "))
        .filter_map(|rest| rest.split_once(' '))
        .map(|(name, help)| {
            let kind = text
                .lines()
                .find_map(|line| line.strip_prefix(&format!("# TYPE {name} ")))
                .unwrap_or_else(|| panic!("no TYPE for {name}"));
            (name, kind, help)
        })
        .collect();
    let levels = "Tokens a level drafted that the next level checked.";
    assert_eq!(
        families,
        [
            (
                "pipespec_requests_total",
                "counter",
                "HTTP responses by endpoint and status."
            ),
            (
                "pipespec_generations_total",
                "counter",
                "Generations by finish reason."
            ),
            (
                "pipespec_prompt_tokens_total",
                "counter",
                "Prompt tokens processed."
            ),
            (
                "pipespec_completion_tokens_total",
                "counter",
                "Tokens generated."
            ),
            (
                "pipespec_time_to_first_token_seconds",
                "histogram",
                "From arrival (queueing included) to the first generated token."
            ),
            (
                "pipespec_inter_token_seconds",
                "histogram",
                "Between consecutive generated tokens of a request."
            ),
            (
                "pipespec_request_duration_seconds",
                "histogram",
                "From arrival to the end of generation."
            ),
            (
                "pipespec_queue_wait_seconds",
                "histogram",
                "Time a request waited for admission."
            ),
            ("pipespec_level_drafted_tokens_total", "counter", levels),
            (
                "pipespec_level_accepted_tokens_total",
                "counter",
                "Drafted tokens the next level accepted."
            ),
            (
                "pipespec_level_verifications_total",
                "counter",
                "Verifications that checked a level's drafts."
            ),
            (
                "pipespec_level_forward_passes_total",
                "counter",
                "Forward passes a level ran."
            ),
            (
                "pipespec_level_acceptance_ratio",
                "gauge",
                "Accepted over drafted tokens, since start."
            ),
            (
                "pipespec_queue_depth",
                "gauge",
                "Requests waiting for admission."
            ),
            ("pipespec_in_flight", "gauge", "Generations running."),
            (
                "pipespec_slots",
                "gauge",
                "Requests decoded at once at most (--max-concurrent)."
            ),
            (
                "pipespec_kv_cache_budget_bytes",
                "gauge",
                "KV cache bytes all running requests may hold together (every level)."
            ),
            (
                "pipespec_kv_cache_reserved_bytes",
                "gauge",
                "KV cache bytes held by the running requests and the idle caches kept for prefix reuse (every level)."
            ),
            (
                "pipespec_kv_cache_reuses_total",
                "counter",
                "Requests that took an idle cache (feeding only what its prefix lacks)."
            ),
            (
                "pipespec_batch_sequences",
                "histogram",
                "Sequences in one batched forward pass of one model."
            ),
            (
                "pipespec_batch_tokens",
                "histogram",
                "Tokens (rows) fed by one batched forward pass of one model."
            ),
            (
                "pipespec_batch_pass_seconds",
                "histogram",
                "Time of one batched forward pass of one model."
            ),
            (
                "pipespec_policy_ar_tokens_per_second",
                "gauge",
                "The batching policy's last estimate of the batch's tok/s with ar."
            ),
            (
                "pipespec_policy_speculative_tokens_per_second",
                "gauge",
                "The batching policy's last estimate of the batch's tok/s with the default strategy."
            ),
            (
                "pipespec_policy_rounds_total",
                "counter",
                "Rounds of requests the policy may steer, by its choice (speculate, or an ar step)."
            ),
        ]
    );
    for sample in [
        "pipespec_requests_total{endpoint=\"/v1/completions\",status=\"200\"} 1",
        "pipespec_generations_total{finish_reason=\"stop\"} 1",
        "pipespec_prompt_tokens_total 5",
        "pipespec_level_forward_passes_total{index=\"0\",level=\"target\"} 0",
        "pipespec_queue_wait_seconds_bucket{le=\"0.001\"} 0",
        "pipespec_queue_wait_seconds_bucket{le=\"+Inf\"} 0",
        "pipespec_queue_wait_seconds_count 0",
        "pipespec_policy_rounds_total{choice=\"speculate\"} 1",
    ] {
        assert!(
            text.lines().any(|line| line == sample),
            "no {sample:?} in\n{text}"
        );
    }
}

#[test]
fn a_level_name_with_a_quote_a_backslash_and_a_newline_reads_back_whole() {
    let metrics = Metrics::default();
    let name = "tiny \"q4\" C:\\models\nnext";
    let level = LevelReport {
        name: name.into(),
        metrics: LevelMetrics {
            n_drafted: 4,
            n_accepted: 3,
            ..LevelMetrics::default()
        },
    };
    metrics.record_generation("stop", 5, 2, &[level]);
    let text = metrics.render();
    assert!(
        text.contains(r#"{index="0",level="tiny \"q4\" C:\\models\nnext"} 4"#),
        "{text}"
    );
    // Every line is a comment or a whole sample; the level label reads back unchanged.
    let mut read_back = Vec::new();
    for line in text.lines().filter(|line| !line.starts_with('#')) {
        let (sample, labels, value) = parse_sample(line);
        if let Some((_, level)) = labels.iter().find(|(key, _)| key == "level") {
            read_back.push((sample, level.clone(), value));
        }
    }
    let expect = |sample: &str, value: f64| (sample.to_string(), name.to_string(), value);
    assert_eq!(
        read_back,
        vec![
            expect("pipespec_level_drafted_tokens_total", 4.0),
            expect("pipespec_level_accepted_tokens_total", 3.0),
            expect("pipespec_level_verifications_total", 0.0),
            expect("pipespec_level_forward_passes_total", 0.0),
            expect("pipespec_level_acceptance_ratio", 0.75),
        ]
    );
}
