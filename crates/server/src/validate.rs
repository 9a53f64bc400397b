//! Checks each field of a request against its bounds; every error names the field, the bounds and the value given.

use pipespec_decode::{SamplingParams, SpeculationConfig, Strategy};
use pipespec_model::chat::ChatMessage;
use serde_json::Value;

use crate::config::{ServerConfig, DEFAULT_MAX_TOKENS, MAX_STOP_SEQUENCES};
use crate::errors::{ApiError, ErrorKind};
use crate::request::GenerationRequest;

/// A request's settings once every field is in range.
#[derive(Debug, Clone)]
pub struct Params {
    pub max_tokens: usize,
    pub sampling: SamplingParams,
    /// The request's seed, or a random one when it gave none.
    pub seed: u64,
    pub stop: Vec<String>,
    pub strategy: Strategy,
    /// Whether the batching policy may pick the strategy and window: the request named no
    /// strategy, and its text does not depend on that choice (greedy) or it gave no seed to
    /// reproduce (a seeded sampled text follows its strategy's draws).
    pub policy_may_choose: bool,
    pub speculation: SpeculationConfig,
    pub stream: bool,
    pub include_usage: bool,
    pub ignore_eos: bool,
}

/// Validates the fields both endpoints share. `capacity` is the KV cache size: no request may
/// ask for more tokens than it holds.
pub fn params(
    request: &GenerationRequest,
    config: &ServerConfig,
    capacity: usize,
) -> Result<Params, ApiError> {
    if let Some(n) = request.n {
        if n != 1 {
            return Err(ApiError::invalid_value(
                "n",
                "1 (one choice per request)",
                n,
            ));
        }
    }
    let (name, max_tokens) = match (request.max_completion_tokens, request.max_tokens) {
        (Some(value), _) => ("max_completion_tokens", Some(value)),
        (None, value) => ("max_tokens", value),
    };
    let max_tokens = match max_tokens {
        None => DEFAULT_MAX_TOKENS.min(capacity),
        Some(value) if value >= 1 && value as u64 <= capacity as u64 => value as usize,
        Some(value) => {
            return Err(ApiError::invalid_value(
                name,
                &format!("an integer in 1..={capacity} (the context size)"),
                value,
            ))
        }
    };
    let temperature = request.temperature.unwrap_or(1.0);
    if !(0.0..=2.0).contains(&temperature) {
        return Err(ApiError::invalid_value(
            "temperature",
            "a number in [0, 2] (0 = greedy)",
            temperature,
        ));
    }
    let top_p = request.top_p.unwrap_or(1.0);
    if !(top_p > 0.0 && top_p <= 1.0) {
        return Err(ApiError::invalid_value(
            "top_p",
            "a number in (0, 1]",
            top_p,
        ));
    }
    let top_k = match request.top_k {
        None => 0,
        Some(k) if k >= 0 => k as usize,
        Some(k) => return Err(ApiError::invalid_value("top_k", "an integer >= 0", k)),
    };
    let seed = match request.seed {
        // As OpenAI's API does: without a seed, every sampled request draws afresh.
        None => rand::random::<u64>(),
        Some(seed) if seed >= 0 => seed as u64,
        Some(seed) => return Err(ApiError::invalid_value("seed", "an integer >= 0", seed)),
    };
    let sampling = SamplingParams {
        temperature: temperature as f32,
        top_k,
        top_p: top_p as f32,
    };
    sampling.validate()?;
    let strategy = match &request.strategy {
        None => config.default_strategy,
        Some(name) => name.parse::<Strategy>()?,
    };
    let window = match request.window {
        None => config.default_window,
        Some(window) if (1..=pipespec_decode::speculation::MAX_WINDOW as i64).contains(&window) => {
            window as usize
        }
        Some(window) => {
            return Err(ApiError::invalid_value(
                "window",
                &format!(
                    "an integer in 1..={}",
                    pipespec_decode::speculation::MAX_WINDOW
                ),
                window,
            ))
        }
    };
    let speculation = SpeculationConfig::with_window(window);
    speculation.validate()?;
    Ok(Params {
        max_tokens,
        sampling,
        seed,
        stop: stop_sequences(request.stop.as_ref())?,
        strategy,
        policy_may_choose: request.strategy.is_none()
            && (sampling.is_greedy() || request.seed.is_none()),
        speculation,
        stream: request.stream.unwrap_or(false),
        include_usage: request
            .stream_options
            .as_ref()
            .and_then(|options| options.include_usage)
            .unwrap_or(false),
        ignore_eos: request.ignore_eos.unwrap_or(false),
    })
}

/// `stop`: absent, null, a string, or an array of up to 4 non-empty strings.
fn stop_sequences(stop: Option<&Value>) -> Result<Vec<String>, ApiError> {
    let bounds = "a non-empty string or an array of at most 4 non-empty strings";
    let stops = match stop {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(text)) => vec![text.clone()],
        Some(Value::Array(items)) => {
            if items.len() > MAX_STOP_SEQUENCES {
                return Err(ApiError::invalid_value(
                    "stop",
                    bounds,
                    format!("an array of {}", items.len()),
                ));
            }
            items
                .iter()
                .map(|item| match item {
                    Value::String(text) => Ok(text.clone()),
                    other => Err(ApiError::invalid_value("stop", bounds, other)),
                })
                .collect::<Result<_, _>>()?
        }
        Some(other) => return Err(ApiError::invalid_value("stop", bounds, other)),
    };
    if stops.iter().any(String::is_empty) {
        return Err(ApiError::invalid_value("stop", bounds, "an empty string"));
    }
    Ok(stops)
}

/// `prompt`: a string, or an array holding one string.
pub fn prompt(prompt: Option<&Value>) -> Result<String, ApiError> {
    let bounds = "a non-empty string (or an array of one string)";
    let text = match prompt {
        None => {
            return Err(
                ApiError::new(ErrorKind::InvalidRequest, "missing field `prompt`")
                    .with_param("prompt")
                    .with_code("missing_field"),
            )
        }
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(items)) if items.len() == 1 => match &items[0] {
            Value::String(text) => text.clone(),
            other => return Err(ApiError::invalid_value("prompt", bounds, other)),
        },
        Some(other) => return Err(ApiError::invalid_value("prompt", bounds, short(other))),
    };
    if text.is_empty() {
        return Err(ApiError::invalid_value("prompt", bounds, "\"\""));
    }
    Ok(text)
}

/// `messages`: a non-empty array of `{role, content}`, content a string or an array of text parts.
pub fn messages(messages: Option<&Value>) -> Result<Vec<ChatMessage>, ApiError> {
    let items = match messages {
        None => {
            return Err(
                ApiError::new(ErrorKind::InvalidRequest, "missing field `messages`")
                    .with_param("messages")
                    .with_code("missing_field"),
            )
        }
        Some(Value::Array(items)) if !items.is_empty() => items,
        Some(other) => {
            return Err(ApiError::invalid_value(
                "messages",
                "a non-empty array of messages",
                short(other),
            ))
        }
    };
    items
        .iter()
        .enumerate()
        .map(|(index, item)| message(index, item))
        .collect()
}

fn message(index: usize, item: &Value) -> Result<ChatMessage, ApiError> {
    let field = |name: &str| format!("messages[{index}].{name}");
    let role = match item.get("role") {
        Some(Value::String(role)) if !role.is_empty() => role.clone(),
        other => {
            return Err(ApiError::invalid_value(
                &field("role"),
                "a non-empty string (system, user, assistant, ...)",
                other.map_or_else(|| "nothing".to_string(), short),
            ))
        }
    };
    let content = match item.get("content") {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Null) | None => String::new(),
        Some(Value::Array(parts)) => {
            let mut text = String::new();
            for part in parts {
                match (part.get("type"), part.get("text")) {
                    (Some(Value::String(kind)), Some(Value::String(piece))) if kind == "text" => {
                        text.push_str(piece)
                    }
                    _ => {
                        return Err(ApiError::invalid_value(
                            &field("content"),
                            "a string or an array of {\"type\": \"text\", \"text\": ...} parts",
                            short(part),
                        ))
                    }
                }
            }
            text
        }
        Some(other) => {
            return Err(ApiError::invalid_value(
                &field("content"),
                "a string or an array of text parts",
                short(other),
            ))
        }
    };
    Ok(ChatMessage::new(role, content))
}

/// A JSON value for an error message, cut to a readable length.
fn short(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(80) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text,
    }
}

/// Fails when the prompt leaves no room in the context.
pub fn prompt_fits(field: &str, prompt_tokens: usize, capacity: usize) -> Result<(), ApiError> {
    if prompt_tokens == 0 {
        return Err(ApiError::invalid_value(field, "at least one token", 0));
    }
    if prompt_tokens >= capacity {
        return Err(ApiError::new(
            ErrorKind::InvalidRequest,
            format!(
                "invalid {field}: expected fewer than {capacity} tokens (the context size), got {prompt_tokens} tokens"
            ),
        )
        .with_param(field)
        .with_code("context_length_exceeded"));
    }
    Ok(())
}
