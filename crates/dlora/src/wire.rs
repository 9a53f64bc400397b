//! Between candle tensors and the wire: raw little-endian f32 (or bf16) bytes with their
//! shape, modules and groups as indices, the model's shape for the handshake. Every decode
//! checks what it reads and names the field that is wrong.

use candle_core::{DType, Device, Tensor};
use pipespec_model::config::Config;
use pipespec_model::lora::LoraTarget;
use pipespec_tune::modules::GroupKind;

use crate::proto;

/// A refusal naming the field and the problem.
fn bad(field: &str, what: impl std::fmt::Display) -> tonic::Status {
    tonic::Status::invalid_argument(format!("{field}: {what}"))
}

/// `tensor` as `wire` bytes.
pub fn encode(tensor: &Tensor, wire: proto::DType) -> Result<proto::Tensor, candle_core::Error> {
    let shape = tensor.dims().iter().map(|&d| d as u64).collect();
    let flat = tensor.flatten_all()?;
    let data = match wire {
        proto::DType::F32 => {
            let values: Vec<f32> = flat.to_dtype(DType::F32)?.to_vec1()?;
            values.iter().flat_map(|v| v.to_le_bytes()).collect()
        }
        proto::DType::Bf16 => {
            let values: Vec<half::bf16> = flat.to_dtype(DType::BF16)?.to_vec1()?;
            values.iter().flat_map(|v| v.to_le_bytes()).collect()
        }
    };
    Ok(proto::Tensor {
        shape,
        dtype: wire as i32,
        data,
    })
}

/// The f32 tensor `field` carries, checked against `expected` dims where given (`None` for a
/// free dimension).
pub fn decode(
    field: &str,
    tensor: Option<&proto::Tensor>,
    expected: &[Option<usize>],
) -> Result<Tensor, tonic::Status> {
    let tensor = tensor.ok_or_else(|| bad(field, "missing"))?;
    let dtype = proto::DType::try_from(tensor.dtype).map_err(|_| {
        bad(
            field,
            format!("unknown dtype {} (0 = f32, 1 = bf16)", tensor.dtype),
        )
    })?;
    let dims: Vec<usize> = tensor.shape.iter().map(|&d| d as usize).collect();
    let fits = dims.len() == expected.len()
        && dims
            .iter()
            .zip(expected)
            .all(|(d, e)| e.is_none_or(|e| e == *d));
    if !fits {
        let want: Vec<String> = expected
            .iter()
            .map(|e| e.map_or("any".to_string(), |e| e.to_string()))
            .collect();
        return Err(bad(
            field,
            format!("shape {dims:?}, expected [{}]", want.join(", ")),
        ));
    }
    let count = dims
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| bad(field, "shape overflows"))?;
    let width = match dtype {
        proto::DType::F32 => 4,
        proto::DType::Bf16 => 2,
    };
    if tensor.data.len() != count * width {
        return Err(bad(
            field,
            format!(
                "{} bytes for shape {dims:?} in {dtype:?} ({} expected)",
                tensor.data.len(),
                count * width
            ),
        ));
    }
    let values: Vec<f32> = match dtype {
        proto::DType::F32 => tensor
            .data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        proto::DType::Bf16 => tensor
            .data
            .chunks_exact(2)
            .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
    };
    if values.iter().any(|v| !v.is_finite()) {
        return Err(bad(field, "holds a value that is not finite"));
    }
    Tensor::from_vec(values, dims, &Device::Cpu).map_err(|e| bad(field, e))
}

/// The targets a module index may name (the head is never hosted).
const TARGETS: [LoraTarget; 7] = LoraTarget::LAYER;

pub fn module_of(
    module: &proto::Module,
    layers: usize,
) -> Result<(usize, LoraTarget), tonic::Status> {
    let target = TARGETS
        .get(module.target as usize)
        .ok_or_else(|| bad("module", format!("unknown target {}", module.target)))?;
    if module.layer as usize >= layers {
        return Err(bad("module", format!("layer {} of {layers}", module.layer)));
    }
    Ok((module.layer as usize, *target))
}

pub fn module_to(layer: usize, target: LoraTarget) -> proto::Module {
    proto::Module {
        layer: layer as u32,
        target: target_index(target),
    }
}

pub fn target_index(target: LoraTarget) -> u32 {
    TARGETS.iter().position(|&t| t == target).unwrap_or(0) as u32
}

pub fn target_of(index: u32) -> Result<LoraTarget, tonic::Status> {
    TARGETS
        .get(index as usize)
        .copied()
        .ok_or_else(|| bad("targets", format!("unknown target {index}")))
}

pub fn group_index(kind: GroupKind) -> u32 {
    GroupKind::ALL.iter().position(|&k| k == kind).unwrap_or(0) as u32
}

pub fn group_of(index: u32) -> Result<GroupKind, tonic::Status> {
    GroupKind::ALL
        .get(index as usize)
        .copied()
        .ok_or_else(|| bad("group", format!("unknown group {index}")))
}

/// The shape both sides must share.
pub fn model_shape(config: &Config) -> proto::ModelShape {
    proto::ModelShape {
        architecture: config.architecture.name().to_string(),
        layers: config.layer_count as u32,
        hidden: config.hidden_size as u32,
        q_dim: config.q_dim() as u32,
        kv_dim: config.kv_dim() as u32,
        ffn: config.intermediate_size as u32,
    }
}
