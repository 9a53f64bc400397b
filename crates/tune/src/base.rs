//! The frozen base model for training: every matrix dequantized once into a dense tensor, the
//! norms, biases and RoPE tables beside them. Nothing here is trained.

use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use pipespec_model::config::Config;
use pipespec_model::gguf::GgufFile;
use pipespec_model::kernels;
use pipespec_model::lora::LoraTarget;
use pipespec_model::rope::Rope;
use pipespec_model::weights::RawMatrix;
use pipespec_model::{Model, ModelError};
use rayon::prelude::*;

use crate::error::{invalid, Result};
use crate::ops::attention::Segment;
use crate::ops::rotary::Rotary;

/// `[n_out, n_in]` of a layer matrix of `c` (None for the head, which is no layer's).
fn layer_matrix_shape(c: &Config, target: LoraTarget) -> Option<(usize, usize)> {
    let (hidden, q_dim, kv_dim, ffn) = (c.hidden_size, c.q_dim(), c.kv_dim(), c.intermediate_size);
    match target {
        LoraTarget::Q => Some((q_dim, hidden)),
        LoraTarget::K | LoraTarget::V => Some((kv_dim, hidden)),
        LoraTarget::Output => Some((hidden, q_dim)),
        LoraTarget::Gate | LoraTarget::Up => Some((ffn, hidden)),
        LoraTarget::Down => Some((hidden, ffn)),
        LoraTarget::Head => None,
    }
}

/// One decoder layer's frozen tensors; matrices are `[n_out, n_in]`.
pub struct FrozenLayer {
    pub attention_norm: Tensor,
    pub q: Tensor,
    pub k: Tensor,
    pub v: Tensor,
    pub q_bias: Option<Tensor>,
    pub k_bias: Option<Tensor>,
    pub v_bias: Option<Tensor>,
    pub output: Tensor,
    pub ffn_norm: Tensor,
    pub gate: Tensor,
    pub up: Tensor,
    pub down: Tensor,
}

impl FrozenLayer {
    /// The matrix a layer target adapts (None for the head, which is not in a layer).
    pub fn matrix(&self, target: LoraTarget) -> Option<&Tensor> {
        match target {
            LoraTarget::Q => Some(&self.q),
            LoraTarget::K => Some(&self.k),
            LoraTarget::V => Some(&self.v),
            LoraTarget::Output => Some(&self.output),
            LoraTarget::Gate => Some(&self.gate),
            LoraTarget::Up => Some(&self.up),
            LoraTarget::Down => Some(&self.down),
            LoraTarget::Head => None,
        }
    }
}

/// The whole frozen model.
pub struct FrozenBase {
    pub config: Config,
    pub dtype: DType,
    /// `[vocab, hidden]`, rows looked up per batch.
    pub embedding: Tensor,
    pub layers: Vec<FrozenLayer>,
    pub output_norm: Tensor,
    /// `[vocab, hidden]`: `output.weight`, or the embedding when the head is tied.
    pub head: Tensor,
    /// Whether the file has its own `output.weight` (an adapter may then cover the head).
    pub separate_head: bool,
    rope: Rope,
}

fn missing(file: &GgufFile, name: &str) -> ModelError {
    ModelError::MissingTensor {
        path: file.path().to_path_buf(),
        name: name.to_string(),
    }
}

/// A tensor of `file` dequantized into `rows × cols` values of `dtype`.
fn dense(
    file: &Arc<GgufFile>,
    name: &str,
    rows: usize,
    cols: usize,
    dtype: DType,
) -> Result<Tensor> {
    let info = file.tensor(name).ok_or_else(|| missing(file, name))?;
    let raw = RawMatrix::from_gguf(file, info)?;
    if raw.rows * raw.cols != rows * cols || raw.cols != cols {
        return Err(invalid(format!(
            "{}: tensor `{name}` is {}×{}, expected {rows}×{cols}",
            file.path().display(),
            raw.rows,
            raw.cols
        )));
    }
    let view = raw
        .view()
        .map_err(|e| invalid(format!("tensor `{name}`: {e}")))?;
    let mut values = vec![0f32; rows * cols];
    values
        .par_chunks_mut(cols)
        .enumerate()
        .try_for_each(|(row, out)| kernels::dequantize_row(&view, row, out))
        .map_err(|e| invalid(format!("tensor `{name}`: {e}")))?;
    Ok(Tensor::from_vec(values, (rows, cols), &Device::Cpu)?.to_dtype(dtype)?)
}

fn vector(file: &Arc<GgufFile>, name: &str, len: usize, dtype: DType) -> Result<Tensor> {
    dense(file, name, 1, len, dtype)?
        .reshape(len)
        .map_err(Into::into)
}

fn optional_vector(
    file: &Arc<GgufFile>,
    name: &str,
    len: usize,
    dtype: DType,
) -> Result<Option<Tensor>> {
    match file.tensor(name) {
        Some(_) => vector(file, name, len, dtype).map(Some),
        None => Ok(None),
    }
}

impl FrozenBase {
    /// Dequantizes `model`'s weights (read from its file) into tensors of `dtype` (F32, or F64
    /// for gradient checks).
    pub fn load(model: &Model, dtype: DType) -> Result<FrozenBase> {
        Self::load_blocks(model, dtype, model.config.layer_count)
    }

    /// Like [`FrozenBase::load`], with only the first `blocks` decoder blocks: a split run's
    /// device needs the embedding, the head and the blocks it runs itself, not the cloud's.
    pub fn load_blocks(model: &Model, dtype: DType, blocks: usize) -> Result<FrozenBase> {
        let file = model.file();
        let c = model.config.clone();
        let (hidden, q_dim, kv_dim) = (c.hidden_size, c.q_dim(), c.kv_dim());
        let blocks = blocks.min(c.layer_count);
        let mut layers = Vec::with_capacity(blocks);
        for i in 0..blocks {
            let name = |suffix: &str| format!("blk.{i}.{suffix}");
            let matrix = |target: LoraTarget| {
                let (rows, cols) = layer_matrix_shape(&c, target)
                    .ok_or_else(|| invalid("the head is not a layer matrix"))?;
                dense(
                    file,
                    &name(&format!("{}.weight", target.tensor_stem())),
                    rows,
                    cols,
                    dtype,
                )
            };
            layers.push(FrozenLayer {
                attention_norm: vector(file, &name("attn_norm.weight"), hidden, dtype)?,
                q: matrix(LoraTarget::Q)?,
                k: matrix(LoraTarget::K)?,
                v: matrix(LoraTarget::V)?,
                q_bias: optional_vector(file, &name("attn_q.bias"), q_dim, dtype)?,
                k_bias: optional_vector(file, &name("attn_k.bias"), kv_dim, dtype)?,
                v_bias: optional_vector(file, &name("attn_v.bias"), kv_dim, dtype)?,
                output: matrix(LoraTarget::Output)?,
                ffn_norm: vector(file, &name("ffn_norm.weight"), hidden, dtype)?,
                gate: matrix(LoraTarget::Gate)?,
                up: matrix(LoraTarget::Up)?,
                down: matrix(LoraTarget::Down)?,
            });
        }
        let embedding = dense(file, "token_embd.weight", c.vocab_size, hidden, dtype)?;
        let separate_head = file.tensor("output.weight").is_some();
        let head = if separate_head {
            dense(file, "output.weight", c.vocab_size, hidden, dtype)?
        } else {
            embedding.clone()
        };
        let factors = match file.tensor("rope_freqs.weight") {
            Some(_) => Some(
                vector(file, "rope_freqs.weight", c.rope_dim / 2, DType::F32)?.to_vec1::<f32>()?,
            ),
            None => None,
        };
        let rope = Rope::new(&c, factors.as_deref());
        Ok(FrozenBase {
            output_norm: vector(file, "output_norm.weight", hidden, dtype)?,
            config: c,
            dtype,
            embedding,
            layers,
            head,
            separate_head,
            rope,
        })
    }

    /// The rotary angles of every row of a packed batch (positions restart at each segment).
    pub fn rotary(&self, segments: &[Segment]) -> Rotary {
        let longest = segments.iter().map(|s| s.len).max().unwrap_or(0);
        let width = self.rope.table_width();
        let mut by_position = Vec::with_capacity(longest * width);
        self.rope.extend_tables(0, longest, &mut by_position);
        let tables = segments
            .iter()
            .flat_map(|s| by_position[..s.len * width].iter().copied())
            .collect();
        Rotary {
            tables: Arc::new(tables),
            rope_dim: self.config.rope_dim,
            head_dim: self.config.head_dim,
            style: self.config.rope_style,
        }
    }

    /// `(rows, columns)` of the frozen matrix a module adapts, from the model's shape (its block
    /// loaded here or not).
    pub fn matrix_shape(&self, layer: Option<usize>, target: LoraTarget) -> Option<(usize, usize)> {
        let c = &self.config;
        match layer {
            Some(l) if l < c.layer_count => layer_matrix_shape(c, target),
            Some(_) => None,
            None => (target == LoraTarget::Head && self.separate_head)
                .then_some((c.vocab_size, c.hidden_size)),
        }
    }

    /// The frozen matrix a module adapts (`layer` None: the head), when loaded here.
    pub fn matrix(&self, layer: Option<usize>, target: LoraTarget) -> Option<&Tensor> {
        match layer {
            Some(l) => self.layers.get(l).and_then(|layer| layer.matrix(target)),
            None if target == LoraTarget::Head && self.separate_head => Some(&self.head),
            None => None,
        }
    }
}
