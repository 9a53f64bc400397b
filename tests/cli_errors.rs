//! Bad input to the command line: each a clear error naming the problem, exit status 1, never a panic.

use crate::util::{run, stderr, tiny_model};

fn assert_clean_error(args: &[&str], stdin: &str, expected: &[&str]) {
    let output = run(args, stdin);
    let message = stderr(&output);
    assert_eq!(
        output.status.code(),
        Some(1),
        "expected a clean failure for {args:?}: {message}"
    );
    assert!(!message.contains("panicked"), "{message}");
    for needle in expected {
        assert!(message.contains(needle), "`{needle}` not in: {message}");
    }
}

#[test]
fn bad_models_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.gguf");
    assert_clean_error(
        &["generate", "--model", missing.to_str().unwrap(), "hi"],
        "",
        &["nope.gguf"],
    );
    let text = dir.path().join("text.gguf");
    std::fs::write(&text, "not a model at all").unwrap();
    assert_clean_error(
        &["generate", "--model", text.to_str().unwrap(), "hi"],
        "",
        &["not a GGUF"],
    );
    let good = tiny_model(dir.path(), 1);
    let bytes = std::fs::read(&good).unwrap();
    let truncated = dir.path().join("truncated.gguf");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    assert_clean_error(&["info", truncated.to_str().unwrap()], "", &["truncated"]);
}

#[test]
fn bad_prompts_and_parameters_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path(), 2);
    let model = model.to_str().unwrap();
    assert_clean_error(
        &["generate", "--model", model],
        "   \n",
        &["prompt is empty"],
    );
    assert_clean_error(
        &["generate", "--model", model, "--temperature", "-1", "hi"],
        "",
        &["temperature", "-1"],
    );
    assert_clean_error(
        &["generate", "--model", model, "--top-p", "1.5", "hi"],
        "",
        &["top_p", "1.5"],
    );
    assert_clean_error(
        &["generate", "--model", model, "--threads", "0", "hi"],
        "",
        &["--threads must be at least 1"],
    );
    let long = "word ".repeat(400);
    assert_clean_error(
        &[
            "generate",
            "--model",
            model,
            "--ctx-size",
            "64",
            "--raw",
            &long,
        ],
        "",
        &["context", "64"],
    );
}
