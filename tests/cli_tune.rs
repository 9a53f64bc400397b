//! `pipespec tune` end to end on a tiny model: the adapter it writes loads and changes the
//! output, `--json` prints the whole report, and bad flags or data are named before training.

use crate::util::{json, keys, run, stderr, tiny_model};

/// Four prompt/completion lines the tiny model can learn.
fn write_data(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("train.jsonl");
    let lines: Vec<String> = ["red", "blue", "green", "gray"]
        .iter()
        .enumerate()
        .map(|(i, colour)| format!(r#"{{"prompt": "item {i} is", "completion": " {colour}"}}"#))
        .collect();
    std::fs::write(&path, lines.join("\n")).unwrap();
    path
}

#[test]
fn tune_writes_an_adapter_that_generate_and_info_read() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path(), 31);
    let data = write_data(dir.path());
    let adapter = dir.path().join("colours.gguf");
    let (m, d, a) = (
        model.to_str().unwrap(),
        data.to_str().unwrap(),
        adapter.to_str().unwrap(),
    );
    let args = [
        "tune",
        "--model",
        m,
        "--data",
        d,
        "--eval",
        d,
        "--out",
        a,
        "--epochs",
        "40",
        "--lr",
        "2e-2",
        "--batch",
        "2",
        "--rank",
        "4",
        "--threads",
        "2",
        "--json",
    ];
    let report = json(&run(&args, ""));
    assert_eq!(
        keys(&report),
        [
            "active_modules",
            "adapter",
            "bytes_all_active",
            "bytes_from_cloud",
            "bytes_to_cloud",
            "cloud_flops",
            "device_flops",
            "device_flops_all_active",
            "eval_exact_match_after",
            "eval_exact_match_before",
            "eval_examples",
            "eval_loss_after",
            "eval_loss_before",
            "examples",
            "kills",
            "peak_rss_bytes",
            "revivals",
            "round_trips",
            "skipped",
            "steps",
            "tokens_per_s",
            "tokens_trained",
            "train_loss",
            "train_s",
            "trainable_parameters",
            "wall_s",
        ]
    );
    assert_eq!(report["steps"], 80);
    assert_eq!(report["train_loss"].as_array().unwrap().len(), 40);
    assert_eq!(report["adapter"], a);
    let (before, after) = (
        report["eval_loss_before"].as_f64().unwrap(),
        report["eval_loss_after"].as_f64().unwrap(),
    );
    assert!(after < 0.2 * before, "eval loss {before} -> {after}");
    assert_eq!(report["eval_exact_match_after"], 1.0, "{report}");

    let info = run(&["info", a], "");
    assert!(info.status.success(), "{}", stderr(&info));
    assert!(
        String::from_utf8_lossy(&info.stdout).contains("rank"),
        "{}",
        String::from_utf8_lossy(&info.stdout)
    );
    let generate = |lora: Option<&str>| {
        let mut args = vec![
            "generate",
            "--model",
            m,
            "--raw",
            "--max-tokens",
            "12",
            "--json",
        ];
        if let Some(lora) = lora {
            args.extend(["--lora", lora]);
        }
        args.push("item 2 is");
        json(&run(&args, ""))["text"].as_str().unwrap().to_string()
    };
    assert_eq!(generate(Some(a)), " green");
    assert_ne!(generate(None), " green");
}

#[test]
fn bad_tune_input_is_named_before_training() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path(), 32);
    let data = write_data(dir.path());
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(&bad, "{\"prompt\": \"a\", \"completion\": \"b\"}\n[1, 2]\n").unwrap();
    let out = dir.path().join("a.gguf");
    let (m, d, o) = (
        model.to_str().unwrap(),
        data.to_str().unwrap(),
        out.to_str().unwrap(),
    );
    let cases: [(Vec<&str>, &str); 7] = [
        (vec!["--data", d, "--lr=-1"], "--lr"),
        (
            vec!["--data", d, "--targets", "q,x"],
            "unknown --targets entry `x`",
        ),
        (
            vec!["--data", d, "--schedule", "step"],
            "unknown schedule `step`",
        ),
        (vec!["--data", d, "--max-seq", "1"], "--max-seq"),
        (vec!["--data", bad.to_str().unwrap()], "bad.jsonl:2"),
        (
            vec!["--data", "/nonexistent/train.jsonl"],
            "/nonexistent/train.jsonl",
        ),
        (vec!["--task", "squad"], "unknown task `squad`"),
    ];
    for (extra, needle) in cases {
        let mut args = vec!["tune", "--model", m, "--out", o];
        args.extend(extra);
        let output = run(&args, "");
        let message = stderr(&output);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {message}");
        assert!(!message.contains("panicked"), "{message}");
        assert!(message.contains(needle), "`{needle}` not in: {message}");
        assert!(!out.exists(), "{args:?} wrote an adapter");
    }
    let into_dir = run(
        &[
            "tune",
            "--model",
            m,
            "--data",
            d,
            "--out",
            dir.path().to_str().unwrap(),
        ],
        "",
    );
    assert!(
        stderr(&into_dir).contains("is a directory"),
        "{}",
        stderr(&into_dir)
    );
}
