//! The training pass's fused ops, each with a hand-written backward pass (checked against
//! finite differences): a product with a frozen matrix, RMS norm, rotary embedding and causal
//! attention over packed sequences. Fusing keeps autograd's graph small and its memory low.

pub mod attention;
pub mod flops;
pub mod linear;
pub mod norm;
mod product;
pub mod rotary;

use candle_core::{CpuStorage, Layout, Tensor, WithDType};

/// The element types the ops run in: f32 for training, f64 for gradient checks.
pub trait Element: WithDType + num_traits::Float + Send + Sync {}
impl Element for f32 {}
impl Element for f64 {}

/// The values of a contiguous storage view.
fn contiguous<'a, T: WithDType>(
    storage: &'a CpuStorage,
    layout: &Layout,
    op: &str,
) -> candle_core::Result<&'a [T]> {
    let (start, end) = layout
        .contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg(format!("{op}: input not contiguous")))?;
    Ok(&storage.as_slice::<T>()?[start..end])
}

/// A tensor's values, row-major.
fn values<T: WithDType>(tensor: &Tensor) -> candle_core::Result<Vec<T>> {
    tensor.contiguous()?.flatten_all()?.to_vec1::<T>()
}

/// A tensor of `like`'s shape holding `values`.
fn tensor_like<T: WithDType>(values: Vec<T>, like: &Tensor) -> candle_core::Result<Tensor> {
    Tensor::from_vec(values, like.shape(), like.device())
}

/// A fixed-order dot product in eight lanes (so that it vectorizes).
#[inline]
fn dot<T: Element>(a: &[T], b: &[T]) -> T {
    let mut lanes = [T::zero(); 8];
    let (chunks_a, chunks_b) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: T = chunks_a
        .remainder()
        .iter()
        .zip(chunks_b.remainder())
        .fold(T::zero(), |sum, (&x, &y)| sum + x * y);
    for (x, y) in chunks_a.zip(chunks_b) {
        for lane in 0..8 {
            lanes[lane] += x[lane] * y[lane];
        }
    }
    lanes.iter().fold(tail, |sum, &lane| sum + lane)
}
