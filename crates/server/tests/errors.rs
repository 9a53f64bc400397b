//! Each class of bad input gets an OpenAI-style error naming the field, and the server keeps serving.

use serde_json::Value;

use crate::common;

/// Checks the status, OpenAI's error type for it, the message (`needle` names the problem)
/// and the field at fault (`param`; None: the error names no field).
fn assert_error(response: (u16, Value), status: u16, param: Option<&str>, needle: &str) {
    assert!(!needle.is_empty(), "a needle must name the problem");
    let (got, body) = response;
    assert_eq!(got, status, "{body}");
    let error = &body["error"];
    let kind = match status {
        429 => "rate_limit_error",
        500.. => "server_error",
        _ => "invalid_request_error",
    };
    assert_eq!(error["type"], kind, "{body}");
    let message = error["message"].as_str().unwrap();
    assert!(message.contains(needle), "{needle:?} not in {message:?}");
    assert_eq!(
        error["param"],
        param.map_or(Value::Null, Value::from),
        "{body}"
    );
}

#[test]
fn bad_input_is_refused_and_serving_goes_on() {
    let server = common::synthetic(1, 8);
    let post = |body: &str| server.post("/v1/completions", body);
    let chat = |body: &str| server.post("/v1/chat/completions", body);
    assert_error(post(r#"{"prompt": "hi""#), 400, None, "not a valid JSON");
    assert_error(post("[1, 2]"), 400, None, "not a valid JSON object");
    assert_error(
        post(r#"{"prompt": "hi", "temperature": "hot"}"#),
        400,
        Some("temperature"),
        "invalid type",
    );
    assert_error(
        post(r#"{"prompt": "hi", "max_tokens": 1.5}"#),
        400,
        Some("max_tokens"),
        "invalid type: floating point `1.5`",
    );
    assert_error(
        post(r#"{"prompt": "hi", "temperature": -1}"#),
        400,
        Some("temperature"),
        "got -1",
    );
    assert_error(
        post(r#"{"prompt": "hi", "top_p": 0}"#),
        400,
        Some("top_p"),
        "(0, 1]",
    );
    assert_error(
        post(r#"{"prompt": "hi", "max_tokens": 0}"#),
        400,
        Some("max_tokens"),
        "1..=256",
    );
    assert_error(
        post(r#"{"prompt": "hi", "max_tokens": 1000000000}"#),
        400,
        Some("max_tokens"),
        "got 1000000000",
    );
    assert_error(post(r#"{"prompt": "hi", "n": 2}"#), 400, Some("n"), "got 2");
    assert_error(
        post(r#"{"prompt": "hi", "stop": 3}"#),
        400,
        Some("stop"),
        "got 3",
    );
    assert_error(
        post(r#"{"prompt": "hi", "window": 0}"#),
        400,
        Some("window"),
        "1..=64",
    );
    assert_error(
        post(r#"{"prompt": "hi", "strategy": "warp"}"#),
        400,
        Some("strategy"),
        "got warp",
    );
    assert_error(
        post(r#"{"prompt": "hi", "strategy": "sd"}"#),
        400,
        Some("strategy"),
        "strategy sd cannot run on the loaded chain",
    );
    assert_error(post(r#"{"prompt": 5}"#), 400, Some("prompt"), "got 5");
    assert_error(
        post(r#"{"max_tokens": 5}"#),
        400,
        Some("prompt"),
        "missing field `prompt`",
    );
    assert_error(
        post(r#"{"prompt": "hi", "model": "gpt-4"}"#),
        404,
        Some("model"),
        "gpt-4",
    );
    assert_error(
        chat(r#"{"messages": []}"#),
        400,
        Some("messages"),
        "non-empty",
    );
    assert_error(
        chat(r#"{"messages": [{"content": "x"}]}"#),
        400,
        Some("messages[0].role"),
        "got nothing",
    );
    let long = "z ".repeat(400);
    assert_error(
        post(&format!(r#"{{"prompt": "{long}"}}"#)),
        400,
        Some("prompt"),
        "fewer than 256 tokens",
    );
    assert_error(oversized(&server), 413, None, "at most 1048576 bytes");
    assert_error(server.post("/v1/nothing", "{}"), 404, None, "no route");
    // Still serving.
    let (status, body) = post(r#"{"prompt": "hi", "max_tokens": 4}"#);
    assert_eq!(status, 200, "{body}");
    assert!(body["usage"]["completion_tokens"].as_u64().unwrap() <= 4);
}

/// Sends a body a little over the 1 MiB limit (small enough to sit in the socket buffers, so
/// the client is not cut off mid-write when the server refuses it).
fn oversized(server: &common::TestServer) -> (u16, Value) {
    use std::io::{Read, Write};
    let length = (1 << 20) + 4096;
    let mut stream = std::net::TcpStream::connect(server.address).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let mut request = format!(
        "POST /v1/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n"
    )
    .into_bytes();
    request.resize(request.len() + length, b'a');
    stream.write_all(&request).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response[9..12].parse().unwrap();
    let body = &response[response.find("\r\n\r\n").unwrap() + 4..];
    (status, serde_json::from_str(body).unwrap())
}
