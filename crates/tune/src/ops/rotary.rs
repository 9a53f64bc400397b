//! Rotary position embedding as one op: each row rotated by its own position's angles (rows of
//! packed sequences restart at 0); the backward pass rotates the gradient back.

use std::sync::Arc;

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, DType, Layout, Shape, Tensor};
use pipespec_model::config::RopeStyle;
use rayon::prelude::*;

use super::{contiguous, tensor_like, values, Element};

/// The angles of every row of a packed batch, and how a head's dimensions pair up.
#[derive(Debug, Clone)]
pub struct Rotary {
    /// Per row: `cos` of each pair's angle (`rope_dim / 2` values), then `sin`.
    pub tables: Arc<Vec<f32>>,
    pub rope_dim: usize,
    pub head_dim: usize,
    pub style: RopeStyle,
}

/// The direction a rotation runs: forward for the values, back for their gradients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Forward,
    Back,
}

struct RotaryOp {
    rotary: Rotary,
}

impl Rotary {
    /// `x` of `[rows, heads·head_dim]`, each head rotated by its row's angles.
    pub fn apply(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        x.contiguous()?.apply_op1(RotaryOp {
            rotary: self.clone(),
        })
    }

    fn pairs(&self) -> usize {
        self.rope_dim / 2
    }

    /// The two indices (within a head) of pair `p`.
    fn pair(&self, p: usize) -> (usize, usize) {
        match self.style {
            RopeStyle::Interleaved => (2 * p, 2 * p + 1),
            RopeStyle::Neox => (p, p + self.pairs()),
        }
    }

    fn rotate<T: Element>(&self, x: &[T], width: usize, direction: Direction) -> Vec<T> {
        let pairs = self.pairs();
        let mut y = x.to_vec();
        y.par_chunks_mut(width).enumerate().for_each(|(row, y)| {
            let table = &self.tables[row * 2 * pairs..][..2 * pairs];
            for head in y.chunks_exact_mut(self.head_dim) {
                for p in 0..pairs {
                    let (i, j) = self.pair(p);
                    let (cos, mut sin) = (
                        T::from_f64(table[p] as f64),
                        T::from_f64(table[pairs + p] as f64),
                    );
                    if direction == Direction::Back {
                        sin = -sin;
                    }
                    let (a, b) = (head[i], head[j]);
                    head[i] = a * cos - b * sin;
                    head[j] = a * sin + b * cos;
                }
            }
        });
        y
    }

    fn check(&self, rows: usize, width: usize) -> candle_core::Result<()> {
        if self.head_dim == 0
            || !width.is_multiple_of(self.head_dim)
            || self.rope_dim > self.head_dim
        {
            candle_core::bail!("rotary: rows of {width} for heads of {}", self.head_dim);
        }
        if self.tables.len() != rows * self.rope_dim {
            candle_core::bail!(
                "rotary: angles for {} rows, {rows} given",
                self.tables.len() / self.rope_dim.max(1)
            );
        }
        Ok(())
    }
}

impl CustomOp1 for RotaryOp {
    fn name(&self) -> &'static str {
        "rotary"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (rows, width) = layout.shape().dims2()?;
        self.rotary.check(rows, width)?;
        let (r, name) = (&self.rotary, self.name());
        super::flops::add(3 * (rows * width) as u64);
        let out = match storage.dtype() {
            DType::F32 => CpuStorage::F32(r.rotate(
                contiguous::<f32>(storage, layout, name)?,
                width,
                Direction::Forward,
            )),
            DType::F64 => CpuStorage::F64(r.rotate(
                contiguous::<f64>(storage, layout, name)?,
                width,
                Direction::Forward,
            )),
            other => candle_core::bail!("{name}: unsupported dtype {other:?}"),
        };
        Ok((out, layout.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let (r, width) = (&self.rotary, grad.dim(1)?);
        super::flops::add(3 * grad.elem_count() as u64);
        let rotated = match x.dtype() {
            DType::F32 => tensor_like(
                r.rotate(&values::<f32>(grad)?, width, Direction::Back),
                grad,
            )?,
            DType::F64 => tensor_like(
                r.rotate(&values::<f64>(grad)?, width, Direction::Back),
                grad,
            )?,
            other => candle_core::bail!("rotary: unsupported dtype {other:?}"),
        };
        Ok(Some(rotated))
    }
}
