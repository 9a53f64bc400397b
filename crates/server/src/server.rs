//! Starting the slots, binding the port, serving until a shutdown signal, and draining.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::config::ServerConfig;
use crate::errors::ApiError;
use crate::metrics::Metrics;
use crate::routes::{router, AppState};
use crate::scheduler::Scheduler;
use crate::state::Engine;

/// What the server reports once it listens.
#[derive(Debug, Clone)]
pub struct Ready {
    pub address: SocketAddr,
    pub slots: usize,
    pub queue_capacity: usize,
    /// KV cache bytes of one slot (every level, at the context size).
    pub slot_cache_bytes: usize,
    pub context_size: usize,
}

/// A server with its slots started and its port bound.
pub struct Server {
    listener: tokio::net::TcpListener,
    state: AppState,
    ready: Ready,
}

impl Server {
    /// Builds the slots (their KV caches), then binds `config.address`: the port opens only
    /// once the server can answer.
    pub async fn bind(engine: Engine, config: ServerConfig) -> Result<Server, ApiError> {
        let engine = Arc::new(engine);
        let metrics = Arc::new(Metrics::default());
        let scheduler = Scheduler::start(
            engine.clone(),
            config.max_concurrent,
            config.queue_capacity,
            metrics.clone(),
        )?;
        let listener = tokio::net::TcpListener::bind(config.address)
            .await
            .map_err(|e| ApiError::internal(format!("binding {}: {e}", config.address)))?;
        let address = listener
            .local_addr()
            .map_err(|e| ApiError::internal(format!("reading the bound address: {e}")))?;
        let ready = Ready {
            address,
            slots: config.max_concurrent.max(1),
            queue_capacity: config.queue_capacity,
            slot_cache_bytes: metrics.slot_cache_bytes.get() as usize,
            context_size: engine.chain.capacity(),
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
    /// and lets the slot workers finish before returning.
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
            .map_err(|e| ApiError::internal(format!("stopping the slots: {e}")))?;
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
/// `on_ready` sees the bound address and slot memory once the port is open.
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
