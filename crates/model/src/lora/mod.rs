//! LoRA adapters in llama.cpp's GGUF format, applied beside the base weights: `y = W·x +
//! scale·B·(A·x)`, never merged, so one loaded base serves any number of adapters.
//!
//! An adapter file holds, per adapted matrix `NAME` (a base tensor such as
//! `blk.0.attn_q.weight`), `NAME.lora_a` of GGUF shape `[n_in, rank]` and `NAME.lora_b` of shape
//! `[rank, n_out]`, with `general.type = "adapter"`, `adapter.type = "lora"` and
//! `adapter.lora.alpha`. A module's scale is `user_scale · alpha / rank` (`user_scale` when alpha
//! is 0), as in llama.cpp. q and k rows are in the GGUF (RoPE-permuted) order of the base.

mod apply;
mod file;
mod stack;

pub use file::{LoraAdapter, LoraModule};
pub use stack::{module_scale, AdapterScale, LoraStack};

/// The matrices an adapter may cover.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LoraTarget {
    Q,
    K,
    V,
    Output,
    Gate,
    Up,
    Down,
    /// The output head (`output.weight`), outside the layers.
    Head,
}

impl LoraTarget {
    /// The layer targets, in the order a layer uses them.
    pub const LAYER: [LoraTarget; 7] = [
        LoraTarget::Q,
        LoraTarget::K,
        LoraTarget::V,
        LoraTarget::Output,
        LoraTarget::Gate,
        LoraTarget::Up,
        LoraTarget::Down,
    ];

    /// Every target: the layer targets, then the head.
    pub const ALL: [LoraTarget; 8] = {
        let mut all = [LoraTarget::Head; 8];
        let mut i = 0;
        while i < Self::LAYER.len() {
            all[i] = Self::LAYER[i];
            i += 1;
        }
        all
    };

    /// The base tensor's name inside a layer (`attn_q` of `blk.N.attn_q.weight`).
    pub fn tensor_stem(self) -> &'static str {
        match self {
            LoraTarget::Q => "attn_q",
            LoraTarget::K => "attn_k",
            LoraTarget::V => "attn_v",
            LoraTarget::Output => "attn_output",
            LoraTarget::Gate => "ffn_gate",
            LoraTarget::Up => "ffn_up",
            LoraTarget::Down => "ffn_down",
            LoraTarget::Head => "output",
        }
    }

    /// The short name `pipespec tune --targets` takes (q, k, v, o, gate, up, down, head).
    pub fn short_name(self) -> &'static str {
        match self {
            LoraTarget::Q => "q",
            LoraTarget::K => "k",
            LoraTarget::V => "v",
            LoraTarget::Output => "o",
            LoraTarget::Gate => "gate",
            LoraTarget::Up => "up",
            LoraTarget::Down => "down",
            LoraTarget::Head => "head",
        }
    }

    /// The target a short name stands for.
    pub fn from_short_name(name: &str) -> Option<LoraTarget> {
        LoraTarget::LAYER
            .into_iter()
            .chain([LoraTarget::Head])
            .find(|t| t.short_name() == name)
    }

    /// The base tensor this target names in `layer` (`None` for the head).
    pub fn base_tensor(self, layer: Option<usize>) -> String {
        match layer {
            Some(layer) => format!("blk.{layer}.{}.weight", self.tensor_stem()),
            None => format!("{}.weight", self.tensor_stem()),
        }
    }

    /// The layer and target a base tensor's name stands for, if an adapter may cover it.
    pub fn parse_base(name: &str) -> Option<(Option<usize>, LoraTarget)> {
        if name == "output.weight" {
            return Some((None, LoraTarget::Head));
        }
        let rest = name.strip_prefix("blk.")?;
        let (layer, stem) = rest.split_once('.')?;
        let layer = layer.parse().ok()?;
        let stem = stem.strip_suffix(".weight")?;
        let target = LoraTarget::LAYER
            .into_iter()
            .find(|t| t.tensor_stem() == stem)?;
        Some((Some(layer), target))
    }
}

#[cfg(test)]
mod tests;
