//! `GET /health`: up, with the slot and queue state.

use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use super::AppState;

pub async fn health(State(state): State<AppState>) -> Json<Value> {
    let metrics = &state.metrics;
    Json(json!({
        "status": "ok",
        "model": state.engine.model_id,
        "slots": metrics.slots.load(Ordering::Relaxed),
        "in_flight": metrics.in_flight.load(Ordering::Relaxed),
        "queue_depth": metrics.queue_depth.load(Ordering::Relaxed),
    }))
}
