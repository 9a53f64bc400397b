//! A server on a loopback port over a synthetic model, and the library's own output to compare with.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use pipespec_decode::{ChainBuilder, Cores, LevelSpec};
use pipespec_decode::{
    GenerationConfig, Level, ModelLevel, SamplingParams, SpeculationConfig, Strategy,
};
use pipespec_model::chat::{ChatMessage, ChatTemplate};
use pipespec_model::synthetic::SyntheticSpec;
use pipespec_model::tokenizer::Tokenizer;
use pipespec_model::{Model, Session};
use pipespec_server::{Engine, Server, ServerConfig};
use serde_json::Value;
use tokio::sync::oneshot;

/// A running server; dropping it shuts the server down and waits for it.
pub struct TestServer {
    pub address: SocketAddr,
    pub model: Arc<Model>,
    pub tokenizer: Arc<Tokenizer>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    _dir: Option<tempfile::TempDir>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

pub fn pool() -> Arc<rayon::ThreadPool> {
    Arc::new(
        rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap(),
    )
}

/// A server over a tiny synthetic model (byte tokenizer, ChatML template).
pub fn synthetic(max_concurrent: usize, queue: usize) -> TestServer {
    from_spec(&SyntheticSpec::tiny(7), 256, max_concurrent, queue)
}

/// A server over the tiny model with its output head scaled by 1e-4: every next token is all
/// but uniform over the 320 ids, so sampled texts differ unless their seeds are equal.
pub fn flat_synthetic() -> TestServer {
    let mut spec = SyntheticSpec::tiny(7);
    spec.logit_scale = 1e-4;
    from_spec(&spec, 256, 1, 8)
}

/// A server over a wider synthetic model (about a millisecond a token), for tests whose first
/// request must still be running when the next ones arrive.
pub fn slow_synthetic(max_concurrent: usize, queue: usize) -> TestServer {
    let mut spec = SyntheticSpec::tiny(8);
    spec.hidden_size = 512;
    spec.intermediate_size = 1536;
    spec.head_count = 8;
    spec.kv_head_count = 4;
    spec.layer_count = 6;
    spec.context_length = 512;
    from_spec(&spec, 512, max_concurrent, queue)
}

/// A server over the model `spec` describes, written to a temporary file.
fn from_spec(
    spec: &SyntheticSpec,
    capacity: usize,
    max_concurrent: usize,
    queue: usize,
) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("synthetic.gguf");
    spec.write(&path).unwrap();
    let mut server = start(&path, capacity, max_concurrent, queue);
    server._dir = Some(dir);
    server
}

/// A server over the tiny synthetic model with its settings changed by `configure`.
pub fn synthetic_with(configure: impl FnOnce(&mut ServerConfig)) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("synthetic.gguf");
    SyntheticSpec::tiny(7).write(&path).unwrap();
    let mut server = start_with(&path, 256, configure);
    server._dir = Some(dir);
    server
}

/// A server over the model at `path`, `capacity` positions per request at most.
pub fn start(path: &Path, capacity: usize, max_concurrent: usize, queue: usize) -> TestServer {
    start_with(path, capacity, |config| {
        config.max_concurrent = max_concurrent;
        config.queue_capacity = queue;
    })
}

/// `start` with the settings `configure` gives.
pub fn start_with(
    path: &Path,
    capacity: usize,
    configure: impl FnOnce(&mut ServerConfig),
) -> TestServer {
    let model = Model::load(path).unwrap();
    let tokenizer = Arc::new(Tokenizer::from_gguf(model.file()).unwrap());
    let chain = ChainBuilder::new(
        vec![LevelSpec::model("target", model.clone())],
        capacity,
        Cores::Shared(pool()),
    )
    .unwrap();
    let engine = Engine::new("test-model".into(), chain, tokenizer.clone()).unwrap();
    let mut config = ServerConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        Strategy::Ar,
        pipespec_decode::DEFAULT_WINDOW,
    );
    configure(&mut config);
    let (address_tx, address_rx) = std::sync::mpsc::channel();
    let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let server = Server::bind(engine, config).await.unwrap();
            address_tx.send(server.ready().address).unwrap();
            server
                .serve(async move {
                    let _ = shutdown_rx.await;
                })
                .await
                .unwrap();
        });
    });
    let address = address_rx.recv().unwrap();
    TestServer {
        address,
        model,
        tokenizer,
        shutdown: Some(shutdown_tx),
        thread: Some(thread),
        _dir: None,
    }
}

impl TestServer {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// POSTs JSON; returns the status and the parsed body, for errors too.
    pub fn post(&self, path: &str, body: &str) -> (u16, Value) {
        let result = ureq::post(&self.url(path))
            .set("Content-Type", "application/json")
            .send_string(body);
        let response = match result {
            Ok(response) => response,
            Err(ureq::Error::Status(_, response)) => response,
            Err(error) => panic!("request failed: {error}"),
        };
        let status = response.status();
        let text = response.into_string().unwrap();
        let value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("status {status}: body is not JSON ({e}): {text}"));
        (status, value)
    }

    /// Opens a stream; the reader yields SSE lines.
    pub fn open_stream(&self, path: &str, body: &str) -> BufReader<Box<dyn Read + Send + Sync>> {
        let response = ureq::post(&self.url(path))
            .set("Content-Type", "application/json")
            .send_string(body)
            .unwrap();
        assert_eq!(response.header("content-type"), Some("text/event-stream"));
        BufReader::new(response.into_reader())
    }

    /// The `data:` payloads of a whole stream, `[DONE]` included.
    pub fn stream(&self, path: &str, body: &str) -> Vec<String> {
        read_events(self.open_stream(path, body))
    }

    /// What the library generates greedily for `prompt` (ids), decoded.
    pub fn expected(&self, prompt: &[u32], max_tokens: usize, capacity: usize) -> String {
        let session = Session::new(self.model.clone(), capacity, pool());
        let mut chain: Vec<Box<dyn Level>> = vec![Box::new(ModelLevel::new("target", session))];
        let config = GenerationConfig {
            max_tokens,
            sampling: SamplingParams::greedy(),
            seed: 0,
            stop_ids: self.tokenizer.end_of_generation_ids().to_vec(),
            ignore_eos: false,
        };
        let output = Strategy::Ar
            .generate(
                &mut chain,
                prompt,
                &config,
                &SpeculationConfig::default(),
                &mut |_| true,
            )
            .unwrap();
        self.tokenizer
            .decode(&output.generation.tokens, false)
            .unwrap()
    }

    /// The ids of a one-turn chat, rendered as the server renders it.
    pub fn chat_ids(&self, user: &str) -> Vec<u32> {
        let source = self
            .model
            .file()
            .get_str("tokenizer.chat_template")
            .unwrap();
        let template = ChatTemplate::new(
            source,
            self.tokenizer.bos_token_text(),
            self.tokenizer.eos_token_text(),
        )
        .unwrap();
        let text = template
            .apply(&[ChatMessage::new("user", user)], true)
            .unwrap();
        self.tokenizer.encode(&text, false).unwrap()
    }
}

pub fn read_events(reader: impl BufRead) -> Vec<String> {
    reader
        .lines()
        .map_while(Result::ok)
        .filter_map(|line| line.strip_prefix("data: ").map(str::to_string))
        .collect()
}

/// The text of a stream's chunks (completion `text` or chat `delta.content`).
pub fn stream_text(events: &[String]) -> String {
    let mut text = String::new();
    for event in events.iter().filter(|e| *e != "[DONE]") {
        let value: Value = serde_json::from_str(event).unwrap();
        if let Some(choice) = value["choices"].get(0) {
            if let Some(piece) = choice["text"].as_str() {
                text.push_str(piece);
            }
            if let Some(piece) = choice["delta"]["content"].as_str() {
                text.push_str(piece);
            }
        }
    }
    text
}
