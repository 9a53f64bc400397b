//! Sampling exactness: under every strategy the first generated tokens follow the target's own distribution (chi-square over the joint), and a wrong verifier is caught.

use std::sync::Arc;

use pipespec_decode::sampling::probabilities;
use pipespec_decode::verify::Verdict;
use pipespec_decode::{Sampler, SamplingParams, SpeculationConfig, Strategy};
use pipespec_model::Model;

use crate::common::{chain, config, model_level, session, spec, LevelSpec, Models};

const VOCAB: usize = 8;
/// Tokens of the joint distribution tested: VOCAB^3 cells.
const DEPTH: usize = 3;
const DRAWS: u64 = 20_000;
/// One round drafts up to 3 tokens but the budget leaves room for DEPTH + 1: the first tokens
/// mix accepted drafts, corrections and bonus tokens.
const MAX_TOKENS: usize = DEPTH + 1;
const WINDOW: usize = 3;

/// Flattened heads (logit_scale < 1) so that most tokens carry mass at every position.
fn tiny(models: &mut Models, seed: u64) -> Arc<Model> {
    let mut spec = spec(seed, VOCAB, 32, 1);
    spec.logit_scale = 0.2;
    models.load(&spec)
}

/// The target's exact probability of every DEPTH-token continuation, by enumeration.
fn exact_joint(target: &Arc<Model>, prompt: &[u32], params: &SamplingParams) -> Vec<f64> {
    let mut session = session(target);
    let mut joint = vec![0.0; VOCAB.pow(DEPTH as u32)];
    let mut probs = Vec::new();
    for (cell, slot) in joint.iter_mut().enumerate() {
        let mut sequence = prompt.to_vec();
        let mut probability = 1.0;
        for depth in 0..DEPTH {
            let logits = session.forward(&sequence, 0).expect("a forward pass");
            probabilities(&logits[logits.len() - VOCAB..], params, &mut probs);
            let token = cell_token(cell, depth);
            probability *= probs[token as usize] as f64;
            sequence.push(token);
        }
        *slot = probability;
    }
    joint
}

fn cell_token(cell: usize, depth: usize) -> u32 {
    ((cell / VOCAB.pow((DEPTH - 1 - depth) as u32)) % VOCAB) as u32
}

fn cell_of(tokens: &[u32]) -> usize {
    tokens[..DEPTH]
        .iter()
        .fold(0, |cell, &t| cell * VOCAB + t as usize)
}

/// Counts of the first DEPTH tokens over DRAWS runs seeded 0..DRAWS.
fn histogram(
    levels: &[LevelSpec],
    strategy: Strategy,
    prompt: &[u32],
    params: SamplingParams,
    speculation: &SpeculationConfig,
) -> Vec<u64> {
    histogram_from(0, levels, strategy, prompt, params, speculation)
}

/// Counts over DRAWS runs seeded first_seed..first_seed + DRAWS.
fn histogram_from(
    first_seed: u64,
    levels: &[LevelSpec],
    strategy: Strategy,
    prompt: &[u32],
    params: SamplingParams,
    speculation: &SpeculationConfig,
) -> Vec<u64> {
    let mut counts = vec![0; VOCAB.pow(DEPTH as u32)];
    // One chain for every run: levels realign their caches to each new run's sequence.
    let mut levels = chain(levels);
    for seed in first_seed..first_seed + DRAWS {
        let generation = config(MAX_TOKENS, params, seed, Vec::new());
        let output = strategy
            .generate(&mut levels, prompt, &generation, speculation, &mut |_| true)
            .expect("a sampling run");
        counts[cell_of(&output.generation.tokens)] += 1;
    }
    counts
}

/// Pearson's chi-square p-value of `counts` against `expected` probabilities; cells expecting
/// fewer than 5 draws are merged into one.
fn chi_square_p_value(counts: &[u64], expected: &[f64]) -> f64 {
    let total: u64 = counts.iter().sum();
    let (mut statistic, mut cells) = (0.0, 0usize);
    let (mut sparse_observed, mut sparse_expected) = (0.0, 0.0);
    for (&observed, &p) in counts.iter().zip(expected) {
        let e = p * total as f64;
        if e < 5.0 {
            sparse_observed += observed as f64;
            sparse_expected += e;
            continue;
        }
        statistic += (observed as f64 - e).powi(2) / e;
        cells += 1;
    }
    if sparse_expected > 0.0 {
        statistic += (sparse_observed - sparse_expected).powi(2) / sparse_expected;
        cells += 1;
    } else if sparse_observed > 0.0 {
        return 0.0;
    }
    upper_regularized_gamma((cells - 1) as f64 / 2.0, statistic / 2.0)
}

/// Q(a, x) = Γ(a, x) / Γ(a): a series below a + 1, a continued fraction above (Numerical Recipes).
fn upper_regularized_gamma(a: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 1.0;
    }
    let log_prefactor = -x + a * x.ln() - ln_gamma(a);
    if x < a + 1.0 {
        let (mut term, mut sum, mut n) = (1.0 / a, 1.0 / a, a);
        for _ in 0..10_000 {
            n += 1.0;
            term *= x / n;
            sum += term;
            if term.abs() < sum.abs() * 1e-15 {
                break;
            }
        }
        1.0 - sum * log_prefactor.exp()
    } else {
        let tiny = 1e-300;
        let mut b = x + 1.0 - a;
        let mut c = 1.0 / tiny;
        let mut d = 1.0 / b;
        let mut h = d;
        for i in 1..10_000 {
            let an = -(i as f64) * (i as f64 - a);
            b += 2.0;
            d = an * d + b;
            d = if d.abs() < tiny { tiny } else { d };
            c = b + an / c;
            c = if c.abs() < tiny { tiny } else { c };
            d = 1.0 / d;
            let delta = d * c;
            h *= delta;
            if (delta - 1.0).abs() < 1e-15 {
                break;
            }
        }
        log_prefactor.exp() * h
    }
}

/// Lanczos approximation (g = 7, 9 terms).
fn ln_gamma(x: f64) -> f64 {
    const COEFFICIENTS: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    let x = x - 1.0;
    let t = x + 7.5;
    let series = COEFFICIENTS[1..]
        .iter()
        .enumerate()
        .fold(COEFFICIENTS[0], |sum, (i, &c)| {
            sum + c / (x + i as f64 + 1.0)
        });
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + series.ln()
}

/// A verifier that accepts every draft: its output follows the drafter, not the target.
fn always_accept(
    drafts: &[u32],
    _q: Option<&[f32]>,
    p: &[f32],
    vocab: usize,
    sampler: &mut Sampler,
    _residual: &mut Vec<f32>,
) -> Verdict {
    let j = drafts.len();
    Verdict {
        accepted: j,
        next: sampler.draw(&p[j * vocab..(j + 1) * vocab]),
    }
}

/// The classic slip: the right acceptance test, but a rejection resamples from p instead of
/// the residual max(0, p - q), which over-weights the drafter's choices.
fn resample_from_target(
    drafts: &[u32],
    q: Option<&[f32]>,
    p: &[f32],
    vocab: usize,
    sampler: &mut Sampler,
    _residual: &mut Vec<f32>,
) -> Verdict {
    for (j, &x) in drafts.iter().enumerate() {
        let p_row = &p[j * vocab..(j + 1) * vocab];
        let qx = q.map_or(1.0, |q| q[j * vocab + x as usize] as f64);
        if sampler.uniform() * qx >= p_row[x as usize] as f64 {
            return Verdict {
                accepted: j,
                next: sampler.draw(p_row),
            };
        }
    }
    let j = drafts.len();
    Verdict {
        accepted: j,
        next: sampler.draw(&p[j * vocab..(j + 1) * vocab]),
    }
}

/// `pipespec` stages before their second step wait a moment, so that the target finds drafts
/// to verify (it would otherwise often step alone on models this fast, and test nothing).
fn wait_for_drafts(level: usize, step: usize) -> std::time::Duration {
    std::time::Duration::from_micros(if level > 0 && step == 1 { 120 } else { 0 })
}

/// A longer wait, for the test that must see full windows verified.
fn wait_for_full_windows(level: usize, step: usize) -> std::time::Duration {
    std::time::Duration::from_micros(if level > 0 && step == 1 { 400 } else { 0 })
}

fn speculation(strategy: Strategy) -> SpeculationConfig {
    SpeculationConfig {
        window: WINDOW,
        delay: (strategy == Strategy::Pipespec).then_some(wait_for_drafts as _),
        ..Default::default()
    }
}

struct Fixture {
    target: Arc<Model>,
    draft: Arc<Model>,
    other_draft: Arc<Model>,
    prompt: Vec<u32>,
    _models: Models,
}

fn fixture() -> Fixture {
    let mut models = Models::new();
    Fixture {
        target: tiny(&mut models, 41),
        draft: tiny(&mut models, 42),
        other_draft: tiny(&mut models, 43),
        // Repetitive, so the n-gram level always has something to propose.
        prompt: vec![1, 2, 3, 1, 2, 3, 1, 2],
        _models: models,
    }
}

fn chains(f: &Fixture) -> Vec<(Strategy, Vec<LevelSpec>)> {
    let (target, draft, other) = (
        model_level(f.target.clone()),
        model_level(f.draft.clone()),
        model_level(f.other_draft.clone()),
    );
    vec![
        (Strategy::Ar, vec![target.clone()]),
        (Strategy::Sd, vec![draft.clone(), target.clone()]),
        (Strategy::Lookup, vec![LevelSpec::ngram(), target.clone()]),
        (
            Strategy::Staged,
            vec![LevelSpec::ngram(), draft.clone(), target.clone()],
        ),
        (
            Strategy::Staged,
            vec![other.clone(), draft.clone(), target.clone()],
        ),
        (Strategy::Pipespec, vec![draft.clone(), target.clone()]),
        (
            Strategy::Pipespec,
            vec![LevelSpec::ngram(), draft.clone(), target.clone()],
        ),
        (Strategy::Pipespec, vec![other, draft, target]),
    ]
}

fn check_every_strategy(params: SamplingParams) {
    let f = fixture();
    let expected = exact_joint(&f.target, &f.prompt, &params);
    for (strategy, levels) in chains(&f) {
        // The 3-level pipelines verify full windows only; the 2-level one whatever is there.
        let speculation = SpeculationConfig {
            fill_window: strategy == Strategy::Pipespec && levels.len() == 3,
            ..speculation(strategy)
        };
        let counts = histogram(&levels, strategy, &f.prompt, params, &speculation);
        let mut p = chi_square_p_value(&counts, &expected);
        if strategy == Strategy::Pipespec && p <= 0.01 {
            // The pipeline's thread interleavings make its draws vary from run to run, so an
            // exact sampler still falls below 0.01 once in 100 runs: it gets one fresh set of
            // seeds. A wrong sampler fails both (see a_wrong_verifier_fails_the_same_test).
            let counts = histogram_from(DRAWS, &levels, strategy, &f.prompt, params, &speculation);
            p = chi_square_p_value(&counts, &expected);
        }
        eprintln!(
            "{params:?} {strategy} over {} levels: p = {p:.4}",
            levels.len()
        );
        assert!(p > 0.01, "{strategy} over {} levels: the first {DEPTH} tokens are not distributed as the target's (p = {p})", levels.len());
    }
}

#[test]
fn every_strategy_samples_exactly_as_the_target() {
    check_every_strategy(SamplingParams {
        temperature: 1.0,
        top_k: 0,
        top_p: 1.0,
    });
}

#[test]
fn every_strategy_samples_exactly_with_top_k_and_top_p() {
    check_every_strategy(SamplingParams {
        temperature: 0.8,
        top_k: 6,
        top_p: 0.9,
    });
}

#[test]
fn a_wrong_verifier_fails_the_same_test() {
    let f = fixture();
    let params = SamplingParams {
        temperature: 1.0,
        top_k: 0,
        top_p: 1.0,
    };
    let expected = exact_joint(&f.target, &f.prompt, &params);
    let sd = vec![model_level(f.draft.clone()), model_level(f.target.clone())];
    for (name, verifier) in [
        ("always accept", always_accept as _),
        ("resample from p", resample_from_target as _),
    ] {
        for strategy in [Strategy::Sd, Strategy::Pipespec] {
            let speculation = SpeculationConfig {
                sampling_verifier: verifier,
                delay: (strategy == Strategy::Pipespec).then_some(wait_for_full_windows as _),
                ..speculation(strategy)
            };
            let counts = histogram(&sd, strategy, &f.prompt, params, &speculation);
            let p = chi_square_p_value(&counts, &expected);
            eprintln!("wrong verifier ({name}), {strategy}: p = {p:.3e}");
            assert!(
                p < 0.01,
                "the test cannot tell a wrong verifier ({name}) from a right one under {strategy}: p = {p}"
            );
        }
    }
}

#[test]
fn the_p_value_is_right_on_known_values() {
    // Chi-square survival function: df 2 is exp(-x/2); df 10 at 18.307 is 0.05; df 100 at 80 is 0.9297.
    assert!((upper_regularized_gamma(1.0, 3.0) - (-3.0f64).exp()).abs() < 1e-12);
    assert!((upper_regularized_gamma(5.0, 18.307 / 2.0) - 0.05).abs() < 1e-4);
    assert!((upper_regularized_gamma(50.0, 40.0) - 0.929_665).abs() < 1e-5);
}
