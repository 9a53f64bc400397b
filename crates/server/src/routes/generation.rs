//! What both generation endpoints do: parse and validate, tokenize off the runtime, queue the job, then answer whole or as a stream.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use pipespec_decode::GenerationConfig;
use pipespec_model::chat::ChatMessage;
use tokio::sync::mpsc;

use super::AppState;
use crate::errors::{ApiError, ErrorKind};
use crate::job::{Event, Job};
use crate::request::{self, GenerationRequest};
use crate::response::{Endpoint, ResponseMeta};
use crate::{sse, validate};

/// The prompt as the endpoint takes it.
pub enum PromptInput {
    Text(String),
    Chat(Vec<ChatMessage>),
}

/// Numbers response ids.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

pub async fn generate(
    state: AppState,
    endpoint: Endpoint,
    body: Result<Bytes, BytesRejection>,
    prompt: impl FnOnce(&GenerationRequest) -> Result<PromptInput, ApiError>,
) -> Result<Response, ApiError> {
    let arrived = Instant::now();
    let body = body.map_err(|rejection| body_error(rejection, state.config.max_body_bytes))?;
    let request = request::parse(&body)?;
    let engine = state.engine.clone();
    let (model_id, adapter) = engine.resolve_model(request.model.as_deref())?;
    let params = validate::params(&request, &state.config, engine.chain.capacity())?;
    engine.check_strategy(params.strategy)?;
    let input = prompt(&request)?;
    let tokenizing = engine.clone();
    let ids = tokio::task::spawn_blocking(move || match input {
        PromptInput::Text(text) => tokenizing.encode_text(&text),
        PromptInput::Chat(messages) => tokenizing.encode_chat(&messages),
    })
    .await
    .map_err(|e| ApiError::internal(format!("tokenizing task failed: {e}")))??;
    validate::prompt_fits(endpoint.prompt_field(), ids.len(), engine.chain.capacity())?;

    let (sender, mut events) = mpsc::unbounded_channel();
    let stop_ids = engine.tokenizer.end_of_generation_ids().to_vec();
    state.scheduler.submit(Job {
        prompt: ids,
        config: GenerationConfig {
            max_tokens: params.max_tokens,
            sampling: params.sampling,
            seed: params.seed,
            stop_ids,
            ignore_eos: params.ignore_eos,
        },
        strategy: params.strategy,
        policy_may_choose: params.policy_may_choose,
        speculation: params.speculation,
        stop: params.stop,
        arrived,
        events: sender,
        adapter,
    })?;
    let meta = ResponseMeta {
        endpoint,
        id: format!(
            "{}-{}",
            match endpoint {
                Endpoint::Completions => "cmpl",
                Endpoint::Chat => "chatcmpl",
            },
            NEXT_ID.fetch_add(1, Ordering::Relaxed)
        ),
        created: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        model: model_id,
    };
    if params.stream {
        return Ok(sse::stream(meta, params.include_usage, events));
    }
    let mut text = String::new();
    while let Some(event) = events.recv().await {
        match event {
            Event::Text(piece) => text.push_str(&piece),
            Event::Done(summary) => {
                return Ok((StatusCode::OK, Json(meta.completion(&text, &summary))).into_response())
            }
            Event::Failed(error) => return Err(error),
        }
    }
    Err(ApiError::internal("the generation ended without a result"))
}

/// A body that could not be read: over the limit (413) or broken.
fn body_error(rejection: BytesRejection, limit: usize) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            ErrorKind::PayloadTooLarge,
            format!("invalid body: expected at most {limit} bytes, got more"),
        )
        .with_code("body_too_large")
    } else {
        ApiError::new(
            ErrorKind::InvalidRequest,
            format!("invalid body: {}", rejection.body_text()),
        )
    }
}
