//! A matrix product with a frozen weight: `y = x·Wᵀ` whose backward pass computes only the
//! input's gradient (`g·W`), never the weight's, which candle's plain `matmul` would.

use candle_core::{CpuStorage, CustomOp1, DType, Device, Layout, Shape, Tensor};

/// The op: `weight` is `[n_out, n_in]`, contiguous.
struct FrozenLinear {
    weight: Tensor,
}

/// `x·Wᵀ` for `x` of `[rows, n_in]` (contiguous), gradient flowing to `x` only.
pub fn frozen_linear(x: &Tensor, weight: &Tensor) -> candle_core::Result<Tensor> {
    x.apply_op1(FrozenLinear {
        weight: weight.clone(),
    })
}

impl FrozenLinear {
    fn dims(&self) -> candle_core::Result<(usize, usize)> {
        self.weight.dims2()
    }
}

impl CustomOp1 for FrozenLinear {
    fn name(&self) -> &'static str {
        "frozen-linear"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (n_out, n_in) = self.dims()?;
        let (rows, cols) = layout.shape().dims2()?;
        if cols != n_in {
            candle_core::bail!("frozen-linear: input has {cols} columns, the weight {n_in}");
        }
        let (start, end) = layout
            .contiguous_offsets()
            .ok_or_else(|| candle_core::Error::Msg("frozen-linear: input not contiguous".into()))?;
        let x = match storage {
            CpuStorage::F32(values) => {
                Tensor::from_slice(&values[start..end], (rows, cols), &Device::Cpu)?
            }
            CpuStorage::F64(values) => {
                Tensor::from_slice(&values[start..end], (rows, cols), &Device::Cpu)?
            }
            _ => candle_core::bail!("frozen-linear: only f32 and f64 inputs are supported"),
        };
        super::flops::add(super::flops::product(rows, n_in, n_out));
        let y = x.matmul(&self.weight.t()?)?.flatten_all()?;
        let out = match y.dtype() {
            DType::F32 => CpuStorage::F32(y.to_vec1()?),
            DType::F64 => CpuStorage::F64(y.to_vec1()?),
            other => candle_core::bail!("frozen-linear: unsupported dtype {other:?}"),
        };
        Ok((out, Shape::from((rows, n_out))))
    }

    fn bwd(
        &self,
        _arg: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let (n_out, n_in) = self.dims()?;
        super::flops::add(super::flops::product(grad_res.dim(0)?, n_out, n_in));
        Ok(Some(grad_res.contiguous()?.matmul(&self.weight)?))
    }
}
