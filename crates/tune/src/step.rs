//! One training (or evaluation) step as the device runs it: embed the batch, have a
//! [`BlockRunner`] run the frozen blocks (in process, or on a cloud across the network) while
//! the device's [`ModuleBank`] answers for the LoRA modules, compute the loss at the head, and
//! collect every module's gradient with the operations each side ran.

use std::collections::HashMap;
use std::sync::Arc;

use candle_core::{Device, Tensor, Var};
use pipespec_model::lora::LoraTarget;

use crate::base::FrozenBase;
use crate::counters::WIRE_VALUE_BYTES;
use crate::error::{invalid, Result};
use crate::modules::bank::{backward_flops, forward_flops, ModuleGrads};
use crate::modules::{ActiveSet, ModuleBank, ModuleHost};
use crate::net::blocks::{
    cloud_step, run_blocks, take_signals, Head, SharedSignals, StepOutcome, StepRequest,
};
use crate::net::head::head_loss;
use crate::net::{scalar, TokenBatch};
use crate::ops::flops;
use crate::params::{LoraParams, TrainModule};

/// A module: its layer (None: the head) and target.
pub type ModuleKey = (Option<usize>, LoraTarget);

/// Bytes and round trips a runner's transport carried.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    pub to_cloud: u64,
    pub from_cloud: u64,
    pub round_trips: u64,
}

/// Runs the frozen blocks of a step.
pub trait BlockRunner: Send {
    /// The blocks over `request`, the modules from `bank`, the gradient at the final rows from
    /// `head`.
    fn run(
        &mut self,
        request: &StepRequest,
        bank: &Arc<ModuleBank>,
        head: &mut Head,
    ) -> Result<StepOutcome>;

    /// What crossed the link so far (nothing when in process).
    fn traffic(&self) -> Traffic {
        Traffic::default()
    }

    /// Whether the blocks run across a link.
    fn is_remote(&self) -> bool {
        false
    }

    /// Bytes a value takes on the link.
    fn value_bytes(&self) -> u64 {
        WIRE_VALUE_BYTES
    }

    /// The first block this runner runs; the device runs the blocks before it.
    fn first_layer(&self) -> usize {
        0
    }
}

/// The blocks in this process, from `first_layer` on (the device step runs those before).
pub struct LocalBlocks<'a> {
    pub base: &'a FrozenBase,
    pub first_layer: usize,
}

impl<'a> LocalBlocks<'a> {
    /// Every block.
    pub fn new(base: &'a FrozenBase) -> LocalBlocks<'a> {
        LocalBlocks {
            base,
            first_layer: 0,
        }
    }
}

impl BlockRunner for LocalBlocks<'_> {
    fn run(
        &mut self,
        request: &StepRequest,
        bank: &Arc<ModuleBank>,
        head: &mut Head,
    ) -> Result<StepOutcome> {
        let host: Arc<dyn ModuleHost> = bank.clone();
        cloud_step(self.base, request, host, head)
    }

    fn first_layer(&self) -> usize {
        self.first_layer
    }
}

/// The device's own blocks of a step: their output (tracked, to carry the gradient back down)
/// and where their revival signals land.
struct DeviceBlocks {
    output: Tensor,
    signals: SharedSignals,
}

/// What a step gives back.
pub struct StepResult {
    pub loss: f64,
    /// Per trained module (none when evaluating).
    pub grads: HashMap<ModuleKey, ModuleGrads>,
    pub signals: Vec<((usize, LoraTarget), f64)>,
    /// Operations of the LoRA modules the bank hosts.
    pub bank_flops: u64,
    /// Operations of the head (with its module).
    pub head_flops: u64,
    /// Operations of the frozen blocks the device ran itself (`--device-layers`).
    pub block_flops: u64,
    pub cloud_flops: u64,
}

/// A step over `batch` with `bank`'s active modules; gradients only when `train`, revival
/// signals for the modules of `watch`.
pub fn device_step(
    base: &FrozenBase,
    bank: &Arc<ModuleBank>,
    runner: &mut dyn BlockRunner,
    batch: &TokenBatch,
    train: bool,
    watch: ActiveSet,
) -> Result<StepResult> {
    let params = bank.params().clone();
    let ids = Tensor::from_slice(&batch.ids, batch.ids.len(), &Device::Cpu)?;
    let mut request = StepRequest {
        hidden: base.embedding.index_select(&ids, 0)?,
        first_layer: 0,
        segments: batch.segments.clone(),
        positions: batch.positions.clone(),
        active: bank.active(),
        train,
        watch,
    };
    let outer = flops::take();
    bank.discard_step();
    let first_layer = runner.first_layer();
    let device_blocks = match first_layer {
        0 => None,
        _ => {
            // A variable, so that the blocks' graph is tracked even with no module active.
            let input = Var::from_tensor(&request.hidden.to_dtype(base.dtype)?)?;
            let host: Arc<dyn ModuleHost> = bank.clone();
            let (output, signals) = run_blocks(
                base,
                &request,
                0..first_layer,
                input.as_tensor().clone(),
                host,
            )?;
            request.hidden = output.detach();
            request.first_layer = first_layer;
            // The cloud learns nothing of the modules it does not run.
            request.active = request.active.from_layer(first_layer);
            request.watch = request.watch.from_layer(first_layer);
            Some(DeviceBlocks { output, signals })
        }
    };
    let mut block_flops = flops::take();
    let mut loss = None;
    let mut head_grads: Option<ModuleGrads> = None;
    let mut head_flops = 0;
    let mut head = |last: &Tensor| -> Result<Option<Tensor>> {
        let outer = flops::take();
        let leaf = Var::from_tensor(last)?;
        let value = head_loss(base, Some(&params), leaf.as_tensor(), &batch.labels)?;
        loss = Some(scalar(&value)?);
        let grad = if train {
            let grads = value.backward()?;
            head_grads = match params.get(None, LoraTarget::Head) {
                Some(m) => match (grads.get(m.a.as_tensor()), grads.get(m.b.as_tensor())) {
                    (Some(a), Some(b)) => Some(ModuleGrads {
                        a: a.clone(),
                        b: b.clone(),
                    }),
                    _ => None,
                },
                None => None,
            };
            Some(
                grads
                    .get(leaf.as_tensor())
                    .ok_or_else(|| invalid("the head gave no gradient at its input"))?
                    .clone(),
            )
        } else {
            None
        };
        head_flops = flops::take() + head_module_flops(&params, batch.labels.len(), train);
        flops::add(outer);
        Ok(grad)
    };
    let outcome = runner.run(&request, bank, &mut head)?;
    let loss = loss.ok_or_else(|| invalid("the step ended before the head ran"))?;
    let mut signals = outcome.signals;
    if let (true, Some(blocks)) = (train, device_blocks) {
        let grad = outcome
            .input_grad
            .ok_or_else(|| invalid("the cloud sent no gradient for the device's blocks"))?;
        if grad.dims() != blocks.output.dims() {
            return Err(invalid(format!(
                "a gradient of shape {:?} for the device blocks' output of shape {:?}",
                grad.dims(),
                blocks.output.dims()
            )));
        }
        // d(Σ output·g)/d(output) = g exactly, as at the cloud's end.
        let grad = grad.to_dtype(blocks.output.dtype())?.detach();
        (&blocks.output * grad)?.sum_all()?.backward()?;
        signals.extend(take_signals(&blocks.signals));
        signals.sort_by_key(|s| s.0);
    }
    block_flops += flops::take();
    flops::add(outer);
    let (bank_grads, bank_flops) = bank.drain();
    let mut grads: HashMap<ModuleKey, ModuleGrads> = bank_grads
        .into_iter()
        .map(|((layer, target), g)| ((Some(layer), target), g))
        .collect();
    if let Some(g) = head_grads {
        grads.insert((None, LoraTarget::Head), g);
    }
    Ok(StepResult {
        loss,
        grads,
        signals,
        bank_flops,
        head_flops,
        block_flops,
        cloud_flops: outcome.cloud_flops,
    })
}

/// One module's operations over `rows`: forward, and backward with the input's gradient when
/// training.
fn module_flops(rows: usize, rank: usize, m: &TrainModule, train: bool) -> u64 {
    let backward = match train {
        true => backward_flops(rows, rank, m.n_in, m.n_out, true),
        false => 0,
    };
    forward_flops(rows, rank, m.n_in, m.n_out) + backward
}

/// The head module's operations (its products are plain, not counted by the ops).
fn head_module_flops(params: &LoraParams, rows: usize, train: bool) -> u64 {
    params
        .get(None, LoraTarget::Head)
        .map_or(0, |m| module_flops(rows, params.rank, m, train))
}

/// The bank's operations had every hosted module been active, for `rows` tokens.
pub fn bank_flops_all_active(bank: &ModuleBank, rows: usize, train: bool) -> u64 {
    let params = bank.params();
    bank.all()
        .iter()
        .filter_map(|(layer, target)| params.get(Some(layer), target))
        .map(|m| module_flops(rows, params.rank, m, train))
        .sum()
}

/// A step in process with every module of `params` active.
fn local_step(
    base: &FrozenBase,
    params: Arc<LoraParams>,
    batch: &TokenBatch,
    train: bool,
) -> Result<StepResult> {
    let bank = Arc::new(ModuleBank::new(params));
    bank.set_active(bank.all());
    let mut blocks = LocalBlocks::new(base);
    device_step(base, &bank, &mut blocks, batch, train, ActiveSet::default())
}

/// The mean label loss of `batch` with every module of `params` (or none) in process.
pub fn loss(
    base: &FrozenBase,
    params: Option<&Arc<LoraParams>>,
    batch: &TokenBatch,
) -> Result<f64> {
    let params = params
        .cloned()
        .unwrap_or_else(|| Arc::new(LoraParams::empty()));
    Ok(local_step(base, params, batch, false)?.loss)
}

/// The loss and every module's gradient, every module active, in process.
pub fn gradients(
    base: &FrozenBase,
    params: &Arc<LoraParams>,
    batch: &TokenBatch,
) -> Result<(f64, HashMap<ModuleKey, ModuleGrads>)> {
    let step = local_step(base, params.clone(), batch, true)?;
    Ok((step.loss, step.grads))
}
