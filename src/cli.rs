//! Command-line flags, as parsed by clap before they are resolved into engine settings.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "pipespec", version, about = "Hierarchical, asynchronous speculative decoding for llama-family GGUF models")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Generate a reply to PROMPT (read from stdin when absent).
    Generate(GenerateArgs),
    /// Download the default model (SmolLM2-135M-Instruct Q4_1) if missing, and verify it.
    Fetch,
    /// Print the token ids of TEXT as a JSON array.
    Tokenize(TokenizeArgs),
    /// Print a model's architecture, sizes, tensor types and tokenizer facts.
    Info(InfoArgs),
}

/// Flags shared by every command that loads a model.
#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// A local GGUF file; the default model is fetched on first use when absent.
    #[arg(long, short = 'm')]
    pub model: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct GenerateArgs {
    /// The prompt; read from stdin when absent.
    pub prompt: Option<String>,
    #[command(flatten)]
    pub model: ModelArgs,
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
    /// Compute threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
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
