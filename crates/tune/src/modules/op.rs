//! The op that puts a host's LoRA deltas into the autograd graph: forward asks the host for the
//! deltas of a group's active modules, backward hands it the gradient at them and takes back the
//! gradient at the input. A one-element anchor variable makes the output tracked even when the
//! input is a constant.

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp2, DType, Layout, Shape, Tensor, Var};
use pipespec_model::lora::LoraTarget;

use crate::error::Result;
use crate::modules::group::GroupKind;

/// Where the modules of a pass live: in process, or on a device across the network.
pub trait ModuleHost: Send + Sync {
    /// `[rows, Σ n_out]`: the deltas of `targets` (the group's active modules, in its order)
    /// for the group's input `x` of `[rows, n_in]`.
    fn forward(
        &self,
        layer: usize,
        kind: GroupKind,
        targets: &[LoraTarget],
        x: &Tensor,
    ) -> Result<Tensor>;

    /// Takes the gradient at the deltas of the group's last forward; returns the gradient at
    /// its input when `need_dx`.
    fn backward(
        &self,
        layer: usize,
        kind: GroupKind,
        grad: &Tensor,
        need_dx: bool,
    ) -> Result<Option<Tensor>>;
}

struct HostedDeltas {
    host: Arc<dyn ModuleHost>,
    layer: usize,
    kind: GroupKind,
    targets: Vec<LoraTarget>,
}

fn op_error(error: crate::TuneError) -> candle_core::Error {
    candle_core::Error::Msg(error.to_string())
}

impl CustomOp2 for HostedDeltas {
    fn name(&self) -> &'static str {
        "hosted-lora-deltas"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
        _anchor: &CpuStorage,
        _anchor_layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (start, end) = layout
            .contiguous_offsets()
            .ok_or_else(|| candle_core::Error::Msg("hosted deltas: input not contiguous".into()))?;
        let shape = layout.shape().clone();
        let x = match storage {
            CpuStorage::F32(v) => {
                Tensor::from_slice(&v[start..end], shape, &candle_core::Device::Cpu)?
            }
            CpuStorage::F64(v) => {
                Tensor::from_slice(&v[start..end], shape, &candle_core::Device::Cpu)?
            }
            _ => candle_core::bail!("hosted deltas: only f32 and f64 inputs are supported"),
        };
        let deltas = self
            .host
            .forward(self.layer, self.kind, &self.targets, &x)
            .map_err(op_error)?;
        let out_shape = deltas.shape().clone();
        let flat = deltas.to_dtype(x.dtype())?.flatten_all()?;
        let out = match x.dtype() {
            DType::F32 => CpuStorage::F32(flat.to_vec1()?),
            _ => CpuStorage::F64(flat.to_vec1()?),
        };
        Ok((out, out_shape))
    }

    fn bwd(
        &self,
        x: &Tensor,
        _anchor: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let dx = self
            .host
            .backward(self.layer, self.kind, &grad.contiguous()?, x.track_op())
            .map_err(op_error)?;
        Ok((dx, None))
    }
}

/// The deltas of `targets` of group `kind` in `layer` for input `x`, as a tracked tensor.
pub fn hosted_deltas(
    x: &Tensor,
    anchor: &Var,
    host: &Arc<dyn ModuleHost>,
    layer: usize,
    kind: GroupKind,
    targets: Vec<LoraTarget>,
) -> Result<Tensor> {
    let op = HostedDeltas {
        host: host.clone(),
        layer,
        kind,
        targets,
    };
    Ok(x.contiguous()?.apply_op2(anchor.as_tensor(), op)?)
}
