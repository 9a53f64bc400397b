//! What the server loaded once and shares (the chain's recipe and weights, tokenizer, chat template), and the slots built from it, each with its own KV caches.

use std::sync::Arc;

use pipespec_decode::{ChainBuilder, Level, LevelSpec, Strategy};
use pipespec_model::chat::{ChatMessage, ChatTemplate};
use pipespec_model::tokenizer::Tokenizer;

use crate::errors::{ApiError, ErrorKind};

/// The chain as loaded: how to build its levels (smallest first, the target last) in each slot,
/// and what the target's file brings.
pub struct Engine {
    /// The id clients name in `model`.
    pub model_id: String,
    /// Every slot's levels come from here (with their KV capacity, `chain.capacity()`); its
    /// compute pool is shared by all slots, so several slots never oversubscribe the cores.
    pub chain: ChainBuilder,
    pub tokenizer: Arc<Tokenizer>,
    /// None when the target has no chat template: chat requests are then refused.
    pub template: Option<ChatTemplate>,
}

/// A generation slot: its own levels (KV caches) over the shared weights.
pub struct Slot {
    pub index: usize,
    pub levels: Vec<Box<dyn Level>>,
    /// Bytes of the KV caches of every level of this slot.
    pub cache_bytes: usize,
}

impl Engine {
    /// Builds the engine over `chain`; the chat template is read from the target's file.
    pub fn new(
        model_id: String,
        chain: ChainBuilder,
        tokenizer: Arc<Tokenizer>,
    ) -> Result<Engine, ApiError> {
        let target = match chain.specs().last() {
            Some(LevelSpec::Model { model, .. }) => model.clone(),
            _ => {
                return Err(ApiError::internal(
                    "the last level of the chain must be a model (the target)",
                ))
            }
        };
        let template = match target.file().get_str("tokenizer.chat_template") {
            Ok(source) => Some(
                ChatTemplate::new(
                    source,
                    tokenizer.bos_token_text(),
                    tokenizer.eos_token_text(),
                )
                .map_err(|e| ApiError::internal(format!("the model's chat template: {e}")))?,
            ),
            Err(_) => None,
        };
        Ok(Engine {
            model_id,
            chain,
            tokenizer,
            template,
        })
    }

    /// A fresh slot: one session per model level, sharing the weights.
    pub fn new_slot(&self, index: usize) -> Result<Slot, ApiError> {
        Ok(Slot {
            index,
            levels: self.chain.build()?,
            cache_bytes: self.chain.cache_bytes(),
        })
    }

    /// Fails unless `strategy` can run on the loaded chain.
    pub fn check_strategy(&self, strategy: Strategy) -> Result<(), ApiError> {
        strategy
            .levels(&self.chain.kinds())
            .map(|_| ())
            .map_err(|e| {
                ApiError::new(
                    ErrorKind::InvalidRequest,
                    format!("strategy {strategy} cannot run on the loaded chain: {e}"),
                )
                .with_param("strategy")
            })
    }

    /// The token ids of raw completion text.
    pub fn encode_text(&self, text: &str) -> Result<Vec<u32>, ApiError> {
        self.tokenizer
            .encode(text, true)
            .map_err(|e| ApiError::internal(format!("tokenizing the prompt: {e}")))
    }

    /// The token ids of a conversation rendered through the model's chat template, ending with
    /// the header of the assistant's reply.
    pub fn encode_chat(&self, messages: &[ChatMessage]) -> Result<Vec<u32>, ApiError> {
        let template = self.template.as_ref().ok_or_else(|| {
            ApiError::new(
                ErrorKind::InvalidRequest,
                "the loaded model has no chat template: use /v1/completions",
            )
        })?;
        let text = template.apply(messages, true).map_err(|e| {
            ApiError::new(ErrorKind::InvalidRequest, e.to_string()).with_param("messages")
        })?;
        // The template writes any BOS itself; special tokens in it are matched whole.
        self.tokenizer
            .encode(&text, false)
            .map_err(|e| ApiError::internal(format!("tokenizing the conversation: {e}")))
    }
}
