//! The JSON bodies of `/v1/completions` and `/v1/chat/completions`, as sent; `validate` turns them into engine settings.

use serde::Deserialize;
use serde_json::Value;

/// Both endpoints' fields in one struct: each route requires its own (`prompt` or `messages`).
/// Fields whose shape varies (`prompt`, `messages`, `stop`) stay JSON values so that their
/// errors can name the field exactly. Unknown fields are ignored, as OpenAI clients send many.
#[derive(Debug, Default, Deserialize)]
pub struct GenerationRequest {
    pub model: Option<String>,
    pub prompt: Option<Value>,
    pub messages: Option<Value>,
    pub max_tokens: Option<i64>,
    pub max_completion_tokens: Option<i64>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    /// Extension: keep the k most likely tokens (0 keeps all).
    pub top_k: Option<i64>,
    pub seed: Option<i64>,
    pub stop: Option<Value>,
    pub n: Option<i64>,
    pub stream: Option<bool>,
    pub stream_options: Option<StreamOptions>,
    /// Extension: a strategy the loaded chain can run (`ar`, `sd`, `staged`, `lookup`, ...).
    pub strategy: Option<String>,
    /// Extension: tokens drafted per verification.
    pub window: Option<i64>,
    /// Extension: generate past end-of-generation tokens, to `max_tokens`.
    pub ignore_eos: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
pub struct StreamOptions {
    pub include_usage: Option<bool>,
}

/// Parses a body; a type error names the JSON path of the field at fault.
pub fn parse(body: &[u8]) -> Result<GenerationRequest, crate::errors::ApiError> {
    use crate::errors::{ApiError, ErrorKind};
    // serde reads a struct from an array too (its fields in order): refuse anything but an
    // object before it blames a field for an element.
    if let Some(first) = body.iter().find(|byte| !byte.is_ascii_whitespace()) {
        if *first != b'{' {
            return Err(ApiError::new(
                ErrorKind::InvalidRequest,
                "the body is not a valid JSON object: expected `{` at its start",
            )
            .with_code("invalid_json"));
        }
    }
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let request: GenerationRequest =
        serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
            let path = error.path().to_string();
            let inner = error.into_inner();
            if inner.is_syntax() || inner.is_eof() || path == "." {
                ApiError::new(
                    ErrorKind::InvalidRequest,
                    format!("the body is not a valid JSON object: {inner}"),
                )
                .with_code("invalid_json")
            } else {
                ApiError::new(
                    ErrorKind::InvalidRequest,
                    format!("invalid {path}: {inner}"),
                )
                .with_param(path)
                .with_code("invalid_type")
            }
        })?;
    deserializer.end().map_err(|e| {
        ApiError::new(
            ErrorKind::InvalidRequest,
            format!("the body is not a valid JSON object: {e}"),
        )
        .with_code("invalid_json")
    })?;
    Ok(request)
}
