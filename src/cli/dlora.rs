//! The flags of DLoRA: `pipespec tune --cloud ADDR` (the device) with Kill-and-Revive, and
//! `pipespec tune-cloud` (the cloud).

use clap::Args;

use super::ModelArgs;

/// Split training and Kill-and-Revive, on `pipespec tune`.
#[derive(Args, Debug, Clone, Default)]
pub struct SplitArgs {
    /// Run the frozen blocks on a `pipespec tune-cloud` at HOST:PORT; the data, embedding,
    /// head and every LoRA module stay here (see the README for what crosses the link).
    #[arg(long, value_name = "HOST:PORT")]
    pub cloud: Option<String>,
    /// Tensors as bf16 on the link (half the bytes; no longer bit-identical to local tuning).
    #[arg(long, requires = "cloud")]
    pub wire_bf16: bool,
    /// Run the first N blocks here too: the cloud then sees their output instead of the
    /// embedded batch, which is far harder to invert into the tokens (see the README).
    #[arg(long, value_name = "N", default_value_t = 0, requires = "cloud")]
    pub device_layers: usize,
    /// Tries again a step whose connection fails, up to this many times.
    #[arg(long, default_value_t = 5)]
    pub retries: usize,
    /// Kill-and-Revive: after a warm-up, keep only the modules that changed most active.
    #[arg(long)]
    pub kill_revive: bool,
    /// Share of modules kept active by Kill-and-Revive.
    #[arg(long, default_value_t = 0.125, requires = "kill_revive")]
    pub keep: f64,
    /// Steps in which every module trains before the first review [default: 10% of the run].
    #[arg(long, requires = "kill_revive")]
    pub kr_warmup_steps: Option<usize>,
    /// Steps between reviews [default: 20% of the run].
    #[arg(long, requires = "kill_revive")]
    pub kr_review_steps: Option<usize>,
    /// A killed module returns when its gradient signal reaches this many times the active
    /// modules' median.
    #[arg(long, default_value_t = 2.0, requires = "kill_revive")]
    pub revive_ratio: f64,
    /// Kill only: killed modules never return.
    #[arg(long, requires = "kill_revive")]
    pub no_revive: bool,
}

#[derive(Args, Debug)]
pub struct TuneCloudArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The address to serve on.
    #[arg(long, default_value = "127.0.0.1:50551")]
    pub listen: String,
    /// Compute threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
}
