//! Streams a job's events as server-sent events in OpenAI's chunk format, ending with `data: [DONE]`.

use std::convert::Infallible;

use axum::response::sse::{Event as SseEvent, Sse};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::errors::ApiError;
use crate::job::Event;
use crate::response::ResponseMeta;

/// The SSE response. Dropping it (the client went away) drops `events`' receiver, which the
/// worker notices at its next token and cancels the generation.
pub fn stream(
    meta: ResponseMeta,
    include_usage: bool,
    mut events: mpsc::UnboundedReceiver<Event>,
) -> Response {
    let body = async_stream::stream! {
        let mut first = true;
        while let Some(event) = events.recv().await {
            match event {
                Event::Text(text) => {
                    yield Ok::<_, Infallible>(data(&meta.chunk(Some(&text), first, None)));
                    first = false;
                }
                Event::Done(summary) => {
                    yield Ok(data(&meta.chunk(None, first, Some(summary.finish_reason))));
                    if include_usage {
                        yield Ok(data(&meta.usage_chunk(&summary)));
                    }
                    break;
                }
                Event::Failed(error) => {
                    yield Ok(data(&error.body()));
                    break;
                }
            }
        }
        yield Ok(SseEvent::default().data("[DONE]"));
    };
    Sse::new(body).into_response()
}

/// One event holding `value` as JSON; a value that cannot be serialized becomes an error object.
fn data(value: &impl Serialize) -> SseEvent {
    let json = serde_json::to_string(value).or_else(|e| {
        serde_json::to_string(
            &ApiError::internal(format!("serializing a stream chunk: {e}")).body(),
        )
    });
    SseEvent::default().data(json.unwrap_or_default())
}
