//! What a tune reports (`--json` prints it as one object).

use serde::Serialize;

use crate::counters::Counters;

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct TuneReport {
    /// The mean training loss of each epoch.
    pub train_loss: Vec<f64>,
    pub eval_loss_before: Option<f64>,
    pub eval_loss_after: Option<f64>,
    /// Exact match of greedy completions on the evaluation set, 0..1.
    pub eval_exact_match_before: Option<f64>,
    pub eval_exact_match_after: Option<f64>,
    /// Tokens (prompt and label, no padding) through the training passes.
    pub tokens_trained: usize,
    pub tokens_per_s: f64,
    /// The whole run: loading, evaluation, training, writing.
    pub wall_s: f64,
    /// Seconds of the training steps alone.
    pub train_s: f64,
    /// The adapter file written.
    pub adapter: String,
    pub steps: usize,
    pub examples: usize,
    /// Lines left out: too long for `--max-seq` to keep a prompt token before the label.
    pub skipped: usize,
    pub eval_examples: usize,
    pub trainable_parameters: usize,
    /// The process's peak resident memory (Linux), bytes.
    pub peak_rss_bytes: Option<usize>,
    #[serde(flatten)]
    pub counters: Counters,
}
