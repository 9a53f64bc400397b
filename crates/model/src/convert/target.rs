//! What `convert` writes: the tensor type names it takes, and which type each tensor gets,
//! uniform or llama.cpp's `_M` mix of k-quants.

use candle_core::quantized::GgmlDType;

use super::{ConvertError, Result};
use crate::gguf::TensorInfo;

/// The type names `convert` accepts, llama.cpp's spelling, lower case.
pub const TYPE_NAMES: &[&str] = &[
    "f32", "f16", "q8_0", "q6_k", "q5_k_m", "q5_k", "q5_1", "q5_0", "q4_k_m", "q4_k", "q4_1",
    "q4_0", "q3_k", "q2_k",
];

/// The types of a converted file's weight matrices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Every matrix in one type.
    Uniform(GgmlDType),
    /// llama.cpp's `Q4_K_M` / `Q5_K_M` mix over a base of Q4_K / Q5_K: Q6_K for the output
    /// head (the token embedding when it is tied) and for `attn_v` and `ffn_down` of the first
    /// and last eighth of the layers and every third one between.
    Medium(GgmlDType),
}

impl Target {
    /// The type most matrices get.
    pub fn base(self) -> GgmlDType {
        match self {
            Target::Uniform(dtype) | Target::Medium(dtype) => dtype,
        }
    }

    /// llama.cpp's `general.file_type` id of such a file.
    pub fn file_type_id(self) -> Option<u32> {
        Some(match self {
            Target::Medium(GgmlDType::Q4K) => 15,
            Target::Medium(GgmlDType::Q5K) => 17,
            Target::Medium(_) => return None,
            Target::Uniform(dtype) => match dtype {
                GgmlDType::F32 => 0,
                GgmlDType::F16 => 1,
                GgmlDType::Q4_0 => 2,
                GgmlDType::Q4_1 => 3,
                GgmlDType::Q8_0 => 7,
                GgmlDType::Q5_0 => 8,
                GgmlDType::Q5_1 => 9,
                GgmlDType::Q2K => 10,
                GgmlDType::Q3K => 12,
                // The `_S` files: every matrix in the base type.
                GgmlDType::Q4K => 14,
                GgmlDType::Q5K => 16,
                GgmlDType::Q6K => 18,
                _ => return None,
            },
        })
    }

    /// llama.cpp's name (`Q8_0`, `Q4_K_M`).
    pub fn name(self) -> String {
        match self {
            Target::Uniform(dtype) => type_name(dtype).to_string(),
            Target::Medium(dtype) => format!("{}_M", type_name(dtype)),
        }
    }

    /// The type tensor `info` is wanted in, before fallbacks; `layers` is the model's count.
    pub fn wanted(self, info: &TensorInfo, tied_head: bool, layers: usize) -> GgmlDType {
        let Target::Medium(base) = self else {
            return self.base();
        };
        let head = info.name == "output.weight" || (tied_head && info.name == "token_embd.weight");
        let more_bits = |layer: usize| {
            let eighth = layers / 8;
            layer < eighth || layer >= 7 * layers / 8 || (layer - eighth) % 3 == 2
        };
        let layer = info
            .name
            .strip_prefix("blk.")
            .and_then(|rest| rest.split('.').next())
            .and_then(|n| n.parse::<usize>().ok());
        let sensitive =
            info.name.ends_with(".attn_v.weight") || info.name.ends_with(".ffn_down.weight");
        match layer {
            Some(layer) if sensitive && more_bits(layer) => GgmlDType::Q6K,
            _ if head => GgmlDType::Q6K,
            _ => base,
        }
    }
}

/// The target named `name` (`q8_0`, `Q4_K_M`, ...: one of `TYPE_NAMES`, any case).
pub fn parse_target(name: &str) -> Result<Target> {
    let lower = name.to_ascii_lowercase();
    Ok(match lower.as_str() {
        "q4_k_m" => Target::Medium(GgmlDType::Q4K),
        "q5_k_m" => Target::Medium(GgmlDType::Q5K),
        _ => Target::Uniform(parse_type(&lower)?),
    })
}

/// The tensor type named `name` (`q8_0`, `Q4_K`, ...: one of `TYPE_NAMES` without the mixes).
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

/// The type tensor `info` is written in when `wanted` is asked for.
pub(super) fn output_type(info: &TensorInfo, wanted: GgmlDType) -> GgmlDType {
    if info.dims.len() < 2 {
        return GgmlDType::F32;
    }
    let row_len = info.dims[0];
    [wanted, fallback_for(wanted), GgmlDType::F16]
        .into_iter()
        .find(|dtype| row_len.is_multiple_of(dtype.block_size()))
        .unwrap_or(GgmlDType::F32)
}
