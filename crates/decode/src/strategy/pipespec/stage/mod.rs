//! One level's loop in the pipeline: plan under the lock (realign, pick drafts), compute without it (one forward pass), publish under it.

use std::time::{Duration, Instant};

mod passes;

use super::shared::{compatible, Board, Shared};
use crate::error::Result;
use crate::level::{Drafts, Level};
use crate::sampling::{Sampler, SamplingParams};
use crate::speculation::{DelayHook, SamplingVerifier};
use crate::strategy::commit::Committed;

/// What every stage of one run shares, read-only.
pub(crate) struct StageConfig<'a> {
    pub prompt: &'a [u32],
    /// Tokens the target may commit.
    pub budget: usize,
    pub window: usize,
    pub run_ahead: usize,
    pub sampling: SamplingParams,
    pub verifier: SamplingVerifier,
    pub delay: Option<DelayHook>,
    /// Verifiers wait for a full window while the level above is still drafting.
    pub fill_window: bool,
    pub vocab: usize,
    /// The index of the target (the last level).
    pub target: usize,
    /// Per level: whether it computes forward passes (a model), so may lend or borrow cores.
    pub computes: Vec<bool>,
}

/// What a stage did, merged into the level counters when the run is over.
#[derive(Debug, Default, Clone)]
pub(crate) struct StageStats {
    pub busy_s: f64,
    pub idle_s: f64,
    /// The upstream level's tokens this stage checked, and how many it accepted.
    pub upstream_drafted: usize,
    pub upstream_accepted: usize,
    pub upstream_verifications: usize,
    pub rollbacks_received: usize,
    pub rollbacks_sent: usize,
    /// Passes run on cores borrowed from idle levels.
    pub borrowed_passes: usize,
}

/// The work a plan hands to the compute step.
enum Work {
    /// Level 0: propose up to this many tokens.
    Draft(usize),
    /// Verify `Stage::drafts` (possibly none: a plain one-token step).
    Verify,
}

pub(crate) struct Stage<'a> {
    index: usize,
    level: &'a mut dyn Level,
    shared: &'a Shared,
    config: &'a StageConfig<'a>,
    /// The prompt followed by this level's track.
    sequence: Vec<u32>,
    sampler: Sampler,
    drafts: Drafts,
    /// The verifier's warped distributions of the last pass (sampling only).
    p_rows: Vec<f32>,
    residual: Vec<f32>,
    extended: Vec<u32>,
    /// What the last compute step produced, to publish.
    new_tokens: Vec<u32>,
    new_rows: Vec<Vec<f32>>,
    /// The board version at the last plan.
    planned_version: u64,
    /// Set when the drafter had nothing to propose at this version: wait for a change.
    starved_at: Option<u64>,
    /// Whether the next pass may use the cores of the levels after this one (all parked at
    /// the plan).
    borrow: bool,
    step: usize,
    pub stats: StageStats,
}

impl<'a> Stage<'a> {
    pub fn new(
        index: usize,
        level: &'a mut dyn Level,
        shared: &'a Shared,
        config: &'a StageConfig<'a>,
        seed: u64,
    ) -> Stage<'a> {
        Stage {
            index,
            level,
            shared,
            config,
            sequence: config.prompt.to_vec(),
            sampler: Sampler::new(seed),
            drafts: Drafts::default(),
            p_rows: Vec::new(),
            residual: Vec::new(),
            extended: Vec::new(),
            new_tokens: Vec::new(),
            new_rows: Vec::new(),
            planned_version: 0,
            starved_at: None,
            borrow: false,
            step: 0,
            stats: StageStats::default(),
        }
    }

    fn sampling(&self) -> bool {
        !self.config.sampling.is_greedy()
    }

    pub fn prefill(&mut self) -> Result<()> {
        let start = Instant::now();
        // The target prefills while the other levels wait for its first token: on all the
        // cores when it may borrow them.
        let target = self.index == self.config.target;
        if target {
            self.level.borrow_cores(true);
        }
        let result = self.level.prefill(self.config.prompt);
        if target {
            self.level.borrow_cores(false);
        }
        self.stats.busy_s += start.elapsed().as_secs_f64();
        result
    }

    /// The loop of a level below the target: runs until the pipeline stops.
    pub fn run(&mut self) -> Result<()> {
        loop {
            self.pause();
            let Some(work) = self.plan() else {
                return Ok(());
            };
            self.compute(work)?;
            self.publish();
        }
    }

    /// The target's loop: commits through `committed` (stop ids, budget, `on_token`) and stops
    /// the pipeline when generation is over.
    pub fn run_target(
        &mut self,
        committed: &mut Committed<'_>,
        on_token: &mut dyn FnMut(u32) -> bool,
    ) -> Result<()> {
        loop {
            self.pause();
            let Some(work) = self.plan() else {
                return Ok(());
            };
            self.compute(work)?;
            // Outside the lock: the callback may be slow (a terminal, a network stream).
            let count = committed.commit(&self.new_tokens, on_token);
            let mut board = self.shared.lock();
            board.tracks[self.index].extend(&self.new_tokens[..count], &[]);
            self.sequence.extend_from_slice(&self.new_tokens[..count]);
            let done = committed.is_done();
            board.stop |= done;
            self.mark_parked_if_idle(&mut board);
            self.shared.publish(&mut board);
            if done {
                return Ok(());
            }
        }
    }

    /// Waits until there is work (None once the pipeline stops); realigns to the level below
    /// first and copies the drafts to verify.
    fn plan(&mut self) -> Option<Work> {
        let shared = self.shared;
        let mut board = shared.lock();
        loop {
            if board.stop {
                return None;
            }
            self.realign(&mut board);
            self.planned_version = board.version;
            let limit = self.limit(&board);
            if limit > 0 {
                if self.index == 0 {
                    if self.starved_at != Some(board.version) {
                        let count = if self.level.can_verify() {
                            1
                        } else {
                            limit.min(self.config.window)
                        };
                        self.start_work(&mut board);
                        return Some(Work::Draft(count));
                    }
                } else {
                    if !self.waits_for_more_drafts(&board, limit - 1) {
                        self.take_drafts(&board, limit - 1);
                        self.start_work(&mut board);
                        return Some(Work::Verify);
                    }
                }
            }
            if !board.parked[self.index] {
                board.parked[self.index] = true;
                shared.publish(&mut board);
            }
            let (guard, idle_s) = shared.wait(board);
            board = guard;
            self.stats.idle_s += idle_s;
        }
    }

    /// Below the target: adopts the next level's track where it differs or is longer.
    fn realign(&mut self, board: &mut Board) {
        if self.index == self.config.target {
            return;
        }
        let (own, rest) = board.tracks[self.index..].split_at_mut(1);
        let (own, down) = (&mut own[0], &rest[0]);
        if compatible(&own.tokens, &down.tokens) && own.len() >= down.len() {
            return;
        }
        if own.adopt(down) {
            self.stats.rollbacks_received += 1;
        }
        let prompt = self.config.prompt.len();
        self.sequence.truncate(prompt);
        self.sequence.extend_from_slice(&own.tokens);
        self.shared.publish(board);
    }

    /// How many tokens this level may add now: the budget, and below the target the run-ahead
    /// bound over the next level.
    fn limit(&self, board: &Board) -> usize {
        limit_of(board, self.index, self.config)
    }

    /// Marks this stage busy, and decides whether its pass borrows the cores of the other
    /// model levels: only when it can, they are all parked, and (below the target) the next
    /// level still lacks a full window, so it is not about to wake and verify.
    fn start_work(&mut self, board: &mut Board) {
        board.parked[self.index] = false;
        let others_parked = (0..board.parked.len())
            .filter(|&i| i != self.index && self.config.computes[i])
            .all(|i| board.parked[i]);
        let next_waits = self.index == self.config.target
            || board.tracks[self.index].len()
                < board.tracks[self.index + 1].len() + self.config.window;
        self.borrow = self.level.can_borrow_cores() && others_parked && next_waits;
    }

    /// With `fill_window`: whether to leave the drafts taken for now and wait for a full
    /// window, because the level above can still add more.
    fn waits_for_more_drafts(&self, board: &Board, most: usize) -> bool {
        let own = board.tracks[self.index].len();
        let first_target_step = self.index == self.config.target && own == 0;
        self.config.fill_window
            && !first_target_step
            && self.drafts_ready(board, most) < self.config.window.min(most)
            && upstream_can_draft(board, self.index - 1, self.config)
    }

    /// How many of the upstream level's tokens extend this level's track (at most `most` and
    /// the window): the drafts a verification would take now.
    fn drafts_ready(&self, board: &Board, most: usize) -> usize {
        let own = &board.tracks[self.index];
        let up = &board.tracks[self.index - 1];
        // The target's first token comes from its prefill row: nothing to wait for.
        let first_target_step = self.index == self.config.target && own.len() == 0;
        if first_target_step || up.len() <= own.len() || up.tokens[..own.len()] != own.tokens[..] {
            return 0;
        }
        (up.len() - own.len()).min(self.config.window).min(most)
    }

    /// Copies up to `most` of the upstream level's tokens that extend this level's track.
    fn take_drafts(&mut self, board: &Board, most: usize) {
        self.drafts.clear();
        let start = board.tracks[self.index].len();
        let count = self.drafts_ready(board, most);
        let up = &board.tracks[self.index - 1];
        let sampling = self.sampling();
        for j in start..start + count {
            let row = &up.rows[j];
            if sampling && row.is_empty() {
                // Freed: below the committed output, so this level is stale anyway.
                break;
            }
            self.drafts.push(up.tokens[j], sampling.then_some(&row[..]));
        }
    }

    /// After publishing: marks the stage parked at once when its next plan will find nothing
    /// to do (run-ahead or budget reached, or a verifier short of a full window), so that
    /// the other stages decide on borrowing its cores by what it is about to do.
    fn mark_parked_if_idle(&self, board: &mut Board) {
        let limit = self.limit(board);
        let idle = limit == 0 || (self.index > 0 && self.waits_for_more_drafts(board, limit - 1));
        if idle {
            board.parked[self.index] = true;
        }
    }

    /// The test hook's pause, taken before planning: as if the previous pass had run longer.
    fn pause(&mut self) {
        if let Some(delay) = self.config.delay {
            let pause: Duration = delay(self.index, self.step);
            std::thread::sleep(pause);
        }
        self.step += 1;
    }
}

/// How many tokens level `index` may add now: the budget, and below the target the run-ahead
/// bound over the next level.
fn limit_of(board: &Board, index: usize, config: &StageConfig<'_>) -> usize {
    let own = board.tracks[index].len();
    if index == config.target {
        return config.budget.saturating_sub(own);
    }
    // Upstream tokens past budget - 1 are never checked: the target's last token is its own.
    let lead = own.saturating_sub(board.tracks[index + 1].len());
    (config.budget.saturating_sub(1))
        .saturating_sub(own)
        .min(config.run_ahead.saturating_sub(lead))
}

/// Whether level `up` will add drafts without waiting for anything: a model level whenever its
/// bounds allow (its parked flag may be stale: a commit may just have freed it), a model-free
/// one unless it is parked (it parks when it has nothing to propose).
fn upstream_can_draft(board: &Board, up: usize, config: &StageConfig<'_>) -> bool {
    if board.stop {
        return false;
    }
    if config.computes[up] {
        limit_of(board, up, config) > 0
    } else {
        !board.parked[up]
    }
}
