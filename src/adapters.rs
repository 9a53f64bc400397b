//! `--lora FILE[:SCALE]`: LoRA adapters read once, checked against the models they apply to,
//! and put on the chain's target (and on drafters with `--lora-drafters`).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use pipespec_decode::LevelSpec;
use pipespec_model::{AdapterScale, LoraAdapter, LoraStack, Model};

use crate::cli::LoraArgs;

/// `FILE` or `FILE:SCALE` (the scale after the last colon, when it reads as a number).
pub fn parse_entry(entry: &str) -> Result<(PathBuf, f32)> {
    let entry = entry.trim();
    if entry.is_empty() {
        bail!("--lora has an empty entry: write FILE or FILE:SCALE, comma separated");
    }
    if let Some((path, scale)) = entry.rsplit_once(':') {
        if let Ok(scale) = scale.parse::<f32>() {
            if !scale.is_finite() {
                bail!("--lora {entry}: the scale must be a finite number");
            }
            return Ok((PathBuf::from(path), scale));
        }
    }
    Ok((PathBuf::from(entry), 1.0))
}

/// The adapters of `entries` (`FILE[:SCALE]` each), read from their files.
pub fn read(entries: &[String]) -> Result<Vec<AdapterScale>> {
    entries
        .iter()
        .map(|entry| {
            let (path, user_scale) = parse_entry(entry)?;
            let adapter = LoraAdapter::open(&path)
                .with_context(|| format!("--lora: reading {}", path.display()))?;
            Ok(AdapterScale {
                adapter: Arc::new(adapter),
                user_scale,
            })
        })
        .collect()
}

/// `adapters` checked against `model` (None when there are none).
pub fn stack(model: &Model, adapters: &[AdapterScale]) -> Result<Option<Arc<LoraStack>>> {
    if adapters.is_empty() {
        return Ok(None);
    }
    let stack = LoraStack::new(model, adapters.to_vec())?;
    Ok(Some(Arc::new(stack)))
}

/// `specs` with the `--lora` adapters on the target, and on every drafter model with
/// `--lora-drafters` (each must fit it).
pub fn apply(specs: Vec<LevelSpec>, args: &LoraArgs) -> Result<Vec<LevelSpec>> {
    if args.lora.is_empty() {
        if args.lora_drafters {
            bail!("--lora-drafters needs --lora");
        }
        return Ok(specs);
    }
    let adapters = read(&args.lora)?;
    let last = specs.len().saturating_sub(1);
    specs
        .into_iter()
        .enumerate()
        .map(|(index, spec)| match &spec {
            LevelSpec::Model { name, model, .. } if index == last || args.lora_drafters => {
                let lora = stack(model, &adapters).with_context(|| format!("--lora on {name}"))?;
                Ok(spec.with_lora(lora))
            }
            _ => Ok(spec),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_take_an_optional_scale() {
        assert_eq!(parse_entry("a.gguf").unwrap(), ("a.gguf".into(), 1.0));
        assert_eq!(parse_entry("a.gguf:0.5").unwrap(), ("a.gguf".into(), 0.5));
        assert_eq!(
            parse_entry("dir:x/a.gguf").unwrap(),
            ("dir:x/a.gguf".into(), 1.0)
        );
        assert_eq!(parse_entry(" b.gguf:-1 ").unwrap(), ("b.gguf".into(), -1.0));
        assert!(parse_entry("").is_err());
        assert!(parse_entry("a.gguf:inf").is_err());
    }
}
