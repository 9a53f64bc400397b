//! The model's weights: matrices borrowed from the shared memory map (or owned when a file's alignment forces a copy), vectors as f32.

use std::sync::Arc;

use candle_core::quantized::GgmlDType;

use crate::config::{Architecture, Config};
use crate::error::{ModelError, Result};
use crate::gguf::{GgufFile, TensorInfo};
use crate::kernels::{self, MatrixRef};

/// 64-byte aligned storage for tensors that cannot be used in place.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct AlignedChunk([u8; 64]);

enum Storage {
    Mapped { file: Arc<GgufFile>, offset: usize },
    Owned(Vec<AlignedChunk>),
}

/// A weight matrix: `rows` output features of `cols` inputs each, in a ggml tensor type.
pub struct Matrix {
    pub dtype: GgmlDType,
    pub rows: usize,
    pub cols: usize,
    byte_len: usize,
    storage: Storage,
}

impl Matrix {
    /// Wraps a 2-D tensor of `file`, zero-copy when its data is 32-byte aligned.
    pub fn from_gguf(file: &Arc<GgufFile>, info: &TensorInfo) -> Result<Matrix> {
        let (cols, rows) = match info.dims.as_slice() {
            [cols, rows] => (*cols, *rows),
            [cols] => (*cols, 1),
            _ => {
                return Err(ModelError::TensorShape {
                    path: file.path().to_path_buf(),
                    name: info.name.clone(),
                    found: info.dims.clone(),
                    expected: vec![0, 0],
                })
            }
        };
        if !kernels::supported(info.dtype) {
            return Err(ModelError::UnsupportedTensorType {
                path: file.path().to_path_buf(),
                name: info.name.clone(),
                dtype: format!("{:?}", info.dtype),
            });
        }
        let storage = if info.offset.is_multiple_of(32) {
            Storage::Mapped {
                file: file.clone(),
                offset: info.offset,
            }
        } else {
            Storage::Owned(aligned_copy(file.tensor_bytes(info)))
        };
        let matrix = Matrix {
            dtype: info.dtype,
            rows,
            cols,
            byte_len: info.byte_len,
            storage,
        };
        matrix
            .view()
            .map_err(|e| ModelError::Kernel(format!("tensor `{}`: {e}", info.name)))?;
        Ok(matrix)
    }

    /// Owns `bytes` (e.g. a freshly quantized tensor).
    pub fn from_bytes(dtype: GgmlDType, rows: usize, cols: usize, bytes: &[u8]) -> Result<Matrix> {
        let matrix = Matrix {
            dtype,
            rows,
            cols,
            byte_len: bytes.len(),
            storage: Storage::Owned(aligned_copy(bytes)),
        };
        matrix
            .view()
            .map_err(|e| ModelError::Kernel(e.to_string()))?;
        Ok(matrix)
    }

    pub fn bytes(&self) -> &[u8] {
        match &self.storage {
            Storage::Mapped { file, offset } => &file_bytes(file)[*offset..*offset + self.byte_len],
            Storage::Owned(chunks) => {
                // SAFETY: AlignedChunk is plain bytes; the vector holds at least byte_len of them.
                let all = unsafe {
                    std::slice::from_raw_parts(chunks.as_ptr().cast::<u8>(), chunks.len() * 64)
                };
                &all[..self.byte_len]
            }
        }
    }

    pub fn view(&self) -> std::result::Result<MatrixRef<'_>, kernels::KernelError> {
        MatrixRef::new(self.dtype, self.rows, self.cols, self.bytes())
    }
}

fn file_bytes(file: &GgufFile) -> &[u8] {
    file.mapped_bytes()
}

fn aligned_copy(bytes: &[u8]) -> Vec<AlignedChunk> {
    let mut chunks = vec![AlignedChunk([0; 64]); bytes.len().div_ceil(64)];
    for (chunk, source) in chunks.iter_mut().zip(bytes.chunks(64)) {
        chunk.0[..source.len()].copy_from_slice(source);
    }
    chunks
}

/// One transformer block's weights.
pub struct LayerWeights {
    pub attention_norm: Vec<f32>,
    pub q: Matrix,
    pub k: Matrix,
    pub v: Matrix,
    pub q_bias: Option<Vec<f32>>,
    pub k_bias: Option<Vec<f32>>,
    pub v_bias: Option<Vec<f32>>,
    pub attention_output: Matrix,
    pub ffn_norm: Vec<f32>,
    pub gate: Matrix,
    pub up: Matrix,
    pub down: Matrix,
}

/// Every weight of a llama-family model.
pub struct Weights {
    pub token_embedding: Matrix,
    pub layers: Vec<LayerWeights>,
    pub output_norm: Vec<f32>,
    /// None when the output head is tied to the token embedding.
    pub output: Option<Matrix>,
    pub rope_frequency_factors: Option<Vec<f32>>,
}

impl Weights {
    pub fn output_head(&self) -> &Matrix {
        self.output.as_ref().unwrap_or(&self.token_embedding)
    }
}

/// Loads and shape-checks every tensor the configuration calls for.
pub struct WeightLoader<'a> {
    file: &'a Arc<GgufFile>,
    config: &'a Config,
}

impl<'a> WeightLoader<'a> {
    pub fn new(file: &'a Arc<GgufFile>, config: &'a Config) -> Self {
        WeightLoader { file, config }
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

    /// A matrix with `rows` outputs of `cols` inputs.
    pub fn matrix(&self, name: &str, rows: usize, cols: usize) -> Result<Matrix> {
        let info = self.info(name)?;
        self.check_shape(info, &[cols, rows])?;
        Matrix::from_gguf(self.file, info)
    }

    /// A vector of `len` values, dequantized to f32.
    pub fn vector(&self, name: &str, len: usize) -> Result<Vec<f32>> {
        let info = self.info(name)?;
        self.check_shape(info, &[len])?;
        let matrix = Matrix::from_gguf(self.file, info)?;
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
                q: self.matrix(&name("attn_q.weight"), c.q_dim(), c.hidden_size)?,
                k: self.matrix(&name("attn_k.weight"), c.kv_dim(), c.hidden_size)?,
                v: self.matrix(&name("attn_v.weight"), c.kv_dim(), c.hidden_size)?,
                q_bias: bias("attn_q.bias", c.q_dim())?,
                k_bias: bias("attn_k.bias", c.kv_dim())?,
                v_bias: bias("attn_v.bias", c.kv_dim())?,
                attention_output: self.matrix(
                    &name("attn_output.weight"),
                    c.hidden_size,
                    c.q_dim(),
                )?,
                ffn_norm: self.vector(&name("ffn_norm.weight"), c.hidden_size)?,
                gate: self.matrix(&name("ffn_gate.weight"), c.intermediate_size, c.hidden_size)?,
                up: self.matrix(&name("ffn_up.weight"), c.intermediate_size, c.hidden_size)?,
                down: self.matrix(&name("ffn_down.weight"), c.hidden_size, c.intermediate_size)?,
            });
        }
        let output = if self.file.tensor("output.weight").is_some() {
            Some(self.matrix("output.weight", c.vocab_size, c.hidden_size)?)
        } else {
            None
        };
        Ok(Weights {
            token_embedding: self.matrix("token_embd.weight", c.vocab_size, c.hidden_size)?,
            layers,
            output_norm: self.vector("output_norm.weight", c.hidden_size)?,
            output,
            rope_frequency_factors: self.optional_vector("rope_freqs.weight", c.rope_dim / 2)?,
        })
    }
}
