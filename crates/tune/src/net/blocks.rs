//! The cloud's part of a step: the frozen decoder blocks over the device's hidden states, each
//! active LoRA group's deltas fetched from a [`ModuleHost`], the final hidden rows of the label
//! positions handed to the head, and the gradient that comes back run down the blocks (the
//! host receiving its modules' share). Local tuning runs this same code in process, which is
//! why a split run equals a local one bit for bit.

use std::ops::Range;
use std::sync::{Arc, Mutex};

use candle_core::{CpuStorage, CustomOp1, Device, Layout, Shape, Tensor, Var};
use pipespec_model::lora::LoraTarget;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::base::{FrozenBase, FrozenLayer};
use crate::error::{invalid, Result};
use crate::modules::{hosted_deltas, ActiveSet, GroupKind, ModuleHost};
use crate::ops::attention::{causal_attention, CausalAttention, Segment};
use crate::ops::flops::{self, product};
use crate::ops::linear::frozen_linear;
use crate::ops::norm::rms_norm;

/// Columns of the sketch behind the revival signal.
pub const SKETCH_COLUMNS: usize = 8;

/// What the device sends to start a step.
#[derive(Debug, Clone)]
pub struct StepRequest {
    /// `[tokens, hidden]`: the embedded batch, or the output of the blocks before `first_layer`.
    pub hidden: Tensor,
    /// The first block to run; the device ran those before it (`--device-layers`).
    pub first_layer: usize,
    pub segments: Vec<Segment>,
    /// Rows whose final hidden state the head needs.
    pub positions: Vec<u32>,
    /// The modules that take part.
    pub active: ActiveSet,
    /// Whether gradients come back (false: evaluation).
    pub train: bool,
    /// The modules whose revival signal to measure (killed ones, and active ones to compare).
    pub watch: ActiveSet,
}

/// What the cloud reports at the end of a step.
#[derive(Debug, Clone, Default)]
pub struct StepOutcome {
    /// Per watched module: `‖gᵀ·x·R‖²/k`, a sketch of the squared norm of the loss gradient
    /// with respect to a full update of its matrix (`g` at its output, `x` its input, `R`
    /// ±1 of `n_in × k`).
    pub signals: Vec<((usize, LoraTarget), f64)>,
    /// Operations the cloud ran.
    pub cloud_flops: u64,
    /// The gradient at `hidden` when training with `first_layer > 0`, for the device's blocks.
    pub input_grad: Option<Tensor>,
}

/// The device's head as the cloud sees it: final hidden rows in, their gradient out (None when
/// evaluating).
pub type Head<'a> = dyn FnMut(&Tensor) -> Result<Option<Tensor>> + 'a;

/// Signals as the backward pass measures them.
pub type SharedSignals = Arc<Mutex<Vec<((usize, LoraTarget), f64)>>>;

/// A watched module's input; its signal lands in `signals` when the gradient passes.
struct Watch {
    layer: usize,
    target: LoraTarget,
    x: Tensor,
    signals: SharedSignals,
}

/// Identity on a watched module's frozen output whose backward measures the module's revival
/// signal from the gradient passing through (autograd keeps no intermediate gradients).
impl CustomOp1 for Watch {
    fn name(&self) -> &'static str {
        "revival-signal-tap"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (start, end) = layout
            .contiguous_offsets()
            .ok_or_else(|| candle_core::Error::Msg("signal tap: input not contiguous".into()))?;
        let copy = match storage {
            CpuStorage::F32(v) => CpuStorage::F32(v[start..end].to_vec()),
            CpuStorage::F64(v) => CpuStorage::F64(v[start..end].to_vec()),
            _ => candle_core::bail!("signal tap: only f32 and f64 are supported"),
        };
        Ok((copy, layout.shape().clone()))
    }

    fn bwd(
        &self,
        _arg: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let value = signal(self, grad).map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let mut signals = self.signals.lock().unwrap_or_else(|p| p.into_inner());
        signals.push(((self.layer, self.target), value));
        Ok(Some(grad.clone()))
    }
}

struct Blocks<'a> {
    host: Arc<dyn ModuleHost>,
    anchor: Var,
    request: &'a StepRequest,
    signals: SharedSignals,
}

impl Blocks<'_> {
    /// The group's projections of `x`, each `x·Wᵀ (+ bias)` plus its active module's delta.
    fn group(
        &mut self,
        x: &Tensor,
        layer: usize,
        kind: GroupKind,
        frozen: &[(&Tensor, Option<&Tensor>)],
    ) -> Result<Vec<Tensor>> {
        let mut outputs = Vec::with_capacity(frozen.len());
        for (&target, &(weight, bias)) in kind.targets().iter().zip(frozen) {
            let mut y = frozen_linear(x, weight)?;
            if let Some(bias) = bias {
                y = y.broadcast_add(bias)?;
            }
            if self.request.train && self.request.watch.contains(layer, target) {
                let tap = Watch {
                    layer,
                    target,
                    x: x.detach(),
                    signals: self.signals.clone(),
                };
                y = y.apply_op1(tap)?;
            }
            outputs.push(y);
        }
        let targets = self.request.active.group(layer, kind);
        if targets.is_empty() {
            return Ok(outputs);
        }
        let deltas = hosted_deltas(x, &self.anchor, &self.host, layer, kind, targets.clone())?;
        let mut offset = 0;
        for (slot, target) in kind.targets().iter().enumerate() {
            if targets.contains(target) {
                let width = outputs[slot].dim(1)?;
                outputs[slot] = (&outputs[slot] + deltas.narrow(1, offset, width)?)?;
                offset += width;
            }
        }
        Ok(outputs)
    }

    /// One decoder layer: attention then FFN, each with its residual.
    fn layer(
        &mut self,
        hidden: Tensor,
        l: usize,
        layer: &FrozenLayer,
        base: &FrozenBase,
        rotary: &crate::ops::rotary::Rotary,
        attention: &CausalAttention,
    ) -> Result<Tensor> {
        let eps = base.config.rms_norm_eps as f64;
        let x = rms_norm(&hidden, &layer.attention_norm, eps)?;
        let qkv = [
            (&layer.q, layer.q_bias.as_ref()),
            (&layer.k, layer.k_bias.as_ref()),
            (&layer.v, layer.v_bias.as_ref()),
        ];
        let [q, k, v]: [Tensor; 3] = self
            .group(&x, l, GroupKind::Attention, &qkv)?
            .try_into()
            .map_err(|_| invalid("attention group lost a projection"))?;
        let attended = causal_attention(&rotary.apply(&q)?, &rotary.apply(&k)?, &v, attention)?;
        let o = self.group(&attended, l, GroupKind::Output, &[(&layer.output, None)])?;
        let hidden = (hidden + &o[0])?;
        let x = rms_norm(&hidden, &layer.ffn_norm, eps)?;
        let gate_up = self.group(
            &x,
            l,
            GroupKind::GateUp,
            &[(&layer.gate, None), (&layer.up, None)],
        )?;
        let mixed = (gate_up[0].silu()? * &gate_up[1])?;
        let down = self.group(&mixed, l, GroupKind::Down, &[(&layer.down, None)])?;
        Ok((hidden + &down[0])?)
    }
}

/// A ±1 matrix of `n_in × k`, the same for a module in every step.
fn sketch(layer: usize, target: LoraTarget, n_in: usize) -> Result<Tensor> {
    let seed = ((layer as u64) << 8) | target as u64;
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5EED_5EED);
    let signs: Vec<f32> = (0..n_in * SKETCH_COLUMNS)
        .map(|_| if rng.random::<bool>() { 1.0 } else { -1.0 })
        .collect();
    Ok(Tensor::from_vec(
        signs,
        (n_in, SKETCH_COLUMNS),
        &Device::Cpu,
    )?)
}

/// `‖gᵀ·x·R‖²/k` of a watched module, given the gradient at its output.
fn signal(watch: &Watch, grad: &Tensor) -> Result<f64> {
    let (rows, n_in) = watch.x.dims2()?;
    let n_out = grad.dim(1)?;
    let r = sketch(watch.layer, watch.target, n_in)?.to_dtype(watch.x.dtype())?;
    let projected = watch.x.matmul(&r)?;
    let sketched = grad.t()?.matmul(&projected)?;
    flops::add(product(rows, n_in, SKETCH_COLUMNS) + product(n_out, rows, SKETCH_COLUMNS));
    let square = sketched
        .sqr()?
        .sum_all()?
        .to_dtype(candle_core::DType::F64)?;
    Ok(square.to_scalar::<f64>()? / SKETCH_COLUMNS as f64)
}

/// The output of blocks `layers` over `hidden` (tracked: modules from `host` take part), and
/// where the revival signals of the watched modules land when the gradient passes.
pub fn run_blocks(
    base: &FrozenBase,
    request: &StepRequest,
    layers: Range<usize>,
    hidden: Tensor,
    host: Arc<dyn ModuleHost>,
) -> Result<(Tensor, SharedSignals)> {
    let c = &base.config;
    let mut blocks = Blocks {
        host,
        anchor: Var::zeros(1, base.dtype, &Device::Cpu)?,
        request,
        signals: Arc::new(Mutex::new(Vec::new())),
    };
    let rotary = base.rotary(&request.segments);
    let attention = CausalAttention {
        segments: Arc::new(request.segments.clone()),
        heads: c.head_count,
        kv_heads: c.kv_head_count,
        head_dim: c.head_dim,
    };
    let mut hidden = hidden;
    for l in layers {
        let layer = base
            .layers
            .get(l)
            .ok_or_else(|| invalid(format!("no block {l}: the model has {}", c.layer_count)))?;
        hidden = blocks.layer(hidden, l, layer, base, &rotary, &attention)?;
    }
    Ok((hidden, blocks.signals))
}

/// The signals a backward pass left, in module order.
pub fn take_signals(signals: &SharedSignals) -> Vec<((usize, LoraTarget), f64)> {
    let mut taken = std::mem::take(&mut *signals.lock().unwrap_or_else(|p| p.into_inner()));
    taken.sort_by_key(|s| s.0);
    taken
}

/// Runs the blocks of `base` from `request.first_layer` on, modules from `host`, the head's
/// gradient from `head`; counts the cloud's operations on this thread.
pub fn cloud_step(
    base: &FrozenBase,
    request: &StepRequest,
    host: Arc<dyn ModuleHost>,
    head: &mut Head,
) -> Result<StepOutcome> {
    let c = &base.config;
    let (tokens, width) = request.hidden.dims2()?;
    let covered: usize = request.segments.iter().map(|s| s.len).sum();
    if width != c.hidden_size || covered != tokens {
        return Err(invalid(format!(
            "hidden states of shape [{tokens}, {width}] with segments covering {covered} rows: the model wants [rows, {}] covered by its segments",
            c.hidden_size
        )));
    }
    if let Some(bad) = request.positions.iter().find(|&&p| p as usize >= tokens) {
        return Err(invalid(format!("position {bad} is past the {tokens} rows")));
    }
    if request.first_layer >= c.layer_count {
        return Err(invalid(format!(
            "first block {} of a model with {} blocks: the cloud runs at least one",
            request.first_layer, c.layer_count
        )));
    }
    let outer = flops::take();
    // A variable, so that every projection's output is tracked and its gradient kept.
    let input = Var::from_tensor(&request.hidden.to_dtype(base.dtype)?)?;
    let layers = request.first_layer..c.layer_count;
    let (hidden, shared) = run_blocks(base, request, layers, input.as_tensor().clone(), host)?;
    let positions = Tensor::from_slice(&request.positions, request.positions.len(), &Device::Cpu)?;
    let last = hidden.index_select(&positions, 0)?;
    let mut cloud_flops = flops::take();
    let grad = head(&last)?;
    flops::take();
    let (mut signals, mut input_grad) = (Vec::new(), None);
    if let (true, Some(grad)) = (request.train, grad) {
        if grad.dims() != last.dims() {
            return Err(invalid(format!(
                "a gradient of shape {:?} for final rows of shape {:?}",
                grad.dims(),
                last.dims()
            )));
        }
        // d(Σ last·g)/d(last) = g exactly: the gradient enters the graph unchanged.
        let surrogate = (&last * grad.to_dtype(last.dtype())?.detach())?.sum_all()?;
        let grads = surrogate.backward()?;
        signals = take_signals(&shared);
        if request.first_layer > 0 {
            let at_input = grads
                .get(input.as_tensor())
                .ok_or_else(|| invalid("no gradient reached the blocks' input"))?;
            input_grad = Some(at_input.clone());
        }
        cloud_flops += flops::take();
    }
    flops::add(outer);
    Ok(StepOutcome {
        signals,
        cloud_flops,
        input_grad,
    })
}
