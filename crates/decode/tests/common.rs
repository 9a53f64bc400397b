//! Fixtures shared by the strategy tests: seeded tiny models, chains of levels, reference runs.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use candle_core::quantized::GgmlDType;
pub use pipespec_decode::LevelSpec;
use pipespec_decode::{
    generate_autoregressive, ChainBuilder, Cores, Drafts, GenerationConfig, GenerationOutput,
    Level, LevelMetrics, Sampler, SamplingParams,
};
use pipespec_model::config::Architecture;
use pipespec_model::synthetic::SyntheticSpec;
use pipespec_model::{Model, Session};

/// Cache positions of every test session: prompts and outputs here stay far below.
pub const CAPACITY: usize = 256;

/// One compute thread: the tiny models gain nothing from more, and the tests run in parallel.
pub fn pool() -> Arc<rayon::ThreadPool> {
    static POOL: OnceLock<Arc<rayon::ThreadPool>> = OnceLock::new();
    POOL.get_or_init(|| {
        Arc::new(
            rayon::ThreadPoolBuilder::new()
                .num_threads(1)
                .build()
                .expect("a thread pool"),
        )
    })
    .clone()
}

/// A small llama: `vocab` tokens, `hidden` wide, `layers` deep, no tokenizer.
pub fn spec(seed: u64, vocab: usize, hidden: usize, layers: usize) -> SyntheticSpec {
    SyntheticSpec {
        architecture: Architecture::Llama,
        vocab_size: vocab,
        hidden_size: hidden,
        intermediate_size: 2 * hidden,
        layer_count: layers,
        head_count: 4,
        kv_head_count: 2,
        context_length: CAPACITY,
        tied_output: false,
        matrix_dtype: GgmlDType::F32,
        seed,
        with_tokenizer: false,
        logit_scale: 1.0,
    }
}

/// Writes models into one temporary directory and loads them.
pub struct Models {
    dir: tempfile::TempDir,
    count: usize,
}

impl Models {
    pub fn new() -> Models {
        Models {
            dir: tempfile::tempdir().expect("a temporary directory"),
            count: 0,
        }
    }

    pub fn load(&mut self, spec: &SyntheticSpec) -> Arc<Model> {
        self.count += 1;
        let path: PathBuf = self.dir.path().join(format!("model-{}.gguf", self.count));
        spec.write(&path).expect("writing a synthetic model");
        Model::load(&path).expect("loading a synthetic model")
    }
}

/// A model level of a test chain.
pub fn model_level(model: Arc<Model>) -> LevelSpec {
    LevelSpec::model("model", model)
}

pub fn session(model: &Arc<Model>) -> Session {
    Session::new(model.clone(), CAPACITY, pool())
}

/// Fresh levels (empty caches, zero counters) for a chain, through the one chain builder.
pub fn chain(levels: &[LevelSpec]) -> Vec<Box<dyn Level>> {
    build(levels, Cores::Shared(pool()))
}

/// `chain`, with every model level allowed to borrow one 2-thread pool (pipespec's core
/// lending).
pub fn chain_lending(levels: &[LevelSpec]) -> Vec<Box<dyn Level>> {
    let wide = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .expect("a 2-thread pool");
    let cores = Cores::Lending {
        pools: vec![pool(); levels.len()],
        wide: Arc::new(wide),
    };
    build(levels, cores)
}

fn build(levels: &[LevelSpec], cores: Cores) -> Vec<Box<dyn Level>> {
    ChainBuilder::new(levels.to_vec(), CAPACITY, cores)
        .and_then(|builder| builder.build())
        .expect("a test chain")
}

pub fn config(
    max_tokens: usize,
    sampling: SamplingParams,
    seed: u64,
    stop_ids: Vec<u32>,
) -> GenerationConfig {
    GenerationConfig {
        max_tokens,
        sampling,
        seed,
        stop_ids,
        ignore_eos: false,
    }
}

/// The reference: `generate_autoregressive` on a fresh session of `target`.
pub fn reference(
    target: &Arc<Model>,
    prompt: &[u32],
    config: &GenerationConfig,
) -> GenerationOutput {
    generate_autoregressive(&mut session(target), prompt, config, &mut |_| true)
        .expect("the reference run")
}

/// `count` pseudo-random tokens below `vocab`.
pub fn random_tokens(seed: u64, count: usize, vocab: usize) -> Vec<u32> {
    let mut state = seed
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    (0..count)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((state >> 33) % vocab as u64) as u32
        })
        .collect()
}

/// When a prefill hook is called: before the level's prefill, or after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrefillMoment {
    Start,
    End,
}

/// A level that calls `hook` around its prefill and otherwise is `inner`.
pub struct PrefillHooked {
    pub inner: Box<dyn Level>,
    pub hook: Box<dyn FnMut(PrefillMoment) + Send>,
}

impl Level for PrefillHooked {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn can_verify(&self) -> bool {
        self.inner.can_verify()
    }

    fn vocab_size(&self) -> Option<usize> {
        self.inner.vocab_size()
    }

    fn capacity(&self) -> Option<usize> {
        self.inner.capacity()
    }

    fn prefill(&mut self, prompt: &[u32]) -> pipespec_decode::Result<()> {
        (self.hook)(PrefillMoment::Start);
        let result = self.inner.prefill(prompt);
        (self.hook)(PrefillMoment::End);
        result
    }

    fn logits(&mut self, sequence: &[u32], rows: usize) -> pipespec_decode::Result<&[f32]> {
        self.inner.logits(sequence, rows)
    }

    fn draft(
        &mut self,
        sequence: &[u32],
        count: usize,
        sampling: &SamplingParams,
        sampler: &mut Sampler,
        drafts: &mut Drafts,
    ) -> pipespec_decode::Result<()> {
        self.inner.draft(sequence, count, sampling, sampler, drafts)
    }

    fn metrics(&self) -> &LevelMetrics {
        self.inner.metrics()
    }

    fn metrics_mut(&mut self) -> &mut LevelMetrics {
        self.inner.metrics_mut()
    }
}
