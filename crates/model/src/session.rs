//! One sequence being decoded: a model handle, its KV cache, the thread pool its compute runs on,
//! and the forward pass as named steps (embedding, attention block, FFN block, output head).

use std::sync::Arc;

use crate::attention::attention;
use crate::cache::KvCache;
use crate::config::Config;
use crate::error::{ModelError, Result};
use crate::kernels::{self, Input, InputBuffers};
use crate::model::Model;
use crate::ops;
use crate::weights::{LayerWeights, Matrix, Stacked};

/// Prompt positions processed per pass during prefill (bounds scratch memory).
const PREFILL_CHUNK: usize = 256;

/// Reusable buffers of one session, sized for the largest pass so far.
#[derive(Default)]
struct Scratch {
    x: Vec<f32>,         // (rows, hidden): the residual stream
    normed: Vec<f32>,    // (rows, hidden)
    q: Vec<f32>,         // (rows, q_dim)
    k: Vec<f32>,         // (rows, kv_dim)
    v: Vec<f32>,         // (rows, kv_dim)
    attention: Vec<f32>, // (rows, q_dim)
    projected: Vec<f32>, // (rows, hidden)
    gate: Vec<f32>,      // (rows, intermediate)
    up: Vec<f32>,        // (rows, intermediate)
    logits: Vec<f32>,    // (rows or 1, vocab)
    rope: Vec<f32>,      // (rows, rope_dim): cos then sin of every new position
    stacked: Vec<f32>,   // (rows, rows of a stacked matrix)
    input: InputBuffers, // quantized forms of `normed` and friends
}

impl Scratch {
    fn size(&mut self, rows: usize, c: &Config) {
        sized(&mut self.x, rows * c.hidden_size);
        sized(&mut self.normed, rows * c.hidden_size);
        sized(&mut self.q, rows * c.q_dim());
        sized(&mut self.k, rows * c.kv_dim());
        sized(&mut self.v, rows * c.kv_dim());
        sized(&mut self.attention, rows * c.q_dim());
        sized(&mut self.projected, rows * c.hidden_size);
        sized(&mut self.gate, rows * c.intermediate_size);
        sized(&mut self.up, rows * c.intermediate_size);
    }
}

fn sized(buffer: &mut Vec<f32>, len: usize) -> &mut [f32] {
    buffer.resize(len, 0.0);
    &mut buffer[..len]
}

/// One sequence being decoded: a model handle, its KV cache and the thread pool its compute runs on.
pub struct Session {
    model: Arc<Model>,
    cache: KvCache,
    pool: Arc<rayon::ThreadPool>,
    scratch: Scratch,
}

fn kernel_error(what: &str, error: kernels::KernelError) -> ModelError {
    ModelError::Kernel(format!("{what}: {error}"))
}

/// `out = matrix · input`, naming the matrix in errors.
fn matmul(
    pool: &rayon::ThreadPool,
    matrix: &Matrix,
    input: &mut Input,
    out: &mut [f32],
    what: &str,
) -> Result<()> {
    let weight = matrix.weight().map_err(|e| kernel_error(what, e))?;
    kernels::matmul(pool, weight, input, out).map_err(|e| kernel_error(what, e))
}

/// Every part of `stacked` times `input` into its output in `outs` (rows of each part's size):
/// a matrix holding one part writes it directly, a stacked one through `staging`.
fn matmul_stacked(
    pool: &rayon::ThreadPool,
    stacked: &Stacked,
    input: &mut Input,
    outs: &mut [&mut [f32]],
    staging: &mut Vec<f32>,
    what: &str,
) -> Result<()> {
    let m = input.rows();
    for (index, matrix) in stacked.matrices.iter().enumerate() {
        let mine = || {
            stacked
                .parts
                .iter()
                .enumerate()
                .filter(move |(_, p)| p.0 == index)
        };
        let only = mine().count() == 1;
        if let (true, Some((part, _))) = (only, mine().next()) {
            matmul(pool, matrix, input, outs[part], what)?;
            continue;
        }
        let rows = matrix.rows();
        let all = sized(staging, m * rows);
        matmul(pool, matrix, input, all, what)?;
        for (part, &(_, first, part_rows)) in mine() {
            for (out, row) in outs[part]
                .chunks_exact_mut(part_rows)
                .zip(all.chunks_exact(rows))
            {
                out.copy_from_slice(&row[first..first + part_rows]);
            }
        }
    }
    Ok(())
}

impl Session {
    /// A session whose cache holds `capacity` positions.
    pub fn new(model: Arc<Model>, capacity: usize, pool: Arc<rayon::ThreadPool>) -> Session {
        let cache = KvCache::new(&model.config, capacity);
        Session {
            model,
            cache,
            pool,
            scratch: Scratch::default(),
        }
    }

    pub fn model(&self) -> &Arc<Model> {
        &self.model
    }

    /// The pool later passes run on.
    pub fn pool(&self) -> &Arc<rayon::ThreadPool> {
        &self.pool
    }

    /// Runs later passes on `pool` (say a wider one while other work sleeps). Results are
    /// bit-identical whatever the pool: every output element is computed the same way.
    pub fn set_pool(&mut self, pool: Arc<rayon::ThreadPool>) {
        self.pool = pool;
    }

    /// Positions held in the cache.
    pub fn len(&self) -> usize {
        self.cache.len()
    }

    pub fn is_empty(&self) -> bool {
        self.cache.is_empty()
    }

    pub fn capacity(&self) -> usize {
        self.cache.capacity()
    }

    pub fn cache_bytes(&self) -> usize {
        self.cache.byte_size()
    }

    /// `cache_bytes` of a session of `capacity` positions on `model`, without making one.
    pub fn cache_bytes_for(model: &Model, capacity: usize) -> usize {
        KvCache::byte_size_for(&model.config, capacity)
    }

    /// Rolls the sequence back to `len` positions: O(1).
    pub fn truncate(&mut self, len: usize) {
        self.cache.truncate(len);
    }

    /// Feeds `tokens` at positions `start_pos..` and returns the logits of every one, (tokens, vocab) row-major.
    /// Any cached positions at or after `start_pos` are replaced.
    pub fn forward(&mut self, tokens: &[u32], start_pos: usize) -> Result<&[f32]> {
        self.run_in_pool(tokens, start_pos, false)?;
        Ok(&self.scratch.logits[..tokens.len() * self.model.config.vocab_size])
    }

    /// Like `forward`, but computes only the last position's logits, in chunks (prefill).
    pub fn forward_last(&mut self, tokens: &[u32], start_pos: usize) -> Result<&[f32]> {
        if tokens.is_empty() {
            return Err(ModelError::EmptyInput);
        }
        self.cache.check_append(start_pos, tokens.len())?;
        let mut position = start_pos;
        for chunk in tokens.chunks(PREFILL_CHUNK) {
            self.run_in_pool(chunk, position, true)?;
            position += chunk.len();
        }
        Ok(&self.scratch.logits[..self.model.config.vocab_size])
    }

    /// Runs a whole pass on a worker of the session's pool: the kernels' parallel loops then
    /// fork from inside the pool instead of paying a cross-thread hand-off per matrix.
    fn run_in_pool(&mut self, tokens: &[u32], start_pos: usize, last_only: bool) -> Result<()> {
        let pool = self.pool.clone();
        if pool.current_num_threads() <= 1 {
            return self.run(tokens, start_pos, last_only);
        }
        pool.install(|| self.run(tokens, start_pos, last_only))
    }

    /// The forward pass over `tokens` at positions `start_pos..`.
    fn run(&mut self, tokens: &[u32], start_pos: usize, last_only: bool) -> Result<()> {
        if tokens.is_empty() {
            return Err(ModelError::EmptyInput);
        }
        self.cache.check_append(start_pos, tokens.len())?;
        let model = self.model.clone();
        let c = &model.config;
        if let Some(&id) = tokens.iter().find(|&&t| t as usize >= c.vocab_size) {
            return Err(ModelError::UnknownToken {
                id,
                vocab_size: c.vocab_size,
            });
        }
        self.cache.truncate(start_pos);
        let mut pass = Forward {
            model: &model,
            cache: &mut self.cache,
            pool: &self.pool,
            s: &mut self.scratch,
            start_pos,
            rows: tokens.len(),
        };
        pass.s.size(pass.rows, c);
        // cos and sin of every new position, once for all layers
        model.rope.tables(start_pos, pass.rows, &mut pass.s.rope);
        pass.embed(tokens)?;
        for (index, layer) in model.weights.layers.iter().enumerate() {
            pass.attention_block(index, layer)?;
            pass.ffn_block(layer)?;
        }
        pass.cache.set_len(start_pos + pass.rows);
        pass.output_head(last_only)
    }
}

/// One forward pass: the session's parts it works on, and the positions it feeds.
struct Forward<'a> {
    model: &'a Model,
    cache: &'a mut KvCache,
    pool: &'a rayon::ThreadPool,
    s: &'a mut Scratch,
    start_pos: usize,
    rows: usize,
}

impl Forward<'_> {
    /// x = the embedding rows of the tokens.
    fn embed(&mut self, tokens: &[u32]) -> Result<()> {
        let hidden = self.model.config.hidden_size;
        let embedding = self
            .model
            .weights
            .token_embedding
            .view()
            .map_err(|e| kernel_error("token embedding", e))?;
        for (row, &t) in self.s.x.chunks_exact_mut(hidden).zip(tokens) {
            kernels::dequantize_row(&embedding, t as usize, row)
                .map_err(|e| kernel_error("token embedding", e))?;
        }
        Ok(())
    }

    /// x += Wo · attention(rope(Wq · norm(x)), rope(Wk · norm(x)), Wv · norm(x)), keys and
    /// values of the new positions appended to the cache.
    fn attention_block(&mut self, index: usize, layer: &LayerWeights) -> Result<()> {
        let c = &self.model.config;
        let (pool, s, rows) = (self.pool, &mut *self.s, self.rows);
        // attention rmsnorm
        ops::rms_norm_rows(&s.x, &layer.attention_norm, c.rms_norm_eps, &mut s.normed);
        // q, k and v for every new position, from one quantization of the normed rows
        let mut input = Input::new(&s.normed, rows, c.hidden_size, &mut s.input);
        let mut outs = [&mut s.q[..], &mut s.k[..], &mut s.v[..]];
        matmul_stacked(
            pool,
            &layer.qkv,
            &mut input,
            &mut outs,
            &mut s.stacked,
            "attn_qkv",
        )?;
        // biases (qwen2), RoPE on q and k, k and v into the cache
        let rope_width = self.model.rope.table_width();
        for row in 0..rows {
            let q = &mut s.q[row * c.q_dim()..(row + 1) * c.q_dim()];
            let k = &mut s.k[row * c.kv_dim()..(row + 1) * c.kv_dim()];
            let v = &mut s.v[row * c.kv_dim()..(row + 1) * c.kv_dim()];
            for (values, bias) in [
                (&mut *q, &layer.q_bias),
                (&mut *k, &layer.k_bias),
                (&mut *v, &layer.v_bias),
            ] {
                if let Some(bias) = bias {
                    ops::add_bias(values, bias);
                }
            }
            let table = &s.rope[row * rope_width..(row + 1) * rope_width];
            self.model.rope.apply(q, table);
            self.model.rope.apply(k, table);
            self.cache.store(index, self.start_pos + row, k, v);
        }
        // softmax(q k^T / sqrt(d)) v over the cache, per head
        attention(
            pool,
            self.cache,
            c,
            index,
            self.start_pos,
            rows,
            &s.q,
            &mut s.attention,
        );
        // output projection, and the residual connection back into x
        let mut input = Input::new(&s.attention, rows, c.q_dim(), &mut s.input);
        matmul(
            pool,
            &layer.attention_output,
            &mut input,
            &mut s.projected,
            "attn_output",
        )?;
        ops::add_in_place(&mut s.x, &s.projected);
        Ok(())
    }

    /// x += Wdown · (silu(Wgate · norm(x)) * Wup · norm(x)).
    fn ffn_block(&mut self, layer: &LayerWeights) -> Result<()> {
        let c = &self.model.config;
        let (pool, s, rows) = (self.pool, &mut *self.s, self.rows);
        // ffn rmsnorm
        ops::rms_norm_rows(&s.x, &layer.ffn_norm, c.rms_norm_eps, &mut s.normed);
        // gate and up from one quantization of the normed rows
        let mut input = Input::new(&s.normed, rows, c.hidden_size, &mut s.input);
        let mut outs = [&mut s.gate[..], &mut s.up[..]];
        matmul_stacked(
            pool,
            &layer.gate_up,
            &mut input,
            &mut outs,
            &mut s.stacked,
            "ffn_gate_up",
        )?;
        // SwiGLU
        ops::silu_mul(&mut s.gate, &s.up);
        // down projection, and the residual connection back into x
        let mut input = Input::new(&s.gate, rows, c.intermediate_size, &mut s.input);
        matmul(pool, &layer.down, &mut input, &mut s.projected, "ffn_down")?;
        ops::add_in_place(&mut s.x, &s.projected);
        Ok(())
    }

    /// logits = Wout · norm(x), for every row or the last only.
    fn output_head(&mut self, last_only: bool) -> Result<()> {
        let c = &self.model.config;
        let (pool, s) = (self.pool, &mut *self.s);
        let head_rows = if last_only { 1 } else { self.rows };
        let first = (self.rows - head_rows) * c.hidden_size;
        let x = &s.x[first..];
        let normed = &mut s.normed[..head_rows * c.hidden_size];
        // final rmsnorm
        ops::rms_norm_rows(x, &self.model.weights.output_norm, c.rms_norm_eps, normed);
        // classifier into logits
        let logits = sized(&mut s.logits, head_rows * c.vocab_size);
        let mut input = Input::new(normed, head_rows, c.hidden_size, &mut s.input);
        matmul(
            pool,
            &self.model.weights.output,
            &mut input,
            logits,
            "output",
        )
    }
}
