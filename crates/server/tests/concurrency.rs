//! Many streams at once, a full queue, and a disconnect that frees its slot.

use std::io::BufRead;

use crate::common::{self, read_events, stream_text};

#[test]
fn thirty_two_concurrent_streams_complete_correctly() {
    let server = common::synthetic(4, 64);
    let prompts: Vec<String> = (0..32).map(|i| format!("prompt number {i}")).collect();
    let expected: Vec<String> = prompts
        .iter()
        .map(|p| server.expected(&server.tokenizer.encode(p, true).unwrap(), 12, 256))
        .collect();
    let texts: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = prompts
            .iter()
            .map(|prompt| {
                let server = &server;
                scope.spawn(move || {
                    let body = serde_json::json!({
                        "prompt": prompt, "max_tokens": 12, "temperature": 0, "stream": true
                    });
                    let events = server.stream("/v1/completions", &body.to_string());
                    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
                    stream_text(&events)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(texts, expected);
}

#[test]
fn a_disconnect_frees_the_slot() {
    // The wide model takes about a millisecond a token: the stream is dropped long before its
    // 400 tokens are done.
    let server = common::slow_synthetic(1, 4);
    let long = r#"{"prompt": "go on", "max_tokens": 400, "temperature": 0, "ignore_eos": true, "stream": true}"#;
    let mut reader = server.open_stream("/v1/completions", long);
    let mut line = String::new();
    while !line.starts_with("data: ") {
        line.clear();
        reader.read_line(&mut line).unwrap();
    }
    drop(reader);
    // The only slot takes the next request once the dropped one is cancelled.
    let (status, body) = server.post("/v1/completions", r#"{"prompt": "hi", "max_tokens": 2}"#);
    assert_eq!(status, 200, "{body}");
    let metrics = ureq::get(&server.url("/metrics"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert!(
        metrics.contains("pipespec_generations_total{finish_reason=\"cancelled\"} 1"),
        "{metrics}"
    );
    // The cancelled generation stopped short of its 400 tokens (the second request made 2).
    let generated: u64 = metrics
        .lines()
        .find_map(|line| line.strip_prefix("pipespec_completion_tokens_total "))
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("no completion token count in\n{metrics}"));
    assert!(generated < 400, "{generated} tokens generated");
}

#[test]
fn a_full_queue_answers_429() {
    // The wide model takes about a millisecond a token: the first stream (400 tokens) is still
    // generating when the other two requests arrive.
    let server = common::slow_synthetic(1, 1);
    let long = r#"{"prompt": "go on", "max_tokens": 400, "temperature": 0, "ignore_eos": true, "stream": true}"#;
    // The first stream holds the only slot (it has produced a chunk, so it left the queue).
    let mut running = server.open_stream("/v1/completions", long);
    let mut line = String::new();
    while !line.starts_with("data: ") {
        line.clear();
        running.read_line(&mut line).unwrap();
    }
    // The second waits in the queue, the third finds it full.
    let waiting = server.open_stream("/v1/completions", long);
    let (status, body) = server.post("/v1/completions", long);
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["type"], "rate_limit_error");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("--queue 1"));
    drop(running);
    let events = read_events(waiting);
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
}
