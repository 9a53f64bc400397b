//! OpenAI's response objects and stream chunks for text and chat completions, with the `usage.pipespec` extension.

use pipespec_decode::LevelReport;
use serde_json::{json, Value};

use crate::scheduler::Summary;

/// Which endpoint a response belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Completions,
    Chat,
}

impl Endpoint {
    pub fn prompt_field(self) -> &'static str {
        match self {
            Endpoint::Completions => "prompt",
            Endpoint::Chat => "messages",
        }
    }
}

/// What every object of one response shares.
#[derive(Debug, Clone)]
pub struct ResponseMeta {
    pub endpoint: Endpoint,
    pub id: String,
    pub created: u64,
    pub model: String,
}

impl ResponseMeta {
    /// A whole (non-streamed) response.
    pub fn completion(&self, text: &str, summary: &Summary) -> Value {
        let (object, choice) = match self.endpoint {
            Endpoint::Completions => (
                "text_completion",
                json!({"index": 0, "text": text, "logprobs": null, "finish_reason": summary.finish_reason}),
            ),
            Endpoint::Chat => (
                "chat.completion",
                json!({
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "logprobs": null,
                    "finish_reason": summary.finish_reason,
                }),
            ),
        };
        json!({
            "id": self.id,
            "object": object,
            "created": self.created,
            "model": self.model,
            "choices": [choice],
            "usage": usage(summary),
        })
    }

    /// One stream chunk: new text, the opening role (chat), or the finish reason.
    pub fn chunk(&self, text: Option<&str>, first: bool, finish_reason: Option<&str>) -> Value {
        let (object, choice) = match self.endpoint {
            Endpoint::Completions => (
                "text_completion",
                json!({"index": 0, "text": text.unwrap_or(""), "logprobs": null, "finish_reason": finish_reason}),
            ),
            Endpoint::Chat => {
                let mut delta = serde_json::Map::new();
                if first {
                    delta.insert("role".into(), json!("assistant"));
                }
                if let Some(text) = text {
                    delta.insert("content".into(), json!(text));
                }
                (
                    "chat.completion.chunk",
                    json!({"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish_reason}),
                )
            }
        };
        json!({
            "id": self.id,
            "object": object,
            "created": self.created,
            "model": self.model,
            "choices": [choice],
        })
    }

    /// The last chunk when the client asked for `stream_options.include_usage`.
    pub fn usage_chunk(&self, summary: &Summary) -> Value {
        let object = match self.endpoint {
            Endpoint::Completions => "text_completion",
            Endpoint::Chat => "chat.completion.chunk",
        };
        json!({
            "id": self.id,
            "object": object,
            "created": self.created,
            "model": self.model,
            "choices": [],
            "usage": usage(summary),
        })
    }
}

/// OpenAI's token counts plus `pipespec`: the strategy and each level's counters.
pub fn usage(summary: &Summary) -> Value {
    json!({
        "prompt_tokens": summary.prompt_tokens,
        "completion_tokens": summary.completion_tokens,
        "total_tokens": summary.prompt_tokens + summary.completion_tokens,
        "pipespec": {
            "strategy": summary.strategy.as_str(),
            "window": summary.window,
            "queue_s": summary.queue_s,
            "ttft_s": summary.ttft_s,
            "wall_s": summary.wall_s,
            "levels": summary.levels.iter().map(LevelReport::to_json).collect::<Vec<_>>(),
        },
    })
}
