//! `pipespec bench` end to end on a tiny synthetic two-level chain: every file written, results.json's schema, the report's tables, bad flags.

use std::path::Path;

use serde_json::Value;

use crate::util::{keys, run, stderr, tiny_model};

/// Three prompts in two categories, one with two turns.
pub fn prompt_file(dir: &Path) -> String {
    let path = dir.join("prompts.jsonl");
    std::fs::write(
        &path,
        concat!(
            r#"{"question_id": 1, "category": "echo", "turns": ["say the the the the the the", "again"]}"#,
            "\n",
            r#"{"prompt": "abc abc abc abc", "category": "letters"}"#,
            "\n",
            r#"{"id": "x", "prompt": "the cat sat on the mat, the cat sat", "category": "echo"}"#,
            "\n",
        ),
    )
    .unwrap();
    path.to_str().unwrap().to_string()
}

/// `value` has exactly `expected` keys: none missing, none extra.
fn assert_keys(value: &Value, expected: &[&str], what: &str) {
    let mut expected = expected.to_vec();
    expected.sort_unstable();
    assert_eq!(keys(value), expected, "{what}'s keys: {value}");
}

/// The keys of one level's counters, in summaries and runs alike.
const LEVEL_KEYS: &[&str] = &[
    "name",
    "n_drafted",
    "n_accepted",
    "acceptance_rate",
    "n_verifications",
    "mean_accepted_per_verification",
    "forward_passes",
    "prefill_s",
    "decode_s",
    "busy_s",
    "idle_s",
    "rollbacks_received",
    "rollbacks_sent",
    "borrowed_passes",
];

#[test]
fn bench_writes_results_report_and_plots_for_every_strategy() {
    let dir = tempfile::tempdir().unwrap();
    let draft = tiny_model(dir.path(), 11);
    let target = tiny_model(dir.path(), 12);
    let chain = format!("{},{}", draft.display(), target.display());
    let prompts = prompt_file(dir.path());
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap(); // an existing folder is fine
    let output = run(
        &[
            "bench",
            "--suite",
            &prompts,
            "--all-turns",
            "--strategies",
            "ar,sd,staged,lookup,pipespec",
            "--chain",
            &chain,
            "--max-new-tokens",
            "12",
            "--ignore-eos",
            "--threads",
            "1",
            "--out",
            out.to_str().unwrap(),
        ],
        "",
    );
    assert!(output.status.success(), "{}", stderr(&output));
    for file in [
        "results.json",
        "report.md",
        "speedup_by_category.svg",
        "acceptance_by_level.svg",
        "predicted_vs_measured.svg",
    ] {
        assert!(out.join(file).is_file(), "{file} missing");
    }
    for svg in [
        "speedup_by_category.svg",
        "acceptance_by_level.svg",
        "predicted_vs_measured.svg",
    ] {
        let text = std::fs::read_to_string(out.join(svg)).unwrap();
        assert!(
            text.starts_with("<svg") && text.contains("</svg>"),
            "{svg}: {text}"
        );
    }

    let results: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    assert_eq!(results["schema_version"], 1);
    assert_keys(
        &results,
        &["schema_version", "run", "strategies", "categories", "turns"],
        "results",
    );
    assert_keys(
        &results["run"],
        &[
            "suite",
            "categories",
            "limit",
            "all_turns",
            "prompts",
            "turns",
            "chain",
            "max_new_tokens",
            "temperature",
            "seed",
            "ignore_eos",
            "ctx_size",
            "threads",
            "window",
            "run_ahead",
            "outputs_compared",
            "cores",
            "os",
            "arch",
            "pipespec_version",
            "elapsed_s",
        ],
        "run",
    );
    assert_eq!(results["run"]["prompts"], 3);
    assert_eq!(results["run"]["turns"], 4);

    let strategies = results["strategies"].as_array().unwrap();
    let names: Vec<&str> = strategies
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["ar", "sd", "staged", "lookup", "pipespec"]);
    for strategy in strategies {
        assert_keys(
            strategy,
            &[
                "name",
                "levels",
                "threads",
                "window",
                "run_ahead",
                "calibration",
                "summary",
                "prediction",
            ],
            "strategy",
        );
        let summary = &strategy["summary"];
        assert_keys(
            summary,
            &[
                "turns",
                "errors",
                "mismatches",
                "prompt_tokens",
                "generated_tokens",
                "wall_s",
                "ms_per_token",
                "decode_tok_s",
                "mean_ttft_s",
                "speedup",
                "decode_speedup",
                "mean_accepted_length",
                "rollbacks",
                "levels",
            ],
            "summary",
        );
        assert_eq!(summary["turns"], 4, "{strategy}");
        assert_eq!(summary["mismatches"], 0, "{strategy}");
        assert_eq!(summary["generated_tokens"], 48);
        assert!(summary["ms_per_token"].as_f64().unwrap() > 0.0);
        let levels = summary["levels"].as_array().unwrap();
        assert_eq!(levels.len(), strategy["levels"].as_array().unwrap().len());
        for level in levels {
            assert_keys(level, LEVEL_KEYS, "level");
        }
        let calibration = strategy["calibration"].as_array().unwrap();
        assert_eq!(
            calibration.len(),
            strategy["levels"].as_array().unwrap().len()
        );
        assert_keys(
            &calibration[0],
            &["name", "threads", "step_s", "verify_s", "verify_rows"],
            "calibration",
        );
        let prediction = &strategy["prediction"];
        assert_keys(
            prediction,
            &[
                "speedup",
                "paper_speedup",
                "measured_decode_speedup",
                "error",
                "paper_error",
                "off",
                "stages",
                "notes",
            ],
            "prediction",
        );
        assert!(prediction["notes"].is_array() && prediction["off"].is_boolean());
        let stages = prediction["stages"].as_array().unwrap();
        // One verifying stage per level after the first.
        assert_eq!(stages.len(), levels.len() - 1, "{prediction}");
        for stage in stages {
            assert_keys(stage, &["alpha", "window"], "stage");
        }
    }
    assert_eq!(strategies[0]["prediction"]["speedup"], 1.0);
    assert_eq!(strategies[3]["levels"][0], "ngram");

    let categories = results["categories"].as_array().unwrap();
    let category_names: Vec<&str> = categories
        .iter()
        .map(|c| c["category"].as_str().unwrap())
        .collect();
    assert_eq!(category_names, ["echo", "letters"]);
    for category in categories {
        assert_keys(category, &["category", "strategies"], "category");
        let rows = category["strategies"].as_array().unwrap();
        assert_eq!(rows.len(), strategies.len(), "{category}");
        for row in rows {
            assert_keys(
                row,
                &["name", "turns", "ms_per_token", "speedup", "decode_speedup"],
                "category row",
            );
        }
    }
    let turns = results["turns"].as_array().unwrap();
    assert_eq!(turns.len(), 4);
    // Round-robin: echo's first prompt (both turns), letters, then echo's second.
    let order: Vec<(&str, u64)> = turns
        .iter()
        .map(|t| (t["id"].as_str().unwrap(), t["turn"].as_u64().unwrap()))
        .collect();
    assert_eq!(order, [("1", 0), ("1", 1), ("2", 0), ("x", 0)]);
    // The second turn's prompt holds the first turn and ar's reply to it.
    assert!(
        turns[1]["prompt_tokens"].as_u64().unwrap() > turns[0]["prompt_tokens"].as_u64().unwrap()
    );
    for turn in turns {
        assert_keys(
            turn,
            &[
                "prompt_index",
                "id",
                "category",
                "turn",
                "prompt_tokens",
                "runs",
            ],
            "turn",
        );
        for run in turn["runs"].as_array().unwrap() {
            assert_keys(
                run,
                &[
                    "strategy",
                    "status",
                    "error",
                    "mismatch",
                    "generated_tokens",
                    "finish_reason",
                    "wall_s",
                    "ttft_s",
                    "prefill_s",
                    "decode_tok_s",
                    "ms_per_token",
                    "mean_accepted_length",
                    "levels",
                ],
                "run",
            );
            for level in run["levels"].as_array().unwrap() {
                assert_keys(level, LEVEL_KEYS, "run level");
            }
            assert_eq!(run["status"], "ok", "{run}");
            assert_eq!(run["generated_tokens"], 12);
        }
    }

    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    for heading in [
        "## Overall",
        "| strategy | chain | ms/token |",
        "## By category: ms/token (speedup over ar)",
        "| echo |",
        "| **overall** |",
        "## Acceptance per level",
        "## Predicted against measured",
        "## Mismatches and errors",
        "None: every strategy finished every turn with ar's output.",
        "## Machine and settings",
    ] {
        assert!(
            report.contains(heading),
            "report.md lacks {heading:?}:\n{report}"
        );
    }
}
