//! Measuring what each level costs before the bench: a one-token step, and a verification pass over window + 1 rows, on a real prompt's context.

use std::collections::HashMap;
use std::time::Instant;

use anyhow::Result;
use pipespec_decode::analytic::LevelCost;
use pipespec_decode::{Drafts, Level, Sampler, SamplingParams};

use super::engine::StrategyChain;

/// Timed passes per measurement; the median is kept (after one untimed pass).
const REPEATS: usize = 5;

/// One level's measured costs as a strategy uses it.
#[derive(Debug, Clone, PartialEq)]
pub struct LevelCalibration {
    pub name: String,
    /// Compute threads of its pool (0: the n-gram level).
    pub threads: usize,
    /// Rows of the verification pass timed: the window plus the last committed token.
    pub verify_rows: usize,
    pub cost: LevelCost,
}

/// The used levels of every chain, smallest first, measured after a prefill of `prompt`. A
/// level already measured with the same threads and rows (another strategy's copy of it) is
/// not measured again.
pub fn calibrate(
    chains: &mut [StrategyChain],
    prompt: &[u32],
) -> Result<Vec<Vec<LevelCalibration>>> {
    let mut measured: HashMap<(String, usize, usize), LevelCost> = HashMap::new();
    let mut all = Vec::with_capacity(chains.len());
    for chain in chains {
        let rows = chain.speculation.window + 1;
        let mut levels = Vec::with_capacity(chain.used.len());
        for (&index, &threads) in chain.used.iter().zip(&chain.threads) {
            let level = &mut chain.levels[index];
            let key = (level.name().to_string(), threads, rows);
            let cost = match measured.get(&key) {
                Some(cost) => *cost,
                None => {
                    let cost = measure(level.as_mut(), prompt, rows)?;
                    measured.insert(key, cost);
                    cost
                }
            };
            levels.push(LevelCalibration {
                name: level.name().to_string(),
                threads,
                verify_rows: rows,
                cost,
            });
        }
        all.push(levels);
    }
    Ok(all)
}

fn measure(level: &mut dyn Level, prompt: &[u32], rows: usize) -> Result<LevelCost> {
    if !level.can_verify() {
        return measure_drafter(level, prompt, rows - 1);
    }
    level.prefill(prompt)?;
    // Continuations made of the prompt's own tokens: valid ids, plausible text.
    let extra: Vec<u32> = prompt.iter().rev().cycle().take(rows).copied().collect();
    let first = extra[0];
    let other = prompt
        .iter()
        .copied()
        .find(|&t| t != first)
        .unwrap_or(first ^ 1);
    let mut sequence = prompt.to_vec();
    // A one-token step: alternating two tokens makes each call feed one new position (the
    // same sequence twice would be answered from the last row without a pass).
    let step_s = median_seconds(|repeat| {
        sequence.truncate(prompt.len());
        sequence.push(if repeat % 2 == 0 { first } else { other });
        level.logits(&sequence, 1).map(|_| ())
    })?;
    sequence.truncate(prompt.len());
    sequence.extend_from_slice(&extra[..rows]);
    // The rows asked for are always recomputed: each call is one pass over `rows` positions.
    let verify_s = median_seconds(|_| level.logits(&sequence, rows).map(|_| ()))?;
    Ok(LevelCost { step_s, verify_s })
}

/// A drafter without logits (the n-gram level): the time of drafting a window, per token drafted.
fn measure_drafter(level: &mut dyn Level, prompt: &[u32], window: usize) -> Result<LevelCost> {
    level.prefill(prompt)?;
    let mut sampler = Sampler::new(0);
    let mut drafts = Drafts::default();
    let mut drafted = 1;
    let seconds = median_seconds(|_| {
        drafts.clear();
        let result = level.draft(
            prompt,
            window,
            &SamplingParams::greedy(),
            &mut sampler,
            &mut drafts,
        );
        drafted = drafts.len().max(1);
        result
    })?;
    Ok(LevelCost {
        step_s: seconds / drafted as f64,
        verify_s: 0.0,
    })
}

/// The median time of `REPEATS` calls of `pass`, after one untimed call.
fn median_seconds(mut pass: impl FnMut(usize) -> pipespec_decode::Result<()>) -> Result<f64> {
    pass(REPEATS)?;
    let mut times = Vec::with_capacity(REPEATS);
    for repeat in 0..REPEATS {
        let start = Instant::now();
        pass(repeat)?;
        times.push(start.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    Ok(times[REPEATS / 2])
}
