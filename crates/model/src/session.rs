//! One sequence being decoded: a model handle, its KV cache and the thread pool its compute
//! runs on; its passes are batches of one (`forward`).

use std::sync::Arc;

use crate::cache::KvCache;
use crate::error::{ModelError, Result};
use crate::forward::{run_pass, Scratch, Segment};
use crate::lora::LoraStack;
use crate::model::Model;

/// Prompt positions processed per pass during prefill (bounds scratch memory).
const PREFILL_CHUNK: usize = 256;

/// One sequence being decoded: a model handle, its KV cache and the thread pool its compute runs on.
pub struct Session {
    model: Arc<Model>,
    cache: KvCache,
    pool: Arc<rayon::ThreadPool>,
    scratch: Scratch,
    /// Adapters added to the model's matrices (none: the base model).
    lora: Option<Arc<LoraStack>>,
}

impl Session {
    /// A session whose cache holds `capacity` positions.
    pub fn new(model: Arc<Model>, capacity: usize, pool: Arc<rayon::ThreadPool>) -> Session {
        let cache = KvCache::new(&model.config, capacity);
        Session {
            model,
            cache,
            pool,
            scratch: Scratch::default(),
            lora: None,
        }
    }

    /// Runs later passes with `lora`'s adapters (or none), which must have been checked
    /// against this session's model. The cache is emptied: what it held was computed without
    /// them.
    pub fn set_lora(&mut self, lora: Option<Arc<LoraStack>>) -> Result<()> {
        if let Some(stack) = &lora {
            if !stack.fits(&self.model) {
                return Err(ModelError::Kernel(
                    "the adapters were checked against another model than the session's".into(),
                ));
            }
        }
        self.cache.truncate(0);
        self.lora = lora;
        Ok(())
    }

    /// The adapters this session applies, if any.
    pub fn lora(&self) -> Option<&Arc<LoraStack>> {
        self.lora.as_ref()
    }

    /// Whether this session applies the same adapters as `lora` (so its cache is valid there).
    pub fn same_lora(&self, lora: Option<&LoraStack>) -> bool {
        match (self.lora.as_deref(), lora) {
            (None, None) => true,
            (Some(mine), Some(other)) => mine.same_as(other),
            _ => false,
        }
    }

    pub fn model(&self) -> &Arc<Model> {
        &self.model
    }

    /// The pool later passes run on.
    pub fn pool(&self) -> &Arc<rayon::ThreadPool> {
        &self.pool
    }

    /// Runs later passes on `pool` (say a wider one while other work sleeps). Results are
    /// bit-identical whatever the pool: every output element is computed the same way.
    pub fn set_pool(&mut self, pool: Arc<rayon::ThreadPool>) {
        self.pool = pool;
    }

    /// Positions held in the cache.
    pub fn len(&self) -> usize {
        self.cache.len()
    }

    pub fn is_empty(&self) -> bool {
        self.cache.is_empty()
    }

    pub fn capacity(&self) -> usize {
        self.cache.capacity()
    }

    pub fn cache_bytes(&self) -> usize {
        self.cache.byte_size()
    }

    /// `cache_bytes` of a session of `capacity` positions on `model`, without making one.
    pub fn cache_bytes_for(model: &Model, capacity: usize) -> usize {
        KvCache::byte_size_for(&model.config, capacity)
    }

    /// Rolls the sequence back to `len` positions: O(1).
    pub fn truncate(&mut self, len: usize) {
        self.cache.truncate(len);
    }

    /// Feeds `tokens` at positions `start_pos..` and returns the logits of every one, (tokens, vocab) row-major.
    /// Any cached positions at or after `start_pos` are replaced.
    pub fn forward(&mut self, tokens: &[u32], start_pos: usize) -> Result<&[f32]> {
        let rows = self.run_in_pool(tokens, start_pos, tokens.len())?;
        Ok(self.scratch.logits(rows * self.model.config.vocab_size))
    }

    /// Like `forward`, but computes only the last position's logits, in chunks (prefill).
    pub fn forward_last(&mut self, tokens: &[u32], start_pos: usize) -> Result<&[f32]> {
        self.check(tokens, start_pos, 1)?;
        let mut position = start_pos;
        let mut chunks = tokens.chunks(PREFILL_CHUNK).peekable();
        while let Some(chunk) = chunks.next() {
            let head_rows = usize::from(chunks.peek().is_none());
            self.run_in_pool(chunk, position, head_rows)?;
            position += chunk.len();
        }
        Ok(self.scratch.logits(self.model.config.vocab_size))
    }

    /// Fails unless `tokens` can be fed at `start_pos` with logits for the last `head_rows`:
    /// some tokens, each in the vocabulary, room in the cache, no gap after what it holds.
    pub(crate) fn check(&self, tokens: &[u32], start_pos: usize, head_rows: usize) -> Result<()> {
        if tokens.is_empty() || head_rows > tokens.len() {
            return Err(ModelError::EmptyInput);
        }
        self.cache.check_append(start_pos, tokens.len())?;
        let vocab_size = self.model.config.vocab_size;
        if let Some(&id) = tokens.iter().find(|&&t| t as usize >= vocab_size) {
            return Err(ModelError::UnknownToken { id, vocab_size });
        }
        Ok(())
    }

    /// This sequence's part of a batched pass.
    pub(crate) fn segment(
        &mut self,
        start_pos: usize,
        rows: usize,
        head_rows: usize,
    ) -> Segment<'_> {
        Segment {
            cache: &mut self.cache,
            start_pos,
            rows,
            head_rows,
            lora: self.lora.as_deref(),
        }
    }

    /// Runs one pass on a worker of the session's pool (the kernels' parallel loops then fork
    /// from inside the pool instead of paying a cross-thread hand-off per matrix); returns the
    /// number of logits rows.
    fn run_in_pool(&mut self, tokens: &[u32], start_pos: usize, head_rows: usize) -> Result<usize> {
        self.check(tokens, start_pos, head_rows)?;
        let pool = self.pool.clone();
        let model = self.model.clone();
        let mut run = || {
            let segment = Segment {
                cache: &mut self.cache,
                start_pos,
                rows: tokens.len(),
                head_rows,
                lora: self.lora.as_deref(),
            };
            run_pass(&model, &pool, &mut self.scratch, tokens, &mut [segment])
        };
        if pool.current_num_threads() <= 1 {
            return run();
        }
        pool.install(run)
    }
}
