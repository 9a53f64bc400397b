//! `POST /v1/completions`: text in, text out.

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
    generate(state, Endpoint::Completions, body, |request| {
        Ok(PromptInput::Text(validate::prompt(
            request.prompt.as_ref(),
        )?))
    })
    .await
}
