//! One way to build a chain of levels: specs (which models, which n-gram range), a KV cache
//! capacity and how the levels get their cores, turned into fresh levels as often as needed
//! (the CLI once per run, the server once per slot, the tests once per case).

mod cores;

use std::sync::Arc;

use pipespec_model::{LoraStack, Model, Session};

pub use cores::{split_threads, thread_pool, Cores};

use crate::batch::{BatchClient, BatchEngine};
use crate::error::{DecodeError, Result};
use crate::level::{CachedSequence, Level, ModelLevel};
use crate::ngram::{NgramLevel, DEFAULT_NGRAM_MAX, DEFAULT_NGRAM_MIN};
use crate::speculation::{default_run_ahead, SpeculationConfig};

/// What a level is, which is all a strategy needs to pick its levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LevelKind {
    /// The model-free prompt-lookup drafter: drafts only.
    Ngram,
    /// A model: drafts and verifies.
    Model,
}

impl LevelKind {
    /// The kind of a live level (`can_verify` tells them apart).
    pub fn of(level: &dyn Level) -> LevelKind {
        if level.can_verify() {
            LevelKind::Model
        } else {
            LevelKind::Ngram
        }
    }

    /// The kinds of a live chain's levels, smallest first.
    pub fn of_chain(chain: &[Box<dyn Level>]) -> Vec<LevelKind> {
        chain.iter().map(|level| LevelKind::of(&**level)).collect()
    }

    pub fn as_str(self) -> &'static str {
        match self {
            LevelKind::Ngram => "ngram",
            LevelKind::Model => "model",
        }
    }
}

/// One level of a chain, as a recipe: building it twice gives two levels with their own state
/// (KV caches, counters) over the same weights.
#[derive(Clone)]
pub enum LevelSpec {
    /// The n-gram drafter with its match range (tokens).
    Ngram { min: usize, max: usize },
    /// A model level named `name` (in reports); the weights are shared by every build, and
    /// `lora`'s adapters (checked against `model`) are added to them in every pass.
    Model {
        name: String,
        model: Arc<Model>,
        lora: Option<Arc<LoraStack>>,
    },
}

impl LevelSpec {
    pub fn kind(&self) -> LevelKind {
        match self {
            LevelSpec::Ngram { .. } => LevelKind::Ngram,
            LevelSpec::Model { .. } => LevelKind::Model,
        }
    }

    /// The n-gram drafter with its default match range.
    pub fn ngram() -> LevelSpec {
        LevelSpec::Ngram {
            min: DEFAULT_NGRAM_MIN,
            max: DEFAULT_NGRAM_MAX,
        }
    }

    pub fn model(name: impl Into<String>, model: Arc<Model>) -> LevelSpec {
        LevelSpec::Model {
            name: name.into(),
            model,
            lora: None,
        }
    }

    /// This spec with `lora`'s adapters on its model (an n-gram spec is returned unchanged).
    pub fn with_lora(self, lora: Option<Arc<LoraStack>>) -> LevelSpec {
        match self {
            LevelSpec::Model { name, model, .. } => LevelSpec::Model { name, model, lora },
            ngram => ngram,
        }
    }
}

/// A fresh session on `model` with `lora`'s adapters.
fn session(
    model: &Arc<Model>,
    lora: &Option<Arc<LoraStack>>,
    capacity: usize,
    pool: Arc<rayon::ThreadPool>,
) -> Result<Session> {
    let mut session = Session::new(model.clone(), capacity, pool);
    session.set_lora(lora.clone())?;
    Ok(session)
}

/// A chain's recipe, checked once: levels smallest first with a model last (the target),
/// every model level's KV cache capacity, and the cores each level computes on.
pub struct ChainBuilder {
    specs: Vec<LevelSpec>,
    capacity: usize,
    cores: Cores,
}

impl ChainBuilder {
    /// Fails when the chain is empty, its last level is not a model, an n-gram range is
    /// invalid, the capacity is 0 or `cores` has a pool count other than one per level.
    pub fn new(specs: Vec<LevelSpec>, capacity: usize, cores: Cores) -> Result<ChainBuilder> {
        if !matches!(specs.last(), Some(LevelSpec::Model { .. })) {
            return Err(DecodeError::InvalidParameter {
                name: "chain",
                bounds: "at least one level, a model last (the target)",
                value: specs
                    .iter()
                    .map(|spec| spec.kind().as_str())
                    .collect::<Vec<_>>()
                    .join(","),
            });
        }
        if capacity == 0 {
            return Err(DecodeError::InvalidParameter {
                name: "capacity",
                bounds: "at least 1 position",
                value: "0".into(),
            });
        }
        for spec in &specs {
            if let LevelSpec::Ngram { min, max } = spec {
                NgramLevel::new(*min, *max)?;
            }
        }
        cores.check(specs.len())?;
        Ok(ChainBuilder {
            specs,
            capacity,
            cores,
        })
    }

    pub fn specs(&self) -> &[LevelSpec] {
        &self.specs
    }

    /// This recipe with the target's adapters replaced by `lora` (a server request naming an
    /// adapter): the drafters stay as they are, so their drafts come from their own weights.
    pub fn with_target_lora(&self, lora: Option<Arc<LoraStack>>) -> ChainBuilder {
        let mut specs = self.specs.clone();
        if let Some(target) = specs.pop() {
            specs.push(target.with_lora(lora));
        }
        ChainBuilder {
            specs,
            capacity: self.capacity,
            cores: self.cores.clone(),
        }
    }

    /// The kinds of the levels, smallest first: what `Strategy::levels` checks.
    pub fn kinds(&self) -> Vec<LevelKind> {
        self.specs.iter().map(LevelSpec::kind).collect()
    }

    /// KV cache positions of every model level.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The threads each level computes on (an n-gram level's count is its unused pool's).
    pub fn level_threads(&self) -> Vec<usize> {
        (0..self.specs.len())
            .map(|index| self.cores.pool(index).current_num_threads())
            .collect()
    }

    /// The pool the target computes on: a batch engine's over this chain.
    pub fn compute_pool(&self) -> Arc<rayon::ThreadPool> {
        self.cores.pool(self.specs.len() - 1).clone()
    }

    /// Whether idle model levels lend their cores to the others (`Cores::Lending`).
    pub fn lends_cores(&self) -> bool {
        self.cores.lends()
    }

    /// Fits `speculation` to how this chain shares cores: verifiers fill their windows when
    /// cores are lent (so that drafters park and lend theirs), and the run-ahead is the user's
    /// (`run_ahead`) or the default for that sharing.
    pub fn fit(&self, speculation: &mut SpeculationConfig, run_ahead: Option<usize>) {
        let lends = self.lends_cores();
        speculation.fill_window = lends;
        speculation.run_ahead =
            run_ahead.unwrap_or_else(|| default_run_ahead(speculation.window, lends));
    }

    /// Fresh levels (empty caches, zero counters), smallest first.
    pub fn build(&self) -> Result<Vec<Box<dyn Level>>> {
        self.specs
            .iter()
            .enumerate()
            .map(|(index, spec)| -> Result<Box<dyn Level>> {
                Ok(match spec {
                    LevelSpec::Ngram { min, max } => Box::new(NgramLevel::new(*min, *max)?),
                    LevelSpec::Model { name, model, lora } => {
                        let pool = self.cores.pool(index).clone();
                        let level = ModelLevel::new(
                            name.clone(),
                            session(model, lora, self.capacity, pool)?,
                        );
                        match self.cores.lending_pool() {
                            Some(wide) => Box::new(level.with_borrowable_pool(wide.clone())),
                            None => Box::new(level),
                        }
                    }
                })
            })
            .collect()
    }

    /// Fresh levels whose model passes run inside `engine`'s steps, each KV cache holding
    /// `capacity` positions (at most the builder's): one member of the engine while they live.
    pub fn build_batched(
        &self,
        engine: &BatchEngine,
        capacity: usize,
    ) -> Result<Vec<Box<dyn Level>>> {
        self.build_batched_from(engine, capacity, Vec::new())
    }

    /// `build_batched`, each model level reusing the cache at its index in `caches` (what an
    /// earlier build's levels held, `Level::into_cache`) when it is of the same model and
    /// holds at least `capacity` positions: the tokens they share with a new sequence are
    /// not fed again.
    pub fn build_batched_from(
        &self,
        engine: &BatchEngine,
        capacity: usize,
        mut caches: Vec<Option<CachedSequence>>,
    ) -> Result<Vec<Box<dyn Level>>> {
        let capacity = capacity.clamp(1, self.capacity);
        caches.resize_with(self.specs.len(), || None);
        let membership = Arc::new(engine.join());
        self.specs
            .iter()
            .zip(caches)
            .map(|(spec, cache)| -> Result<Box<dyn Level>> {
                Ok(match spec {
                    LevelSpec::Ngram { min, max } => Box::new(NgramLevel::new(*min, *max)?),
                    LevelSpec::Model { name, model, lora } => {
                        let fits = |cache: &CachedSequence| {
                            Arc::ptr_eq(cache.session.model(), model)
                                && cache.session.capacity() >= capacity
                                && cache.session.same_lora(lora.as_deref())
                        };
                        let cached = match cache.filter(fits) {
                            Some(cached) => cached,
                            None => CachedSequence {
                                // The session's own pool is unused: the engine computes on its own.
                                session: session(
                                    model,
                                    lora,
                                    capacity,
                                    self.cores.pool(0).clone(),
                                )?,
                                tokens: Vec::new(),
                            },
                        };
                        let client = BatchClient::new(membership.clone());
                        Box::new(ModelLevel::batched(name.clone(), cached, client))
                    }
                })
            })
            .collect()
    }

    /// Bytes of the KV caches one build holds (every model level's).
    pub fn cache_bytes(&self) -> usize {
        self.cache_bytes_at(self.capacity)
    }

    /// Bytes of the KV caches of one build whose caches hold `capacity` positions.
    pub fn cache_bytes_at(&self, capacity: usize) -> usize {
        self.specs
            .iter()
            .map(|spec| match spec {
                LevelSpec::Ngram { .. } => 0,
                LevelSpec::Model { model, .. } => Session::cache_bytes_for(model, capacity),
            })
            .sum()
    }
}
