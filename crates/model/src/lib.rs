//! GGUF reading, the llama-family forward pass, the KV cache, the tokenizer and the chat template.

mod attention;
pub mod batch;
pub mod cache;
pub mod chat;
pub mod config;
pub mod convert;
pub mod error;
mod forward;
pub mod gguf;
pub mod gguf_writer;
pub mod kernels;
pub mod layout;
pub mod lora;
pub mod matrices;
pub mod model;
pub mod ops;
pub mod quantize;
pub mod rope;
pub mod session;
#[cfg(feature = "test-support")]
pub mod synthetic;
#[cfg(feature = "test-support")]
pub mod test_support;
pub mod tokenizer;
pub mod weights;

pub use batch::{Batch, BatchItem};
pub use error::{ModelError, Result};
pub use lora::{AdapterScale, LoraAdapter, LoraStack};
pub use model::{peak_resident_bytes, resident_bytes, LoadReport, Model};
pub use session::Session;
pub use weights::LoadOptions;
