//! The server's integration tests, one binary: HTTP over loopback against tiny synthetic models, the real default model for greedy equality, and the official Python client.

mod api;
mod common;
mod concurrency;
mod errors;
mod openai_client;
mod real_model;
