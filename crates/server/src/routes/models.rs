//! `GET /v1/models`: the one model (the loaded chain's target) this server serves.

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use super::AppState;

pub async fn list(State(state): State<AppState>) -> Json<Value> {
    Json(json!({
        "object": "list",
        "data": [{
            "id": state.engine.model_id,
            "object": "model",
            "created": 0,
            "owned_by": "pipespec",
        }],
    }))
}
