//! The HTTP routes and the state they share.

pub mod chat;
pub mod completions;
pub mod generation;
pub mod health;
pub mod metrics;
pub mod models;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::config::ServerConfig;
use crate::errors::{ApiError, ErrorKind};
use crate::metrics::Metrics;
use crate::scheduler::Scheduler;
use crate::state::Engine;

/// What every handler sees.
#[derive(Clone)]
pub struct AppState {
    pub engine: Arc<Engine>,
    pub scheduler: Arc<Scheduler>,
    pub metrics: Arc<Metrics>,
    pub config: Arc<ServerConfig>,
}

/// The paths counted in `/metrics` by name; anything else is counted as `other`.
const ENDPOINTS: [&str; 5] = [
    "/v1/models",
    "/v1/completions",
    "/v1/chat/completions",
    "/health",
    "/metrics",
];

pub fn router(state: AppState) -> Router {
    let limit = state.config.max_body_bytes;
    Router::new()
        .route("/v1/models", get(models::list))
        .route("/v1/completions", post(completions::create))
        .route("/v1/chat/completions", post(chat::create))
        .route("/health", get(health::health))
        .route("/metrics", get(metrics::metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            count_response,
        ))
        .with_state(state)
}

async fn count_response(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_string();
    let endpoint = ENDPOINTS
        .iter()
        .find(|known| **known == path)
        .copied()
        .unwrap_or("other");
    let response = next.run(request).await;
    state
        .metrics
        .record_response(endpoint, response.status().as_u16());
    response
}

async fn not_found(request: Request) -> Response {
    ApiError::new(
        ErrorKind::NotFound,
        format!("no route {} {}", request.method(), request.uri().path()),
    )
    .with_code("unknown_url")
    .into_response()
}

async fn method_not_allowed(request: Request) -> Response {
    ApiError::new(
        ErrorKind::InvalidRequest,
        format!(
            "method {} is not allowed on {}",
            request.method(),
            request.uri().path()
        ),
    )
    .with_code("method_not_allowed")
    .into_response()
}
