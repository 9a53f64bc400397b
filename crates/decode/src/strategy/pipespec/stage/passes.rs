//! A stage's work outside the plan: its forward pass (a draft step or a verification) without
//! the lock, and publishing the result under it.

use std::time::Instant;

use super::super::shared::compatible;
use super::{Stage, Work};
use crate::error::Result;
use crate::verify::{verify_greedy, warp_rows};

impl Stage<'_> {
    /// One forward pass (or draft step), without the lock; leaves the result in `new_tokens`.
    pub(super) fn compute(&mut self, work: Work) -> Result<()> {
        let start = Instant::now();
        self.new_tokens.clear();
        self.new_rows.clear();
        self.level.borrow_cores(self.borrow);
        self.stats.borrowed_passes += usize::from(self.borrow);
        let result = match work {
            Work::Draft(count) => self.draft(count),
            Work::Verify => self.verify(),
        };
        self.stats.busy_s += start.elapsed().as_secs_f64();
        result
    }

    fn draft(&mut self, count: usize) -> Result<()> {
        self.drafts.clear();
        self.level.draft(
            &self.sequence,
            count,
            &self.config.sampling,
            &mut self.sampler,
            &mut self.drafts,
        )?;
        self.new_tokens.extend_from_slice(&self.drafts.tokens);
        if self.sampling() {
            let vocab = self.config.vocab;
            for (j, &token) in self.drafts.tokens.iter().enumerate() {
                let row = match self.drafts.distributions() {
                    Some(rows) => rows[j * vocab..(j + 1) * vocab].to_vec(),
                    None => {
                        // A deterministic choice: its q is one-hot.
                        let mut row = vec![0.0; vocab];
                        row[token as usize] = 1.0;
                        row
                    }
                };
                self.new_rows.push(row);
            }
        }
        Ok(())
    }

    /// Verifies the drafts in one pass over [last token, drafts...]; keeps the accepted run
    /// plus the correction or bonus token, each with the distribution it now follows (this
    /// level's p at its position).
    fn verify(&mut self) -> Result<()> {
        let vocab = self.config.vocab;
        let drafted = self.drafts.len();
        self.extended.clear();
        self.extended.extend_from_slice(&self.sequence);
        self.extended.extend_from_slice(&self.drafts.tokens);
        let logits = self.level.logits(&self.extended, drafted + 1)?;
        let verdict = if self.config.sampling.is_greedy() {
            verify_greedy(&self.drafts.tokens, logits, vocab)
        } else {
            warp_rows(logits, vocab, &self.config.sampling, &mut self.p_rows);
            (self.config.verifier)(
                &self.drafts.tokens,
                self.drafts.distributions(),
                &self.p_rows,
                vocab,
                &mut self.sampler,
                &mut self.residual,
            )
        };
        self.new_tokens
            .extend_from_slice(&self.drafts.tokens[..verdict.accepted]);
        self.new_tokens.push(verdict.next);
        if self.sampling() && self.index < self.config.target {
            for j in 0..=verdict.accepted {
                self.new_rows
                    .push(self.p_rows[j * vocab..(j + 1) * vocab].to_vec());
            }
        }
        if drafted > 0 {
            self.stats.upstream_drafted += drafted;
            self.stats.upstream_accepted += verdict.accepted;
            self.stats.upstream_verifications += 1;
            if verdict.accepted < drafted {
                self.stats.rollbacks_sent += 1;
            }
        }
        Ok(())
    }

    /// Below the target: appends the new tokens to this level's track, unless the level below
    /// moved in a way that makes them stale (they would only be rolled back).
    pub(super) fn publish(&mut self) {
        let shared = self.shared;
        let mut board = shared.lock();
        if board.stop {
            return;
        }
        if self.new_tokens.is_empty() {
            self.starved_at = Some(self.planned_version);
            return;
        }
        self.starved_at = None;
        let prompt = self.config.prompt.len();
        let before = self.sequence.len();
        self.sequence.extend_from_slice(&self.new_tokens);
        let down = &board.tracks[self.index + 1].tokens;
        if !compatible(&self.sequence[prompt..], down) {
            self.sequence.truncate(before);
            return;
        }
        let committed = board.tracks[self.config.target].len();
        let own = &mut board.tracks[self.index];
        own.extend(&self.new_tokens, &self.new_rows);
        own.free_rows_below(committed);
        self.mark_parked_if_idle(&mut board);
        shared.publish(&mut board);
    }
}
