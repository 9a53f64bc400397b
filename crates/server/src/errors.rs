//! The server's error kinds and the one place that maps each to an HTTP status and an OpenAI-style error object.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

/// What went wrong, as far as the client needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Malformed JSON, a wrong type, a value out of range, a prompt over the context.
    InvalidRequest,
    /// The model named in the request is not the one loaded.
    ModelNotFound,
    /// An unknown route.
    NotFound,
    /// The request body is over the limit.
    PayloadTooLarge,
    /// The queue of waiting requests is full.
    Overloaded,
    /// The server is draining for shutdown.
    Unavailable,
    /// A bug or a model failure: not the client's fault.
    Internal,
}

/// An error as returned to the client: `{"error": {"message", "type", "param", "code"}}`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub kind: ErrorKind,
    pub message: String,
    /// The request field at fault, when there is one.
    pub param: Option<String>,
    pub code: Option<&'static str>,
}

impl ApiError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> ApiError {
        ApiError {
            kind,
            message: message.into(),
            param: None,
            code: None,
        }
    }

    /// A field outside its bounds: the message names the field, the bounds and the value.
    pub fn invalid_value(param: &str, bounds: &str, value: impl std::fmt::Display) -> ApiError {
        ApiError {
            kind: ErrorKind::InvalidRequest,
            message: format!("invalid {param}: expected {bounds}, got {value}"),
            param: Some(param.to_string()),
            code: Some("invalid_value"),
        }
    }

    pub fn with_param(mut self, param: impl Into<String>) -> ApiError {
        self.param = Some(param.into());
        self
    }

    pub fn with_code(mut self, code: &'static str) -> ApiError {
        self.code = Some(code);
        self
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorKind::Internal, message)
    }

    pub fn status(&self) -> StatusCode {
        match self.kind {
            ErrorKind::InvalidRequest => StatusCode::BAD_REQUEST,
            ErrorKind::ModelNotFound | ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::Overloaded => StatusCode::TOO_MANY_REQUESTS,
            ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// OpenAI's `type` field.
    pub fn type_name(&self) -> &'static str {
        match self.kind {
            ErrorKind::InvalidRequest
            | ErrorKind::ModelNotFound
            | ErrorKind::NotFound
            | ErrorKind::PayloadTooLarge => "invalid_request_error",
            ErrorKind::Overloaded => "rate_limit_error",
            ErrorKind::Unavailable | ErrorKind::Internal => "server_error",
        }
    }

    /// The JSON error object, also sent as a final SSE event when a stream fails midway.
    pub fn body(&self) -> ErrorBody<'_> {
        ErrorBody {
            error: ErrorObject {
                message: &self.message,
                kind: self.type_name(),
                param: self.param.as_deref(),
                code: self.code,
            },
        }
    }
}

/// The body of an error response: `{"error": {...}}`.
#[derive(Debug, Serialize)]
pub struct ErrorBody<'a> {
    pub error: ErrorObject<'a>,
}

/// OpenAI's error object; `param` and `code` are null when they do not apply.
#[derive(Debug, Serialize)]
pub struct ErrorObject<'a> {
    pub message: &'a str,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub param: Option<&'a str>,
    pub code: Option<&'static str>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status(), Json(self.body())).into_response()
    }
}

impl From<pipespec_decode::DecodeError> for ApiError {
    fn from(error: pipespec_decode::DecodeError) -> ApiError {
        use pipespec_decode::DecodeError;
        match error {
            DecodeError::InvalidParameter {
                name,
                bounds,
                value,
            } => ApiError::invalid_value(name, bounds, value),
            DecodeError::EmptyPrompt => {
                ApiError::new(ErrorKind::InvalidRequest, error.to_string()).with_param("prompt")
            }
            DecodeError::PromptTooLong { .. } => {
                ApiError::new(ErrorKind::InvalidRequest, error.to_string())
                    .with_param("prompt")
                    .with_code("context_length_exceeded")
            }
            DecodeError::Model(_) | DecodeError::ThreadPool { .. } | DecodeError::Batch(_) => {
                ApiError::internal(error.to_string())
            }
        }
    }
}
