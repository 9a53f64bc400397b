//! Adapters applied to one model: each checked against the base (architecture, tensor names,
//! shapes), with its scale, and indexed by layer and matrix for the forward pass.

use std::sync::Arc;

use super::apply::{add_delta, columns_of_b};
use super::{LoraAdapter, LoraModule, LoraTarget};
use crate::error::{ModelError, Result};
use crate::model::Model;

/// An adapter and the scale the user gave it (`FILE:SCALE`, 1 by default).
#[derive(Debug, Clone)]
pub struct AdapterScale {
    pub adapter: Arc<LoraAdapter>,
    pub user_scale: f32,
}

/// A module with its final scale and `B` laid out for the forward pass.
#[derive(Debug)]
struct Scaled {
    adapter: usize,
    module: usize,
    scale: f32,
    b_columns: Vec<f32>,
}

/// One or more adapters on one model: what a session adds to each of its matrices.
#[derive(Debug)]
pub struct LoraStack {
    adapters: Vec<AdapterScale>,
    /// Per layer, per `LoraTarget::LAYER` index: the modules to add, in adapter order.
    layers: Vec<[Vec<Scaled>; 7]>,
    head: Vec<Scaled>,
    /// The model's file, by address: a stack runs only on the model it was checked against.
    model_file: usize,
}

impl LoraStack {
    /// Checks every adapter against `model` and indexes their modules. Fails, naming the
    /// adapter and the tensor, on another architecture, a base tensor the model lacks, a shape
    /// that does not match it, or a non-finite scale.
    pub fn new(model: &Model, adapters: Vec<AdapterScale>) -> Result<LoraStack> {
        let c = &model.config;
        let mut layers: Vec<[Vec<Scaled>; 7]> =
            (0..c.layer_count).map(|_| Default::default()).collect();
        let mut head = Vec::new();
        for (index, entry) in adapters.iter().enumerate() {
            let adapter = &entry.adapter;
            let error = |what: String| ModelError::Adapter {
                path: adapter.path.clone(),
                what,
            };
            if adapter.architecture != c.architecture.name() {
                return Err(error(format!(
                    "made for architecture `{}`, but the model is `{}`",
                    adapter.architecture,
                    c.architecture.name()
                )));
            }
            if !entry.user_scale.is_finite() {
                return Err(error(format!("scale {} is not finite", entry.user_scale)));
            }
            for (position, module) in adapter.modules.iter().enumerate() {
                check_module(model, module).map_err(error)?;
                let scaled = Scaled {
                    adapter: index,
                    module: position,
                    scale: module_scale(adapter.alpha, module.rank, entry.user_scale),
                    b_columns: columns_of_b(module),
                };
                match module.layer {
                    None => head.push(scaled),
                    Some(layer) => {
                        let slot = LoraTarget::LAYER
                            .iter()
                            .position(|&t| t == module.target)
                            .ok_or_else(|| {
                                error(format!("`{}` is not a layer matrix", module.base))
                            })?;
                        layers[layer][slot].push(scaled);
                    }
                }
            }
        }
        Ok(LoraStack {
            adapters,
            layers,
            head,
            model_file: Arc::as_ptr(model.file()) as usize,
        })
    }

    /// The adapters, in the order they add up.
    pub fn adapters(&self) -> &[AdapterScale] {
        &self.adapters
    }

    /// Whether this stack was checked against `model`.
    pub fn fits(&self, model: &Model) -> bool {
        self.model_file == Arc::as_ptr(model.file()) as usize
    }

    /// Whether two stacks apply the same adapters with the same scales (so a KV cache made
    /// under one is valid under the other).
    pub fn same_as(&self, other: &LoraStack) -> bool {
        self.model_file == other.model_file
            && self.adapters.len() == other.adapters.len()
            && self.adapters.iter().zip(&other.adapters).all(|(a, b)| {
                Arc::ptr_eq(&a.adapter, &b.adapter)
                    && a.user_scale.to_bits() == b.user_scale.to_bits()
            })
    }

    fn modules(&self, layer: Option<usize>, target: LoraTarget) -> &[Scaled] {
        match layer {
            None => &self.head,
            Some(layer) => {
                let slot = LoraTarget::LAYER.iter().position(|&t| t == target);
                match (self.layers.get(layer), slot) {
                    (Some(slots), Some(slot)) => &slots[slot],
                    _ => &[],
                }
            }
        }
    }

    /// `out += Σ scale·B·(A·input)` over this stack's modules on `target` of `layer` (the head
    /// for `None`), row by row: `input` holds rows of the matrix's inputs, `out` the same rows
    /// of its outputs. Each row is computed alone in one fixed order, so a row's result does not
    /// depend on the others or on the threads.
    pub(crate) fn add(
        &self,
        pool: &rayon::ThreadPool,
        layer: Option<usize>,
        target: LoraTarget,
        input: &[f32],
        out: &mut [f32],
    ) {
        for scaled in self.modules(layer, target) {
            let module = &self.adapters[scaled.adapter].adapter.modules[scaled.module];
            add_delta(pool, module, &scaled.b_columns, scaled.scale, input, out);
        }
    }
}

/// `user_scale · alpha / rank`, or `user_scale` when alpha is 0 (llama.cpp's rule).
pub fn module_scale(alpha: f32, rank: usize, user_scale: f32) -> f32 {
    if alpha == 0.0 {
        user_scale
    } else {
        user_scale * alpha / rank as f32
    }
}

/// The module's base tensor must exist in the model with the module's shape.
fn check_module(model: &Model, module: &LoraModule) -> std::result::Result<(), String> {
    let c = &model.config;
    if let Some(layer) = module.layer {
        if layer >= c.layer_count {
            return Err(format!(
                "`{}`: the model has {} layers",
                module.base, c.layer_count
            ));
        }
    }
    let base = model.file().tensor(&module.base).ok_or_else(|| {
        format!(
            "adapts `{}`, which the model does not have{}",
            module.base,
            if module.target == LoraTarget::Head {
                " (its output head is tied to the token embedding)"
            } else {
                ""
            }
        )
    })?;
    if base.dims != [module.n_in, module.n_out] {
        return Err(format!(
            "`{}` is [{}, {}] in the model, but the adapter's lora_a/lora_b make [{}, {}] \
             (an adapter for another model size?)",
            module.base,
            base.dims.first().copied().unwrap_or(0),
            base.dims.get(1).copied().unwrap_or(0),
            module.n_in,
            module.n_out
        ));
    }
    Ok(())
}
