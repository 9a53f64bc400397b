//! Causal self-attention over packed sequences: the rows of several examples lie one after
//! another with no padding, and each row attends to the rows of its own segment up to itself.
//! Each (segment, kv head) is one task of matrix products; the backward pass recomputes the
//! probabilities instead of keeping an `n × n` matrix per head and layer.

use std::sync::Arc;

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp3, DType, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::product::{product, View};
use super::{contiguous, dot, tensor_like, values, Element};

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

    /// Head `head`'s `d` columns of segment `s`'s rows, in a `[rows, heads·d]` matrix.
    fn head_view(&self, heads: usize, head: usize, s: Segment) -> View {
        let stride = heads * self.head_dim;
        View {
            rows: s.len,
            cols: self.head_dim,
            offset: s.start * stride + head * self.head_dim,
            row_stride: stride,
            col_stride: 1,
        }
    }

    /// Group member `g`'s columns of a task's `[n, group·d]` part.
    fn part_view(&self, n: usize, g: usize) -> View {
        View {
            rows: n,
            cols: self.head_dim,
            offset: g * self.head_dim,
            row_stride: self.group() * self.head_dim,
            col_stride: 1,
        }
    }

    /// Scaled scores `n × n` in, causal probabilities out (zero above the diagonal).
    fn softmax_causal<T: Element>(scores: &mut [T], n: usize, scale: T) {
        for (i, row) in scores.chunks_exact_mut(n).enumerate() {
            let (seen, future) = row.split_at_mut(i + 1);
            let mut max = T::neg_infinity();
            for x in seen.iter_mut() {
                *x *= scale;
                max = num_traits::Float::max(max, *x);
            }
            let mut sum = T::zero();
            for x in seen.iter_mut() {
                *x = (*x - max).exp();
                sum += *x;
            }
            for x in seen.iter_mut() {
                *x /= sum;
            }
            future.fill(T::zero());
        }
    }

    /// Head `head`'s probabilities over segment `s` into `p` (`n × n`).
    fn probabilities<T: Element>(&self, q: &[T], k: &[T], head: usize, s: Segment, p: &mut [T]) {
        let (n, kv) = (s.len, head / self.group());
        let keys = self.head_view(self.kv_heads, kv, s);
        product(
            p,
            View::dense(n, n, 0),
            q,
            self.head_view(self.heads, head, s),
            k,
            keys.t(),
            false,
        );
        Self::softmax_causal(p, n, self.scale());
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
        let parts: Vec<Vec<T>> = self
            .tasks()
            .into_par_iter()
            .map(|(s, kv)| {
                let n = s.len;
                let mut out = vec![T::zero(); n * group * d];
                let mut p = vec![T::zero(); n * n];
                for g in 0..group {
                    self.probabilities(q, k, kv * group + g, s, &mut p);
                    let values = self.head_view(self.kv_heads, kv, s);
                    product(
                        &mut out,
                        self.part_view(n, g),
                        &p,
                        View::dense(n, n, 0),
                        v,
                        values,
                        false,
                    );
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

    /// The gradients of q, k and v from the output's, `o` being the forward's output:
    /// `dV = Pᵀ·dO`, `dS = P∘(dO·Vᵀ − rowsum(dO∘O))·scale`, `dQ = dS·K`, `dK = dSᵀ·Q`.
    fn backward<T: Element>(&self, q: &[T], k: &[T], v: &[T], o: &[T], grad: &[T]) -> [Vec<T>; 3] {
        let (d, group) = (self.head_dim, self.group());
        let scale = self.scale::<T>();
        let parts: Vec<[Vec<T>; 3]> = self
            .tasks()
            .into_par_iter()
            .map(|(s, kv)| {
                let n = s.len;
                let square = View::dense(n, n, 0);
                // k and v share one layout: the same view reads either
                let kv_rows = self.head_view(self.kv_heads, kv, s);
                let mut dq = vec![T::zero(); n * group * d];
                let (mut dk, mut dv) = (vec![T::zero(); n * d], vec![T::zero(); n * d]);
                let (mut p, mut ds) = (vec![T::zero(); n * n], vec![T::zero(); n * n]);
                for g in 0..group {
                    let head = kv * group + g;
                    let rows = self.head_view(self.heads, head, s);
                    self.probabilities(q, k, head, s, &mut p);
                    product(&mut ds, square, grad, rows, v, kv_rows.t(), false);
                    for i in 0..n {
                        let at = rows.offset + i * rows.row_stride;
                        let centre = dot(&grad[at..at + d], &o[at..at + d]);
                        for (x, &pij) in ds[i * n..(i + 1) * n]
                            .iter_mut()
                            .zip(&p[i * n..(i + 1) * n])
                        {
                            *x = pij * (*x - centre) * scale;
                        }
                    }
                    product(
                        &mut dq,
                        self.part_view(n, g),
                        &ds,
                        square,
                        k,
                        kv_rows,
                        false,
                    );
                    product(
                        &mut dk,
                        View::dense(n, d, 0),
                        &ds,
                        square.t(),
                        q,
                        rows,
                        true,
                    );
                    product(
                        &mut dv,
                        View::dense(n, d, 0),
                        &p,
                        square.t(),
                        grad,
                        rows,
                        true,
                    );
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

impl CausalAttention {
    /// Operations of the score and value products over every segment (`factor` products of
    /// `len × len × head_dim` per head: 2 forward, 5 backward with the recomputed scores).
    fn count_flops(&self, factor: u64) {
        let per_head: usize = self.segments.iter().map(|s| s.len * s.len).sum();
        let terms = (per_head * self.head_dim * self.heads) as u64;
        super::flops::add(factor * 2 * terms);
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
        self.count_flops(2);
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
        self.count_flops(5);
        let tensors = [q, k, v, res, grad_res];
        match q.dtype() {
            DType::F32 => run::<f32>(self, tensors),
            DType::F64 => run::<f64>(self, tensors),
            other => candle_core::bail!("{}: unsupported dtype {other:?}", self.name()),
        }
    }
}
