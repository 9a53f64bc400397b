//! The default model's greedy answers to fixed chat prompts, pinned as token ids (read once for sense:
//! Paris for France's capital, red/blue/yellow for the primary colors, a vessel on the blue for the
//! haiku).
//!
//! A kernel change that flips one of these is a numerics change: look at the new text before re-pinning.
//! The pins hold on every CPU path (scalar, AVX2, AVX-512), whose results are bit-identical. They were
//! last re-pinned when attention moved to transposed key panels with a vectorized exp: the colors
//! answer now ends at its end-of-turn after "Yellow (Y)", the haiku's third line changed. Before
//! that, the packed kernels (one FMA per block) had replaced the old per-path sums, which made the
//! old pins hold on AVX-512 VNNI machines only.

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
    let colors: [u64; 21] = [
        504, 3003, 4683, 359, 42, 198, 198, 12869, 365, 66, 25, 198, 23390, 365, 50, 25, 198,
        36086, 365, 73, 25,
    ];
    let haiku: [u64; 24] = [
        788, 260, 16862, 282, 260, 4461, 28, 253, 33023, 10364, 38203, 28, 253, 38033, 3847, 282,
        6122, 28, 253, 38033, 3847, 282, 1029, 28,
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
        assert!(text.contains("blue") && text.contains("vessel"), "{text}");
    }
}
