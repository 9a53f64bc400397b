//! Causal self-attention over packed sequences: the rows of several examples lie one after
//! another with no padding, and each row attends to the rows of its own segment up to itself.
//! The backward pass recomputes the probabilities row by row (as flash attention does) instead
//! of keeping an `n × n` matrix per head and layer.

use std::sync::Arc;

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp3, DType, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::{axpy, contiguous, dot, tensor_like, values, Element};

/// One sequence's rows in the packed batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub start: usize,
    pub len: usize,
}

/// The shape of an attention: `heads` query heads share `kv_heads` key/value heads
/// (query head `h` reads key/value head `h / (heads / kv_heads)`).
#[derive(Debug, Clone)]
pub struct CausalAttention {
    pub segments: Arc<Vec<Segment>>,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
}

/// `softmax(q·kᵀ/√d + causal mask)·v` per segment and head, for `q` of `[rows, heads·d]` and
/// `k`, `v` of `[rows, kv_heads·d]`.
pub fn causal_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    attention: &CausalAttention,
) -> candle_core::Result<Tensor> {
    q.contiguous()?
        .apply_op3(&k.contiguous()?, &v.contiguous()?, attention.clone())
}

/// The strided rows of one head: row `i` of the segment is `data[(start + i)·stride + offset..][..d]`.
struct HeadRows<'a, T> {
    data: &'a [T],
    stride: usize,
    offset: usize,
    start: usize,
    dim: usize,
}

impl<'a, T> HeadRows<'a, T> {
    #[inline]
    fn row(&self, i: usize) -> &'a [T] {
        let at = (self.start + i) * self.stride + self.offset;
        &self.data[at..at + self.dim]
    }
}

impl CausalAttention {
    fn group(&self) -> usize {
        self.heads / self.kv_heads
    }

    fn check(&self, rows: usize, q_cols: usize, kv_cols: usize) -> candle_core::Result<()> {
        if self.kv_heads == 0 || !self.heads.is_multiple_of(self.kv_heads) {
            candle_core::bail!(
                "attention: {} heads over {} kv heads",
                self.heads,
                self.kv_heads
            );
        }
        if q_cols != self.heads * self.head_dim || kv_cols != self.kv_heads * self.head_dim {
            candle_core::bail!("attention: q has {q_cols} columns, k/v {kv_cols}");
        }
        if self.segments.iter().any(|s| s.start + s.len > rows) {
            candle_core::bail!("attention: a segment runs past the {rows} rows");
        }
        Ok(())
    }

    fn rows<'a, T>(&self, data: &'a [T], heads: usize, head: usize, s: Segment) -> HeadRows<'a, T> {
        HeadRows {
            data,
            stride: heads * self.head_dim,
            offset: head * self.head_dim,
            start: s.start,
            dim: self.head_dim,
        }
    }

    /// Row `i`'s probabilities over rows `0..=i` into `p` (scaled scores, then softmax).
    fn probabilities<T: Element>(q: &[T], keys: &HeadRows<T>, i: usize, scale: T, p: &mut Vec<T>) {
        p.clear();
        p.extend((0..=i).map(|j| scale * dot(q, keys.row(j))));
        let max = p
            .iter()
            .fold(T::neg_infinity(), |m, &x| num_traits::Float::max(m, x));
        let mut sum = T::zero();
        for x in p.iter_mut() {
            *x = (*x - max).exp();
            sum += *x;
        }
        for x in p.iter_mut() {
            *x /= sum;
        }
    }

    /// Every (segment, kv head) pair: the unit of parallel work.
    fn tasks(&self) -> Vec<(Segment, usize)> {
        self.segments
            .iter()
            .flat_map(|&s| (0..self.kv_heads).map(move |kv| (s, kv)))
            .collect()
    }

    fn scale<T: Element>(&self) -> T {
        T::from_f64(1.0 / (self.head_dim as f64).sqrt())
    }

    fn forward<T: Element>(&self, q: &[T], k: &[T], v: &[T], rows: usize) -> Vec<T> {
        let (d, group) = (self.head_dim, self.group());
        let scale = self.scale::<T>();
        let parts: Vec<Vec<T>> = self
            .tasks()
            .into_par_iter()
            .map(|(s, kv)| {
                let (keys, vals) = (
                    self.rows(k, self.kv_heads, kv, s),
                    self.rows(v, self.kv_heads, kv, s),
                );
                let mut out = vec![T::zero(); s.len * group * d];
                let mut p = Vec::with_capacity(s.len);
                for g in 0..group {
                    let queries = self.rows(q, self.heads, kv * group + g, s);
                    for i in 0..s.len {
                        Self::probabilities(queries.row(i), &keys, i, scale, &mut p);
                        let o = &mut out[(i * group + g) * d..][..d];
                        for (j, &pj) in p.iter().enumerate() {
                            axpy(o, pj, vals.row(j));
                        }
                    }
                }
                out
            })
            .collect();
        let mut out = vec![T::zero(); rows * self.heads * d];
        for ((s, kv), part) in self.tasks().into_iter().zip(parts) {
            for i in 0..s.len {
                let at = (s.start + i) * self.heads * d + kv * group * d;
                out[at..at + group * d].copy_from_slice(&part[i * group * d..][..group * d]);
            }
        }
        out
    }

    /// The gradients of q, k and v from the output's, `o` being the forward's output.
    fn backward<T: Element>(&self, q: &[T], k: &[T], v: &[T], o: &[T], grad: &[T]) -> [Vec<T>; 3] {
        let (d, group) = (self.head_dim, self.group());
        let scale = self.scale::<T>();
        let parts: Vec<[Vec<T>; 3]> = self
            .tasks()
            .into_par_iter()
            .map(|(s, kv)| {
                let (keys, vals) = (
                    self.rows(k, self.kv_heads, kv, s),
                    self.rows(v, self.kv_heads, kv, s),
                );
                let mut dq = vec![T::zero(); s.len * group * d];
                let (mut dk, mut dv) = (vec![T::zero(); s.len * d], vec![T::zero(); s.len * d]);
                let mut p = Vec::with_capacity(s.len);
                for g in 0..group {
                    let head = kv * group + g;
                    let (queries, outs, grads) = (
                        self.rows(q, self.heads, head, s),
                        self.rows(o, self.heads, head, s),
                        self.rows(grad, self.heads, head, s),
                    );
                    for i in 0..s.len {
                        let (qi, gi) = (queries.row(i), grads.row(i));
                        Self::probabilities(qi, &keys, i, scale, &mut p);
                        let centre = dot(gi, outs.row(i));
                        let dqi = &mut dq[(i * group + g) * d..][..d];
                        for (j, &pj) in p.iter().enumerate() {
                            let ds = pj * (dot(gi, vals.row(j)) - centre) * scale;
                            axpy(dqi, ds, keys.row(j));
                            axpy(&mut dk[j * d..][..d], ds, qi);
                            axpy(&mut dv[j * d..][..d], pj, gi);
                        }
                    }
                }
                [dq, dk, dv]
            })
            .collect();
        let mut dq = vec![T::zero(); q.len()];
        let (mut dk, mut dv) = (vec![T::zero(); k.len()], vec![T::zero(); v.len()]);
        for ((s, kv), [pq, pk, pv]) in self.tasks().into_iter().zip(parts) {
            for i in 0..s.len {
                let at = (s.start + i) * self.heads * d + kv * group * d;
                dq[at..at + group * d].copy_from_slice(&pq[i * group * d..][..group * d]);
                let at = (s.start + i) * self.kv_heads * d + kv * d;
                dk[at..at + d].copy_from_slice(&pk[i * d..][..d]);
                dv[at..at + d].copy_from_slice(&pv[i * d..][..d]);
            }
        }
        [dq, dk, dv]
    }
}

impl CustomOp3 for CausalAttention {
    fn name(&self) -> &'static str {
        "causal-attention"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (rows, q_cols) = l1.shape().dims2()?;
        let (_, kv_cols) = l2.shape().dims2()?;
        self.check(rows, q_cols, kv_cols)?;
        let name = self.name();
        let out = match s1.dtype() {
            DType::F32 => CpuStorage::F32(self.forward::<f32>(
                contiguous(s1, l1, name)?,
                contiguous(s2, l2, name)?,
                contiguous(s3, l3, name)?,
                rows,
            )),
            DType::F64 => CpuStorage::F64(self.forward::<f64>(
                contiguous(s1, l1, name)?,
                contiguous(s2, l2, name)?,
                contiguous(s3, l3, name)?,
                rows,
            )),
            other => candle_core::bail!("{name}: unsupported dtype {other:?}"),
        };
        Ok((out, Shape::from((rows, q_cols))))
    }

    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        fn run<T: Element>(
            op: &CausalAttention,
            tensors: [&Tensor; 5],
        ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
            let [q, k, v, o, g] = tensors.map(values::<T>);
            let [dq, dk, dv] = op.backward(&q?, &k?, &v?, &o?, &g?);
            let [q, k, v, ..] = tensors;
            Ok((
                Some(tensor_like(dq, q)?),
                Some(tensor_like(dk, k)?),
                Some(tensor_like(dv, v)?),
            ))
        }
        let tensors = [q, k, v, res, grad_res];
        match q.dtype() {
            DType::F32 => run::<f32>(self, tensors),
            DType::F64 => run::<f64>(self, tensors),
            other => candle_core::bail!("{}: unsupported dtype {other:?}", self.name()),
        }
    }
}
