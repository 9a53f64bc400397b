//! Batched decoding: many concurrent requests of every strategy, their passes sharing the
//! batch engine's steps, each give exactly their solo output (greedy and seeded sampling);
//! cancelled ones leave and the rest go on; chunked prompts change nothing.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use candle_core::quantized::GgmlDType;
use pipespec_decode::{
    BatchConfig, BatchEngine, ChainBuilder, Cores, FinishReason, GenerationConfig, LevelSpec,
    SamplingParams, SpeculationConfig, StepReport, Strategy, WindowHook,
};

use crate::common::{chain, config, pool, random_tokens, reference, spec, Models, CAPACITY};

const STRATEGIES: [Strategy; 5] = [
    Strategy::Ar,
    Strategy::Sd,
    Strategy::Staged,
    Strategy::Lookup,
    Strategy::Pipespec,
];

/// One request of the mix.
#[derive(Clone)]
struct Request {
    strategy: Strategy,
    prompt: Vec<u32>,
    generation: GenerationConfig,
    window: usize,
    /// Cancel after this many tokens.
    cancel_after: Option<usize>,
}

fn requests(count: usize, vocab: usize) -> Vec<Request> {
    (0..count)
        .map(|i| {
            let strategy = STRATEGIES[i % STRATEGIES.len()];
            // pipespec's sampled output depends on timing even alone: greedy only
            let sampled = i % 2 == 1 && strategy != Strategy::Pipespec;
            let sampling = if sampled {
                SamplingParams {
                    temperature: 0.9,
                    top_k: 0,
                    top_p: 1.0,
                }
            } else {
                SamplingParams::greedy()
            };
            let mut prompt = random_tokens(i as u64, 4 + (i * 7) % 40, vocab);
            if i % 3 == 0 {
                // repetition for the n-gram drafter to find
                let again = prompt.clone();
                prompt.extend_from_slice(&again);
            }
            let stops = if i % 7 == 3 { vec![5, 9] } else { Vec::new() };
            Request {
                strategy,
                prompt,
                generation: config(8 + (i * 5) % 31, sampling, i as u64, stops),
                window: 1 + i % 4,
                cancel_after: (i % 6 == 5).then_some(2 + i % 5),
            }
        })
        .collect()
}

/// The chain of every request: n-gram, the target quantized to Q4_1, the target.
fn specs(models: &mut Models) -> Vec<LevelSpec> {
    let target_spec = spec(7, 128, 64, 2);
    let mut draft_spec = target_spec.clone();
    draft_spec.matrix_dtype = GgmlDType::Q4_1;
    vec![
        LevelSpec::ngram(),
        LevelSpec::model("draft", models.load(&draft_spec)),
        LevelSpec::model("target", models.load(&target_spec)),
    ]
}

type Outcome = (Vec<u32>, FinishReason);

fn run(levels: &mut [Box<dyn pipespec_decode::Level>], request: &Request) -> Outcome {
    let mut produced = 0;
    let output = request
        .strategy
        .generate(
            levels,
            &request.prompt,
            &request.generation,
            &SpeculationConfig::with_window(request.window),
            &mut |_| {
                produced += 1;
                request.cancel_after.is_none_or(|limit| produced < limit)
            },
        )
        .expect("a generation");
    (output.generation.tokens, output.generation.finish_reason)
}

/// Runs every request at once on its own thread, over levels of `engine`.
fn batched(builder: &ChainBuilder, engine: &BatchEngine, requests: &[Request]) -> Vec<Outcome> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = requests
            .iter()
            .map(|request| {
                let mut levels = builder
                    .build_batched(engine, CAPACITY)
                    .expect("batched levels");
                scope.spawn(move || run(&mut levels, request))
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().expect("a request thread"))
            .collect()
    })
}

/// An engine on 2 threads whose steps are recorded.
fn engine(config: BatchConfig) -> (BatchEngine, Arc<Mutex<Vec<StepReport>>>) {
    let steps = Arc::new(Mutex::new(Vec::new()));
    let record = steps.clone();
    let threads = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .expect("a pool");
    let engine = BatchEngine::start(
        Arc::new(threads),
        config,
        Some(Box::new(move |_: &Arc<_>, step: &StepReport| {
            record.lock().unwrap().push(*step)
        })),
    )
    .expect("an engine");
    (engine, steps)
}

#[test]
fn concurrent_mixed_requests_give_their_solo_outputs() {
    let mut models = Models::new();
    let specs = specs(&mut models);
    let requests = requests(40, 128);
    let solo: Vec<Outcome> = requests
        .iter()
        .map(|request| run(&mut chain(&specs), request))
        .collect();
    let builder = ChainBuilder::new(specs, CAPACITY, Cores::Shared(pool())).unwrap();
    let (engine, steps) = engine(BatchConfig::default());
    let together = batched(&builder, &engine, &requests);
    for (index, (alone, batched)) in solo.iter().zip(&together).enumerate() {
        let request = &requests[index];
        assert_eq!(
            alone, batched,
            "request {index} ({}, window {}, cancel {:?}) differs in the batch",
            request.strategy, request.window, request.cancel_after
        );
    }
    let cancelled = together
        .iter()
        .filter(|(_, reason)| *reason == FinishReason::Cancelled)
        .count();
    assert!(cancelled >= 5, "only {cancelled} requests were cancelled");
    assert_eq!(engine.members(), 0, "every request left the engine");
    let steps = steps.lock().unwrap();
    let widest = steps.iter().map(|step| step.sequences).max().unwrap_or(0);
    assert!(widest >= 8, "the widest step held {widest} sequences");
}

#[test]
fn a_window_chosen_per_round_changes_no_greedy_output() {
    let mut models = Models::new();
    let specs = specs(&mut models);
    let target = match specs.last() {
        Some(LevelSpec::Model { model, .. }) => model.clone(),
        _ => unreachable!(),
    };
    for (i, strategy) in [Strategy::Sd, Strategy::Staged, Strategy::Lookup]
        .into_iter()
        .enumerate()
    {
        for seed in 0..4u64 {
            let prompt = random_tokens(seed + 10 * i as u64, 12 + 5 * seed as usize, 128);
            let generation = config(30, SamplingParams::greedy(), seed, Vec::new());
            let rounds = Arc::new(AtomicUsize::new(0));
            let counted = rounds.clone();
            // every third round a single target step, the others a window of 1 to 4
            let hook: WindowHook = Arc::new(move |window| {
                let round = counted.fetch_add(1, Ordering::Relaxed);
                if round % 3 == 2 {
                    0
                } else {
                    1 + round % window
                }
            });
            let speculation = SpeculationConfig {
                window_hook: Some(hook),
                ..SpeculationConfig::with_window(4)
            };
            let output = strategy
                .generate(
                    &mut chain(&specs),
                    &prompt,
                    &generation,
                    &speculation,
                    &mut |_| true,
                )
                .unwrap();
            let expected = reference(&target, &prompt, &generation);
            assert_eq!(
                output.generation.tokens, expected.tokens,
                "{strategy}, seed {seed}"
            );
            assert!(
                rounds.load(Ordering::Relaxed) >= 3,
                "{strategy}: the hook was not asked"
            );
        }
    }
}

#[test]
fn prompts_fed_in_small_chunks_give_the_same_outputs() {
    let mut models = Models::new();
    let specs = specs(&mut models);
    let mut requests = requests(10, 128);
    for (i, request) in requests.iter_mut().enumerate() {
        request.prompt = random_tokens(100 + i as u64, 70 + 13 * i, 128);
        request.cancel_after = None;
    }
    let solo: Vec<Outcome> = requests
        .iter()
        .map(|request| run(&mut chain(&specs), request))
        .collect();
    let builder = ChainBuilder::new(specs, CAPACITY, Cores::Shared(pool())).unwrap();
    let (engine, steps) = engine(BatchConfig {
        step_tokens: 1,
        ..BatchConfig::default()
    });
    assert_eq!(batched(&builder, &engine, &requests), solo);
    let steps = steps.lock().unwrap();
    // every prompt has 70 tokens or more: fed whole, one sequence would feed them in one pass
    let longest = steps.iter().map(|step| step.longest).max().unwrap_or(0);
    assert!(
        longest < 70,
        "a sequence fed {longest} rows in one pass: prompts were not chunked"
    );
}
