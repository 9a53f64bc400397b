//! How speculation runs: the window, the run-ahead bound, core lending, and their defaults.

use crate::error::{DecodeError, Result};
use crate::sampling::Sampler;
use crate::verify::{verify_sampling, Verdict};

/// Draft tokens per verification. Measured on SmolLM2-135M (2 threads): `sd` with its Q4_1 copy
/// drafting for the f32 file accepts ~90% and gains most at 6-8 (1.3-1.6x ar, vs 1.25x at 2-3);
/// `lookup` on the Q4_1 file is flat between 2 and 6. 6 keeps the bonus of long accepted runs
/// without paying for many rejected rows when acceptance is low.
pub const DEFAULT_WINDOW: usize = 6;

/// `lookup`'s window: n-gram drafts are accepted ~30-45% of the time, and on long prompts each
/// extra verified row costs attention over the whole context. Measured on 6 Spec-Bench
/// summarization and RAG prompts with the f32 target (2 threads): windows 2-3 gave 1.23-1.25x
/// ar, 4-6 gave 1.18-1.21x, 10 gave 1.08x.
pub const DEFAULT_LOOKUP_WINDOW: usize = 3;

/// The largest window accepted: drafts keep one vocabulary row each when sampling.
pub const MAX_WINDOW: usize = 64;

/// How far (in tokens) a `pipespec` level may run ahead of the next level by default: a few
/// windows, so a fast drafter keeps a block ready while the target verifies the last one.
pub const DEFAULT_RUN_AHEAD: usize = 16;

/// `pipespec`'s run-ahead when none is given. When its levels lend each other their cores they
/// share one memory bandwidth, and a drafter that runs past the window it will be checked on
/// only slows the verification it waits for (measured on 2 cores: 0.89x `staged` at 16 against
/// 0.96x at the window), so the bound is the window; otherwise `DEFAULT_RUN_AHEAD`.
pub fn default_run_ahead(window: usize, lends_cores: bool) -> usize {
    if lends_cores {
        window
    } else {
        DEFAULT_RUN_AHEAD
    }
}

/// The largest run-ahead accepted.
pub const MAX_RUN_AHEAD: usize = 1024;

/// A test hook of `pipespec`: the pause a level takes before its `step`-th forward pass, to
/// exercise many interleavings.
pub type DelayHook = fn(level: usize, step: usize) -> std::time::Duration;

/// Decides each round's window (`staged`, `sd`, `lookup`) from the configured one: 0 makes the
/// round a single target step, as `ar` takes. Greedy output is the same whatever it returns;
/// a sampled text, exact in distribution either way, follows its rounds' windows.
pub type WindowHook = std::sync::Arc<dyn Fn(usize) -> usize + Send + Sync>;

/// A speculative-sampling verifier; tests swap in a wrong one to prove their power.
pub type SamplingVerifier =
    fn(&[u32], Option<&[f32]>, &[f32], usize, &mut Sampler, &mut Vec<f32>) -> Verdict;

/// How speculation runs.
#[derive(Clone)]
pub struct SpeculationConfig {
    /// Tokens each level drafts past the committed output per round.
    pub window: usize,
    pub sampling_verifier: SamplingVerifier,
    /// `pipespec`: the most tokens a level may be ahead of the next level.
    pub run_ahead: usize,
    /// `pipespec`: a verifier waits until the level above has drafted a full window (or
    /// parked) instead of verifying whatever is there.
    pub fill_window: bool,
    /// `pipespec`, tests only: a pause before each forward pass of each level.
    pub delay: Option<DelayHook>,
    /// The synchronous strategies' per-round window (the batching policy); None: `window`.
    pub window_hook: Option<WindowHook>,
}

impl std::fmt::Debug for SpeculationConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpeculationConfig")
            .field("window", &self.window)
            .field("run_ahead", &self.run_ahead)
            .field("fill_window", &self.fill_window)
            .field("delay", &self.delay.is_some())
            .field("window_hook", &self.window_hook.is_some())
            .finish()
    }
}

impl Default for SpeculationConfig {
    fn default() -> Self {
        SpeculationConfig {
            window: DEFAULT_WINDOW,
            sampling_verifier: verify_sampling,
            run_ahead: DEFAULT_RUN_AHEAD,
            fill_window: false,
            delay: None,
            window_hook: None,
        }
    }
}

impl SpeculationConfig {
    pub fn with_window(window: usize) -> Self {
        SpeculationConfig {
            window,
            ..Default::default()
        }
    }

    /// This round's window: the hook's choice (never above `window`), else `window`.
    pub fn round_window(&self) -> usize {
        match &self.window_hook {
            Some(hook) => hook(self.window).min(self.window),
            None => self.window,
        }
    }

    pub fn validate(&self) -> Result<()> {
        if self.window == 0 || self.window > MAX_WINDOW {
            return Err(DecodeError::InvalidParameter {
                name: "window",
                bounds: "1..=64",
                value: self.window.to_string(),
            });
        }
        if self.run_ahead == 0 || self.run_ahead > MAX_RUN_AHEAD {
            return Err(DecodeError::InvalidParameter {
                name: "run_ahead",
                bounds: "1..=1024",
                value: self.run_ahead.to_string(),
            });
        }
        Ok(())
    }
}
