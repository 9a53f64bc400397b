//! Micro benchmark of whole forward passes on one loaded model: a prefill of `TOKENS` positions
//! and single-token decode steps after it, repeated in one process, so that changes to the
//! forward pass (attention, norms, the matmuls together) compare without load time or process
//! noise. Prints the best and the median of the rounds.
//!
//! Run with `cargo run --release -p pipespec-model --example pass_bench -- MODEL.gguf
//! [THREADS] [TOKENS] [ROUNDS] [DECODE_STEPS]` (defaults: 2 threads, 512 tokens, 5 rounds, 32
//! decode steps; 0 steps leaves a profile of prefill alone).

use pipespec_model::{Model, Session};
use std::sync::Arc;
use std::time::Instant;

/// Best and median of `values`.
fn best_and_median(values: &mut [f64]) -> (f64, f64) {
    values.sort_by(f64::total_cmp);
    (values[0], values[values.len() / 2])
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path = args
        .first()
        .ok_or("usage: pass_bench MODEL.gguf [THREADS] [TOKENS] [ROUNDS] [DECODE_STEPS]")?;
    let threads: usize = args.get(1).map_or(Ok(2), |a| a.parse())?;
    let tokens: usize = args.get(2).map_or(Ok(512), |a| a.parse())?;
    let rounds: usize = args.get(3).map_or(Ok(5), |a| a.parse())?;
    let decode_steps: usize = args.get(4).map_or(Ok(32), |a| a.parse())?;
    let model = Model::load(std::path::Path::new(path))?;
    let pool = Arc::new(
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()?,
    );
    let mut session = Session::new(model.clone(), tokens + decode_steps, pool);
    // Deterministic token ids below the vocabulary, enough for timing.
    let vocab = model.config.vocab_size as u64;
    let prompt: Vec<u32> = (0..tokens as u64)
        .map(|i| ((i * 2_654_435_761 + 7) % vocab) as u32)
        .collect();
    let (mut prefill, mut decode) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        session.truncate(0);
        let start = Instant::now();
        session.forward_last(&prompt, 0)?;
        prefill.push(start.elapsed().as_secs_f64());
        // Which tokens follow does not change the work: the prompt's, one at a time.
        let start = Instant::now();
        for step in 0..decode_steps {
            let next = prompt[step % prompt.len()];
            session.forward_last(&[next], tokens + step)?;
        }
        if decode_steps > 0 {
            decode.push(start.elapsed().as_secs_f64() / decode_steps as f64);
        }
    }
    let (best, median) = best_and_median(&mut prefill);
    println!(
        "prefill {tokens} tokens, {threads} threads: best {:.1} tok/s, median {:.1} tok/s",
        tokens as f64 / best,
        tokens as f64 / median
    );
    if !decode.is_empty() {
        let (best, median) = best_and_median(&mut decode);
        println!(
            "decode after it: best {:.1} tok/s, median {:.1} tok/s",
            1.0 / best,
            1.0 / median
        );
    }
    Ok(())
}
