//! RMS norm with a frozen weight, `y = x / rms(x) · w` per row, as one op: its backward pass
//! gives the input's gradient only.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, DType, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::{contiguous, tensor_like, values, Element};

struct RmsNorm {
    weight: Tensor,
    eps: f64,
}

/// `x / sqrt(mean(x²) + eps) · weight` over the last dimension of `x` (`[rows, width]`).
pub fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64) -> candle_core::Result<Tensor> {
    x.contiguous()?.apply_op1(RmsNorm {
        weight: weight.clone(),
        eps,
    })
}

impl RmsNorm {
    /// `1 / sqrt(mean(x²) + eps)` of one row.
    fn inverse_rms<T: Element>(&self, row: &[T]) -> T {
        let square = row.iter().fold(T::zero(), |s, &x| s + x * x);
        let mean = square / T::from_f64(row.len() as f64);
        (mean + T::from_f64(self.eps)).sqrt().recip()
    }

    fn forward<T: Element>(&self, x: &[T], width: usize) -> candle_core::Result<Vec<T>> {
        let w = values::<T>(&self.weight)?;
        let mut y = vec![T::zero(); x.len()];
        y.par_chunks_mut(width)
            .zip(x.par_chunks(width))
            .for_each(|(y, x)| {
                let r = self.inverse_rms(x);
                for ((y, &x), &w) in y.iter_mut().zip(x).zip(&w) {
                    *y = x * r * w;
                }
            });
        Ok(y)
    }

    /// `dx = r·(g∘w) − x·r³/n·Σ(g∘w∘x)` per row.
    fn backward<T: Element>(&self, x: &Tensor, grad: &Tensor) -> candle_core::Result<Tensor> {
        let (w, xs, gs) = (
            values::<T>(&self.weight)?,
            values::<T>(x)?,
            values::<T>(grad)?,
        );
        let width = w.len();
        let mut dx = vec![T::zero(); xs.len()];
        dx.par_chunks_mut(width)
            .zip(xs.par_chunks(width).zip(gs.par_chunks(width)))
            .for_each(|(dx, (x, g))| {
                let r = self.inverse_rms(x);
                let projected = (0..width).fold(T::zero(), |s, i| s + g[i] * w[i] * x[i]);
                let factor = r * r * r * projected / T::from_f64(width as f64);
                for i in 0..width {
                    dx[i] = r * g[i] * w[i] - x[i] * factor;
                }
            });
        tensor_like(dx, x)
    }
}

impl CustomOp1 for RmsNorm {
    fn name(&self) -> &'static str {
        "rms-norm"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let width = layout.shape().dims().last().copied().unwrap_or(0);
        if width != self.weight.elem_count() {
            candle_core::bail!(
                "rms-norm: rows of {width}, a weight of {}",
                self.weight.elem_count()
            );
        }
        let name = self.name();
        super::flops::add(4 * layout.shape().elem_count() as u64);
        let out = match storage.dtype() {
            DType::F32 => {
                CpuStorage::F32(self.forward(contiguous::<f32>(storage, layout, name)?, width)?)
            }
            DType::F64 => {
                CpuStorage::F64(self.forward(contiguous::<f64>(storage, layout, name)?, width)?)
            }
            other => candle_core::bail!("{name}: unsupported dtype {other:?}"),
        };
        Ok((out, layout.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        super::flops::add(8 * x.elem_count() as u64);
        match x.dtype() {
            DType::F32 => self.backward::<f32>(x, grad).map(Some),
            DType::F64 => self.backward::<f64>(x, grad).map(Some),
            other => candle_core::bail!("rms-norm: unsupported dtype {other:?}"),
        }
    }
}
