//! `pipespec`: exact greedy output under many thread interleavings, repeatability, termination (EOS, budget, cancellation) with every stage thread joined, and exact sampling.

use std::cell::RefCell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use candle_core::quantized::GgmlDType;
use pipespec_decode::{
    FinishReason, GenerationConfig, Level, SamplingParams, SpeculationConfig, Strategy,
    StrategyOutput,
};
use pipespec_model::Model;

use crate::common::{
    chain, chain_lending, config, model_level, random_tokens, reference, spec, LevelSpec, Models,
    PrefillHooked, PrefillMoment,
};

/// A pseudo-random pause of 0 to ~300 µs, from the level and step alone (a fn pointer: no state).
fn jitter(level: usize, step: usize) -> Duration {
    let mut x = (level as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (step as u64);
    x ^= x >> 31;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 29;
    Duration::from_micros(x % 300)
}

/// Long pauses on the drafters only: the target runs with (almost) nothing to verify.
fn slow_drafters(level: usize, step: usize) -> Duration {
    if level == 0 {
        jitter(level, step) * 4
    } else {
        Duration::ZERO
    }
}

/// A 2 ms pause in every step of the levels below the drafter, so that the drafter is sure to
/// get ahead and be verified even when the test threads crowd the cores.
fn slow_verifiers(level: usize, _step: usize) -> Duration {
    if level > 0 {
        Duration::from_millis(2)
    } else {
        Duration::ZERO
    }
}

fn speculation(
    window: usize,
    run_ahead: usize,
    delay: Option<pipespec_decode::DelayHook>,
) -> SpeculationConfig {
    SpeculationConfig {
        window,
        run_ahead,
        delay,
        ..Default::default()
    }
}

fn pipespec(
    levels: &mut [Box<dyn Level>],
    prompt: &[u32],
    generation: &GenerationConfig,
    speculation: &SpeculationConfig,
) -> StrategyOutput {
    Strategy::Pipespec
        .generate(levels, prompt, generation, speculation, &mut |_| true)
        .expect("a pipespec run")
}

/// A chain for `case`: a target and 1 to 3 levels below it (identical, quantized, unrelated
/// models and the n-gram drafter in turn).
fn build(models: &mut Models, case: usize) -> (Arc<Model>, Vec<LevelSpec>) {
    let vocab = [64, 96][case % 2];
    let target_spec = spec(500 + case as u64, vocab, 32, 1 + case % 2);
    let target = models.load(&target_spec);
    let mut quantized = target_spec.clone();
    quantized.matrix_dtype = GgmlDType::Q4_1;
    let quantized = model_level(models.load(&quantized));
    let unrelated = model_level(models.load(&spec(7_000 + case as u64, vocab, 32, 1)));
    let identical = model_level(target.clone());
    let mut levels = match case % 6 {
        0 => vec![quantized],
        1 => vec![unrelated],
        2 => vec![LevelSpec::ngram(), quantized],
        3 => vec![unrelated, identical],
        4 => vec![LevelSpec::ngram(), unrelated, quantized],
        _ => vec![quantized.clone(), unrelated, quantized],
    };
    levels.push(model_level(target.clone()));
    (target, levels)
}

fn prompt(case: usize, vocab: usize) -> Vec<u32> {
    if case.is_multiple_of(3) {
        let phrase = random_tokens(case as u64, 4, vocab);
        phrase.iter().cycle().take(14).copied().collect()
    } else {
        random_tokens(case as u64, 2 + case % 11, vocab)
    }
}

#[test]
fn greedy_output_equals_ar_under_many_interleavings() {
    let mut models = Models::new();
    let (mut runs, mut delayed, mut rollbacks) = (0, 0, 0);
    for case in 0..40 {
        let (target, levels) = build(&mut models, case);
        let vocab = target.config.vocab_size;
        let prompt = prompt(case, vocab);
        let mut generation = config(12 + case % 21, SamplingParams::greedy(), 0, Vec::new());
        let mut expected = reference(&target, &prompt, &generation);
        if case % 4 == 1 {
            generation.stop_ids = vec![expected.tokens[expected.tokens.len() / 2]];
            expected = reference(&target, &prompt, &generation);
        }
        let window = 1 + case % 7;
        for (variant, delay) in [None, Some(jitter as _), Some(slow_drafters as _)]
            .into_iter()
            .enumerate()
        {
            let run_ahead = [1, 3, 8, 16][(case + variant) % 4];
            let speculation = SpeculationConfig {
                fill_window: (case + variant) % 3 == 0,
                ..speculation(window, run_ahead, delay)
            };
            // Filling verifiers park, so the drafter borrows their cores.
            let mut levels_now = if speculation.fill_window {
                chain_lending(&levels)
            } else {
                chain(&levels)
            };
            let output = pipespec(&mut levels_now, &prompt, &generation, &speculation);
            assert_eq!(
                (output.generation.tokens, output.generation.finish_reason),
                (expected.tokens.clone(), expected.finish_reason),
                "case {case} ({} levels, window {window}, run-ahead {run_ahead}, delay {variant}, fill {})",
                levels.len(),
                speculation.fill_window
            );
            runs += 1;
            delayed += usize::from(delay.is_some());
            rollbacks += output
                .levels
                .iter()
                .map(|l| l.metrics.rollbacks_received)
                .sum::<usize>();
        }
    }
    eprintln!("{runs} runs ({delayed} with delays), {rollbacks} rollbacks received");
    assert!(runs >= 100 && delayed >= 60);
    assert!(
        rollbacks > 0,
        "no run ever rolled back: the test misses the interesting paths"
    );
}

#[test]
fn repeat_runs_give_the_same_output() {
    let mut models = Models::new();
    for case in [2, 4, 5] {
        let (target, levels) = build(&mut models, case);
        let prompt = prompt(case, target.config.vocab_size);
        let generation = config(40, SamplingParams::greedy(), 0, Vec::new());
        let expected = reference(&target, &prompt, &generation).tokens;
        let mut levels = chain(&levels);
        for repeat in 0..6 {
            // The same chain again: each level realigns its cache to the new run.
            let delay = (repeat % 2 == 1).then_some(jitter as _);
            let output = pipespec(&mut levels, &prompt, &generation, &speculation(4, 6, delay));
            assert_eq!(
                output.generation.tokens, expected,
                "case {case}, repeat {repeat}"
            );
        }
    }
}

#[test]
fn a_run_ahead_bound_limits_wasted_drafts() {
    // An unrelated drafter is almost always wrong: with a bound of 1 it drafts about one token
    // per target step; unbounded it would draft without end while the target is slowed down.
    let mut models = Models::new();
    let target = models.load(&spec(11, 64, 64, 2));
    let drafter = models.load(&spec(12, 64, 32, 1));
    let levels = [model_level(drafter), model_level(target.clone())];
    let prompt = random_tokens(5, 8, 64);
    let generation = config(30, SamplingParams::greedy(), 0, Vec::new());
    let expected = reference(&target, &prompt, &generation).tokens;
    let output = pipespec(
        &mut chain(&levels),
        &prompt,
        &generation,
        &speculation(4, 1, None),
    );
    assert_eq!(output.generation.tokens, expected);
    let (drafter, target) = (&output.levels[0].metrics, &output.levels[1].metrics);
    // Each draft pass adds one token; at most one token is ever ahead of the target's output,
    // so the drafter's passes are bounded by the target's passes plus its rollbacks.
    assert!(
        drafter.forward_passes <= target.forward_passes + drafter.rollbacks_received + 2,
        "{drafter:?} vs {target:?}"
    );
}

#[test]
fn a_filling_verifier_checks_full_windows() {
    // An identical drafter is never wrong and never parks before the budget (run-ahead 16 >
    // window 4): with `fill_window` every verification but the last waits for 4 drafts, even
    // though the drafter is slowed down and the target would otherwise find one or two.
    let mut models = Models::new();
    let target = models.load(&spec(13, 64, 32, 1));
    let levels = [model_level(target.clone()), model_level(target.clone())];
    let prompt = random_tokens(6, 5, 64);
    let generation = config(41, SamplingParams::greedy(), 0, Vec::new());
    let expected = reference(&target, &prompt, &generation).tokens;
    let fill = SpeculationConfig {
        fill_window: true,
        ..speculation(4, 16, Some(slow_drafters))
    };
    let output = pipespec(&mut chain_lending(&levels), &prompt, &generation, &fill);
    assert_eq!(output.generation.tokens, expected);
    let drafter = &output.levels[0].metrics;
    // While the target waited, the drafter ran on its cores.
    assert!(drafter.borrowed_passes > 0, "{drafter:?}");
    // The target borrows only once the drafter is done (parked at the budget).
    assert!(
        output.levels[1].metrics.borrowed_passes <= 2,
        "{:?}",
        output.levels[1]
    );
    // 40 tokens after the first: 8 verifications of 4 drafts commit 5 each.
    assert_eq!(drafter.n_accepted, drafter.n_drafted);
    assert_eq!(
        (drafter.n_drafted, drafter.n_verifications),
        (32, 8),
        "{drafter:?}"
    );
}

#[test]
fn a_target_verifies_on_borrowed_cores_while_its_drafter_waits() {
    // Run-ahead = window: the drafter parks after each full window, and the target verifies
    // on every level's cores, as `staged` would.
    let mut models = Models::new();
    let target = models.load(&spec(14, 64, 32, 1));
    let levels = [model_level(target.clone()), model_level(target.clone())];
    let prompt = random_tokens(7, 5, 64);
    let generation = config(30, SamplingParams::greedy(), 0, Vec::new());
    let expected = reference(&target, &prompt, &generation).tokens;
    let lockstep = SpeculationConfig {
        fill_window: true,
        ..speculation(4, 4, None)
    };
    let output = pipespec(&mut chain_lending(&levels), &prompt, &generation, &lockstep);
    assert_eq!(output.generation.tokens, expected);
    let (drafter, target) = (&output.levels[0].metrics, &output.levels[1].metrics);
    assert!(target.borrowed_passes > 0, "{target:?}");
    assert!(drafter.borrowed_passes > 0, "{drafter:?}");
}

/// Decrements `live` when its thread exits (thread-local destructors run before `join` returns).
struct ExitGuard(Arc<AtomicUsize>);

impl Drop for ExitGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

thread_local! {
    static GUARDS: RefCell<Vec<ExitGuard>> = const { RefCell::new(Vec::new()) };
}

/// `levels`, each counting the stage threads (other than the caller's) that prefilled it
/// (`seen`) and have not exited (`live`).
fn watched(
    levels: &[LevelSpec],
    live: &Arc<AtomicUsize>,
    seen: &Arc<AtomicUsize>,
) -> Vec<Box<dyn Level>> {
    chain(levels)
        .into_iter()
        .map(|inner| -> Box<dyn Level> {
            let owner = std::thread::current().id();
            let (live, seen) = (live.clone(), seen.clone());
            let hook = move |moment| {
                if moment == PrefillMoment::Start && std::thread::current().id() != owner {
                    live.fetch_add(1, Ordering::SeqCst);
                    seen.fetch_add(1, Ordering::SeqCst);
                    GUARDS.with(|g| g.borrow_mut().push(ExitGuard(live.clone())));
                }
            };
            Box::new(PrefillHooked {
                inner,
                hook: Box::new(hook),
            })
        })
        .collect()
}

#[test]
fn cancellation_eos_and_budget_leave_no_thread_behind() {
    let mut models = Models::new();
    let target = models.load(&spec(21, 64, 32, 2));
    let quantized = {
        let mut s = spec(21, 64, 32, 2);
        s.matrix_dtype = GgmlDType::Q4_1;
        models.load(&s)
    };
    let levels = [
        LevelSpec::ngram(),
        model_level(quantized),
        model_level(target.clone()),
    ];
    let prompt = random_tokens(9, 10, 64);
    let full = config(48, SamplingParams::greedy(), 0, Vec::new());
    let expected = reference(&target, &prompt, &full).tokens;
    for delay in [None, Some(jitter as _)] {
        // Cancellation after a few tokens: the callback's false stops every level.
        for cancel_after in [1, 5, 17] {
            let (live, seen) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
            let mut levels = watched(&levels, &live, &seen);
            let mut delivered = 0;
            let output = Strategy::Pipespec
                .generate(
                    &mut levels,
                    &prompt,
                    &full,
                    &speculation(3, 8, delay),
                    &mut |_| {
                        delivered += 1;
                        delivered < cancel_after
                    },
                )
                .expect("a cancelled run");
            assert_eq!(output.generation.finish_reason, FinishReason::Cancelled);
            assert_eq!(output.generation.tokens, expected[..cancel_after]);
            assert_eq!(delivered, cancel_after);
            assert_eq!(
                seen.load(Ordering::SeqCst),
                2,
                "two stages on their own threads"
            );
            assert_eq!(
                live.load(Ordering::SeqCst),
                0,
                "a stage thread outlived its request"
            );
        }
        // EOS: a stop id mid-output.
        let mut with_stop = full.clone();
        with_stop.stop_ids = vec![expected[20]];
        let stop_reference = reference(&target, &prompt, &with_stop);
        let (live, seen) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let output = pipespec(
            &mut watched(&levels, &live, &seen),
            &prompt,
            &with_stop,
            &speculation(5, 8, delay),
        );
        assert_eq!(output.generation.finish_reason, FinishReason::Stop);
        assert_eq!(output.generation.tokens, stop_reference.tokens);
        assert_eq!(
            (seen.load(Ordering::SeqCst), live.load(Ordering::SeqCst)),
            (2, 0)
        );
        // The budget, exactly, including budgets smaller than a window.
        for max_tokens in [0, 1, 2, 7, 48] {
            let (live, seen) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
            let budget = config(max_tokens, SamplingParams::greedy(), 0, Vec::new());
            let output = pipespec(
                &mut watched(&levels, &live, &seen),
                &prompt,
                &budget,
                &speculation(6, 8, delay),
            );
            assert_eq!(output.generation.tokens, expected[..max_tokens]);
            assert_eq!(output.generation.finish_reason, FinishReason::Length);
            assert_eq!(live.load(Ordering::SeqCst), 0);
        }
    }
}

#[test]
fn per_level_metrics_describe_the_run() {
    let mut models = Models::new();
    let target = models.load(&spec(31, 64, 64, 2));
    let levels = [model_level(target.clone()), model_level(target.clone())];
    let prompt = random_tokens(2, 6, 64);
    let generation = config(40, SamplingParams::greedy(), 0, Vec::new());
    let output = pipespec(
        &mut chain(&levels),
        &prompt,
        &generation,
        &speculation(4, 8, Some(slow_verifiers)),
    );
    let wall = output.generation.wall_s;
    let (drafter, target) = (&output.levels[0].metrics, &output.levels[1].metrics);
    // An identical drafter is never wrong.
    assert_eq!(drafter.n_accepted, drafter.n_drafted);
    assert!(drafter.n_drafted > 0 && drafter.n_verifications > 0);
    assert_eq!((drafter.rollbacks_received, target.rollbacks_sent), (0, 0));
    for m in [drafter, target] {
        assert!(
            m.busy_s > 0.0 && m.busy_s + m.idle_s <= wall * 1.05 + 1e-3,
            "{m:?}, wall {wall}"
        );
        assert!(m.utilisation(wall) > 0.0 && m.utilisation(wall) <= 1.05);
    }
}

#[test]
fn a_chain_without_a_verifier_above_the_first_level_is_refused() {
    let mut models = Models::new();
    let target = models.load(&spec(41, 64, 32, 1));
    let mut levels = chain(&[LevelSpec::ngram(), LevelSpec::ngram(), model_level(target)]);
    let generation = config(4, SamplingParams::greedy(), 0, Vec::new());
    let result = Strategy::Pipespec.generate(
        &mut levels,
        &[1, 2],
        &generation,
        &SpeculationConfig::default(),
        &mut |_| true,
    );
    assert!(result.is_err());
}
