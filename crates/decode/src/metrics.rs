//! Per-level counters of a speculative run: what a level drafted, what the next level accepted, and what the level cost.

use serde::{Serialize, Serializer};

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
    /// `pipespec`: seconds this level's stage computed (prefill, passes, drafting).
    pub busy_s: f64,
    /// `pipespec`: seconds this level's stage was parked with nothing to do.
    pub idle_s: f64,
    /// `pipespec`: times this level dropped tokens of its own to adopt the next level's.
    pub rollbacks_received: usize,
    /// `pipespec`: verifications of this level that rejected a token of the level above.
    pub rollbacks_sent: usize,
    /// `pipespec`: passes this level ran on cores borrowed from idle levels.
    pub borrowed_passes: usize,
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

    /// Busy time over `wall_s`: how much of a run the level computed; 0 for an empty run.
    pub fn utilisation(&self, wall_s: f64) -> f64 {
        if wall_s > 0.0 {
            self.busy_s / wall_s
        } else {
            0.0
        }
    }

    /// Adds every counter of `other` (e.g. to total a benchmark's runs).
    pub fn accumulate(&mut self, other: &LevelMetrics) {
        self.n_drafted += other.n_drafted;
        self.n_accepted += other.n_accepted;
        self.n_verifications += other.n_verifications;
        self.forward_passes += other.forward_passes;
        self.prefill_s += other.prefill_s;
        self.decode_s += other.decode_s;
        self.busy_s += other.busy_s;
        self.idle_s += other.idle_s;
        self.rollbacks_received += other.rollbacks_received;
        self.rollbacks_sent += other.rollbacks_sent;
        self.borrowed_passes += other.borrowed_passes;
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

/// A level's name with its counters, as a strategy reports them. Serializes as one flat JSON
/// object (counters, rates and times) wherever a report is printed: `generate --json`,
/// results.json, the server's `usage`.
#[derive(Debug, Clone, PartialEq)]
pub struct LevelReport {
    pub name: String,
    pub metrics: LevelMetrics,
}

/// [`LevelReport`]'s JSON object: the name, the counters and the rates derived from them.
#[derive(Serialize)]
struct LevelReportJson<'a> {
    name: &'a str,
    n_drafted: usize,
    n_accepted: usize,
    acceptance_rate: f64,
    n_verifications: usize,
    mean_accepted_per_verification: f64,
    forward_passes: usize,
    prefill_s: f64,
    decode_s: f64,
    busy_s: f64,
    idle_s: f64,
    rollbacks_received: usize,
    rollbacks_sent: usize,
    borrowed_passes: usize,
}

impl Serialize for LevelReport {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let m = &self.metrics;
        LevelReportJson {
            name: &self.name,
            n_drafted: m.n_drafted,
            n_accepted: m.n_accepted,
            acceptance_rate: m.acceptance_rate(),
            n_verifications: m.n_verifications,
            mean_accepted_per_verification: m.mean_accepted_per_verification(),
            forward_passes: m.forward_passes,
            prefill_s: m.prefill_s,
            decode_s: m.decode_s,
            busy_s: m.busy_s,
            idle_s: m.idle_s,
            rollbacks_received: m.rollbacks_received,
            rollbacks_sent: m.rollbacks_sent,
            borrowed_passes: m.borrowed_passes,
        }
        .serialize(serializer)
    }
}
