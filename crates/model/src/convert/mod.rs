//! Re-encoding a GGUF model's weights into another tensor type (dequantize, then quantize), keeping its metadata.
//!
//! Every tensor of two or more dimensions is re-encoded into the requested type; 1-D tensors
//! (norm weights, biases, rope frequencies) are written as F32. A tensor already in the type it
//! would get is copied byte for byte, so converting a file into its own type changes no weight.
//! Rows that a type cannot hold (a k-quant row length that is not a multiple of 256, such as
//! SmolLM2's 576) fall back to a 32-element block type, as llama.cpp's quantizer does, and to
//! F16 when even 32 does not divide the row.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use candle_core::quantized::GgmlDType;
use rayon::prelude::*;

use crate::error::ModelError;
use crate::gguf::{GgufFile, TensorInfo, Value};
use crate::gguf_writer::{GgufWriter, TensorToWrite};
use crate::kernels::{self, MatrixRef};
use crate::quantize::quantize;

mod target;

use target::output_type;
pub use target::{parse_target, parse_type, type_name, Target, TYPE_NAMES};

/// The writer's data alignment; an input's own `general.alignment` is rewritten to it.
const OUTPUT_ALIGNMENT: u32 = 32;

/// About this many values are dequantized and re-encoded per work item.
const CHUNK_VALUES: usize = 1 << 16;

/// Errors of `convert`: bad requests, and the reader's, kernels' and writer's errors with the tensor named.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error("unknown tensor type `{name}` (expected one of: {})", TYPE_NAMES.join(", "))]
    UnknownType { name: String },
    #[error("cannot convert to {target} (supported targets: {})", TYPE_NAMES.join(", "))]
    UnsupportedTarget { target: String },
    #[error("the output {output} is the input file itself; choose another output path")]
    OutputIsInput { output: PathBuf },
    #[error("cannot resolve the output path {output}: {error}")]
    OutputPath {
        output: PathBuf,
        error: std::io::Error,
    },
    /// `what` names the types and the shape too.
    #[error("{path}: tensor `{name}`: {what}")]
    Tensor {
        path: PathBuf,
        name: String,
        what: String,
    },
    #[error(transparent)]
    Model(#[from] ModelError),
}

/// The result type of this module.
pub type Result<T> = std::result::Result<T, ConvertError>;

/// What `convert` reports as it goes.
#[derive(Debug, Clone)]
pub enum ConvertEvent<'a> {
    /// Tensor `index` (0-based, of `count`) is being written as `to`; `from == to` means copied as is.
    Tensor {
        index: usize,
        count: usize,
        name: &'a str,
        dims: &'a [usize],
        from: GgmlDType,
        to: GgmlDType,
    },
    /// A tensor whose rows the requested type cannot hold got `used` instead.
    Fallback(&'a Fallback),
    /// Every tensor is encoded (`tensor_bytes` in all); the file is being written.
    Writing { path: &'a Path, tensor_bytes: u64 },
}

/// One tensor written in another type than the one asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fallback {
    pub name: String,
    pub row_len: usize,
    pub wanted: GgmlDType,
    pub used: GgmlDType,
}

/// What a conversion did.
#[derive(Debug, Clone)]
pub struct ConvertSummary {
    pub target: Target,
    /// Tensors written, copied or re-encoded.
    pub tensor_count: usize,
    /// Tensors that were dequantized and encoded again (the rest were copied byte for byte).
    pub reencoded_count: usize,
    pub fallbacks: Vec<Fallback>,
    pub input_bytes: u64,
    pub output_bytes: u64,
    pub elapsed: Duration,
}

/// Whether `output` names the same file as `input` (which exists), through links or `..`.
fn same_file(input: &Path, output: &Path) -> Result<bool> {
    let input = input.canonicalize().map_err(|reason| ModelError::Open {
        path: input.to_path_buf(),
        reason,
    })?;
    let output_error = |error| ConvertError::OutputPath {
        output: output.to_path_buf(),
        error,
    };
    let output = match output.canonicalize() {
        Ok(path) => path,
        Err(_) => {
            // A new file: its directory must exist, and decides where it lands.
            let name = output.file_name().ok_or_else(|| {
                output_error(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "the path names no file",
                ))
            })?;
            let parent = output
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            parent.canonicalize().map_err(output_error)?.join(name)
        }
    };
    Ok(input == output)
}

/// Converts `input` into `output` with its weight matrices in `target`'s types, reporting through
/// `progress`.
///
/// The output is written through a temporary file and a rename; `output == input` is refused.
/// Tensors are encoded one at a time, each split over the global rayon pool by rows.
pub fn convert(
    input: &Path,
    output: &Path,
    target: Target,
    progress: &mut dyn FnMut(ConvertEvent<'_>),
) -> Result<ConvertSummary> {
    let started = Instant::now();
    let file_type = target
        .file_type_id()
        .ok_or_else(|| ConvertError::UnsupportedTarget {
            target: target.name(),
        })?;
    let file = GgufFile::open(input)?;
    if same_file(input, output)? {
        return Err(ConvertError::OutputIsInput {
            output: output.to_path_buf(),
        });
    }

    let mut writer = GgufWriter::new();
    for key in &file.metadata_order {
        let value = match (key.as_str(), file.metadata.get(key)) {
            ("general.alignment", Some(_)) => Value::U32(OUTPUT_ALIGNMENT),
            (_, Some(value)) => value.clone(),
            (_, None) => continue,
        };
        writer.set(key, value);
    }
    writer.set("general.file_type", Value::U32(file_type));
    writer.set(
        "general.quantized_by",
        Value::String("pipespec convert".into()),
    );

    let count = file.tensors.len();
    let tied_head = file.tensor("output.weight").is_none();
    // Layers as the tensor names count them (the architecture's block count says the same).
    let layers = file
        .tensors
        .iter()
        .filter_map(|t| {
            t.name
                .strip_prefix("blk.")?
                .split('.')
                .next()?
                .parse::<usize>()
                .ok()
        })
        .max()
        .map_or(0, |last| last + 1);
    let mut fallbacks = Vec::new();
    let mut reencoded_count = 0;
    let mut tensor_bytes = 0u64;
    for (index, info) in file.tensors.iter().enumerate() {
        let wanted = target.wanted(info, tied_head, layers);
        let to = output_type(info, wanted);
        progress(ConvertEvent::Tensor {
            index,
            count,
            name: &info.name,
            dims: &info.dims,
            from: info.dtype,
            to,
        });
        if to != wanted && info.dims.len() >= 2 {
            let fallback = Fallback {
                name: info.name.clone(),
                row_len: info.dims[0],
                wanted,
                used: to,
            };
            progress(ConvertEvent::Fallback(&fallback));
            fallbacks.push(fallback);
        }
        let bytes = if to == info.dtype {
            file.tensor_bytes(info).to_vec()
        } else {
            reencoded_count += 1;
            reencode(&file, info, to)?
        };
        tensor_bytes += bytes.len() as u64;
        writer.add_tensor(TensorToWrite {
            name: info.name.clone(),
            dims: info.dims.clone(),
            dtype: to,
            bytes,
        });
    }
    progress(ConvertEvent::Writing {
        path: output,
        tensor_bytes,
    });
    writer.write(output)?;
    let output_error = |reason| ModelError::Open {
        path: output.to_path_buf(),
        reason,
    };
    // The writer's temporary file is private (0600); the converted model is as readable as its input.
    let permissions = std::fs::metadata(input).map_err(|reason| ModelError::Open {
        path: input.to_path_buf(),
        reason,
    })?;
    std::fs::set_permissions(output, permissions.permissions()).map_err(output_error)?;
    let output_bytes = std::fs::metadata(output).map_err(output_error)?.len();
    Ok(ConvertSummary {
        target,
        tensor_count: count,
        reencoded_count,
        fallbacks,
        input_bytes: file.mapped_bytes().len() as u64,
        output_bytes,
        elapsed: started.elapsed(),
    })
}

/// Tensor `info` of `file` dequantized and encoded as `to`, in chunks of whole rows.
fn reencode(file: &GgufFile, info: &TensorInfo, to: GgmlDType) -> Result<Vec<u8>> {
    let tensor_error = |what: String| ConvertError::Tensor {
        path: file.path().to_path_buf(),
        name: info.name.clone(),
        what: format!(
            "re-encoding {} {:?} as {}: {what}",
            type_name(info.dtype),
            info.dims,
            type_name(to)
        ),
    };
    let cols = info.dims[0];
    let rows = info.dims[1..].iter().product::<usize>();
    let matrix = MatrixRef::new(info.dtype, rows, cols, file.tensor_bytes(info))
        .map_err(|e| tensor_error(e.to_string()))?;
    if cols == 0 || rows == 0 {
        return Ok(Vec::new());
    }
    let out_row_bytes = cols / to.block_size() * to.type_size();
    let rows_per_chunk = (CHUNK_VALUES / cols).max(1);
    let mut out = vec![0u8; rows * out_row_bytes];
    out.par_chunks_mut(rows_per_chunk * out_row_bytes)
        .enumerate()
        .try_for_each(|(chunk, out)| {
            let first = chunk * rows_per_chunk;
            let chunk_rows = out.len() / out_row_bytes;
            let mut values = vec![0f32; chunk_rows * cols];
            for (r, row) in values.chunks_exact_mut(cols).enumerate() {
                kernels::dequantize_row(&matrix, first + r, row).map_err(|e| e.to_string())?;
            }
            let encoded = quantize(to, &values, cols).map_err(|e| e.to_string())?;
            if encoded.len() != out.len() {
                return Err(format!(
                    "encoded {} bytes, expected {}",
                    encoded.len(),
                    out.len()
                ));
            }
            out.copy_from_slice(&encoded);
            Ok(())
        })
        .map_err(tensor_error)?;
    Ok(out)
}
