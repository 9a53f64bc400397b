//! The device's LoRA modules as a host: for a group of modules that read one input it returns
//! their deltas `scale·(x·Aᵀ)·Bᵀ` side by side, keeps what the backward pass needs, and on the
//! way back turns the gradient at the deltas into gradients of `A` and `B` (accumulated until
//! the step drains them) and the gradient at the input. The arithmetic is written out, so its
//! operation count is exact.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use candle_core::{Tensor, D};
use pipespec_model::lora::LoraTarget;

use crate::error::{invalid, Result};
use crate::modules::group::{ActiveSet, GroupKind};
use crate::modules::op::ModuleHost;
use crate::ops::flops::product;
use crate::params::{LoraParams, TrainModule};

/// Operations of one module's forward over `rows` inputs: `u = x·Aᵀ`, `u·Bᵀ`, the scale.
pub fn forward_flops(rows: usize, rank: usize, n_in: usize, n_out: usize) -> u64 {
    product(rows, n_in, rank) + product(rows, rank, n_out) + (rows * n_out) as u64
}

/// Operations of one module's backward over `rows`: the scale, `dB`, `du`, `dA`, and `dx`
/// when the input needs a gradient.
pub fn backward_flops(rows: usize, rank: usize, n_in: usize, n_out: usize, dx: bool) -> u64 {
    let input = if dx {
        product(rows, rank, n_in) + (rows * n_in) as u64
    } else {
        0
    };
    (rows * n_out) as u64
        + product(n_out, rows, rank)
        + product(rows, n_out, rank)
        + product(rank, rows, n_in)
        + input
}

/// What a forward left for the backward of one group.
struct Stash {
    x: Tensor,
    targets: Vec<LoraTarget>,
    /// `x·Aᵀ` per target.
    projected: Vec<Tensor>,
}

/// Gradients of one module, summed over the calls of a step.
pub struct ModuleGrads {
    pub a: Tensor,
    pub b: Tensor,
}

#[derive(Default)]
struct BankState {
    active: ActiveSet,
    stash: HashMap<(usize, GroupKind), Stash>,
    grads: HashMap<(usize, LoraTarget), ModuleGrads>,
    /// Operations per layer.
    flops: BTreeMap<usize, u64>,
}

/// Every hosted (layer) module of a run, the head's excepted.
pub struct ModuleBank {
    params: Arc<LoraParams>,
    scale: f64,
    state: Mutex<BankState>,
}

impl ModuleBank {
    /// Hosts the layer modules of `params`, none active yet.
    pub fn new(params: Arc<LoraParams>) -> ModuleBank {
        ModuleBank {
            scale: params.scale(),
            params,
            state: Mutex::new(BankState::default()),
        }
    }

    pub fn params(&self) -> &Arc<LoraParams> {
        &self.params
    }

    /// Every hosted module, by layer then target.
    pub fn all(&self) -> ActiveSet {
        ActiveSet::new(
            self.params
                .modules
                .iter()
                .filter_map(|m| m.layer.map(|l| (l, m.target))),
        )
    }

    fn lock(&self) -> MutexGuard<'_, BankState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The modules that take part from the next pass on.
    pub fn set_active(&self, active: ActiveSet) {
        self.lock().active = active;
    }

    pub fn active(&self) -> ActiveSet {
        self.lock().active.clone()
    }

    /// Forgets a step's partial work (stash, gradients, count): a step that failed midway is
    /// run again from the start.
    pub fn discard_step(&self) {
        self.discard_from(0);
    }

    /// Forgets the partial work of layers `first_layer` and after: a cloud's attempt at its
    /// blocks that failed midway is run again, while the device's own blocks keep theirs.
    pub fn discard_from(&self, first_layer: usize) {
        let mut state = self.lock();
        state.stash.retain(|&(layer, _), _| layer < first_layer);
        state.grads.retain(|&(layer, _), _| layer < first_layer);
        state.flops.retain(|&layer, _| layer < first_layer);
    }

    /// The gradients of the step, and the operations it took; the bank is then empty.
    pub fn drain(&self) -> (HashMap<(usize, LoraTarget), ModuleGrads>, u64) {
        let mut state = self.lock();
        state.stash.clear();
        let flops = std::mem::take(&mut state.flops).values().sum();
        (std::mem::take(&mut state.grads), flops)
    }

    fn module(&self, layer: usize, target: LoraTarget) -> Result<&TrainModule> {
        self.params.get(Some(layer), target).ok_or_else(|| {
            invalid(format!(
                "no trained module {} in layer {layer}",
                target.short_name()
            ))
        })
    }
}

impl ModuleHost for ModuleBank {
    fn forward(
        &self,
        layer: usize,
        kind: GroupKind,
        targets: &[LoraTarget],
        x: &Tensor,
    ) -> Result<Tensor> {
        let mut state = self.lock();
        let expected = state.active.group(layer, kind);
        if expected != targets {
            return Err(invalid(format!(
                "layer {layer} asked for modules {targets:?}, but {expected:?} are active"
            )));
        }
        let (rows, width) = x.dims2()?;
        let (mut projected, mut deltas) = (Vec::new(), Vec::new());
        for &target in targets {
            let module = self.module(layer, target)?;
            if width != module.n_in {
                return Err(invalid(format!(
                    "layer {layer} {}: input has {width} columns, the module reads {}",
                    target.short_name(),
                    module.n_in
                )));
            }
            let u = x.matmul(&module.a.as_tensor().t()?)?;
            deltas.push((u.matmul(&module.b.as_tensor().t()?)? * self.scale)?);
            projected.push(u);
            *state.flops.entry(layer).or_default() +=
                forward_flops(rows, self.params.rank, module.n_in, module.n_out);
        }
        state.stash.insert(
            (layer, kind),
            Stash {
                x: x.clone(),
                targets: targets.to_vec(),
                projected,
            },
        );
        Ok(Tensor::cat(&deltas, D::Minus1)?)
    }

    fn backward(
        &self,
        layer: usize,
        kind: GroupKind,
        grad: &Tensor,
        need_dx: bool,
    ) -> Result<Option<Tensor>> {
        let mut state = self.lock();
        let stash = state.stash.remove(&(layer, kind)).ok_or_else(|| {
            invalid(format!(
                "a gradient for layer {layer} {kind:?} without its forward"
            ))
        })?;
        let (rows, width) = grad.dims2()?;
        let mut offset = 0;
        let mut dx: Option<Tensor> = None;
        for (&target, u) in stash.targets.iter().zip(&stash.projected) {
            let module = self.module(layer, target)?;
            if offset + module.n_out > width || rows != stash.x.dim(0)? {
                return Err(invalid(format!(
                    "layer {layer} {kind:?}: a gradient of shape [{rows}, {width}] does not fit the modules' outputs"
                )));
            }
            let scaled = (grad.narrow(1, offset, module.n_out)? * self.scale)?;
            offset += module.n_out;
            let grad_b = scaled.t()?.matmul(u)?;
            let grad_u = scaled.matmul(module.b.as_tensor())?;
            let grad_a = grad_u.t()?.matmul(&stash.x)?;
            if need_dx {
                let part = grad_u.matmul(module.a.as_tensor())?;
                dx = Some(match dx {
                    Some(sum) => (sum + part)?,
                    None => part,
                });
            }
            *state.flops.entry(layer).or_default() +=
                backward_flops(rows, self.params.rank, module.n_in, module.n_out, need_dx);
            let summed = match state.grads.remove(&(layer, target)) {
                Some(old) => ModuleGrads {
                    a: (old.a + grad_a)?,
                    b: (old.b + grad_b)?,
                },
                None => ModuleGrads {
                    a: grad_a,
                    b: grad_b,
                },
            };
            state.grads.insert((layer, target), summed);
        }
        if offset != width {
            return Err(invalid(format!(
                "layer {layer} {kind:?}: a gradient with {width} columns for modules with {offset}"
            )));
        }
        Ok(dx)
    }
}
