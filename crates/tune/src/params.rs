//! The trainable LoRA modules: one `A` (`rank × n_in`, uniform in ±1/√n_in as PEFT's Kaiming
//! init) and one `B` (`n_out × rank`, zero) per adapted matrix, and their export as an adapter.

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{DType, Device, Tensor, Var};
use pipespec_model::lora::{module_scale, LoraAdapter, LoraModule, LoraTarget};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::base::FrozenBase;
use crate::error::{invalid, Result};

/// One trainable pair.
pub struct TrainModule {
    pub layer: Option<usize>,
    pub target: LoraTarget,
    pub n_in: usize,
    pub n_out: usize,
    pub a: Var,
    pub b: Var,
}

/// Every trainable pair of a run, with the adapter's rank and alpha.
pub struct LoraParams {
    pub rank: usize,
    pub alpha: f32,
    pub modules: Vec<TrainModule>,
    index: HashMap<(Option<usize>, LoraTarget), usize>,
}

impl LoraParams {
    /// Fresh modules on `targets` of every layer (the head too when asked and the model has
    /// its own), `A` drawn from `seed`.
    pub fn init(
        base: &FrozenBase,
        targets: &[LoraTarget],
        rank: usize,
        alpha: f32,
        seed: u64,
    ) -> Result<LoraParams> {
        if rank == 0 {
            return Err(invalid("--rank must be at least 1"));
        }
        if targets.is_empty() {
            return Err(invalid("--targets names no matrix"));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut places: Vec<(Option<usize>, LoraTarget)> = Vec::new();
        for layer in 0..base.config.layer_count {
            for target in LoraTarget::LAYER {
                if targets.contains(&target) {
                    places.push((Some(layer), target));
                }
            }
        }
        if targets.contains(&LoraTarget::Head) {
            if !base.separate_head {
                return Err(invalid(
                    "the head is tied to the token embedding (no output.weight): leave `head` out of --targets",
                ));
            }
            places.push((None, LoraTarget::Head));
        }
        let mut modules = Vec::with_capacity(places.len());
        for (layer, target) in places {
            let (n_out, n_in) = base
                .matrix_shape(layer, target)
                .ok_or_else(|| invalid(format!("no base matrix for {}", target.short_name())))?;
            let bound = 1.0 / (n_in as f64).sqrt();
            let a: Vec<f64> = (0..rank * n_in)
                .map(|_| rng.random_range(-bound..bound))
                .collect();
            let a = Tensor::from_vec(a, (rank, n_in), &Device::Cpu)?.to_dtype(base.dtype)?;
            let b = Tensor::zeros((n_out, rank), base.dtype, &Device::Cpu)?;
            modules.push(TrainModule {
                layer,
                target,
                n_in,
                n_out,
                a: Var::from_tensor(&a)?,
                b: Var::from_tensor(&b)?,
            });
        }
        Ok(LoraParams::from_modules(rank, alpha, modules))
    }

    /// Trainable modules starting from an adapter's values (to continue training it, or to
    /// check this forward pass against the inference engine's).
    pub fn from_adapter(adapter: &LoraAdapter, dtype: DType) -> Result<LoraParams> {
        let rank = adapter.modules.first().map_or(0, |m| m.rank);
        if rank == 0 || adapter.modules.iter().any(|m| m.rank != rank) {
            return Err(invalid(
                "the adapter's modules must share one rank of at least 1",
            ));
        }
        let var = |values: &[f32], shape: (usize, usize)| -> Result<Var> {
            let tensor = Tensor::from_slice(values, shape, &Device::Cpu)?.to_dtype(dtype)?;
            Ok(Var::from_tensor(&tensor)?)
        };
        let modules = adapter
            .modules
            .iter()
            .map(|m| {
                Ok(TrainModule {
                    layer: m.layer,
                    target: m.target,
                    n_in: m.n_in,
                    n_out: m.n_out,
                    a: var(&m.a, (rank, m.n_in))?,
                    b: var(&m.b, (m.n_out, rank))?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(LoraParams::from_modules(rank, adapter.alpha, modules))
    }

    /// No module at all: the base alone.
    pub fn empty() -> LoraParams {
        LoraParams::from_modules(1, 0.0, Vec::new())
    }

    fn from_modules(rank: usize, alpha: f32, modules: Vec<TrainModule>) -> LoraParams {
        let index = modules
            .iter()
            .enumerate()
            .map(|(i, m)| ((m.layer, m.target), i))
            .collect();
        LoraParams {
            rank,
            alpha,
            modules,
            index,
        }
    }

    /// The module on `target` of `layer`, if trained.
    pub fn get(&self, layer: Option<usize>, target: LoraTarget) -> Option<&TrainModule> {
        self.index.get(&(layer, target)).map(|&i| &self.modules[i])
    }

    /// `alpha / rank`, as the adapter file will say (user scale 1).
    pub fn scale(&self) -> f64 {
        module_scale(self.alpha, self.rank, 1.0) as f64
    }

    /// Every trainable tensor, A then B of each module.
    pub fn vars(&self) -> Vec<Var> {
        self.modules
            .iter()
            .flat_map(|m| [m.a.clone(), m.b.clone()])
            .collect()
    }

    /// Trainable values in all.
    pub fn parameter_count(&self) -> usize {
        self.modules
            .iter()
            .map(|m| self.rank * (m.n_in + m.n_out))
            .sum()
    }

    /// The current values as an adapter for `architecture` (f32, llama.cpp's layout).
    pub fn to_adapter(&self, architecture: &str, name: Option<String>) -> Result<LoraAdapter> {
        let modules = self
            .modules
            .iter()
            .map(|m| {
                let values = |var: &Var| -> Result<Vec<f32>> {
                    Ok(var
                        .as_tensor()
                        .to_dtype(DType::F32)?
                        .flatten_all()?
                        .to_vec1()?)
                };
                Ok(LoraModule {
                    base: m.target.base_tensor(m.layer),
                    layer: m.layer,
                    target: m.target,
                    rank: self.rank,
                    n_in: m.n_in,
                    n_out: m.n_out,
                    a: values(&m.a)?,
                    b: values(&m.b)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(LoraAdapter {
            path: PathBuf::new(),
            architecture: architecture.to_string(),
            name,
            alpha: self.alpha,
            modules,
        })
    }
}
