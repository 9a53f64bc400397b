//! The training loop: evaluate, train every epoch over shuffled batches, evaluate again, and
//! hand back the adapter with the report.

use std::sync::Arc;
use std::time::Instant;

use candle_core::DType;
use pipespec_model::lora::{AdapterScale, LoraAdapter, LoraStack, LoraTarget};
use pipespec_model::tokenizer::Tokenizer;
use pipespec_model::Model;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::base::FrozenBase;
use crate::counters::{killed_module_values, Counters};
use crate::data::{Dataset, Example};
use crate::error::{invalid, Result, TuneError};
use crate::evaluate::{eval_loss, exact_match};
use crate::kill_revive::{KillRevive, KillReviveOptions};
use crate::modules::{ActiveSet, ModuleBank};
use crate::net::TokenBatch;
use crate::optim::{Decay, Optimizer, Schedule};
use crate::params::LoraParams;
use crate::report::TuneReport;
use crate::step::{bank_flops_all_active, device_step, BlockRunner, LocalBlocks};

/// The knobs of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct TuneOptions {
    pub rank: usize,
    pub alpha: f32,
    pub targets: Vec<LoraTarget>,
    pub epochs: usize,
    pub learning_rate: f64,
    pub batch: usize,
    pub seed: u64,
    /// Warm-up steps; None: 5% of the run.
    pub warmup_steps: Option<usize>,
    pub decay: Decay,
    pub weight_decay: f64,
    /// Global gradient norm clip (≤ 0: none).
    pub clip: f64,
    /// Stop after this many steps (the schedule spans them).
    pub max_steps: Option<usize>,
    /// Evaluate (loss and exact match, before and after) on at most this many of the
    /// evaluation examples, the first ones (0: no evaluation).
    pub eval_limit: usize,
    /// Kill-and-Revive (None: every module trains throughout).
    pub kill_revive: Option<KillReviveOptions>,
}

impl Default for TuneOptions {
    fn default() -> Self {
        TuneOptions {
            rank: 8,
            alpha: 16.0,
            targets: LoraTarget::LAYER.to_vec(),
            epochs: 1,
            learning_rate: 2e-4,
            batch: 4,
            seed: 0,
            warmup_steps: None,
            decay: Decay::Cosine,
            weight_decay: 0.0,
            clip: 1.0,
            max_steps: None,
            eval_limit: 200,
            kill_revive: None,
        }
    }
}

/// Progress, for a bar or a log.
#[derive(Debug, Clone, PartialEq)]
pub enum TuneEvent {
    Evaluating {
        after: bool,
    },
    Step {
        step: usize,
        total: usize,
        loss: f64,
        rate: f64,
        tokens: usize,
        seconds: f64,
        /// Modules active in the step.
        active: usize,
        counters: Counters,
    },
    /// A Kill-and-Revive review changed the active set.
    Review {
        step: usize,
        killed: usize,
        revived: usize,
        active: usize,
    },
    Epoch {
        epoch: usize,
        mean_loss: f64,
    },
}

/// The batches of one epoch: example indices shuffled by `seed` and `epoch`.
fn epoch_order(count: usize, seed: u64, epoch: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..count).collect();
    let mut rng =
        ChaCha8Rng::seed_from_u64(seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    order.shuffle(&mut rng);
    order
}

/// The base with the adapter being trained, for the inference engine.
fn stack_of(model: &Model, adapter: LoraAdapter) -> Result<Arc<LoraStack>> {
    let scaled = AdapterScale {
        adapter: Arc::new(adapter),
        user_scale: 1.0,
    };
    Ok(Arc::new(LoraStack::new(model, vec![scaled])?))
}

/// Everything a run reads.
pub struct TuneInputs<'a> {
    pub model: &'a Arc<Model>,
    pub tokenizer: &'a Tokenizer,
    pub train: &'a Dataset,
    pub eval: Option<&'a Dataset>,
    pub pool: &'a Arc<rayon::ThreadPool>,
}

/// Trains an adapter on `inputs.train`; returns it (path unset) and the report (adapter unset).
/// The frozen blocks run in `cloud` when given (a split run), else in process.
pub fn tune(
    inputs: &TuneInputs,
    options: &TuneOptions,
    cloud: Option<&mut dyn BlockRunner>,
    on_event: &mut (dyn FnMut(TuneEvent) + Send),
) -> Result<(LoraAdapter, TuneReport)> {
    let started = Instant::now();
    if options.batch == 0 || options.epochs == 0 {
        return Err(invalid("--batch and --epochs must be at least 1"));
    }
    if !(options.learning_rate.is_finite() && options.learning_rate > 0.0) {
        return Err(invalid(format!(
            "--lr must be a positive number, not {}",
            options.learning_rate
        )));
    }
    let examples = &inputs.train.examples;
    let architecture = inputs.model.config.architecture.name();
    inputs.pool.install(|| {
        // A split run's device loads only the blocks it runs itself.
        let blocks_here = match &cloud {
            Some(runner) => runner.first_layer(),
            None => inputs.model.config.layer_count,
        };
        let base = FrozenBase::load_blocks(inputs.model, DType::F32, blocks_here)?;
        let mut local = LocalBlocks::new(&base);
        let runner: &mut dyn BlockRunner = match cloud {
            Some(cloud) => cloud,
            None => &mut local,
        };
        let params = Arc::new(LoraParams::init(
            &base,
            &options.targets,
            options.rank,
            options.alpha,
            options.seed,
        )?);
        let bank = Arc::new(ModuleBank::new(params.clone()));
        let per_epoch = examples.len().div_ceil(options.batch);
        let total = (per_epoch * options.epochs).min(options.max_steps.unwrap_or(usize::MAX));
        let schedule = Schedule {
            peak: options.learning_rate,
            warmup: options.warmup_steps.unwrap_or(total.div_ceil(20)),
            total,
            decay: options.decay,
        };
        let mut kill_revive = options
            .kill_revive
            .map(|o| KillRevive::new(o, total))
            .transpose()?;
        let mut report = TuneReport {
            examples: examples.len(),
            skipped: inputs.train.skipped,
            trainable_parameters: params.parameter_count(),
            ..TuneReport::default()
        };
        let all_eval: &[Example] = inputs.eval.map_or(&[], |d| &d.examples);
        let eval_examples = &all_eval[..all_eval.len().min(options.eval_limit)];
        report.eval_examples = eval_examples.len();
        let evaluate = |runner: &mut dyn BlockRunner,
                        after: bool,
                        on_event: &mut (dyn FnMut(TuneEvent) + Send)|
         -> Result<(Option<f64>, Option<f64>)> {
            if eval_examples.is_empty() {
                return Ok((None, None));
            }
            on_event(TuneEvent::Evaluating { after });
            let loss = eval_loss(&base, &bank, runner, eval_examples, options.batch)?;
            let stack = match after {
                true => Some(stack_of(
                    inputs.model,
                    params.to_adapter(architecture, None)?,
                )?),
                false => None,
            };
            let matched = exact_match(
                inputs.model,
                inputs.tokenizer,
                stack,
                eval_examples,
                inputs.pool,
            )?;
            Ok((Some(loss), Some(matched)))
        };
        // Before training every B is zero: no module adds anything, so none takes part.
        bank.set_active(ActiveSet::default());
        (report.eval_loss_before, report.eval_exact_match_before) =
            evaluate(runner, false, on_event)?;
        bank.set_active(bank.all());
        let mut optimizer = Optimizer::new(options.weight_decay, options.clip);
        let train_started = Instant::now();
        let traffic_before = runner.traffic();
        let remote = runner.is_remote();
        let mut counters = Counters::default();
        let mut step = 0;
        let mut train = || -> Result<()> {
            for epoch in 0..options.epochs {
                if step == total {
                    break;
                }
                let (mut loss_sum, mut batches) = (0.0, 0);
                for indices in
                    epoch_order(examples.len(), options.seed, epoch).chunks(options.batch)
                {
                    if step == total {
                        break;
                    }
                    let chosen: Vec<&Example> = indices.iter().map(|&i| &examples[i]).collect();
                    let batch = TokenBatch::new(&chosen)?;
                    let watch = kill_revive
                        .as_ref()
                        .map_or_else(ActiveSet::default, |k| k.watch(step, &bank));
                    let active = bank.active().len();
                    let result = device_step(&base, &bank, runner, &batch, true, watch)?;
                    if !result.loss.is_finite() {
                        return Err(invalid(format!(
                            "the loss became {} at step {}: lower --lr",
                            result.loss,
                            step + 1
                        )));
                    }
                    let rate = schedule.rate(step);
                    optimizer.step(&params, &result.grads, rate)?;
                    step += 1;
                    let fixed_flops = result.head_flops + result.block_flops;
                    counters.device_flops += result.bank_flops + fixed_flops;
                    counters.cloud_flops += result.cloud_flops;
                    counters.device_flops_all_active +=
                        fixed_flops + bank_flops_all_active(&bank, batch.tokens(), true);
                    if remote {
                        counters.bytes_all_active +=
                            killed_module_values(&bank, batch.tokens(), true, runner.first_layer())
                                * runner.value_bytes();
                    }
                    if let Some(k) = kill_revive.as_mut() {
                        k.record(&result.signals);
                        if let Some(review) = k.review(step, &bank, &mut optimizer)? {
                            counters.device_flops += review.device_flops;
                            counters.device_flops_all_active += review.device_flops;
                            counters.kills += review.killed.len();
                            counters.revivals += review.revived.len();
                            on_event(TuneEvent::Review {
                                step,
                                killed: review.killed.len(),
                                revived: review.revived.len(),
                                active: review.active,
                            });
                        }
                    }
                    let traffic = runner.traffic();
                    counters.bytes_to_cloud = traffic.to_cloud - traffic_before.to_cloud;
                    counters.bytes_from_cloud = traffic.from_cloud - traffic_before.from_cloud;
                    counters.round_trips = traffic.round_trips - traffic_before.round_trips;
                    report.tokens_trained += batch.tokens();
                    loss_sum += result.loss;
                    batches += 1;
                    on_event(TuneEvent::Step {
                        step,
                        total,
                        loss: result.loss,
                        rate,
                        tokens: report.tokens_trained,
                        seconds: train_started.elapsed().as_secs_f64(),
                        active,
                        counters: counters.clone(),
                    });
                }
                if batches > 0 {
                    let mean_loss = loss_sum / batches as f64;
                    report.train_loss.push(mean_loss);
                    counters.active_modules.push(bank.active().len());
                    on_event(TuneEvent::Epoch {
                        epoch: epoch + 1,
                        mean_loss,
                    });
                }
            }
            Ok(())
        };
        let trained = train();
        // A run that fails midway (a cloud gone for good) still hands back what it trained.
        let interrupted =
            |steps: usize, cause: TuneError| match params.to_adapter(architecture, None) {
                Ok(partial) if steps > 0 => TuneError::Interrupted {
                    steps,
                    partial: Box::new(partial),
                    cause: Box::new(cause),
                },
                _ => cause,
            };
        trained.map_err(|cause| interrupted(step, cause))?;
        report.steps = step;
        report.train_s = train_started.elapsed().as_secs_f64();
        report.tokens_per_s = report.tokens_trained as f64 / report.train_s.max(1e-9);
        counters.bytes_all_active += counters.bytes_to_cloud + counters.bytes_from_cloud;
        report.counters = counters;
        (report.eval_loss_after, report.eval_exact_match_after) =
            evaluate(runner, true, on_event).map_err(|cause| interrupted(step, cause))?;
        let adapter = params.to_adapter(architecture, None)?;
        report.peak_rss_bytes = pipespec_model::peak_resident_bytes();
        report.wall_s = started.elapsed().as_secs_f64();
        Ok((adapter, report))
    })
}
