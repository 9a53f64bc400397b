//! Scoring a tune: the mean loss of held-out label tokens (the training forward pass, no
//! gradient), and exact match: the greedy completion, decoded by the inference engine with the
//! adapter applied, equals the reference once both are trimmed.

use std::sync::Arc;

use pipespec_decode::{generate_autoregressive, GenerationConfig, SamplingParams};
use pipespec_model::lora::LoraStack;
use pipespec_model::tokenizer::Tokenizer;
use pipespec_model::{Model, Session};

use crate::base::FrozenBase;
use crate::data::Example;
use crate::error::Result;
use crate::modules::{ActiveSet, ModuleBank};
use crate::net::TokenBatch;
use crate::step::{device_step, BlockRunner};

/// The mean cross-entropy over every label token of `examples`, in batches of `batch`.
/// The blocks run in `runner` with `bank`'s active modules.
pub fn eval_loss(
    base: &FrozenBase,
    bank: &Arc<ModuleBank>,
    runner: &mut dyn BlockRunner,
    examples: &[Example],
    batch: usize,
) -> Result<f64> {
    let (mut total, mut count) = (0.0, 0usize);
    for chunk in examples.chunks(batch.max(1)) {
        let refs: Vec<&Example> = chunk.iter().collect();
        let batch = TokenBatch::new(&refs)?;
        let mean = device_step(base, bank, runner, &batch, false, ActiveSet::default())?.loss;
        total += mean * batch.labels.len() as f64;
        count += batch.labels.len();
    }
    Ok(total / count.max(1) as f64)
}

/// The share of `examples` whose greedy completion (up to the reference's length plus two
/// tokens) equals the reference, both trimmed.
pub fn exact_match(
    model: &Arc<Model>,
    tokenizer: &Tokenizer,
    lora: Option<Arc<LoraStack>>,
    examples: &[Example],
    pool: &Arc<rayon::ThreadPool>,
) -> Result<f64> {
    if examples.is_empty() {
        return Ok(0.0);
    }
    let longest = examples
        .iter()
        .map(|e| e.tokens.len() + 2)
        .max()
        .unwrap_or(1);
    let mut session = Session::new(model.clone(), longest, pool.clone());
    session.set_lora(lora)?;
    let mut hits = 0;
    for example in examples {
        let labels = example.label.iter().filter(|&&l| l).count();
        let prompt = &example.tokens[..example.prompt_len];
        session.truncate(0);
        let config = GenerationConfig {
            max_tokens: labels + 2,
            sampling: SamplingParams::greedy(),
            seed: 0,
            stop_ids: tokenizer.end_of_generation_ids().to_vec(),
            ignore_eos: false,
        };
        let output = generate_autoregressive(&mut session, prompt, &config, &mut |_| true)?;
        let text = tokenizer.decode(&output.tokens, false)?;
        if text.trim() == example.reference.trim() {
            hits += 1;
        }
    }
    Ok(hits as f64 / examples.len() as f64)
}
