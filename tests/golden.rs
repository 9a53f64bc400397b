//! The default model's greedy answers to fixed chat prompts, pinned as token ids (read once for sense:
//! Paris for France's capital, red/blue/yellow for the primary colors, a sea image for the haiku).
//!
//! A kernel change that flips one of these is a numerics change: look at the new text before re-pinning.
//! The pins hold on every CPU path, whose results are bit-identical; they were re-pinned when
//! the packed kernels (one FMA per block) replaced the old per-path sums, which had already
//! made the old pins hold on AVX-512 VNNI machines only ("Red (R)" there, "Red:" elsewhere:
//! the model's logits 23.87 for ":" against 23.64 for " (" on the old portable path).

use crate::util::{default_model, json, run};

fn greedy(prompt: &str, max_tokens: usize, threads: &str) -> (Vec<u64>, String) {
    let model = default_model();
    let max = max_tokens.to_string();
    let args = [
        "generate",
        "--model",
        model.to_str().unwrap(),
        "--max-tokens",
        &max,
        "--json",
        "--threads",
        threads,
        prompt,
    ];
    let value = json(&run(&args, ""));
    let tokens = value["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_u64().unwrap())
        .collect();
    (tokens, value["text"].as_str().unwrap().to_string())
}

#[test]
fn the_capital_of_france_is_paris() {
    let (tokens, text) = greedy(
        "What is the capital of France? Answer in one sentence.",
        24,
        "2",
    );
    assert_eq!(text, "The capital of France is Paris.");
    // It stopped at <|im_end|>, which is not part of the output.
    assert_eq!(tokens, [504, 3575, 282, 4649, 314, 7042, 30]);
}

#[test]
fn pinned_answers_are_reproduced_with_one_and_two_threads() {
    let colors: [u64; 24] = [
        504, 3003, 4683, 359, 42, 198, 198, 12869, 42, 492, 365, 12869, 25, 198, 23390, 42, 10062,
        365, 23390, 25, 198, 36086, 42, 13581,
    ];
    let haiku: [u64; 24] = [
        788, 260, 16862, 282, 260, 4461, 28, 253, 33023, 10364, 6443, 28, 253, 21651, 288, 260,
        551, 1710, 13619, 6122, 282, 260, 3426, 30,
    ];
    for threads in ["1", "2"] {
        let (tokens, text) = greedy("List three primary colors.", 24, threads);
        assert_eq!(tokens, colors, "{text}");
        assert!(
            text.contains("Red") && text.contains("Blue") && text.contains("Yellow"),
            "{text}"
        );
        let (tokens, text) = greedy("Write a haiku about the sea.", 24, threads);
        assert_eq!(tokens, haiku, "{text}");
        assert!(text.contains("sea"), "{text}");
    }
}
