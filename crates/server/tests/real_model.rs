//! The real default model: a greedy chat completion equals the library's greedy output for the same prompt.

use pipespec_model::test_support::default_model;

use crate::common;

#[test]
fn greedy_chat_equals_the_library_on_the_default_model() {
    let server = common::start(&default_model(), 512, 2, 8);
    let question = "What is the capital of France, and what is it famous for?";
    let expected = server.expected(&server.chat_ids(question), 40, 512);
    let body = serde_json::json!({
        "messages": [{"role": "user", "content": question}],
        "max_tokens": 40,
        "temperature": 0,
    });
    let (status, value) = server.post("/v1/chat/completions", &body.to_string());
    assert_eq!(status, 200, "{value}");
    assert_eq!(
        value["choices"][0]["message"]["content"].as_str().unwrap(),
        expected
    );
    assert!(expected.contains("Paris"), "{expected}");
}
