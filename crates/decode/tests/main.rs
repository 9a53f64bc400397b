//! The decode crate's integration tests, one binary: strategy exactness on seeded tiny models and on the real default model.

mod batching;
mod chain;
mod common;
mod first_token;
mod greedy;
mod lora;
mod pipeline;
mod real_model;
mod sampling;
