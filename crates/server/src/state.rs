//! What the server loaded once and shares (weights, tokenizer, chat template, compute pool), and the slots built from it, each with its own KV caches.

use std::sync::{Arc, Mutex};

use pipespec_decode::{Level, ModelLevel, NgramLevel, Strategy};
use pipespec_model::chat::{ChatMessage, ChatTemplate};
use pipespec_model::tokenizer::Tokenizer;
use pipespec_model::{Model, Session};

use crate::errors::{ApiError, ErrorKind};

/// One level of the loaded chain, as a recipe for building it in each slot.
#[derive(Clone)]
pub enum LevelSpec {
    /// The n-gram drafter with its match range.
    Ngram { min: usize, max: usize },
    /// A model level; the weights are shared by every slot.
    Model { name: String, model: Arc<Model> },
}

/// The chain as loaded: levels smallest first, the target last, and what the target's file brings.
pub struct Engine {
    /// The id clients name in `model`.
    pub model_id: String,
    pub levels: Vec<LevelSpec>,
    pub tokenizer: Arc<Tokenizer>,
    /// None when the target has no chat template: chat requests are then refused.
    pub template: Option<ChatTemplate>,
    /// KV cache positions of every model level in every slot.
    pub capacity: usize,
    /// One pool shared by all slots, so several slots never oversubscribe the cores.
    pub pool: Arc<rayon::ThreadPool>,
    /// A one-position copy of the chain, to check a requested strategy against.
    probe: Mutex<Vec<Box<dyn Level>>>,
}

/// A generation slot: its own levels (KV caches) over the shared weights.
pub struct Slot {
    pub index: usize,
    pub levels: Vec<Box<dyn Level>>,
    /// Bytes of the KV caches of every level of this slot.
    pub cache_bytes: usize,
}

impl Engine {
    /// Builds the engine; `levels` must end with a model (the target). The chat template is
    /// read from the target's file.
    pub fn new(
        model_id: String,
        levels: Vec<LevelSpec>,
        tokenizer: Arc<Tokenizer>,
        capacity: usize,
        pool: Arc<rayon::ThreadPool>,
    ) -> Result<Engine, ApiError> {
        let target = match levels.last() {
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
        let mut engine = Engine {
            model_id,
            levels,
            tokenizer,
            template,
            capacity: 1,
            pool,
            probe: Mutex::new(Vec::new()),
        };
        engine.probe = Mutex::new(engine.new_slot(0)?.levels);
        engine.capacity = capacity;
        Ok(engine)
    }

    /// A fresh slot: one session per model level, sharing the weights.
    pub fn new_slot(&self, index: usize) -> Result<Slot, ApiError> {
        let mut levels: Vec<Box<dyn Level>> = Vec::with_capacity(self.levels.len());
        let mut cache_bytes = 0;
        for spec in &self.levels {
            match spec {
                LevelSpec::Ngram { min, max } => {
                    levels.push(Box::new(NgramLevel::new(*min, *max)?))
                }
                LevelSpec::Model { name, model } => {
                    let session = Session::new(model.clone(), self.capacity, self.pool.clone());
                    cache_bytes += session.cache_bytes();
                    levels.push(Box::new(ModelLevel::new(name.clone(), session)));
                }
            }
        }
        Ok(Slot {
            index,
            levels,
            cache_bytes,
        })
    }

    /// Fails unless `strategy` can run on the loaded chain.
    pub fn check_strategy(&self, strategy: Strategy) -> Result<(), ApiError> {
        let probe = self.probe.lock().unwrap_or_else(|e| e.into_inner());
        strategy.levels(&probe).map(|_| ()).map_err(|e| {
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
