//! Reading and writing LoRA adapter files (llama.cpp's GGUF adapter format), every tensor
//! dequantized to f32 and every shape checked as it is read.

use std::path::{Path, PathBuf};

use candle_core::quantized::GgmlDType;

use super::LoraTarget;
use crate::error::{ModelError, Result};
use crate::gguf::{GgufFile, TensorInfo, Value};
use crate::gguf_writer::{GgufWriter, TensorToWrite};
use crate::kernels;
use crate::weights::RawMatrix;

/// One adapted matrix: `delta(x) = B·(A·x)` before scaling.
#[derive(Debug, Clone, PartialEq)]
pub struct LoraModule {
    /// The base tensor it adapts, e.g. `blk.0.attn_q.weight`.
    pub base: String,
    pub layer: Option<usize>,
    pub target: LoraTarget,
    pub rank: usize,
    /// Input features of the base matrix.
    pub n_in: usize,
    /// Output features of the base matrix.
    pub n_out: usize,
    /// `rank` rows of `n_in` values.
    pub a: Vec<f32>,
    /// `n_out` rows of `rank` values.
    pub b: Vec<f32>,
}

/// An adapter read from (or about to be written to) a file.
#[derive(Debug, Clone, PartialEq)]
pub struct LoraAdapter {
    /// Where it was read from (empty for one built in memory).
    pub path: PathBuf,
    /// `general.architecture`: must equal the base model's.
    pub architecture: String,
    pub name: Option<String>,
    /// `adapter.lora.alpha` (0: the user's scale alone).
    pub alpha: f32,
    /// Ordered by layer, then by the order a layer uses its matrices; the head last.
    pub modules: Vec<LoraModule>,
}

fn adapter_error(path: &Path, what: impl Into<String>) -> ModelError {
    ModelError::Adapter {
        path: path.to_path_buf(),
        what: what.into(),
    }
}

/// A tensor's values as f32, `rows` rows of `cols`.
fn read_f32(file: &std::sync::Arc<GgufFile>, info: &TensorInfo) -> Result<Vec<f32>> {
    let matrix = RawMatrix::from_gguf(file, info)?;
    let view = matrix
        .view()
        .map_err(|e| adapter_error(file.path(), format!("tensor `{}`: {e}", info.name)))?;
    let mut out = vec![0.0; matrix.rows * matrix.cols];
    for (row, values) in out.chunks_exact_mut(matrix.cols).enumerate() {
        kernels::dequantize_row(&view, row, values)
            .map_err(|e| adapter_error(file.path(), format!("tensor `{}`: {e}", info.name)))?;
    }
    Ok(out)
}

impl LoraAdapter {
    /// Reads an adapter file: it must say it is a LoRA adapter, and every `lora_a` must have its
    /// `lora_b` with shapes that agree (rank from `lora_b`). Whether it fits a model is checked
    /// when it is applied (`LoraStack::new`).
    pub fn open(path: &Path) -> Result<LoraAdapter> {
        let file = GgufFile::open(path)?;
        let error = |what: String| adapter_error(path, what);
        let kind = file.get_str("general.type").map_err(|_| {
            error("not an adapter: `general.type` is not \"adapter\" (a model file?)".into())
        })?;
        if kind != "adapter" {
            return Err(error(format!(
                "not an adapter: `general.type` is \"{kind}\", expected \"adapter\""
            )));
        }
        let adapter_type = file.get_str("adapter.type")?;
        if adapter_type != "lora" {
            return Err(error(format!(
                "adapter type \"{adapter_type}\" is not supported (only \"lora\")"
            )));
        }
        let alpha = match file.optional("adapter.lora.alpha", GgufFile::get_f64)? {
            Some(alpha) if alpha.is_finite() && alpha >= 0.0 => alpha as f32,
            Some(alpha) => return Err(error(format!("adapter.lora.alpha is {alpha}"))),
            None => 0.0,
        };
        let architecture = file.get_str("general.architecture")?.to_string();
        let name = file
            .optional("general.name", GgufFile::get_str)?
            .map(str::to_string);
        let mut modules = Vec::new();
        for info in &file.tensors {
            let Some(base) = info.name.strip_suffix(".lora_a") else {
                if !info.name.ends_with(".lora_b") {
                    return Err(error(format!(
                        "tensor `{}` is neither a `.lora_a` nor a `.lora_b`",
                        info.name
                    )));
                }
                continue;
            };
            let b_name = format!("{base}.lora_b");
            let b_info = file
                .tensor(&b_name)
                .ok_or_else(|| error(format!("`{}` has no `{b_name}`", info.name)))?;
            let (layer, target) = LoraTarget::parse_base(base).ok_or_else(|| {
                error(format!(
                    "LoRA on `{base}` is not supported (only the attention and FFN matrices \
                     of each layer, and output.weight)"
                ))
            })?;
            let (&[n_in, rank_a], &[rank, n_out]) = (info.dims.as_slice(), b_info.dims.as_slice())
            else {
                return Err(error(format!(
                    "`{base}`: lora_a has shape {:?} and lora_b {:?}, expected [n_in, rank] and \
                     [rank, n_out]",
                    info.dims, b_info.dims
                )));
            };
            if rank_a != rank || rank == 0 {
                return Err(error(format!(
                    "`{base}`: lora_a has rank {rank_a} but lora_b rank {rank}"
                )));
            }
            modules.push(LoraModule {
                base: base.to_string(),
                layer,
                target,
                rank,
                n_in,
                n_out,
                a: read_f32(&file, info)?,
                b: read_f32(&file, b_info)?,
            });
        }
        for info in &file.tensors {
            if let Some(base) = info.name.strip_suffix(".lora_b") {
                if file.tensor(&format!("{base}.lora_a")).is_none() {
                    return Err(error(format!("`{}` has no `{base}.lora_a`", info.name)));
                }
            }
        }
        if modules.is_empty() {
            return Err(error("the adapter holds no LoRA tensors".into()));
        }
        modules.sort_by_key(|m| (m.layer.is_none(), m.layer, m.target));
        Ok(LoraAdapter {
            path: path.to_path_buf(),
            architecture,
            name,
            alpha,
            modules,
        })
    }

    /// Writes the adapter as llama.cpp reads it (f32 tensors), through a temporary file.
    pub fn write(&self, path: &Path) -> Result<()> {
        let mut w = GgufWriter::new();
        w.set(
            "general.architecture",
            Value::String(self.architecture.clone()),
        );
        w.set("general.type", Value::String("adapter".into()));
        if let Some(name) = &self.name {
            w.set("general.name", Value::String(name.clone()));
        }
        w.set("adapter.type", Value::String("lora".into()));
        w.set("adapter.lora.alpha", Value::F32(self.alpha));
        let bytes = |values: &[f32]| values.iter().flat_map(|v| v.to_le_bytes()).collect();
        for m in &self.modules {
            if m.a.len() != m.rank * m.n_in || m.b.len() != m.n_out * m.rank {
                return Err(adapter_error(
                    path,
                    format!("`{}`: A or B does not hold rank x features values", m.base),
                ));
            }
            w.add_tensor(TensorToWrite {
                name: format!("{}.lora_a", m.base),
                dims: vec![m.n_in, m.rank],
                dtype: GgmlDType::F32,
                bytes: bytes(&m.a),
            });
            w.add_tensor(TensorToWrite {
                name: format!("{}.lora_b", m.base),
                dims: vec![m.rank, m.n_out],
                dtype: GgmlDType::F32,
                bytes: bytes(&m.b),
            });
        }
        w.write(path)
    }

    /// Ranks of its modules, smallest and largest.
    pub fn rank_range(&self) -> (usize, usize) {
        let ranks = self.modules.iter().map(|m| m.rank);
        (ranks.clone().min().unwrap_or(0), ranks.max().unwrap_or(0))
    }
}
