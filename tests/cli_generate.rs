//! `pipespec generate`, `tokenize` and `info` on synthetic models: output shape, determinism, streaming equals JSON.

use crate::util::{json, keys, run, stderr, stdout, tiny_model};

#[test]
fn json_output_has_every_field_and_is_deterministic() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path(), 1);
    let model = model.to_str().unwrap();
    let args = [
        "generate",
        "--model",
        model,
        "--max-tokens",
        "12",
        "--ignore-eos",
        "--json",
        "hello there",
    ];
    let first = json(&run(&args, ""));
    assert_eq!(
        keys(&first),
        [
            "decode_tok_s",
            "finish_reason",
            "levels",
            "prefill_tok_s",
            "prompt_tokens",
            "run_ahead",
            "strategy",
            "text",
            "tokens",
            "ttft_s",
            "wall_s",
            "window",
        ]
    );
    let levels = first["levels"].as_array().unwrap();
    assert_eq!(levels.len(), 1, "ar runs the target alone: {first}");
    assert_eq!(
        keys(&levels[0]),
        [
            "acceptance_rate",
            "borrowed_passes",
            "busy_s",
            "decode_s",
            "forward_passes",
            "idle_s",
            "mean_accepted_per_verification",
            "n_accepted",
            "n_drafted",
            "n_verifications",
            "name",
            "prefill_s",
            "rollbacks_received",
            "rollbacks_sent",
        ]
    );
    assert_eq!(first["strategy"], "ar");
    assert_eq!(first["finish_reason"], "length");
    assert_eq!(first["tokens"].as_array().unwrap().len(), 12);
    assert!(first["ttft_s"].as_f64().unwrap() <= first["wall_s"].as_f64().unwrap());
    let second = json(&run(&args, ""));
    assert_eq!(first["tokens"], second["tokens"]);
    assert_eq!(first["text"], second["text"]);
}

#[test]
fn streamed_text_equals_the_json_text_and_stdin_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path(), 2);
    let model = model.to_str().unwrap();
    let common = [
        "generate",
        "--model",
        model,
        "--max-tokens",
        "10",
        "--ignore-eos",
        "--raw",
    ];
    let streamed = run(&common, "some prompt from stdin");
    assert!(streamed.status.success(), "{}", stderr(&streamed));
    let summary = stderr(&streamed);
    assert!(
        summary.contains("prompt tokens") && summary.contains("decode"),
        "{summary}"
    );
    let mut with_json = common.to_vec();
    with_json.push("--json");
    let structured = json(&run(&with_json, "some prompt from stdin"));
    assert_eq!(
        stdout(&streamed).trim_end_matches('\n'),
        structured["text"].as_str().unwrap()
    );
}

#[test]
fn sampling_with_a_seed_reproduces_and_seeds_differ() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path(), 3);
    let model = model.to_str().unwrap();
    let sample = |seed: &str| {
        let args = [
            "generate",
            "--model",
            model,
            "--max-tokens",
            "16",
            "--ignore-eos",
            "--json",
            "--temperature",
            "1.5",
            "--top-k",
            "50",
            "--top-p",
            "0.95",
            "--seed",
            seed,
            "abc",
        ];
        json(&run(&args, ""))["tokens"].clone()
    };
    assert_eq!(sample("7"), sample("7"));
    assert_ne!(sample("7"), sample("8"));
}

#[test]
fn the_chat_template_wraps_the_prompt_unless_raw() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path(), 4);
    let model = model.to_str().unwrap();
    let base = [
        "generate",
        "--model",
        model,
        "--max-tokens",
        "1",
        "--ignore-eos",
        "--json",
    ];
    let chat = json(&run(&[&base[..], &["hi"]].concat(), ""));
    let raw = json(&run(&[&base[..], &["--raw", "hi"]].concat(), ""));
    // "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n" against "hi".
    assert!(chat["prompt_tokens"].as_u64().unwrap() > raw["prompt_tokens"].as_u64().unwrap() + 5);
}

#[test]
fn tokenize_prints_ids_and_info_describes_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path(), 5);
    let model = model.to_str().unwrap();
    let output = run(&["tokenize", "--model", model, "<|im_start|>ab"], "");
    assert!(output.status.success(), "{}", stderr(&output));
    let ids: Vec<u32> = serde_json::from_str(stdout(&output).trim()).unwrap();
    // The special token is matched whole; "ab" is not a merge of this vocabulary but "e t"-style pairs are.
    assert_eq!(ids[0], 1);
    assert_eq!(ids.len(), 3);
    let info = run(&["info", model], "");
    assert!(info.status.success(), "{}", stderr(&info));
    let text = stdout(&info);
    let field = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name))
            .map(str::trim)
            .unwrap_or_else(|| panic!("no `{name}` line in:\n{text}"))
    };
    assert_eq!(field("architecture:"), "llama");
    assert_eq!(field("vocab size:"), "320");
}

#[test]
fn predict_prints_the_papers_check_values() {
    let output = run(
        &[
            "predict",
            "--alpha",
            "0.5,0.8,0.8",
            "--gamma",
            "4,4,8",
            "--cost-ratio",
            "0.1",
        ],
        "",
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    for expected in [
        "0.340  1.319",
        "0.543  2.283",
        "0.480  2.599",
        "sd speedup (last stage, C = 0.1): 2.405",
    ] {
        assert!(text.contains(expected), "`{expected}` not in:\n{text}");
    }
    let bad = run(&["predict", "--alpha", "1.5", "--gamma", "4"], "");
    assert_eq!(bad.status.code(), Some(1));
    assert!(stderr(&bad).contains("alpha") && stderr(&bad).contains("1.5"));
}
