//! What the server loaded once and shares: the chain's recipe and weights (every request builds its own levels, with their own KV caches, from it), the tokenizer and the chat template.

use std::sync::Arc;

use pipespec_decode::{ChainBuilder, LevelSpec, Strategy};
use pipespec_model::chat::{ChatMessage, ChatTemplate};
use pipespec_model::tokenizer::Tokenizer;
use pipespec_model::LoraStack;

use crate::errors::{ApiError, ErrorKind};

/// The chain as loaded: how to build its levels (smallest first, the target last) in each slot,
/// and what the target's file brings.
pub struct Engine {
    /// The id clients name in `model`.
    pub model_id: String,
    /// Every request's levels come from here (their KV capacity at most `chain.capacity()`);
    /// its compute pool is the batch engine's, shared by all requests.
    pub chain: ChainBuilder,
    pub tokenizer: Arc<Tokenizer>,
    /// None when the target has no chat template: chat requests are then refused.
    pub template: Option<ChatTemplate>,
    /// `--lora-modules`: adapters a request selects by naming them in `model`.
    pub adapters: Vec<(String, Arc<LoraStack>)>,
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
            adapters: Vec::new(),
        })
    }

    /// This engine serving `adapters` too, each under its name (which must differ from the
    /// model's and from each other).
    pub fn with_adapters(
        mut self,
        adapters: Vec<(String, Arc<LoraStack>)>,
    ) -> Result<Engine, ApiError> {
        for (index, (name, _)) in adapters.iter().enumerate() {
            let taken = *name == self.model_id || adapters[..index].iter().any(|(n, _)| n == name);
            if name.is_empty() || taken {
                return Err(ApiError::internal(format!(
                    "adapter name `{name}` is empty or already taken"
                )));
            }
        }
        self.adapters = adapters;
        Ok(self)
    }

    /// Every id a request may name: the model's, then the adapters'.
    pub fn model_ids(&self) -> Vec<String> {
        let adapters = self.adapters.iter().map(|(name, _)| name.clone());
        std::iter::once(self.model_id.clone())
            .chain(adapters)
            .collect()
    }

    /// The id to answer with and the adapters to run for a request's `model` (absent: the
    /// model as loaded); an unknown id is a 404 naming what is served.
    pub fn resolve_model(
        &self,
        requested: Option<&str>,
    ) -> Result<(String, Option<Arc<LoraStack>>), ApiError> {
        let Some(requested) = requested.filter(|r| *r != self.model_id) else {
            return Ok((self.model_id.clone(), None));
        };
        match self.adapters.iter().find(|(name, _)| name == requested) {
            Some((name, stack)) => Ok((name.clone(), Some(stack.clone()))),
            None => Err(ApiError::new(
                ErrorKind::ModelNotFound,
                format!(
                    "the model `{requested}` does not exist: this server serves {}",
                    self.model_ids()
                        .iter()
                        .map(|id| format!("`{id}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
            .with_param("model")
            .with_code("model_not_found")),
        }
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
