//! Greedy exactness: every strategy reproduces `ar` token for token over many seeded tiny models, prompts, windows and chains.

use std::sync::Arc;

use candle_core::quantized::GgmlDType;
use pipespec_decode::{
    FinishReason, LevelKind, SamplingParams, SpeculationConfig, Strategy, StrategyOutput,
};
use pipespec_model::Model;

use crate::common::{
    chain, config, model_level, random_tokens, reference, spec, LevelSpec, Models,
};

/// A level below the target, by its relation to the target.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Draft {
    /// The target's own weights: every draft must be accepted.
    Identical,
    /// The target's weights quantized to Q4_1: mostly accepted.
    Quantized,
    /// Another seed and shape: almost nothing accepted.
    Unrelated,
    Ngram,
}

/// Chains below the target: depths 2 to 4 with the n-gram level first where present.
const SHAPES: [&[Draft]; 8] = [
    &[Draft::Identical],
    &[Draft::Unrelated],
    &[Draft::Ngram],
    &[Draft::Quantized],
    &[Draft::Ngram, Draft::Quantized],
    &[Draft::Unrelated, Draft::Quantized],
    &[Draft::Ngram, Draft::Unrelated, Draft::Identical],
    &[Draft::Ngram, Draft::Quantized, Draft::Identical],
];

/// Drafted and accepted tokens per kind of level, over all runs.
#[derive(Default, Debug)]
struct Tally {
    identical: (usize, usize),
    unrelated: (usize, usize),
    ngram_repetitive: (usize, usize),
    stops_inside_drafts: usize,
    runs: usize,
}

fn add(total: &mut (usize, usize), drafted: usize, accepted: usize) {
    total.0 += drafted;
    total.1 += accepted;
}

fn build(models: &mut Models, case: usize) -> (Arc<Model>, Vec<LevelSpec>, Vec<Draft>) {
    let vocab = [64, 128, 320][case % 3];
    let hidden = [32, 64][case % 2];
    let layers = 1 + (case / 2) % 2;
    let target_spec = spec(100 + case as u64, vocab, hidden, layers);
    let target = models.load(&target_spec);
    let shape = SHAPES[case % SHAPES.len()].to_vec();
    let mut levels: Vec<LevelSpec> = shape
        .iter()
        .map(|draft| match draft {
            Draft::Identical => model_level(target.clone()),
            Draft::Quantized => {
                let mut quantized = target_spec.clone();
                quantized.matrix_dtype = GgmlDType::Q4_1;
                model_level(models.load(&quantized))
            }
            Draft::Unrelated => model_level(models.load(&spec(9_000 + case as u64, vocab, 32, 1))),
            Draft::Ngram => LevelSpec::ngram(),
        })
        .collect();
    levels.push(model_level(target.clone()));
    (target, levels, shape)
}

/// A prompt: every third case repeats a phrase (the n-gram level's home ground).
fn prompt(case: usize, vocab: usize) -> Vec<u32> {
    if case.is_multiple_of(3) {
        let phrase = random_tokens(case as u64, 5, vocab);
        let mut prompt: Vec<u32> = phrase.iter().cycle().take(20).copied().collect();
        prompt.extend(random_tokens(case as u64 + 1, 2, vocab));
        prompt
    } else {
        random_tokens(case as u64, 3 + case % 17, vocab)
    }
}

fn check(
    case: usize,
    strategy: Strategy,
    expected: &pipespec_decode::GenerationOutput,
    output: &StrategyOutput,
) {
    assert_eq!(
        output.generation.tokens, expected.tokens,
        "case {case}, strategy {strategy}: the tokens differ from ar"
    );
    assert_eq!(
        output.generation.finish_reason, expected.finish_reason,
        "case {case}, strategy {strategy}: the finish reason differs from ar"
    );
}

#[test]
fn every_strategy_reproduces_ar_greedily() {
    let mut models = Models::new();
    let mut tally = Tally::default();
    let cases = 64;
    for case in 0..cases {
        let (target, levels, shape) = build(&mut models, case);
        let vocab = target.config.vocab_size;
        let window = 1 + (case * 3) % 8;
        let prompt = prompt(case, vocab);
        let max_tokens = 17 + case % 13;
        let mut generation = config(max_tokens, SamplingParams::greedy(), 0, Vec::new());
        let mut expected = reference(&target, &prompt, &generation);
        if case % 4 == 3 {
            // A stop id that occurs mid-output: it falls inside some draft window.
            generation.stop_ids = vec![expected.tokens[expected.tokens.len() / 2]];
            expected = reference(&target, &prompt, &generation);
            assert_eq!(expected.finish_reason, FinishReason::Stop);
            tally.stops_inside_drafts += 1;
        }
        let speculation = SpeculationConfig::with_window(window);
        for strategy in Strategy::ALL {
            let mut levels = chain(&levels);
            let Ok(used) = strategy.levels(&LevelKind::of_chain(&levels)) else {
                continue;
            };
            let output = strategy
                .generate(&mut levels, &prompt, &generation, &speculation, &mut |_| {
                    true
                })
                .unwrap_or_else(|e| panic!("case {case}, strategy {strategy}: {e}"));
            check(case, strategy, &expected, &output);
            tally.runs += 1;
            // Each level's counters describe its drafts as judged by the next used level.
            for (report, &index) in output.levels.iter().zip(&used) {
                let Some(&kind) = shape.get(index) else {
                    continue;
                };
                let (drafted, accepted) = (report.metrics.n_drafted, report.metrics.n_accepted);
                match kind {
                    Draft::Identical if index + 2 == levels.len() => {
                        assert_eq!(
                            accepted, drafted,
                            "case {case}, {strategy}: an identical draft was rejected"
                        );
                        add(&mut tally.identical, drafted, accepted);
                    }
                    Draft::Unrelated if index + 2 == levels.len() => {
                        add(&mut tally.unrelated, drafted, accepted)
                    }
                    Draft::Ngram if case.is_multiple_of(3) => {
                        add(&mut tally.ngram_repetitive, drafted, accepted)
                    }
                    _ => {}
                }
            }
        }
    }
    eprintln!("{tally:?}");
    assert!(tally.runs >= 150, "{tally:?}");
    assert!(
        tally.identical.0 > 100 && tally.identical.0 == tally.identical.1,
        "{tally:?}"
    );
    let unrelated_rate = tally.unrelated.1 as f64 / tally.unrelated.0.max(1) as f64;
    assert!(tally.unrelated.0 > 100 && unrelated_rate < 0.3, "{tally:?}");
    assert!(
        tally.ngram_repetitive.1 > 20,
        "the n-gram level was never accepted: {tally:?}"
    );
}

#[test]
fn a_window_crossing_the_budget_is_cut_exactly() {
    let mut models = Models::new();
    let target = models.load(&spec(7, 64, 32, 1));
    let prompt = random_tokens(3, 6, 64);
    for max_tokens in 0..=11 {
        let generation = config(max_tokens, SamplingParams::greedy(), 0, Vec::new());
        let expected = reference(&target, &prompt, &generation);
        for levels in [
            vec![model_level(target.clone()), model_level(target.clone())],
            vec![
                LevelSpec::ngram(),
                model_level(target.clone()),
                model_level(target.clone()),
            ],
        ] {
            for strategy in Strategy::ALL {
                let mut levels = chain(&levels);
                if strategy.levels(&LevelKind::of_chain(&levels)).is_err() {
                    continue;
                }
                let output = strategy
                    .generate(
                        &mut levels,
                        &prompt,
                        &generation,
                        &SpeculationConfig::with_window(8),
                        &mut |_| true,
                    )
                    .expect("a run");
                assert_eq!(
                    output.generation.tokens.len(),
                    max_tokens,
                    "{strategy}, budget {max_tokens}"
                );
                check(max_tokens, strategy, &expected, &output);
            }
        }
    }
}

#[test]
fn cancelling_stops_every_strategy_at_once() {
    let mut models = Models::new();
    let target = models.load(&spec(8, 64, 32, 1));
    let prompt = random_tokens(4, 6, 64);
    let generation = config(30, SamplingParams::greedy(), 0, Vec::new());
    let expected = reference(&target, &prompt, &generation);
    let levels = vec![
        LevelSpec::ngram(),
        model_level(target.clone()),
        model_level(target.clone()),
    ];
    for strategy in Strategy::ALL {
        let mut levels = chain(&levels);
        let mut seen = Vec::new();
        let output = strategy
            .generate(
                &mut levels,
                &prompt,
                &generation,
                &SpeculationConfig::with_window(6),
                &mut |token| {
                    seen.push(token);
                    seen.len() < 5
                },
            )
            .expect("a run");
        assert_eq!(
            output.generation.finish_reason,
            FinishReason::Cancelled,
            "{strategy}"
        );
        assert_eq!(output.generation.tokens, expected.tokens[..5], "{strategy}");
        assert_eq!(seen, expected.tokens[..5], "{strategy}");
    }
}

#[test]
fn an_identical_draft_saves_target_passes() {
    let mut models = Models::new();
    let target = models.load(&spec(9, 128, 64, 2));
    let prompt = random_tokens(5, 12, 128);
    let generation = config(40, SamplingParams::greedy(), 0, Vec::new());
    let levels = vec![model_level(target.clone()), model_level(target.clone())];
    let ar = Strategy::Ar
        .generate(
            &mut chain(&levels),
            &prompt,
            &generation,
            &SpeculationConfig::with_window(4),
            &mut |_| true,
        )
        .expect("ar");
    let sd = Strategy::Sd
        .generate(
            &mut chain(&levels),
            &prompt,
            &generation,
            &SpeculationConfig::with_window(4),
            &mut |_| true,
        )
        .expect("sd");
    assert_eq!(ar.generation.tokens, sd.generation.tokens);
    let target_passes =
        |output: &StrategyOutput| output.levels.last().map_or(0, |l| l.metrics.forward_passes);
    // ar: prefill + 39 steps; sd: prefill + one pass per 5 tokens after the first.
    assert_eq!(target_passes(&ar), 40);
    assert_eq!(target_passes(&sd), 1 + 39usize.div_ceil(5));
    // Seven full windows, then one cut to the 3 drafts the budget leaves room for.
    let draft = &sd.levels[0].metrics;
    assert_eq!(
        (
            draft.acceptance_rate(),
            draft.mean_accepted_per_verification()
        ),
        (1.0, 31.0 / 8.0)
    );
}

#[test]
fn the_ar_strategy_draws_like_generate_autoregressive() {
    let mut models = Models::new();
    let target = models.load(&spec(10, 64, 32, 1));
    let prompt = random_tokens(6, 8, 64);
    let sampling = SamplingParams {
        temperature: 0.9,
        top_k: 20,
        top_p: 0.95,
    };
    for seed in 0..5 {
        let generation = config(25, sampling, seed, Vec::new());
        let expected = reference(&target, &prompt, &generation);
        let output = Strategy::Ar
            .generate(
                &mut chain(&[model_level(target.clone())]),
                &prompt,
                &generation,
                &SpeculationConfig::default(),
                &mut |_| true,
            )
            .expect("ar");
        assert_eq!(output.generation.tokens, expected.tokens, "seed {seed}");
    }
}
