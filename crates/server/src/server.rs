//! Starting the scheduler and the batch engine, binding the port, serving until a shutdown signal, and draining.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::config::{ServerConfig, DEFAULT_KV_CONTEXTS};
use crate::errors::ApiError;
use crate::metrics::Metrics;
use crate::routes::{router, AppState};
use crate::scheduler::{Limits, Scheduler};
use crate::state::Engine;

/// What the server reports once it listens.
#[derive(Debug, Clone)]
pub struct Ready {
    pub address: SocketAddr,
    /// Requests decoded at once at most.
    pub slots: usize,
    pub queue_capacity: usize,
    /// KV positions all running requests may hold together, and their bytes (every level).
    pub kv_positions: usize,
    pub kv_bytes: usize,
    pub context_size: usize,
}

/// A server with its scheduler started and its port bound.
pub struct Server {
    listener: tokio::net::TcpListener,
    state: AppState,
    ready: Ready,
}

impl Server {
    /// Starts the scheduler, then binds `config.address`: the port opens only once the
    /// server can answer.
    pub async fn bind(engine: Engine, config: ServerConfig) -> Result<Server, ApiError> {
        let engine = Arc::new(engine);
        let metrics = Arc::new(Metrics::default());
        let context_size = engine.chain.capacity();
        let limits = Limits {
            max_concurrent: config.max_concurrent.max(1),
            queue_capacity: config.queue_capacity,
            kv_positions: config
                .kv_positions
                .unwrap_or(DEFAULT_KV_CONTEXTS * context_size),
            batch: config.batch,
        };
        let scheduler = Scheduler::start(engine.clone(), limits, metrics.clone())?;
        let listener = tokio::net::TcpListener::bind(config.address)
            .await
            .map_err(|e| ApiError::internal(format!("binding {}: {e}", config.address)))?;
        let address = listener
            .local_addr()
            .map_err(|e| ApiError::internal(format!("reading the bound address: {e}")))?;
        let ready = Ready {
            address,
            slots: limits.max_concurrent,
            queue_capacity: limits.queue_capacity,
            kv_positions: limits.kv_positions,
            kv_bytes: engine.chain.cache_bytes_at(limits.kv_positions),
            context_size,
        };
        let state = AppState {
            engine,
            scheduler: Arc::new(scheduler),
            metrics,
            config: Arc::new(config),
        };
        Ok(Server {
            listener,
            state,
            ready,
        })
    }

    pub fn ready(&self) -> &Ready {
        &self.ready
    }

    /// Serves until `shutdown` completes, then waits for in-flight requests (streams included)
    /// and lets the workers finish before returning.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ApiError> {
        let scheduler = self.state.scheduler.clone();
        let app = router(self.state);
        let result = axum::serve(self.listener, app)
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(|e| ApiError::internal(format!("serving: {e}")));
        tokio::task::spawn_blocking(move || scheduler.shutdown())
            .await
            .map_err(|e| ApiError::internal(format!("stopping the workers: {e}")))?;
        result
    }
}

/// Completes on Ctrl-C (SIGINT) or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {},
        _ = terminate => {},
    }
}

/// Runs the server on its own runtime until SIGINT/SIGTERM, draining in-flight requests.
/// `on_ready` sees the bound address and KV budget once the port is open.
pub fn run_until_signal(
    engine: Engine,
    config: ServerConfig,
    on_ready: impl FnOnce(&Ready),
) -> Result<(), ApiError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("pipespec-http")
        .build()
        .map_err(|e| ApiError::internal(format!("starting the async runtime: {e}")))?;
    runtime.block_on(async move {
        let server = Server::bind(engine, config).await?;
        on_ready(server.ready());
        server.serve(shutdown_signal()).await
    })
}
