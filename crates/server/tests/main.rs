//! The server's integration tests, one binary: HTTP over loopback against tiny synthetic models, the real default model for greedy equality, the official Python client, and the wire formats.

mod api;
mod batching;
mod common;
mod concurrency;
mod errors;
mod openai_client;
mod policy;
mod real_model;
mod wire;
