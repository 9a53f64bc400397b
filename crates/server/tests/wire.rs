//! Every object kind the server sends, serialized and compared with literals captured from the `json!` code the typed structs replaced: keys and values must not change.

use pipespec_decode::{LevelMetrics, LevelReport, Strategy};
use pipespec_server::job::Summary;
use pipespec_server::response::{Endpoint, ResponseMeta};
use pipespec_server::{ApiError, ErrorKind};
use serde_json::{json, Value};

use crate::common;

fn meta(endpoint: Endpoint, id: &str) -> ResponseMeta {
    ResponseMeta {
        endpoint,
        id: id.into(),
        created: 1_700_000_000,
        model: "test-model".into(),
    }
}

fn summary() -> Summary {
    Summary {
        prompt_tokens: 5,
        completion_tokens: 3,
        finish_reason: "length",
        strategy: Strategy::Sd,
        window: 4,
        levels: vec![LevelReport {
            name: "draft".into(),
            metrics: LevelMetrics {
                n_drafted: 8,
                n_accepted: 6,
                n_verifications: 2,
                forward_passes: 9,
                prefill_s: 0.5,
                decode_s: 0.25,
                busy_s: 0.75,
                idle_s: 0.125,
                rollbacks_received: 1,
                rollbacks_sent: 0,
                borrowed_passes: 3,
            },
        }],
        queue_s: 0.5,
        ttft_s: 1.5,
        wall_s: 2.0,
    }
}

fn serialized(value: impl serde::Serialize) -> Value {
    serde_json::to_value(value).unwrap()
}

/// The `usage` object both whole responses and the usage chunks carry.
fn usage() -> Value {
    json!({
        "prompt_tokens": 5,
        "completion_tokens": 3,
        "total_tokens": 8,
        "pipespec": {
            "strategy": "sd",
            "window": 4,
            "queue_s": 0.5,
            "ttft_s": 1.5,
            "wall_s": 2.0,
            "levels": [{
                "name": "draft",
                "n_drafted": 8,
                "n_accepted": 6,
                "acceptance_rate": 0.75,
                "n_verifications": 2,
                "mean_accepted_per_verification": 3.0,
                "forward_passes": 9,
                "prefill_s": 0.5,
                "decode_s": 0.25,
                "busy_s": 0.75,
                "idle_s": 0.125,
                "rollbacks_received": 1,
                "rollbacks_sent": 0,
                "borrowed_passes": 3,
            }],
        },
    })
}

#[test]
fn whole_completions_keep_their_keys_and_values() {
    let text = meta(Endpoint::Completions, "cmpl-7");
    assert_eq!(
        serialized(text.completion("hi there", &summary())),
        json!({
            "id": "cmpl-7",
            "object": "text_completion",
            "created": 1_700_000_000,
            "model": "test-model",
            "choices": [{"index": 0, "text": "hi there", "logprobs": null, "finish_reason": "length"}],
            "usage": usage(),
        })
    );
    let chat = meta(Endpoint::Chat, "chatcmpl-8");
    assert_eq!(
        serialized(chat.completion("hello", &summary())),
        json!({
            "id": "chatcmpl-8",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": "test-model",
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": "hello"},
                "logprobs": null,
                "finish_reason": "length",
            }],
            "usage": usage(),
        })
    );
}

#[test]
fn completion_chunks_keep_their_keys_and_values() {
    let meta = meta(Endpoint::Completions, "cmpl-9");
    let chunk = |choices: Value| {
        json!({
            "id": "cmpl-9",
            "object": "text_completion",
            "created": 1_700_000_000,
            "model": "test-model",
            "choices": choices,
        })
    };
    assert_eq!(
        serialized(meta.chunk(Some("abc"), true, None)),
        chunk(json!([{"index": 0, "text": "abc", "logprobs": null, "finish_reason": null}]))
    );
    assert_eq!(
        serialized(meta.chunk(None, false, Some("stop"))),
        chunk(json!([{"index": 0, "text": "", "logprobs": null, "finish_reason": "stop"}]))
    );
    let mut usage_chunk = chunk(json!([]));
    usage_chunk["usage"] = usage();
    assert_eq!(serialized(meta.usage_chunk(&summary())), usage_chunk);
}

#[test]
fn chat_chunks_keep_their_keys_and_values() {
    let meta = meta(Endpoint::Chat, "chatcmpl-10");
    let chunk = |delta: Value, finish_reason: Value| {
        json!({
            "id": "chatcmpl-10",
            "object": "chat.completion.chunk",
            "created": 1_700_000_000,
            "model": "test-model",
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish_reason}],
        })
    };
    // The first chunk opens the assistant's turn.
    assert_eq!(
        serialized(meta.chunk(Some("Hel"), true, None)),
        chunk(json!({"role": "assistant", "content": "Hel"}), Value::Null)
    );
    assert_eq!(
        serialized(meta.chunk(Some("lo"), false, None)),
        chunk(json!({"content": "lo"}), Value::Null)
    );
    // The final chunk: an empty delta and the finish reason.
    assert_eq!(
        serialized(meta.chunk(None, false, Some("length"))),
        chunk(json!({}), json!("length"))
    );
    // A generation without text still opens the turn in its only chunk.
    assert_eq!(
        serialized(meta.chunk(None, true, Some("stop"))),
        chunk(json!({"role": "assistant"}), json!("stop"))
    );
    assert_eq!(
        serialized(meta.usage_chunk(&summary())),
        json!({
            "id": "chatcmpl-10",
            "object": "chat.completion.chunk",
            "created": 1_700_000_000,
            "model": "test-model",
            "choices": [],
            "usage": usage(),
        })
    );
}

#[test]
fn error_bodies_keep_their_keys_and_values() {
    let error = ApiError::invalid_value("top_p", "a number in (0, 1]", 0);
    assert_eq!(
        serialized(error.body()),
        json!({"error": {
            "message": "invalid top_p: expected a number in (0, 1], got 0",
            "type": "invalid_request_error",
            "param": "top_p",
            "code": "invalid_value",
        }})
    );
    let error = ApiError::new(ErrorKind::Unavailable, "the server is shutting down");
    assert_eq!(
        serialized(error.body()),
        json!({"error": {
            "message": "the server is shutting down",
            "type": "server_error",
            "param": null,
            "code": null,
        }})
    );
}

#[test]
fn models_health_and_errors_over_http_keep_their_keys_and_values() {
    let server = common::synthetic(1, 8);
    let get = |path: &str| -> Value {
        ureq::get(&server.url(path))
            .call()
            .unwrap()
            .into_json()
            .unwrap()
    };
    assert_eq!(
        get("/v1/models"),
        json!({
            "object": "list",
            "data": [{"id": "test-model", "object": "model", "created": 0, "owned_by": "pipespec"}],
        })
    );
    assert_eq!(
        get("/health"),
        json!({"status": "ok", "model": "test-model", "slots": 1, "in_flight": 0, "queue_depth": 0})
    );
    let (status, body) = server.post("/v1/completions", r#"{"prompt": "hi", "temperature": -1}"#);
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!({"error": {
            "message": "invalid temperature: expected a number in [0, 2] (0 = greedy), got -1",
            "type": "invalid_request_error",
            "param": "temperature",
            "code": "invalid_value",
        }})
    );
}
