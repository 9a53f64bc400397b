//! The llama-family model configuration, read from GGUF metadata and validated.

use crate::error::{ModelError, Result};
use crate::gguf::GgufFile;

/// How rotary position embeddings pair up the dimensions of a head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RopeStyle {
    /// Consecutive pairs (x0, x1), (x2, x3), ...: llama GGUF files store q/k permuted for this.
    Interleaved,
    /// Halves (x_i, x_{i + d/2}): qwen2 and other NEOX-style models.
    Neox,
}

/// The supported architectures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    Llama,
    Qwen2,
}

impl Architecture {
    pub fn name(self) -> &'static str {
        match self {
            Architecture::Llama => "llama",
            Architecture::Qwen2 => "qwen2",
        }
    }
}

/// A validated configuration of a llama-family decoder.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub architecture: Architecture,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub layer_count: usize,
    pub head_count: usize,
    pub kv_head_count: usize,
    pub head_dim: usize,
    pub context_length: usize,
    pub rms_norm_eps: f32,
    pub rope_base: f32,
    /// Number of leading dimensions of each head that are rotated.
    pub rope_dim: usize,
    /// Linear position scaling (`rope.scaling.factor` with type `linear`), 1 when absent.
    pub rope_linear_scale: f32,
    pub rope_style: RopeStyle,
}

impl Config {
    /// Reads the configuration of a `llama` or `qwen2` GGUF file.
    pub fn from_gguf(file: &GgufFile, vocab_size: usize) -> Result<Config> {
        let arch_name = file.get_str("general.architecture")?;
        let architecture = match arch_name {
            "llama" => Architecture::Llama,
            "qwen2" => Architecture::Qwen2,
            other => {
                return Err(ModelError::UnsupportedArchitecture {
                    path: file.path().to_path_buf(),
                    arch: other.to_string(),
                })
            }
        };
        let key = |suffix: &str| format!("{arch_name}.{suffix}");
        let hidden_size = file.get_usize(&key("embedding_length"))?;
        let head_count = file.get_usize(&key("attention.head_count"))?;
        let kv_head_count = file
            .optional(&key("attention.head_count_kv"), GgufFile::get_usize)?
            .unwrap_or(head_count);
        let invalid = |what: String| ModelError::InvalidConfig {
            path: file.path().to_path_buf(),
            what,
        };
        if head_count == 0 || kv_head_count == 0 || hidden_size % head_count != 0 {
            return Err(invalid(format!(
                "embedding length {hidden_size} is not divisible by head count {head_count} (kv heads {kv_head_count})"
            )));
        }
        if head_count % kv_head_count != 0 {
            return Err(invalid(format!(
                "head count {head_count} is not a multiple of the kv head count {kv_head_count}"
            )));
        }
        let head_dim = file
            .optional(&key("attention.key_length"), GgufFile::get_usize)?
            .unwrap_or(hidden_size / head_count);
        let rope_dim = file
            .optional(&key("rope.dimension_count"), GgufFile::get_usize)?
            .unwrap_or(head_dim);
        if head_dim % 2 != 0 || rope_dim % 2 != 0 || rope_dim > head_dim {
            return Err(invalid(format!(
                "head dimension {head_dim} / rope dimension {rope_dim} must be even and rope <= head"
            )));
        }
        let scaling_key = key("rope.scaling.type");
        let scaling_type = match file.get(&scaling_key) {
            Some(_) => Some(file.get_str(&scaling_key)?),
            None => None,
        };
        let scaling_factor = file
            .optional(&key("rope.scaling.factor"), GgufFile::get_f64)?
            .unwrap_or(1.0);
        let rope_linear_scale = match scaling_type {
            Some("linear") if scaling_factor > 0.0 => scaling_factor as f32,
            Some("linear") => return Err(invalid(format!("rope scaling factor {scaling_factor}"))),
            // llama3-style scaling arrives as the `rope_freqs.weight` tensor; yarn is not supported.
            Some("none") | None => 1.0,
            Some(other) => return Err(invalid(format!("unsupported rope scaling type `{other}`"))),
        };
        let config = Config {
            architecture,
            vocab_size,
            hidden_size,
            intermediate_size: file.get_usize(&key("feed_forward_length"))?,
            layer_count: file.get_usize(&key("block_count"))?,
            head_count,
            kv_head_count,
            head_dim,
            context_length: file.get_usize(&key("context_length"))?,
            rms_norm_eps: file.get_f64(&key("attention.layer_norm_rms_epsilon"))? as f32,
            rope_base: file
                .optional(&key("rope.freq_base"), GgufFile::get_f64)?
                .unwrap_or(10_000.0) as f32,
            rope_dim,
            rope_linear_scale,
            rope_style: match architecture {
                Architecture::Llama => RopeStyle::Interleaved,
                Architecture::Qwen2 => RopeStyle::Neox,
            },
        };
        if config.layer_count == 0 || config.intermediate_size == 0 || config.context_length == 0 {
            return Err(invalid(format!(
                "block count {}, feed-forward length {} and context length {} must be positive",
                config.layer_count, config.intermediate_size, config.context_length
            )));
        }
        Ok(config)
    }

    pub fn q_dim(&self) -> usize {
        self.head_count * self.head_dim
    }

    pub fn kv_dim(&self) -> usize {
        self.kv_head_count * self.head_dim
    }
}
