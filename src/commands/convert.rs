//! `pipespec convert`: writes a copy of a GGUF model with its weights in another tensor type, progress on stderr.

use anyhow::{Context, Result};
use pipespec_model::convert::{self, type_name, ConvertEvent};

use crate::cli::ConvertArgs;
use crate::loading;

pub fn run(args: ConvertArgs) -> Result<()> {
    let target = convert::parse_target(&args.target).context("--type")?;
    let pool = loading::thread_pool(args.threads)?;
    let mut report = |event: ConvertEvent<'_>| match event {
        ConvertEvent::Tensor {
            index,
            count,
            name,
            dims,
            from,
            to,
        } => {
            let shape: Vec<String> = dims.iter().map(usize::to_string).collect();
            let types = if from == to {
                format!("{} (copied)", type_name(from))
            } else {
                format!("{} -> {}", type_name(from), type_name(to))
            };
            eprintln!(
                "[{:>width$}/{count}] {name} [{}] {types}",
                index + 1,
                shape.join(" x "),
                width = count.to_string().len(),
            );
        }
        ConvertEvent::Fallback(fallback) => eprintln!(
            "  fallback: {}: rows of {} do not fit {} blocks of {}; written as {}",
            fallback.name,
            fallback.row_len,
            type_name(fallback.wanted),
            fallback.wanted.block_size(),
            type_name(fallback.used),
        ),
        ConvertEvent::Writing { path, tensor_bytes } => eprintln!(
            "writing {} ({:.1} MB of tensors)",
            path.display(),
            tensor_bytes as f64 / 1e6
        ),
    };
    let summary = pool
        .install(|| convert::convert(&args.input, &args.output, target, &mut report))
        .with_context(|| {
            format!(
                "converting {} to {}",
                args.input.display(),
                args.output.display()
            )
        })?;
    eprintln!(
        "converted {} tensors to {} ({} re-encoded, {} fallbacks): {:.1} MB -> {:.1} MB in {:.1} s",
        summary.tensor_count,
        summary.target.name(),
        summary.reencoded_count,
        summary.fallbacks.len(),
        summary.input_bytes as f64 / 1e6,
        summary.output_bytes as f64 / 1e6,
        summary.elapsed.as_secs_f64(),
    );
    Ok(())
}
