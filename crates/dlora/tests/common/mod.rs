//! A tiny model, its data, and a cloud serving it on loopback from its own thread.
#![allow(dead_code)] // each test binary uses its own part

use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;

use candle_core::DType;
use pipespec_dlora::serve;
use pipespec_model::synthetic::SyntheticSpec;
use pipespec_model::tokenizer::Tokenizer;
use pipespec_model::{LoadOptions, Model};
use pipespec_tune::base::FrozenBase;
use pipespec_tune::data::{Dataset, Encoder};

pub fn model(spec: &SyntheticSpec, dir: &Path) -> (Arc<Model>, Tokenizer) {
    let path = dir.join(format!("model-{}.gguf", spec.seed));
    spec.write(&path).unwrap();
    let model = Model::load_with(&path, LoadOptions::selected().unwrap()).unwrap();
    let tokenizer = Tokenizer::from_gguf(model.file()).unwrap();
    (model, tokenizer)
}

/// Prompt/completion pairs on `tokenizer`.
pub fn data(tokenizer: &Tokenizer, count: usize) -> Dataset {
    let colours = ["red", "blue", "green", "gray", "pink", "black"];
    let pairs: Vec<(String, String)> = (0..count)
        .map(|i| {
            (
                format!("item {i} is"),
                format!(" {}", colours[i % colours.len()]),
            )
        })
        .collect();
    let encoder = Encoder {
        tokenizer,
        template: None,
        max_seq: 64,
    };
    encoder.pairs(&pairs).unwrap()
}

/// `pipespec tune-cloud` in process: serves until dropped.
pub struct TestCloud {
    pub address: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl TestCloud {
    pub fn start(model: &Model) -> TestCloud {
        let base = Arc::new(FrozenBase::load(model, DType::F32).unwrap());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                serve(base, listener, async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
            });
        });
        TestCloud {
            address,
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for TestCloud {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
