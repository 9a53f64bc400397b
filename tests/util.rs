//! Helpers shared by the integration tests: running the binary, synthetic models, the default model's path.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use pipespec_model::synthetic::SyntheticSpec;

/// Runs `pipespec ARGS` with `stdin` and returns its output.
pub fn run(args: &[&str], stdin: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_pipespec"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the pipespec binary runs");
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(stdin.as_bytes())
        .expect("stdin accepts the prompt");
    child.wait_with_output().expect("pipespec finishes")
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Writes a tiny random model with a byte tokenizer and a ChatML template.
pub fn tiny_model(dir: &Path, seed: u64) -> PathBuf {
    let path = dir.join(format!("tiny-{seed}.gguf"));
    SyntheticSpec::tiny(seed)
        .write(&path)
        .expect("the synthetic model is written");
    path
}

/// The default model, which `scripts/test.sh` fetches before the tests run.
pub use pipespec_model::test_support::default_model;

/// Parses the single JSON object that `generate --json` prints.
pub fn json(output: &Output) -> serde_json::Value {
    assert!(
        output.status.success(),
        "pipespec failed: {}",
        stderr(output)
    );
    serde_json::from_str(&stdout(output))
        .unwrap_or_else(|e| panic!("stdout is one JSON object ({e}): {}", stdout(output)))
}

/// The keys of a JSON object, sorted; a test that compares them checks the whole schema.
pub fn keys(value: &serde_json::Value) -> Vec<&str> {
    let object = value
        .as_object()
        .unwrap_or_else(|| panic!("not a JSON object: {value}"));
    let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
    keys.sort_unstable();
    keys
}
