//! The server's settings, resolved from flags before anything is loaded.

use std::net::SocketAddr;

use pipespec_decode::Strategy;

use pipespec_decode::BatchConfig;

/// Default size of the queue of requests waiting for admission.
pub const DEFAULT_QUEUE: usize = 64;

/// Full contexts the default KV budget holds.
pub const DEFAULT_KV_CONTEXTS: usize = 4;

/// Largest request body accepted.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1 << 20;

/// Tokens generated when a request gives no `max_tokens`.
pub const DEFAULT_MAX_TOKENS: usize = 256;

/// Most stop sequences per request (OpenAI's limit).
pub const MAX_STOP_SEQUENCES: usize = 4;

/// How the server listens and schedules.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub address: SocketAddr,
    /// Generations in flight at once, their passes batched together.
    pub max_concurrent: usize,
    /// Requests waiting for admission beyond those in flight; more are refused with 429.
    pub queue_capacity: usize,
    /// KV positions the running requests may hold together; None: `DEFAULT_KV_CONTEXTS` times
    /// the context size.
    pub kv_positions: Option<usize>,
    /// How the batch engine forms its steps.
    pub batch: BatchConfig,
    pub max_body_bytes: usize,
    /// The strategy and window used when a request names none.
    pub default_strategy: Strategy,
    pub default_window: usize,
}

impl ServerConfig {
    pub fn new(address: SocketAddr, default_strategy: Strategy, default_window: usize) -> Self {
        ServerConfig {
            address,
            max_concurrent: 1,
            queue_capacity: DEFAULT_QUEUE,
            kv_positions: None,
            batch: BatchConfig::default(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            default_strategy,
            default_window,
        }
    }
}
