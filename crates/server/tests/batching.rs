//! Continuous batching over HTTP: many concurrent mixed requests give their solo texts, some
//! cancelled mid-way; the KV budget admits in order and refuses what could never fit.

use std::io::BufRead;

use serde_json::{json, Value};

use crate::common::{self, stream_text};

/// The text of one non-streamed completion.
fn completion_text(server: &common::TestServer, body: &Value) -> String {
    let (status, answer) = server.post("/v1/completions", &body.to_string());
    assert_eq!(status, 200, "{answer}");
    answer["choices"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn metric(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{metrics}"))
}

fn metrics(server: &common::TestServer) -> String {
    ureq::get(&server.url("/metrics"))
        .call()
        .unwrap()
        .into_string()
        .unwrap()
}

#[test]
fn concurrent_mixed_requests_give_their_solo_texts() {
    let server = common::synthetic_with(|config| config.max_concurrent = 16);
    let bodies: Vec<Value> = (0..36)
        .map(|i| {
            let mut body = json!({
                "prompt": format!("request {i}: {}", "abc ".repeat(i % 9)),
                "max_tokens": 4 + (i * 7) % 29,
                "stream": i % 3 == 0,
            });
            if i % 2 == 1 {
                body["temperature"] = json!(0.8);
                body["seed"] = json!(i);
            } else {
                body["temperature"] = json!(0);
            }
            if i % 5 == 2 {
                body["stop"] = json!(["e", "a"]);
            }
            body
        })
        .collect();
    let text = |body: &Value| {
        if body["stream"] == json!(true) {
            stream_text(&server.stream("/v1/completions", &body.to_string()))
        } else {
            completion_text(&server, body)
        }
    };
    // one at a time, then all at once beside streams that are dropped mid-way
    let solo: Vec<String> = bodies.iter().map(text).collect();
    let long = json!({"prompt": "go on", "max_tokens": 200, "temperature": 0, "ignore_eos": true, "stream": true});
    let together: Vec<String> = std::thread::scope(|scope| {
        let dropped: Vec<_> = (0..4)
            .map(|_| {
                let server = &server;
                let long = long.to_string();
                scope.spawn(move || {
                    let mut reader = server.open_stream("/v1/completions", &long);
                    let mut line = String::new();
                    while !line.starts_with("data: ") {
                        line.clear();
                        reader.read_line(&mut line).unwrap();
                    }
                })
            })
            .collect();
        let handles: Vec<_> = bodies
            .iter()
            .map(|body| scope.spawn(move || text(body)))
            .collect();
        for handle in dropped {
            handle.join().unwrap();
        }
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (i, (alone, batched)) in solo.iter().zip(&together).enumerate() {
        assert_eq!(
            alone, batched,
            "request {i} ({}) differs in the batch",
            bodies[i]
        );
    }
    let greedy = server.expected(
        &server.tokenizer.encode("request 0: ", true).unwrap(),
        4,
        256,
    );
    assert_eq!(solo[0], greedy, "the server's greedy text is the library's");
    let metrics = metrics(&server);
    let passes = metric(&metrics, "pipespec_batch_sequences_count");
    let single = metric(&metrics, "pipespec_batch_sequences_bucket{le=\"1\"}");
    assert!(
        single < passes,
        "every one of {passes} passes held a single sequence"
    );
}

#[test]
fn the_kv_budget_admits_in_order_and_refuses_what_never_fits() {
    // 60 positions for all requests: one of 40 at a time.
    let server = common::synthetic_with(|config| {
        config.max_concurrent = 4;
        config.kv_positions = Some(60);
    });
    let (status, error) = server.post(
        "/v1/completions",
        r#"{"prompt": "hello", "max_tokens": 80, "temperature": 0}"#,
    );
    assert_eq!(status, 400, "{error}");
    assert_eq!(error["error"]["code"], "kv_budget_exceeded");
    let message = error["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("--kv-tokens") && message.contains("max_tokens 80"),
        "{message}"
    );
    let body = json!({"prompt": "hi", "max_tokens": 30, "temperature": 0, "ignore_eos": true});
    let texts: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..3)
            .map(|_| scope.spawn(|| completion_text(&server, &body)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(texts.iter().all(|text| *text == texts[0]));
    let metrics = metrics(&server);
    // admitted one at a time: every pass held one sequence
    let passes = metric(&metrics, "pipespec_batch_sequences_count");
    let single = metric(&metrics, "pipespec_batch_sequences_bucket{le=\"1\"}");
    assert_eq!(single, passes, "two requests ran together over the budget");
    // the finished requests' caches stay idle within the budget, and the next ones took them
    let (reserved, budget) = (
        metric(&metrics, "pipespec_kv_cache_reserved_bytes"),
        metric(&metrics, "pipespec_kv_cache_budget_bytes"),
    );
    assert!(
        reserved > 0.0 && reserved <= budget,
        "{reserved} of {budget}"
    );
    assert_eq!(metric(&metrics, "pipespec_kv_cache_reuses_total"), 2.0);
}

#[test]
fn a_prompt_sharing_a_prefix_with_a_finished_one_feeds_only_the_rest() {
    let server = common::synthetic_with(|config| config.max_concurrent = 2);
    let system = "You are a careful assistant. ".repeat(6);
    let first = format!("{system}Question one?");
    let second = format!("{system}Question two?");
    let body = |prompt: &str| json!({"prompt": prompt, "max_tokens": 6, "temperature": 0});
    completion_text(&server, &body(&first));
    let fed_before = metric(&metrics(&server), "pipespec_batch_tokens_sum");
    let text = completion_text(&server, &body(&second));
    let after = metrics(&server);
    let fed = metric(&after, "pipespec_batch_tokens_sum") - fed_before;
    let prompt = server.tokenizer.encode(&second, true).unwrap();
    assert!(
        fed < (prompt.len() / 2) as f64,
        "the second request fed {fed} rows for a {}-token prompt",
        prompt.len()
    );
    assert_eq!(metric(&after, "pipespec_kv_cache_reuses_total"), 1.0);
    // what a fresh cache would give
    assert_eq!(text, server.expected(&prompt, 6, 256));
}
