//! `pipespec generate`: streams a reply to stdout (or prints one JSON object) and a summary to stderr.

use std::io::{Read, Write};

use anyhow::{Context, Result};
use pipespec_decode::{generate_autoregressive, GenerationConfig, GenerationOutput, SamplingParams};
use pipespec_model::Session;
use serde_json::json;

use crate::cli::GenerateArgs;
use crate::loading;

pub fn run(args: GenerateArgs) -> Result<()> {
    let sampling = SamplingParams {
        temperature: args.temperature,
        top_k: args.top_k,
        top_p: args.top_p,
    };
    sampling.validate()?;
    let prompt = match &args.prompt {
        Some(p) => p.clone(),
        None => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("reading the prompt from stdin")?;
            text
        }
    };
    let path = loading::resolve_model_path(args.model.model.as_deref())?;
    let loaded = loading::load(&path)?;
    let prompt_ids = loading::prompt_tokens(&loaded, &prompt, args.raw)?;
    let capacity = loading::context_size(&loaded.model, args.ctx_size)?;
    let pool = loading::thread_pool(args.threads)?;
    let mut session = Session::new(loaded.model.clone(), capacity, pool);
    let config = GenerationConfig {
        max_tokens: args.max_tokens,
        sampling,
        seed: args.seed,
        stop_ids: loaded.tokenizer.end_of_generation_ids().to_vec(),
        ignore_eos: args.ignore_eos,
    };

    let mut decoder = loaded.tokenizer.stream_decoder();
    let mut stdout = std::io::stdout().lock();
    let mut write_error = None;
    let output = generate_autoregressive(&mut session, &prompt_ids, &config, &mut |token| {
        if args.json {
            return true;
        }
        let piece = match decoder.push(token) {
            Ok(piece) => piece,
            Err(e) => {
                write_error = Some(anyhow::Error::from(e));
                return false;
            }
        };
        if let Err(e) = stdout.write_all(piece.as_bytes()).and_then(|_| stdout.flush()) {
            write_error = Some(anyhow::Error::from(e).context("writing to stdout"));
            return false;
        }
        true
    })?;
    if let Some(error) = write_error {
        return Err(error);
    }
    if args.json {
        let text = loaded.tokenizer.decode(&output.tokens, false)?;
        let value = json!({
            "text": text,
            "tokens": output.tokens,
            "prompt_tokens": output.prompt_tokens,
            "finish_reason": output.finish_reason.as_str(),
            "wall_s": output.wall_s,
            "ttft_s": output.ttft_s,
            "prefill_tok_s": output.prefill_tokens_per_second(),
            "decode_tok_s": output.decode_tokens_per_second(),
        });
        writeln!(stdout, "{value}")?;
    } else {
        let rest = decoder.finish();
        writeln!(stdout, "{rest}")?;
    }
    stdout.flush()?;
    print_summary(&output);
    Ok(())
}

fn print_summary(output: &GenerationOutput) {
    eprintln!(
        "\n[pipespec] prompt tokens: {} | generated tokens: {} ({}) | prefill: {:.1} tok/s | decode: {:.1} tok/s | ttft: {:.3} s | wall: {:.3} s",
        output.prompt_tokens,
        output.tokens.len(),
        output.finish_reason.as_str(),
        output.prefill_tokens_per_second(),
        output.decode_tokens_per_second(),
        output.ttft_s,
        output.wall_s,
    );
}
