//! `POST /v1/chat/completions`: a conversation rendered with the model's own chat template.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::response::Response;

use super::generation::{generate, PromptInput};
use super::AppState;
use crate::errors::ApiError;
use crate::response::Endpoint;
use crate::validate;

pub async fn create(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    generate(state, Endpoint::Chat, body, |request| {
        Ok(PromptInput::Chat(validate::messages(
            request.messages.as_ref(),
        )?))
    })
    .await
}
