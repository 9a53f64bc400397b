//! OpenAI's response objects and stream chunks for text and chat completions as typed structs (the schema is the type), with the `usage.pipespec` extension.

use pipespec_decode::LevelReport;
use serde::Serialize;

use crate::job::Summary;

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

/// OpenAI's `object` field: what kind of object a body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ObjectKind {
    /// A whole text completion and each of its stream chunks.
    #[serde(rename = "text_completion")]
    TextCompletion,
    #[serde(rename = "chat.completion")]
    ChatCompletion,
    #[serde(rename = "chat.completion.chunk")]
    ChatCompletionChunk,
    /// `/v1/models`.
    #[serde(rename = "list")]
    List,
    /// One entry of `/v1/models`.
    #[serde(rename = "model")]
    Model,
}

/// Who wrote a chat message; the server only writes the assistant's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Assistant,
}

/// The fields every object of a response begins with.
#[derive(Debug, Serialize)]
pub struct Header<'a> {
    pub id: &'a str,
    pub object: ObjectKind,
    pub created: u64,
    pub model: &'a str,
}

/// A whole (non-streamed) response of either endpoint.
#[derive(Debug, Serialize)]
pub struct Completion<'a> {
    #[serde(flatten)]
    pub header: Header<'a>,
    pub choices: Vec<Choice<'a>>,
    pub usage: Usage,
}

/// One stream chunk: text, the opening role or the finish reason; or, last, the usage alone.
#[derive(Debug, Serialize)]
pub struct Chunk<'a> {
    #[serde(flatten)]
    pub header: Header<'a>,
    /// One choice, or none in the usage chunk.
    pub choices: Vec<Choice<'a>>,
    /// Only in the usage chunk (`stream_options.include_usage`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

/// A choice as its endpoint shapes it.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Choice<'a> {
    Text(TextChoice<'a>),
    ChatMessage(ChatMessageChoice<'a>),
    ChatDelta(ChatDeltaChoice<'a>),
}

/// A `/v1/completions` choice, whole or streamed.
#[derive(Debug, Serialize)]
pub struct TextChoice<'a> {
    pub index: u32,
    pub text: &'a str,
    /// Always null: the server computes no log probabilities.
    pub logprobs: (),
    /// Null in the chunks before the last.
    pub finish_reason: Option<&'a str>,
}

/// A whole chat completion's choice.
#[derive(Debug, Serialize)]
pub struct ChatMessageChoice<'a> {
    pub index: u32,
    pub message: AssistantMessage<'a>,
    /// Always null: the server computes no log probabilities.
    pub logprobs: (),
    pub finish_reason: &'a str,
}

#[derive(Debug, Serialize)]
pub struct AssistantMessage<'a> {
    pub role: Role,
    pub content: &'a str,
}

/// A chat stream chunk's choice.
#[derive(Debug, Serialize)]
pub struct ChatDeltaChoice<'a> {
    pub index: u32,
    pub delta: Delta<'a>,
    /// Always null: the server computes no log probabilities.
    pub logprobs: (),
    /// Null in the chunks before the last.
    pub finish_reason: Option<&'a str>,
}

/// What a chat chunk adds: the role in the first chunk, new text in those that bring some.
#[derive(Debug, Default, Serialize)]
pub struct Delta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<&'a str>,
}

/// OpenAI's token counts plus `pipespec`: the strategy and each level's counters.
#[derive(Debug, Serialize)]
pub struct Usage {
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    pub total_tokens: usize,
    pub pipespec: PipespecUsage,
}

/// The `usage.pipespec` extension: how the response was generated and what it cost.
#[derive(Debug, Serialize)]
pub struct PipespecUsage {
    pub strategy: &'static str,
    pub window: usize,
    pub queue_s: f64,
    pub ttft_s: f64,
    pub wall_s: f64,
    /// Each level's counters, as `generate --json` prints them.
    pub levels: Vec<LevelReport>,
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
    pub fn completion<'a>(&'a self, text: &'a str, summary: &'a Summary) -> Completion<'a> {
        let (object, choice) = match self.endpoint {
            Endpoint::Completions => (
                ObjectKind::TextCompletion,
                Choice::Text(TextChoice {
                    index: 0,
                    text,
                    logprobs: (),
                    finish_reason: Some(summary.finish_reason),
                }),
            ),
            Endpoint::Chat => (
                ObjectKind::ChatCompletion,
                Choice::ChatMessage(ChatMessageChoice {
                    index: 0,
                    message: AssistantMessage {
                        role: Role::Assistant,
                        content: text,
                    },
                    logprobs: (),
                    finish_reason: summary.finish_reason,
                }),
            ),
        };
        Completion {
            header: self.header(object),
            choices: vec![choice],
            usage: usage(summary),
        }
    }

    /// One stream chunk: new text, the opening role (chat), or the finish reason.
    pub fn chunk<'a>(
        &'a self,
        text: Option<&'a str>,
        first: bool,
        finish_reason: Option<&'a str>,
    ) -> Chunk<'a> {
        let choice = match self.endpoint {
            Endpoint::Completions => Choice::Text(TextChoice {
                index: 0,
                text: text.unwrap_or(""),
                logprobs: (),
                finish_reason,
            }),
            Endpoint::Chat => Choice::ChatDelta(ChatDeltaChoice {
                index: 0,
                delta: Delta {
                    role: first.then_some(Role::Assistant),
                    content: text,
                },
                logprobs: (),
                finish_reason,
            }),
        };
        self.chunk_of(vec![choice], None)
    }

    /// The last chunk when the client asked for `stream_options.include_usage`.
    pub fn usage_chunk<'a>(&'a self, summary: &'a Summary) -> Chunk<'a> {
        self.chunk_of(Vec::new(), Some(usage(summary)))
    }

    fn chunk_of<'a>(&'a self, choices: Vec<Choice<'a>>, usage: Option<Usage>) -> Chunk<'a> {
        let object = match self.endpoint {
            Endpoint::Completions => ObjectKind::TextCompletion,
            Endpoint::Chat => ObjectKind::ChatCompletionChunk,
        };
        Chunk {
            header: self.header(object),
            choices,
            usage,
        }
    }

    fn header(&self, object: ObjectKind) -> Header<'_> {
        Header {
            id: &self.id,
            object,
            created: self.created,
            model: &self.model,
        }
    }
}

/// The usage object of a finished generation.
pub fn usage(summary: &Summary) -> Usage {
    Usage {
        prompt_tokens: summary.prompt_tokens,
        completion_tokens: summary.completion_tokens,
        total_tokens: summary.prompt_tokens + summary.completion_tokens,
        pipespec: PipespecUsage {
            strategy: summary.strategy.as_str(),
            window: summary.window,
            queue_s: summary.queue_s,
            ttft_s: summary.ttft_s,
            wall_s: summary.wall_s,
            levels: summary.levels.clone(),
        },
    }
}
