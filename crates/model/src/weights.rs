//! The model's weights, loaded and shape-checked: matrices repacked for the kernels (stacked
//! where they read one input), the token embedding raw for lookups, vectors as f32.

use std::sync::Arc;

use candle_core::quantized::GgmlDType;

use crate::config::{Architecture, Config};
use crate::error::{ModelError, Result};
use crate::gguf::{GgufFile, TensorInfo};
use crate::kernels::{self, PackedMatrix};
pub use crate::matrices::{LoadOptions, Matrix, RawMatrix, Stacked};

/// One transformer block's weights.
pub struct LayerWeights {
    pub attention_norm: Vec<f32>,
    /// q, k and v, in that order.
    pub qkv: Stacked,
    pub q_bias: Option<Vec<f32>>,
    pub k_bias: Option<Vec<f32>>,
    pub v_bias: Option<Vec<f32>>,
    pub attention_output: Matrix,
    pub ffn_norm: Vec<f32>,
    /// gate and up, in that order.
    pub gate_up: Stacked,
    pub down: Matrix,
}

/// Every weight of a llama-family model.
pub struct Weights {
    /// Raw, for row lookups.
    pub token_embedding: RawMatrix,
    pub layers: Vec<LayerWeights>,
    pub output_norm: Vec<f32>,
    /// `output.weight`, or a packed copy of the token embedding when the head is tied.
    pub output: Matrix,
    pub rope_frequency_factors: Option<Vec<f32>>,
}

impl Weights {
    /// Bytes of every matrix this process owns (repacked or copied).
    pub fn owned_bytes(&self) -> usize {
        let layers: usize = self
            .layers
            .iter()
            .map(|l| {
                l.qkv.owned_bytes()
                    + l.gate_up.owned_bytes()
                    + l.attention_output.owned_bytes()
                    + l.down.owned_bytes()
            })
            .sum();
        layers + self.output.owned_bytes() + self.token_embedding.owned_bytes()
    }
}

/// Loads and shape-checks every tensor the configuration calls for.
pub struct WeightLoader<'a> {
    file: &'a Arc<GgufFile>,
    config: &'a Config,
    options: LoadOptions,
}

impl<'a> WeightLoader<'a> {
    pub fn new(file: &'a Arc<GgufFile>, config: &'a Config, options: LoadOptions) -> Self {
        WeightLoader {
            file,
            config,
            options,
        }
    }

    fn info(&self, name: &str) -> Result<&'a TensorInfo> {
        self.file
            .tensor(name)
            .ok_or_else(|| ModelError::MissingTensor {
                path: self.file.path().to_path_buf(),
                name: name.to_string(),
            })
    }

    fn check_shape(&self, info: &TensorInfo, expected: &[usize]) -> Result<()> {
        if info.dims != expected {
            return Err(ModelError::TensorShape {
                path: self.file.path().to_path_buf(),
                name: info.name.clone(),
                found: info.dims.clone(),
                expected: expected.to_vec(),
            });
        }
        Ok(())
    }

    /// A raw matrix with `rows` outputs of `cols` inputs.
    pub fn raw_matrix(&self, name: &str, rows: usize, cols: usize) -> Result<RawMatrix> {
        let info = self.info(name)?;
        self.check_shape(info, &[cols, rows])?;
        RawMatrix::from_gguf(self.file, info)
    }

    /// A matrix with `rows` outputs of `cols` inputs, repacked when its type has a kernel
    /// (and `options.pack`, for the quantized types).
    pub fn matrix(&self, name: &str, rows: usize, cols: usize) -> Result<Matrix> {
        let mut stacked = self.stacked(&[(name, rows)], cols)?;
        Ok(stacked.matrices.remove(0))
    }

    /// Matrices named in `parts` (with their rows), all of `cols` inputs: those of one packed
    /// type stacked into one matrix, in order. The mapped pages packed from are released.
    pub fn stacked(&self, parts: &[(&str, usize)], cols: usize) -> Result<Stacked> {
        let mut raws = Vec::new();
        for &(name, rows) in parts {
            raws.push(Some(self.raw_matrix(name, rows, cols)?));
        }
        let packs = |dtype: GgmlDType| {
            let float = matches!(dtype, GgmlDType::F32 | GgmlDType::F16 | GgmlDType::BF16);
            PackedMatrix::packs(dtype) && (self.options.pack || float)
        };
        // Parts grouped by type, in order of first appearance; unpacked parts stay alone.
        let mut groups: Vec<Vec<usize>> = Vec::new();
        for (index, dtype) in raws.iter().flatten().map(|raw| raw.dtype).enumerate() {
            let same = |group: &&mut Vec<usize>| {
                packs(dtype) && raws[group[0]].as_ref().map(|r| r.dtype) == Some(dtype)
            };
            match groups.iter_mut().find(same) {
                Some(group) => group.push(index),
                None => groups.push(vec![index]),
            }
        }
        let mut stacked = Stacked {
            matrices: Vec::new(),
            parts: vec![(0, 0, 0); parts.len()],
        };
        for group in groups {
            let matrix = stacked.matrices.len();
            let members: Vec<RawMatrix> = group.iter().filter_map(|&i| raws[i].take()).collect();
            let mut first = 0;
            for (&i, raw) in group.iter().zip(&members) {
                stacked.parts[i] = (matrix, first, raw.rows);
                first += raw.rows;
            }
            let Some(dtype) = members.first().map(|raw| raw.dtype) else {
                continue;
            };
            if !packs(dtype) {
                stacked
                    .matrices
                    .extend(members.into_iter().map(Matrix::Raw));
                continue;
            }
            let names: Vec<&str> = group.iter().map(|&i| parts[i].0).collect();
            let kernel_error =
                |e: kernels::KernelError| ModelError::Kernel(format!("{}: {e}", names.join(" + ")));
            let views = members
                .iter()
                .map(RawMatrix::view)
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(kernel_error)?;
            let packed =
                PackedMatrix::pack_stacked(&views, self.options.cpu).map_err(kernel_error)?;
            stacked.matrices.push(Matrix::Packed(packed));
            for name in names {
                self.file.release(self.info(name)?);
            }
        }
        Ok(stacked)
    }

    /// A vector of `len` values, dequantized to f32.
    pub fn vector(&self, name: &str, len: usize) -> Result<Vec<f32>> {
        let info = self.info(name)?;
        self.check_shape(info, &[len])?;
        let matrix = RawMatrix::from_gguf(self.file, info)?;
        let mut out = vec![0.0; len];
        let view = matrix
            .view()
            .map_err(|e| ModelError::Kernel(format!("tensor `{name}`: {e}")))?;
        kernels::dequantize_row(&view, 0, &mut out)
            .map_err(|e| ModelError::Kernel(format!("tensor `{name}`: {e}")))?;
        Ok(out)
    }

    fn optional_vector(&self, name: &str, len: usize) -> Result<Option<Vec<f32>>> {
        if self.file.tensor(name).is_some() {
            self.vector(name, len).map(Some)
        } else {
            Ok(None)
        }
    }

    pub fn load(&self) -> Result<Weights> {
        let c = self.config;
        let mut layers = Vec::with_capacity(c.layer_count);
        for i in 0..c.layer_count {
            let name = |suffix: &str| format!("blk.{i}.{suffix}");
            let biased = c.architecture == Architecture::Qwen2;
            let bias = |suffix: &str, len: usize| -> Result<Option<Vec<f32>>> {
                if biased {
                    self.vector(&name(suffix), len).map(Some)
                } else {
                    self.optional_vector(&name(suffix), len)
                }
            };
            layers.push(LayerWeights {
                attention_norm: self.vector(&name("attn_norm.weight"), c.hidden_size)?,
                qkv: self.stacked(
                    &[
                        (&name("attn_q.weight"), c.q_dim()),
                        (&name("attn_k.weight"), c.kv_dim()),
                        (&name("attn_v.weight"), c.kv_dim()),
                    ],
                    c.hidden_size,
                )?,
                q_bias: bias("attn_q.bias", c.q_dim())?,
                k_bias: bias("attn_k.bias", c.kv_dim())?,
                v_bias: bias("attn_v.bias", c.kv_dim())?,
                attention_output: self.matrix(
                    &name("attn_output.weight"),
                    c.hidden_size,
                    c.q_dim(),
                )?,
                ffn_norm: self.vector(&name("ffn_norm.weight"), c.hidden_size)?,
                gate_up: self.stacked(
                    &[
                        (&name("ffn_gate.weight"), c.intermediate_size),
                        (&name("ffn_up.weight"), c.intermediate_size),
                    ],
                    c.hidden_size,
                )?,
                down: self.matrix(&name("ffn_down.weight"), c.hidden_size, c.intermediate_size)?,
            });
        }
        let head = if self.file.tensor("output.weight").is_some() {
            "output.weight"
        } else {
            "token_embd.weight"
        };
        let output = self.matrix(head, c.vocab_size, c.hidden_size)?;
        Ok(Weights {
            token_embedding: self.raw_matrix("token_embd.weight", c.vocab_size, c.hidden_size)?,
            layers,
            output_norm: self.vector("output_norm.weight", c.hidden_size)?,
            output,
            rope_frequency_factors: self.optional_vector("rope_freqs.weight", c.rope_dim / 2)?,
        })
    }
}
