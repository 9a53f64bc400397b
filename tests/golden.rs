//! The default model's greedy answers to fixed chat prompts, pinned as token ids (checked for sense once, by reading them).

use crate::util::{default_model, json, run};

fn greedy(prompt: &str, max_tokens: usize) -> (Vec<u64>, String) {
    let model = default_model();
    let max = max_tokens.to_string();
    let output = run(
        &["generate", "--model", model.to_str().unwrap(), "--max-tokens", &max, "--json", "--threads", "2", prompt],
        "",
    );
    let value = json(&output);
    let tokens = value["tokens"].as_array().unwrap().iter().map(|t| t.as_u64().unwrap()).collect();
    (tokens, value["text"].as_str().unwrap().to_string())
}

#[test]
fn the_capital_of_france_is_paris() {
    let (_, text) = greedy("What is the capital of France?", 32);
    assert!(text.contains("Paris"), "{text}");
}
