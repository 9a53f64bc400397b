//! `GET /v1/models`: the loaded chain's target, then each `--lora-modules` adapter on it.

use axum::extract::State;
use axum::Json;
use serde::Serialize;

use super::AppState;
use crate::response::ObjectKind;

/// The body of `/v1/models`.
#[derive(Debug, Serialize)]
pub struct ModelList {
    /// Always `list`.
    pub object: ObjectKind,
    pub data: Vec<ModelCard>,
}

/// One served model.
#[derive(Debug, Serialize)]
pub struct ModelCard {
    pub id: String,
    /// Always `model`.
    pub object: ObjectKind,
    /// Unix time the model was made; 0: unknown.
    pub created: u64,
    pub owned_by: &'static str,
}

pub async fn list(State(state): State<AppState>) -> Json<ModelList> {
    Json(ModelList {
        object: ObjectKind::List,
        data: state
            .engine
            .model_ids()
            .into_iter()
            .map(|id| ModelCard {
                id,
                object: ObjectKind::Model,
                created: 0,
                owned_by: "pipespec",
            })
            .collect(),
    })
}
