//! `pipespec tune`: trains a LoRA adapter on the model's frozen weights and writes it in
//! llama.cpp's GGUF format, with a report of the losses, exact match and speed.

mod progress;
mod split;
mod tasks;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use pipespec_model::chat::ChatTemplate;
use pipespec_model::lora::{LoraAdapter, LoraTarget};
use pipespec_tune::data::{Dataset, Encoder};
use pipespec_tune::optim::Decay;
use pipespec_tune::report::TuneReport;
use pipespec_tune::tasks::Task;
use pipespec_tune::{tune, TuneError, TuneInputs, TuneOptions};

use crate::cli::TuneArgs;
use crate::loading::{self, LoadedModel};
use progress::TuneProgress;

pub fn run(args: TuneArgs) -> Result<()> {
    keep_freed_memory();
    let options = options(&args)?;
    let task = args.task.as_deref().map(Task::parse).transpose()?;
    if let (Some(task), Some(dir)) = (task, &args.export_task) {
        return tasks::export(task, dir);
    }
    let out = args
        .out
        .as_deref()
        .context("--out names the adapter file to write")?;
    check_writable(out)?;
    let path = loading::resolve_model_path(args.model.model.as_deref())?;
    let loaded = loading::load(&path)?;
    let template = chat_template(&loaded)?;
    let encoder = Encoder {
        tokenizer: &loaded.tokenizer,
        template: template.as_ref(),
        max_seq: args.max_seq,
    };
    let (train, eval) = datasets(&args, task, &encoder)?;
    let pool = loading::thread_pool(args.threads)?;
    eprintln!(
        "pipespec tune: {} examples ({} too long, left out), {} for evaluation; rank {}, alpha {}, targets {}",
        train.examples.len(),
        train.skipped,
        eval.as_ref().map_or(0, |d| d.examples.len().min(options.eval_limit)),
        options.rank,
        options.alpha,
        args.targets.join(","),
    );
    let inputs = TuneInputs {
        model: &loaded.model,
        tokenizer: &loaded.tokenizer,
        train: &train,
        eval: eval.as_ref(),
        pool: &pool,
    };
    let mut remote = split::connect(&args.split, &loaded.model.config)?;
    let mut progress = TuneProgress::new(remote.is_some() || options.kill_revive.is_some());
    let cloud = remote
        .as_mut()
        .map(|r| r as &mut dyn pipespec_tune::step::BlockRunner);
    let outcome = tune(&inputs, &options, cloud, &mut |event| progress.event(event));
    progress.finish();
    if let Some(remote) = remote.as_mut() {
        // The adapter is done either way; a cloud that is gone by now costs nothing.
        if let Err(error) = remote.close() {
            eprintln!("pipespec tune: closing the cloud session: {error}");
        }
    }
    let (adapter, mut report) = match outcome {
        Ok(done) => done,
        Err(TuneError::Interrupted {
            steps,
            partial,
            cause,
        }) => {
            let kept = partial_path(out);
            write_adapter(*partial, &kept)?;
            bail!(
                "training stopped after step {steps}: {cause}\nthe adapter as trained so far is in {}",
                kept.display()
            );
        }
        Err(error) => return Err(error.into()),
    };
    write_adapter(adapter, out)?;
    report.adapter = out.display().to_string();
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_summary(&report);
    }
    Ok(())
}

/// Writes `adapter` to `path`, named after the file.
fn write_adapter(mut adapter: LoraAdapter, path: &Path) -> Result<()> {
    adapter.name = path
        .file_stem()
        .map(|stem| stem.to_string_lossy().into_owned());
    adapter
        .write(path)
        .with_context(|| format!("writing the adapter to {}", path.display()))
}

/// Where an interrupted run keeps its adapter: `NAME.partial.gguf` beside `out`.
fn partial_path(out: &Path) -> PathBuf {
    let stem = out.file_stem().map_or_else(
        || "adapter".to_string(),
        |s| s.to_string_lossy().into_owned(),
    );
    out.with_file_name(format!("{stem}.partial.gguf"))
}

/// The run's settings from the flags, every one checked before the model loads.
fn options(args: &TuneArgs) -> Result<TuneOptions> {
    let targets = args
        .targets
        .iter()
        .map(|name| {
            LoraTarget::from_short_name(name.trim()).with_context(|| {
                format!("unknown --targets entry `{name}`: use q, k, v, o, gate, up, down, head")
            })
        })
        .collect::<Result<Vec<_>>>()?;
    if args.max_seq < 2 {
        bail!("--max-seq must be at least 2");
    }
    if !(args.alpha.is_finite() && args.alpha > 0.0) {
        bail!("--alpha must be a positive number, not {}", args.alpha);
    }
    let non_negative = |v: f64| v.is_finite() && v >= 0.0;
    if !non_negative(args.clip) || !non_negative(args.weight_decay) {
        bail!("--clip and --weight-decay must be numbers of at least 0");
    }
    if args.max_steps == Some(0) {
        bail!("--max-steps must be at least 1");
    }
    Ok(TuneOptions {
        rank: args.rank,
        alpha: args.alpha,
        targets,
        epochs: args.epochs,
        learning_rate: args.lr,
        batch: args.batch,
        seed: args.seed,
        warmup_steps: args.warmup_steps,
        decay: Decay::parse(&args.schedule)?,
        weight_decay: args.weight_decay,
        clip: args.clip,
        max_steps: args.max_steps,
        eval_limit: args.eval_limit,
        kill_revive: split::kill_revive(&args.split)?,
    })
}

/// Keeps freed blocks in the process for the next step's tensors. glibc hands blocks over 128 KB
/// back to the kernel when freed, and a training step frees and allocates hundreds of them, so
/// without this it spends ~10% of its time faulting in and zeroing fresh pages.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes glibc's allocation thresholds; no allocation is in flight on
    // another thread yet (the pools start later).
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}

/// Fails now, not after hours of training, when the adapter could not be written.
fn check_writable(out: &Path) -> Result<()> {
    if out.is_dir() {
        bail!(
            "--out {} is a directory: name the adapter file",
            out.display()
        );
    }
    let dir = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    tempfile::Builder::new()
        .prefix(".pipespec-tune-check")
        .tempfile_in(dir)
        .with_context(|| {
            format!(
                "--out {}: cannot write into {}",
                out.display(),
                dir.display()
            )
        })?;
    Ok(())
}

/// The model's chat template, for `messages` data (None when it has none).
fn chat_template(loaded: &LoadedModel) -> Result<Option<ChatTemplate>> {
    let Ok(source) = loaded.model.file().get_str("tokenizer.chat_template") else {
        return Ok(None);
    };
    let tokenizer = &loaded.tokenizer;
    Ok(Some(ChatTemplate::new(
        source,
        tokenizer.bos_token_text(),
        tokenizer.eos_token_text(),
    )?))
}

/// The training set and the evaluation set, if any.
fn datasets(
    args: &TuneArgs,
    task: Option<Task>,
    encoder: &Encoder,
) -> Result<(Dataset, Option<Dataset>)> {
    if let Some(task) = task {
        let pairs = tasks::load(task)?;
        let train = encoder.pairs(&pairs.train)?;
        if train.examples.is_empty() {
            bail!(
                "every training example is longer than --max-seq {}",
                args.max_seq
            );
        }
        return Ok((train, Some(encoder.pairs(&pairs.eval)?)));
    }
    let Some(data) = &args.data else {
        bail!("give --data FILE.jsonl or --task NAME");
    };
    let train = encoder.load(data)?;
    let eval = args
        .eval
        .as_deref()
        .map(|path| encoder.load(path))
        .transpose()?;
    Ok((train, eval))
}

fn print_summary(report: &TuneReport) {
    let percent = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{:.1}%", 100.0 * v));
    let number = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.4}"));
    println!("adapter: {}", report.adapter);
    println!(
        "steps: {} over {} examples, {} tokens in {:.1} s ({:.1} tokens/s); {} trainable parameters",
        report.steps,
        report.examples,
        report.tokens_trained,
        report.train_s,
        report.tokens_per_s,
        report.trainable_parameters
    );
    if let Some(last) = report.train_loss.last() {
        println!("train loss (last epoch): {last:.4}");
    }
    if report.eval_examples > 0 {
        println!(
            "eval on {} examples: loss {} -> {}, exact match {} -> {}",
            report.eval_examples,
            number(report.eval_loss_before),
            number(report.eval_loss_after),
            percent(report.eval_exact_match_before),
            percent(report.eval_exact_match_after)
        );
    }
    split::print_counters(report);
    if let Some(bytes) = report.peak_rss_bytes {
        println!(
            "peak memory: {:.2} GB, wall {:.1} s",
            bytes as f64 / 1e9,
            report.wall_s
        );
    }
}
