//! `pipespec generate`: streams a reply to stdout (or prints one JSON object) and a summary, with per-level counters, to stderr.

mod json_output;

use std::io::{Read, Write};

use anyhow::{Context, Result};
use pipespec_decode::{
    Cores, GenerationConfig, SamplingParams, SpeculationConfig, Strategy, StrategyOutput,
};

use crate::cli::GenerateArgs;
use crate::loading::{self, ChainEntry};

pub fn run(args: GenerateArgs) -> Result<()> {
    let sampling = SamplingParams {
        temperature: args.temperature,
        top_k: args.top_k,
        top_p: args.top_p,
    };
    sampling.validate()?;
    let strategy = Strategy::from(args.strategy);
    let mut speculation = SpeculationConfig {
        run_ahead: args.run_ahead.unwrap_or(pipespec_decode::DEFAULT_RUN_AHEAD),
        ..SpeculationConfig::with_window(args.window.unwrap_or(strategy.default_window()))
    };
    speculation.validate().context("--window/--run-ahead")?;
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
    let mut entries = loading::chain_entries(&args.chain, args.model.model.as_deref())?;
    if strategy == Strategy::Lookup && !entries.contains(&ChainEntry::Ngram) {
        // lookup means the n-gram drafter: add it rather than make the user spell it out.
        entries.insert(0, ChainEntry::Ngram);
    }
    let ngram = (args.ngram_min, args.ngram_max);
    let cores = if strategy == Strategy::Pipespec {
        // Each model level gets its own pool; idle levels lend theirs unless counts are per level.
        loading::pipespec_cores(&entries, &args.threads)?
    } else {
        let total = (!args.threads.is_empty()).then(|| args.threads.iter().sum());
        Cores::Shared(loading::thread_pool(total)?)
    };
    let chain = loading::load_chain(&entries, ngram, args.ctx_size, cores, &args.lora)?;
    chain.builder.fit(&mut speculation, args.run_ahead);
    strategy
        .levels(&chain.builder.kinds())
        .with_context(|| format!("--strategy {strategy} with this chain"))?;
    let mut levels = chain.builder.build()?;
    let loaded = chain.target;
    let prompt_ids = loading::prompt_tokens(&loaded, &prompt, args.raw)?;
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
    let output = strategy.generate(
        &mut levels,
        &prompt_ids,
        &config,
        &speculation,
        &mut |token| {
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
            if let Err(e) = stdout
                .write_all(piece.as_bytes())
                .and_then(|_| stdout.flush())
            {
                write_error = Some(anyhow::Error::from(e).context("writing to stdout"));
                return false;
            }
            true
        },
    )?;
    if let Some(error) = write_error {
        return Err(error);
    }
    let generation = &output.generation;
    if args.json {
        let text = loaded.tokenizer.decode(&generation.tokens, false)?;
        let line = json_output::json_line(&text, strategy, &speculation, &output)?;
        writeln!(stdout, "{line}")?;
    } else {
        let rest = decoder.finish();
        writeln!(stdout, "{rest}")?;
    }
    stdout.flush()?;
    print_summary(strategy, &output);
    eprintln!(
        "[pipespec] target kernels: {}",
        crate::commands::info::load_summary(&loaded.model)
    );
    Ok(())
}

fn print_summary(strategy: Strategy, output: &StrategyOutput) {
    let generation = &output.generation;
    eprintln!(
        "\n[pipespec] {strategy} | prompt tokens: {} | generated tokens: {} ({}) | prefill: {:.1} tok/s | decode: {:.1} tok/s | ttft: {:.3} s | wall: {:.3} s",
        generation.prompt_tokens,
        generation.tokens.len(),
        generation.finish_reason.as_str(),
        generation.prefill_tokens_per_second(),
        generation.decode_tokens_per_second(),
        generation.ttft_s,
        generation.wall_s,
    );
    // The last level is the target: it drafts nothing, so only its cost is shown.
    let last = output.levels.len().saturating_sub(1);
    for (index, level) in output.levels.iter().enumerate() {
        let m = &level.metrics;
        let drafting = if index < last {
            format!(
                "drafted {} | accepted {} ({:.1}%) | {:.2} accepted per verification | ",
                m.n_drafted,
                m.n_accepted,
                100.0 * m.acceptance_rate(),
                m.mean_accepted_per_verification(),
            )
        } else {
            String::new()
        };
        // Only pipespec stages keep busy/idle time: each level's utilisation of the run.
        let stage = if m.busy_s > 0.0 {
            format!(
                " | busy {:.3} s | idle {:.3} s | utilisation {:.0}% | rollbacks received {} sent {}",
                m.busy_s,
                m.idle_s,
                100.0 * m.utilisation(generation.wall_s),
                m.rollbacks_received,
                m.rollbacks_sent,
            )
        } else {
            String::new()
        };
        eprintln!(
            "[pipespec] level {index} {}: {drafting}forward passes {} | prefill {:.3} s | decode {:.3} s{stage}",
            level.name, m.forward_passes, m.prefill_s, m.decode_s,
        );
    }
}
