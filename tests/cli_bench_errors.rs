//! `pipespec bench`'s refusals: bad flags named clearly, and a prompt that does not fit reported on its own while the bench goes on.

use serde_json::Value;

use crate::cli_bench::prompt_file;
use crate::util::{run, stderr, tiny_model};

#[test]
fn bench_rejects_bad_flags_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path(), 13);
    let model = model.to_str().unwrap();
    let prompts = prompt_file(dir.path());
    let out = dir.path().join("out");
    let out = out.to_str().unwrap();
    for (extra, expected) in [
        (
            vec!["--strategies", "sd"],
            "at least two model levels for sd",
        ),
        (vec!["--categories", "nope"], "no category \"nope\""),
        (vec!["--limit", "0"], "--limit must be at least 1"),
        (
            vec!["--window", "0"],
            "invalid window: expected 1..=64, got 0",
        ),
        (
            vec!["--max-new-tokens", "0"],
            "--max-new-tokens must be at least 1",
        ),
    ] {
        let mut args = vec!["bench", "--suite", &prompts, "--model", model, "--out", out];
        args.extend(extra);
        let output = run(&args, "");
        assert_eq!(
            output.status.code(),
            Some(1),
            "{args:?}: {}",
            stderr(&output)
        );
        assert!(
            stderr(&output).contains(expected),
            "{args:?}: {}",
            stderr(&output)
        );
    }
    let missing = run(
        &[
            "bench",
            "--suite",
            "/no/such.jsonl",
            "--model",
            model,
            "--out",
            out,
        ],
        "",
    );
    assert_eq!(missing.status.code(), Some(1), "{}", stderr(&missing));
    assert!(
        stderr(&missing).contains("/no/such.jsonl") && stderr(&missing).contains("no such file"),
        "{}",
        stderr(&missing)
    );
}

#[test]
fn a_prompt_that_does_not_fit_is_an_error_of_its_own_and_the_bench_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path(), 14);
    let prompts = dir.path().join("prompts.jsonl");
    let long = "a long prompt ".repeat(20);
    std::fs::write(
        &prompts,
        format!("{{\"prompt\": \"hi\"}}\n{{\"prompt\": \"{long}\"}}\n"),
    )
    .unwrap();
    let out = dir.path().join("out");
    let output = run(
        &[
            "bench",
            "--suite",
            prompts.to_str().unwrap(),
            "--model",
            model.to_str().unwrap(),
            "--strategies",
            "ar,lookup",
            "--ctx-size",
            "48",
            "--max-new-tokens",
            "8",
            "--out",
            out.to_str().unwrap(),
        ],
        "",
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let results: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    let statuses: Vec<Vec<&str>> = results["turns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|turn| {
            turn["runs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|run| run["status"].as_str().unwrap())
                .collect()
        })
        .collect();
    assert_eq!(statuses, [["ok", "ok"], ["error", "error"]]);
    let failed = &results["turns"][1]["runs"][0];
    assert!(
        failed["error"].is_string() && failed["wall_s"].is_null(),
        "{failed}"
    );
    assert_eq!(results["strategies"][1]["summary"]["errors"], 1);
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        report.contains("prompt 1 (2, default, turn 1), ar: error:"),
        "{report}"
    );
}
