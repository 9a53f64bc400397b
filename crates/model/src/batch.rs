//! Several sessions fed in one forward pass: their rows share every matmul (one read of the
//! weights for all), each attends over its own KV cache. Bit-identical to feeding each alone.

use std::ops::Range;
use std::sync::Arc;

use crate::error::{ModelError, Result};
use crate::forward::{run_pass, Scratch};
use crate::session::Session;

/// One sequence's share of a batched pass: feed `tokens` at positions `start..` of `session`
/// (positions it holds from `start` on are replaced) and compute the logits of the last
/// `head_rows` of them (0 for a prefill chunk that is not the prompt's last).
pub struct BatchItem<'a> {
    pub session: &'a mut Session,
    pub tokens: &'a [u32],
    pub start: usize,
    pub head_rows: usize,
}

/// The buffers batched passes work in, reused from pass to pass.
#[derive(Default)]
pub struct Batch {
    scratch: Scratch,
    tokens: Vec<u32>,
}

/// What a batched pass gave each item: the rows of `Batch::logits` holding its head rows'
/// logits, or why that item could not run (the others ran without it).
pub type ItemOutcome = Result<Range<usize>>;

impl Batch {
    pub fn new() -> Batch {
        Batch::default()
    }

    /// Runs every item that can run in one pass on `pool`. An item that cannot (no tokens, a
    /// token outside the vocabulary, no room in its cache, a gap, another model than the
    /// first's) gets its own error and leaves its session untouched. The outer error is a
    /// failure of the pass itself; every item's cache then holds just its positions before
    /// `start`.
    pub fn forward(
        &mut self,
        pool: &rayon::ThreadPool,
        items: &mut [BatchItem],
    ) -> Result<Vec<ItemOutcome>> {
        let mut outcomes: Vec<ItemOutcome> = Vec::with_capacity(items.len());
        let mut model = None;
        for item in items.iter() {
            let checked = item
                .session
                .check(item.tokens, item.start, item.head_rows)
                .and_then(|()| {
                    let mine = item.session.model();
                    let first = model.get_or_insert_with(|| mine.clone());
                    if Arc::ptr_eq(first, mine) {
                        Ok(0..0)
                    } else {
                        Err(ModelError::Kernel(
                            "a batched pass mixes sessions of different models".into(),
                        ))
                    }
                });
            outcomes.push(checked);
        }
        let Some(model) = model.filter(|_| outcomes.iter().any(Result::is_ok)) else {
            return Ok(outcomes);
        };
        self.tokens.clear();
        let mut segments = Vec::with_capacity(items.len());
        let vocab = model.config.vocab_size;
        let mut head_row = 0;
        for (item, outcome) in items.iter_mut().zip(outcomes.iter_mut()) {
            if let Ok(rows) = outcome {
                self.tokens.extend_from_slice(item.tokens);
                *rows = head_row * vocab..(head_row + item.head_rows) * vocab;
                head_row += item.head_rows;
                segments.push(
                    item.session
                        .segment(item.start, item.tokens.len(), item.head_rows),
                );
            }
        }
        let (scratch, tokens) = (&mut self.scratch, &self.tokens);
        let mut run = || run_pass(&model, pool, scratch, tokens, &mut segments);
        if pool.current_num_threads() <= 1 {
            run()?;
        } else {
            pool.install(run)?;
        }
        Ok(outcomes)
    }

    /// The logits of the last pass, (head rows, vocab) item after item: index them with the
    /// ranges `forward` returned.
    pub fn logits(&self) -> &[f32] {
        self.scratch.all_logits()
    }
}
