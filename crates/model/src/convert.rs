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

/// The writer's data alignment; an input's own `general.alignment` is rewritten to it.
const OUTPUT_ALIGNMENT: u32 = 32;

/// About this many values are dequantized and re-encoded per work item.
const CHUNK_VALUES: usize = 1 << 16;

/// The type names `convert` accepts, llama.cpp's spelling, lower case.
pub const TYPE_NAMES: &[&str] = &[
    "f32", "f16", "q8_0", "q6_k", "q5_k", "q5_1", "q5_0", "q4_k", "q4_1", "q4_0", "q3_k", "q2_k",
];

/// Errors of `convert`: bad requests, and the reader's, kernels' and writer's errors with the tensor named.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error("unknown tensor type `{name}` (expected one of: {})", TYPE_NAMES.join(", "))]
    UnknownType { name: String },
    #[error("cannot convert to {dtype:?} (supported targets: {})", TYPE_NAMES.join(", "))]
    UnsupportedTarget { dtype: GgmlDType },
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
    pub target: GgmlDType,
    /// Tensors written, copied or re-encoded.
    pub tensor_count: usize,
    /// Tensors that were dequantized and encoded again (the rest were copied byte for byte).
    pub reencoded_count: usize,
    pub fallbacks: Vec<Fallback>,
    pub input_bytes: u64,
    pub output_bytes: u64,
    pub elapsed: Duration,
}

/// The tensor type named `name` (`q8_0`, `Q4_K`, ...: one of `TYPE_NAMES`, any case).
pub fn parse_type(name: &str) -> Result<GgmlDType> {
    Ok(match name.to_ascii_lowercase().as_str() {
        "f32" => GgmlDType::F32,
        "f16" => GgmlDType::F16,
        "q8_0" => GgmlDType::Q8_0,
        "q6_k" => GgmlDType::Q6K,
        "q5_k" => GgmlDType::Q5K,
        "q5_1" => GgmlDType::Q5_1,
        "q5_0" => GgmlDType::Q5_0,
        "q4_k" => GgmlDType::Q4K,
        "q4_1" => GgmlDType::Q4_1,
        "q4_0" => GgmlDType::Q4_0,
        "q3_k" => GgmlDType::Q3K,
        "q2_k" => GgmlDType::Q2K,
        _ => {
            return Err(ConvertError::UnknownType {
                name: name.to_string(),
            })
        }
    })
}

/// llama.cpp's name of a tensor type (`Q4_K`, not candle's `Q4K`).
pub fn type_name(dtype: GgmlDType) -> &'static str {
    match dtype {
        GgmlDType::F32 => "F32",
        GgmlDType::F16 => "F16",
        GgmlDType::BF16 => "BF16",
        GgmlDType::Q4_0 => "Q4_0",
        GgmlDType::Q4_1 => "Q4_1",
        GgmlDType::Q5_0 => "Q5_0",
        GgmlDType::Q5_1 => "Q5_1",
        GgmlDType::Q8_0 => "Q8_0",
        GgmlDType::Q8_1 => "Q8_1",
        GgmlDType::Q2K => "Q2_K",
        GgmlDType::Q3K => "Q3_K",
        GgmlDType::Q4K => "Q4_K",
        GgmlDType::Q5K => "Q5_K",
        GgmlDType::Q6K => "Q6_K",
        GgmlDType::Q8K => "Q8_K",
    }
}

/// llama.cpp's `general.file_type` id for a file mostly in `target` (k-quants: the `_M` mixes).
pub fn file_type_id(target: GgmlDType) -> Option<u32> {
    Some(match target {
        GgmlDType::F32 => 0,
        GgmlDType::F16 => 1,
        GgmlDType::Q4_0 => 2,
        GgmlDType::Q4_1 => 3,
        GgmlDType::Q8_0 => 7,
        GgmlDType::Q5_0 => 8,
        GgmlDType::Q5_1 => 9,
        GgmlDType::Q2K => 10,
        GgmlDType::Q3K => 12,
        GgmlDType::Q4K => 15,
        GgmlDType::Q5K => 17,
        GgmlDType::Q6K => 18,
        _ => return None,
    })
}

/// The 32-block type llama.cpp uses for rows a k-quant cannot hold (it picks IQ4_NL for
/// Q2_K/Q3_K, which candle cannot encode: Q4_0 is the nearest); F16 for everything else.
fn fallback_for(wanted: GgmlDType) -> GgmlDType {
    match wanted {
        GgmlDType::Q2K | GgmlDType::Q3K => GgmlDType::Q4_0,
        GgmlDType::Q4K => GgmlDType::Q5_0,
        GgmlDType::Q5K => GgmlDType::Q5_1,
        GgmlDType::Q6K => GgmlDType::Q8_0,
        _ => GgmlDType::F16,
    }
}

/// The type tensor `info` is written in when `target` is asked for.
fn output_type(info: &TensorInfo, target: GgmlDType) -> GgmlDType {
    if info.dims.len() < 2 {
        return GgmlDType::F32;
    }
    let row_len = info.dims[0];
    [target, fallback_for(target), GgmlDType::F16]
        .into_iter()
        .find(|dtype| row_len.is_multiple_of(dtype.block_size()))
        .unwrap_or(GgmlDType::F32)
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

/// Converts `input` into `output` with every weight matrix in `target`, reporting through `progress`.
///
/// The output is written through a temporary file and a rename; `output == input` is refused.
/// Tensors are encoded one at a time, each split over the global rayon pool by rows.
pub fn convert(
    input: &Path,
    output: &Path,
    target: GgmlDType,
    progress: &mut dyn FnMut(ConvertEvent<'_>),
) -> Result<ConvertSummary> {
    let started = Instant::now();
    let file_type =
        file_type_id(target).ok_or(ConvertError::UnsupportedTarget { dtype: target })?;
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
    let mut fallbacks = Vec::new();
    let mut reencoded_count = 0;
    let mut tensor_bytes = 0u64;
    for (index, info) in file.tensors.iter().enumerate() {
        let to = output_type(info, target);
        progress(ConvertEvent::Tensor {
            index,
            count,
            name: &info.name,
            dims: &info.dims,
            from: info.dtype,
            to,
        });
        if to != target && info.dims.len() >= 2 {
            let fallback = Fallback {
                name: info.name.clone(),
                row_len: info.dims[0],
                wanted: target,
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
