//! `GET /health`: up, with the slot and queue state.

use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::Json;
use serde::Serialize;

use super::AppState;

/// The body of `/health`.
#[derive(Debug, Serialize)]
pub struct Health {
    /// Always `ok`: a server that answers is up.
    pub status: &'static str,
    pub model: String,
    pub slots: usize,
    pub in_flight: usize,
    pub queue_depth: usize,
}

pub async fn health(State(state): State<AppState>) -> Json<Health> {
    let metrics = &state.metrics;
    Json(Health {
        status: "ok",
        model: state.engine.model_id.clone(),
        slots: metrics.slots.load(Ordering::Relaxed),
        in_flight: metrics.in_flight.load(Ordering::Relaxed),
        queue_depth: metrics.queue_depth.load(Ordering::Relaxed),
    })
}
