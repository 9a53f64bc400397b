//! The model's weights: matrices repacked for the kernels (or kept as raw GGUF bytes, borrowed
//! from the shared memory map), vectors as f32.

use std::sync::Arc;

use candle_core::quantized::GgmlDType;

use crate::config::{Architecture, Config};
use crate::error::{ModelError, Result};
use crate::gguf::{GgufFile, TensorInfo};
use crate::kernels::{self, CpuPath, MatrixRef, PackedMatrix, Weight};

/// 64-byte aligned storage for tensors that cannot be used in place.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct AlignedChunk([u8; 64]);

enum Storage {
    Mapped { file: Arc<GgufFile>, offset: usize },
    Owned(Vec<AlignedChunk>),
}

/// A matrix kept as raw GGUF bytes: borrowed from the shared memory map (or owned when a file's
/// alignment forces a copy). The token embedding stays raw for row lookups.
pub struct RawMatrix {
    pub dtype: GgmlDType,
    pub rows: usize,
    pub cols: usize,
    byte_len: usize,
    storage: Storage,
}

impl RawMatrix {
    /// Wraps a 1-D or 2-D tensor of `file`, zero-copy when its data is 32-byte aligned.
    pub fn from_gguf(file: &Arc<GgufFile>, info: &TensorInfo) -> Result<RawMatrix> {
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
        let matrix = RawMatrix {
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

    pub fn bytes(&self) -> &[u8] {
        match &self.storage {
            Storage::Mapped { file, offset } => {
                &file.mapped_bytes()[*offset..*offset + self.byte_len]
            }
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

    /// Bytes this process owns for the matrix (0 when it is mapped).
    pub fn owned_bytes(&self) -> usize {
        match self.storage {
            Storage::Mapped { .. } => 0,
            Storage::Owned(_) => self.byte_len,
        }
    }
}

/// A weight matrix as the forward pass multiplies it: repacked for the CPU path, or raw for
/// the types without a packed kernel.
pub enum Matrix {
    Packed(PackedMatrix),
    Raw(RawMatrix),
}

impl Matrix {
    /// The kernels' view of the matrix.
    pub fn weight(&self) -> std::result::Result<Weight<'_>, kernels::KernelError> {
        Ok(match self {
            Matrix::Packed(packed) => Weight::Packed(packed),
            Matrix::Raw(raw) => Weight::Raw(raw.view()?),
        })
    }

    pub fn dtype(&self) -> GgmlDType {
        match self {
            Matrix::Packed(packed) => packed.dtype(),
            Matrix::Raw(raw) => raw.dtype,
        }
    }

    /// Bytes this process owns for the matrix.
    pub fn owned_bytes(&self) -> usize {
        match self {
            Matrix::Packed(packed) => packed.byte_len(),
            Matrix::Raw(raw) => raw.owned_bytes(),
        }
    }
}

/// How a model's matrices are prepared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LoadOptions {
    /// The kernels' CPU path.
    pub cpu: CpuPath,
    /// Repack quantized matrices (float ones always are); `false` keeps their GGUF bytes and
    /// runs candle's dot products, the reference the packed kernels are compared with.
    pub pack: bool,
}

impl LoadOptions {
    /// The process's CPU path (`PIPESPEC_CPU`, else the best), with packed weights.
    pub fn selected() -> Result<LoadOptions> {
        let cpu = CpuPath::selected().map_err(|e| ModelError::Kernel(e.to_string()))?;
        Ok(LoadOptions { cpu, pack: true })
    }
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
                [
                    &l.q,
                    &l.k,
                    &l.v,
                    &l.attention_output,
                    &l.gate,
                    &l.up,
                    &l.down,
                ]
                .iter()
                .map(|m| m.owned_bytes())
                .sum::<usize>()
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
    /// (and `options.pack`, for the quantized types); the mapped pages it was packed from are
    /// released.
    pub fn matrix(&self, name: &str, rows: usize, cols: usize) -> Result<Matrix> {
        let raw = self.raw_matrix(name, rows, cols)?;
        let float = matches!(raw.dtype, GgmlDType::F32 | GgmlDType::F16 | GgmlDType::BF16);
        if !PackedMatrix::packs(raw.dtype) || !(self.options.pack || float) {
            return Ok(Matrix::Raw(raw));
        }
        let kernel_error =
            |e: kernels::KernelError| ModelError::Kernel(format!("tensor `{name}`: {e}"));
        let view = raw.view().map_err(kernel_error)?;
        let packed = PackedMatrix::pack(&view, self.options.cpu).map_err(kernel_error)?;
        self.file.release(self.info(name)?);
        Ok(Matrix::Packed(packed))
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
