//! `pipespec serve` as a user runs it: the binary on an ephemeral port, answering like `pipespec generate`.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use crate::util::{json, run, tiny_model};

/// The server process, killed when dropped.
struct Server {
    child: Child,
    address: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(model: &str) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pipespec"))
        .args([
            "serve",
            "--model",
            model,
            "--port",
            "0",
            "--threads",
            "1",
            "--max-concurrent",
            "2",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("pipespec serve starts");
    let stderr = child.stderr.take().expect("stderr is piped");
    let mut lines = BufReader::new(stderr).lines();
    let address = loop {
        let line = lines
            .next()
            .expect("the server announces its address")
            .expect("stderr is text");
        if let Some(rest) = line.split("on http://").nth(1) {
            break rest
                .split_whitespace()
                .next()
                .expect("an address follows")
                .to_string();
        }
    };
    // Keep draining stderr so the server never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    Server { child, address }
}

#[test]
fn the_server_answers_exactly_like_generate() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path(), 11);
    let model = model.to_str().unwrap();
    let server = start(model);
    for prompt in ["hello there", "tell me about the sea"] {
        let expected = json(&run(
            &[
                "generate",
                "--model",
                model,
                "--max-tokens",
                "12",
                "--ignore-eos",
                "--json",
                prompt,
            ],
            "",
        ));
        let reply: serde_json::Value =
            ureq::post(&format!("http://{}/v1/chat/completions", server.address))
                .send_json(serde_json::json!({
                    "messages": [{"role": "user", "content": prompt}],
                    "max_tokens": 12,
                    "temperature": 0,
                    "ignore_eos": true,
                }))
                .expect("the request succeeds")
                .into_json()
                .expect("the reply is JSON");
        assert_eq!(
            reply["choices"][0]["message"]["content"], expected["text"],
            "{reply}"
        );
        assert_eq!(
            reply["choices"][0]["finish_reason"], expected["finish_reason"],
            "{reply}"
        );
        assert_eq!(reply["usage"]["completion_tokens"], 12);
        assert_eq!(reply["usage"]["prompt_tokens"], expected["prompt_tokens"]);
    }
    let health = ureq::get(&format!("http://{}/health", server.address))
        .call()
        .expect("health answers");
    assert_eq!(health.status(), 200);
}
