//! `staged`: synchronous hierarchical speculative decoding over k >= 2 levels; `sd` and `lookup` are its two-level cases.
//!
//! Each round, level 0 drafts `window` tokens past the committed output; every next level
//! verifies the block below it in one forward pass ([last committed token, block...]), keeps the
//! accepted run plus its own correction or bonus token, and (below the target) drafts on until it
//! is `window` tokens ahead; the target's verdict is committed. Levels realign to the committed
//! output by themselves (see `Level`), so a rejected token is never fed twice and every adopted
//! token is fed (the reference code's duplicate-token and single-token-replay bugs).

use std::time::Instant;

use crate::error::Result;
use crate::generate::GenerationConfig;
use crate::level::{Drafts, Level};
use crate::sampling::Sampler;
use crate::speculation::SpeculationConfig;
use crate::strategy::chain::{prepare_chain, report};
use crate::strategy::commit::Committed;
use crate::strategy::StrategyOutput;
use crate::verify::{verify_greedy, warp_rows, Verdict};

/// Runs every level of `levels` (smallest first, target last) as one synchronous hierarchy.
pub fn generate(
    levels: &mut [&mut dyn Level],
    prompt: &[u32],
    config: &GenerationConfig,
    speculation: &SpeculationConfig,
    on_token: &mut dyn FnMut(u32) -> bool,
) -> Result<StrategyOutput> {
    let (vocab, budget) = prepare_chain(levels, prompt, config, speculation)?;
    let mut state = State {
        sampler: Sampler::new(config.seed),
        vocab,
        sequence: prompt.to_vec(),
        extended: Vec::new(),
        block: Drafts::default(),
        next_block: Drafts::default(),
        target_rows: Vec::new(),
        residual: Vec::new(),
    };
    let start = Instant::now();
    let mut committed = Committed::new(config, budget, start);
    let mut prefill_s = 0.0;
    if budget > 0 {
        // The first token needs only the target's prefill row: send it, then prefill the
        // drafters. Under a per-round window hook they are fed on their first draft instead
        // (a level feeds whatever it lacks): rounds without drafts may be all there is.
        let target = levels.len() - 1;
        levels[target].prefill(prompt)?;
        prefill_s = start.elapsed().as_secs_f64();
        let row = levels[target].logits(prompt, 1)?;
        let first = state
            .sampler
            .sample(row, &config.sampling, &mut state.target_rows);
        state.commit(&mut committed, &[first], on_token);
        if !committed.is_done() && speculation.window_hook.is_none() {
            let drafters = Instant::now();
            for level in levels[..target].iter_mut() {
                level.prefill(&state.sequence)?;
            }
            prefill_s += drafters.elapsed().as_secs_f64();
        }
        while !committed.is_done() {
            state.round(levels, config, speculation, committed.remaining())?;
            let block = std::mem::take(&mut state.block.tokens);
            state.commit(&mut committed, &block, on_token);
            state.block.tokens = block;
        }
    }
    Ok(StrategyOutput {
        generation: committed.into_output(prompt.len(), prefill_s),
        levels: levels.iter().map(|level| report(&**level)).collect(),
    })
}

/// The buffers of a run, reused round after round.
struct State {
    sampler: Sampler,
    vocab: usize,
    /// Prompt plus committed output.
    sequence: Vec<u32>,
    /// `sequence` followed by the block being verified or extended.
    extended: Vec<u32>,
    /// The block the next level verifies; after the target, the tokens to commit.
    block: Drafts,
    next_block: Drafts,
    /// The verifier's warped distributions, one row per verified position (sampling only).
    target_rows: Vec<f32>,
    residual: Vec<f32>,
}

impl State {
    fn commit(
        &mut self,
        committed: &mut Committed<'_>,
        tokens: &[u32],
        on_token: &mut dyn FnMut(u32) -> bool,
    ) {
        let count = committed.commit(tokens, on_token);
        self.sequence.extend_from_slice(&tokens[..count]);
        debug_assert_eq!(
            &self.sequence[self.sequence.len() - committed.tokens().len()..],
            committed.tokens()
        );
    }

    /// One round: leaves in `self.block` the target's accepted run plus its next token.
    fn round(
        &mut self,
        levels: &mut [&mut dyn Level],
        config: &GenerationConfig,
        speculation: &SpeculationConfig,
        remaining: usize,
    ) -> Result<()> {
        let sampling = &config.sampling;
        // A block of n drafts yields up to n + 1 tokens: never draft past the budget.
        let window = speculation.round_window().min(remaining - 1);
        let target = levels.len() - 1;
        self.block.clear();
        let first_verifier = if window == 0 {
            target
        } else {
            levels[0].draft(
                &self.sequence,
                window,
                sampling,
                &mut self.sampler,
                &mut self.block,
            )?;
            1
        };
        for i in first_verifier..=target {
            let verdict = self.verify(&mut *levels[i], config, speculation)?;
            levels[i - 1]
                .metrics_mut()
                .record_verification(self.block.len(), verdict.accepted);
            self.adopt(verdict, !sampling.is_greedy());
            if i < target {
                self.block.truncate(remaining - 1);
                if self.block.len() < window {
                    self.extended.clear();
                    self.extended.extend_from_slice(&self.sequence);
                    self.extended.extend_from_slice(&self.block.tokens);
                    let count = window - self.block.len();
                    levels[i].draft(
                        &self.extended,
                        count,
                        sampling,
                        &mut self.sampler,
                        &mut self.block,
                    )?;
                }
            }
        }
        Ok(())
    }

    /// Verifies `self.block` with `level` in one forward pass over [last committed, block...].
    fn verify(
        &mut self,
        level: &mut dyn Level,
        config: &GenerationConfig,
        speculation: &SpeculationConfig,
    ) -> Result<Verdict> {
        self.extended.clear();
        self.extended.extend_from_slice(&self.sequence);
        self.extended.extend_from_slice(&self.block.tokens);
        let logits = level.logits(&self.extended, self.block.len() + 1)?;
        if config.sampling.is_greedy() {
            return Ok(verify_greedy(&self.block.tokens, logits, self.vocab));
        }
        warp_rows(logits, self.vocab, &config.sampling, &mut self.target_rows);
        Ok((speculation.sampling_verifier)(
            &self.block.tokens,
            self.block.distributions(),
            &self.target_rows,
            self.vocab,
            &mut self.sampler,
            &mut self.residual,
        ))
    }

    /// Replaces the block with its accepted run plus the verifier's next token. When sampling,
    /// each kept token carries the verifier's distribution at its position: the level above
    /// must judge it against the distribution it was (in effect) drawn from.
    fn adopt(&mut self, verdict: Verdict, sampling: bool) {
        let vocab = self.vocab;
        self.next_block.clear();
        let kept = self.block.tokens[..verdict.accepted]
            .iter()
            .chain(std::iter::once(&verdict.next));
        for (j, &token) in kept.enumerate() {
            let row = sampling.then(|| &self.target_rows[j * vocab..(j + 1) * vocab]);
            self.next_block.push(token, row);
        }
        std::mem::swap(&mut self.block, &mut self.next_block);
    }
}
