//! `GET /health`: up, with the slot and queue state.

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
    pub slots: u64,
    pub in_flight: u64,
    pub queue_depth: u64,
}

pub async fn health(State(state): State<AppState>) -> Json<Health> {
    let metrics = &state.metrics;
    Json(Health {
        status: "ok",
        model: state.engine.model_id.clone(),
        slots: metrics.slots.get(),
        in_flight: metrics.in_flight.get(),
        queue_depth: metrics.queue_depth.get(),
    })
}
