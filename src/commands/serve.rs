//! `pipespec serve`: loads the chain once, then serves the OpenAI-compatible API until Ctrl-C.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use pipespec_decode::{Cores, SpeculationConfig, Strategy};
use pipespec_model::{LoraStack, Model};
use pipespec_server::{Engine, ServerConfig};

use crate::adapters;
use crate::cli::ServeArgs;
use crate::loading::{self, ChainEntry};

pub fn run(args: ServeArgs) -> Result<()> {
    let strategy = Strategy::from(args.strategy);
    SpeculationConfig::with_window(args.window)
        .validate()
        .context("--window")?;
    if args.max_concurrent == 0 {
        bail!("--max-concurrent must be at least 1");
    }
    if args.batch_tokens == 0 {
        bail!("--batch-tokens must be at least 1");
    }
    if args.kv_tokens == Some(0) {
        bail!("--kv-tokens must be at least 1");
    }
    let host: IpAddr = args
        .host
        .parse()
        .with_context(|| format!("--host {}: expected an IP address", args.host))?;
    let mut entries = loading::chain_entries(&args.chain, args.model.model.as_deref())?;
    if strategy == Strategy::Lookup && !entries.contains(&ChainEntry::Ngram) {
        // lookup means the n-gram drafter: add it rather than make the user spell it out.
        entries.insert(0, ChainEntry::Ngram);
    }
    // Load each file once; every request builds its own sessions over these weights, and the
    // batch engine runs all their passes on one pool.
    let cores = Cores::Shared(loading::thread_pool(args.threads)?);
    let ngram = (args.ngram_min, args.ngram_max);
    let chain = loading::load_chain(&entries, ngram, args.ctx_size, cores, &args.lora)?;
    let target_path = match entries.last() {
        Some(ChainEntry::Model(path)) => path.clone(),
        _ => bail!("the last level of --chain must be a GGUF file (the target)"),
    };
    let model_id = target_path.file_stem().map_or_else(
        || "pipespec".to_string(),
        |stem| stem.to_string_lossy().into_owned(),
    );
    let modules = lora_modules(&args.lora_modules, &chain.target.model)?;
    let names: Vec<String> = modules.iter().map(|(name, _)| name.clone()).collect();
    let engine = Engine::new(model_id, chain.builder, chain.target.tokenizer.clone())
        .and_then(|engine| engine.with_adapters(modules))
        .context("preparing the chain")?;
    if !names.is_empty() {
        eprintln!(
            "[pipespec] adapters by request `model`: {}",
            names.join(", ")
        );
    }
    // A request that names no strategy must be able to run the default.
    engine
        .check_strategy(strategy)
        .with_context(|| format!("--strategy {strategy} with this chain"))?;
    let mut config = ServerConfig::new(SocketAddr::new(host, args.port), strategy, args.window);
    config.max_concurrent = args.max_concurrent;
    config.queue_capacity = args.queue;
    config.kv_positions = args.kv_tokens;
    config.batch.step_tokens = args.batch_tokens;
    pipespec_server::run_until_signal(engine, config, |ready| {
        eprintln!(
            "[pipespec] serving {} with {strategy} on http://{} | up to {} requests batched | KV budget {} positions ({:.1} MiB), {} per request at most | queue {}",
            target_path.display(),
            ready.address,
            ready.slots,
            ready.kv_positions,
            ready.kv_bytes as f64 / (1 << 20) as f64,
            ready.context_size,
            ready.queue_capacity,
        );
    })
    .context("serving")?;
    eprintln!("[pipespec] drained; bye");
    Ok(())
}

/// `--lora-modules NAME=FILE[:SCALE]` entries, each read and checked against the target.
fn lora_modules(entries: &[String], target: &Model) -> Result<Vec<(String, Arc<LoraStack>)>> {
    entries
        .iter()
        .map(|entry| {
            let Some((name, file)) = entry.split_once('=') else {
                bail!("--lora-modules {entry}: expected NAME=FILE[:SCALE]");
            };
            let name = name.trim();
            if name.is_empty() {
                bail!("--lora-modules {entry}: the name is empty");
            }
            let adapters = adapters::read(&[file.to_string()])?;
            let stack = adapters::stack(target, &adapters)
                .with_context(|| format!("--lora-modules {name}"))?
                .context("an adapter entry without an adapter")?;
            Ok((name.to_string(), stack))
        })
        .collect()
}
