//! `pipespec serve`: an OpenAI-compatible HTTP server (axum) over the decoding strategies, with a bounded queue, per-slot KV caches and Prometheus metrics.

pub mod admission;
pub mod config;
pub mod errors;
pub mod job;
pub mod metrics;
pub mod policy;
pub mod request;
pub mod response;
pub mod routes;
pub mod scheduler;
pub mod server;
pub mod sse;
pub mod state;
pub mod stop;
pub mod validate;
pub mod worker;

pub use config::ServerConfig;
pub use errors::{ApiError, ErrorKind};
pub use server::{run_until_signal, Ready, Server};
pub use state::Engine;
