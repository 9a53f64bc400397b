//! The official `openai` Python package against the server: one streamed and one whole chat completion.

use std::process::Command;

use crate::common;

#[test]
fn the_official_python_client_works() {
    let server = common::synthetic(2, 8);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/openai_client.py");
    let output = Command::new("python3")
        .arg(script)
        .arg(format!("http://{}/v1", server.address))
        .output()
        .expect("running python3 (the tests need python3 with the openai package)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "openai client failed (install it with: python3 -m pip install 'openai>=1,<3')\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stdout.contains("whole ok") && stdout.contains("stream ok"),
        "{stdout}"
    );
}
