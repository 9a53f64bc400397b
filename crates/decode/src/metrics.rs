//! Per-level counters of a speculative run: what a level drafted, what the next level accepted, and what the level cost.

/// Counters of one level of a chain. Drafting counters describe this level's proposals as judged
/// by the level above it; cost counters describe this level's own work.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LevelMetrics {
    /// Tokens this level proposed that the next level checked.
    pub n_drafted: usize,
    /// Of those, the tokens the next level accepted.
    pub n_accepted: usize,
    /// Verification passes that checked at least one of this level's tokens.
    pub n_verifications: usize,
    /// Forward passes this level ran, prefill included.
    pub forward_passes: usize,
    /// Seconds spent processing the prompt.
    pub prefill_s: f64,
    /// Seconds spent after the prompt: forward passes, drafting, lookups.
    pub decode_s: f64,
}

impl LevelMetrics {
    /// Accepted over drafted; 0 when nothing was drafted.
    pub fn acceptance_rate(&self) -> f64 {
        ratio(self.n_accepted, self.n_drafted)
    }

    /// Accepted tokens per verification that checked this level's drafts.
    pub fn mean_accepted_per_verification(&self) -> f64 {
        ratio(self.n_accepted, self.n_verifications)
    }

    /// Records one verification of `drafted` tokens of which `accepted` passed.
    pub fn record_verification(&mut self, drafted: usize, accepted: usize) {
        if drafted > 0 {
            self.n_drafted += drafted;
            self.n_accepted += accepted;
            self.n_verifications += 1;
        }
    }
}

fn ratio(count: usize, total: usize) -> f64 {
    if total == 0 {
        0.0
    } else {
        count as f64 / total as f64
    }
}

/// A level's name with its counters, as a strategy reports them.
#[derive(Debug, Clone, PartialEq)]
pub struct LevelReport {
    pub name: String,
    pub metrics: LevelMetrics,
}
