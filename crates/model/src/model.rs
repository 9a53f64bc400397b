//! A llama-family model (weights shared, loaded once) and the sessions that run it, each with its own KV cache.

use std::path::Path;
use std::sync::Arc;

use rayon::prelude::*;

use crate::cache::KvCache;
use crate::config::Config;
use crate::error::{ModelError, Result};
use crate::gguf::GgufFile;
use crate::kernels::{self, MatrixRef};
use crate::ops;
use crate::rope::Rope;
use crate::weights::{Matrix, WeightLoader, Weights};

/// Prompt positions processed per pass during prefill (bounds scratch memory).
const PREFILL_CHUNK: usize = 256;

/// A loaded model: configuration and weights, shareable across threads and sessions.
pub struct Model {
    pub config: Config,
    weights: Weights,
    rope: Rope,
    file: Arc<GgufFile>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("config", &self.config)
            .finish()
    }
}

impl Model {
    /// Opens a GGUF file (sharing the map with any handle already open on it) and checks every tensor.
    pub fn load(path: &Path) -> Result<Arc<Model>> {
        Self::from_file(GgufFile::open(path)?)
    }

    pub fn from_file(file: Arc<GgufFile>) -> Result<Arc<Model>> {
        let embedding =
            file.tensor("token_embd.weight")
                .ok_or_else(|| ModelError::MissingTensor {
                    path: file.path().to_path_buf(),
                    name: "token_embd.weight".into(),
                })?;
        let vocab_size = embedding.dims.get(1).copied().unwrap_or(0);
        let config = Config::from_gguf(&file, vocab_size)?;
        let weights = WeightLoader::new(&file, &config).load()?;
        let rope = Rope::new(&config, weights.rope_frequency_factors.as_deref());
        Ok(Arc::new(Model {
            config,
            weights,
            rope,
            file,
        }))
    }

    pub fn file(&self) -> &Arc<GgufFile> {
        &self.file
    }

    /// Bytes of weight data (mapped or owned).
    pub fn weight_bytes(&self) -> usize {
        self.file.tensors.iter().map(|t| t.byte_len).sum()
    }
}

/// Reusable buffers of one session, sized for the largest pass so far.
#[derive(Default)]
struct Scratch {
    x: Vec<f32>,          // (rows, hidden)
    normed: Vec<f32>,     // (rows, hidden)
    q: Vec<f32>,          // (rows, q_dim)
    k: Vec<f32>,          // (rows, kv_dim)
    v: Vec<f32>,          // (rows, kv_dim)
    attention: Vec<f32>,  // (rows, q_dim)
    projected: Vec<f32>,  // (rows, hidden)
    gate: Vec<f32>,       // (rows, intermediate)
    up: Vec<f32>,         // (rows, intermediate)
    logits: Vec<f32>,     // (rows, vocab)
    rope_table: Vec<f32>, // (rope_dim)
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

fn matmul(
    pool: &rayon::ThreadPool,
    matrix: &Matrix,
    x: &[f32],
    rows: usize,
    out: &mut [f32],
    what: &str,
) -> Result<()> {
    let view: MatrixRef<'_> = matrix.view().map_err(|e| kernel_error(what, e))?;
    kernels::matmul(pool, &view, x, rows, out).map_err(|e| kernel_error(what, e))
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

    fn run(&mut self, tokens: &[u32], start_pos: usize, last_only: bool) -> Result<()> {
        if tokens.is_empty() {
            return Err(ModelError::EmptyInput);
        }
        self.cache.check_append(start_pos, tokens.len())?;
        let model = self.model.clone();
        let c = &model.config;
        for &t in tokens {
            if t as usize >= c.vocab_size {
                return Err(ModelError::UnknownToken {
                    id: t,
                    vocab_size: c.vocab_size,
                });
            }
        }
        self.cache.truncate(start_pos);
        let rows = tokens.len();
        let pool = self.pool.clone();
        let s = &mut self.scratch;
        let w = &model.weights;

        let x = sized(&mut s.x, rows * c.hidden_size);
        let embedding = w
            .token_embedding
            .view()
            .map_err(|e| kernel_error("token embedding", e))?;
        for (row, &t) in x.chunks_exact_mut(c.hidden_size).zip(tokens) {
            kernels::dequantize_row(&embedding, t as usize, row)
                .map_err(|e| kernel_error("token embedding", e))?;
        }
        sized(&mut s.normed, rows * c.hidden_size);
        sized(&mut s.q, rows * c.q_dim());
        sized(&mut s.k, rows * c.kv_dim());
        sized(&mut s.v, rows * c.kv_dim());
        sized(&mut s.attention, rows * c.q_dim());
        sized(&mut s.projected, rows * c.hidden_size);
        sized(&mut s.gate, rows * c.intermediate_size);
        sized(&mut s.up, rows * c.intermediate_size);

        for (index, layer) in w.layers.iter().enumerate() {
            for (out, x) in s
                .normed
                .chunks_exact_mut(c.hidden_size)
                .zip(s.x.chunks_exact(c.hidden_size))
            {
                ops::rms_norm(x, &layer.attention_norm, c.rms_norm_eps, out);
            }
            matmul(&pool, &layer.q, &s.normed, rows, &mut s.q, "attn_q")?;
            matmul(&pool, &layer.k, &s.normed, rows, &mut s.k, "attn_k")?;
            matmul(&pool, &layer.v, &s.normed, rows, &mut s.v, "attn_v")?;
            for row in 0..rows {
                let q = &mut s.q[row * c.q_dim()..(row + 1) * c.q_dim()];
                let k = &mut s.k[row * c.kv_dim()..(row + 1) * c.kv_dim()];
                let v = &mut s.v[row * c.kv_dim()..(row + 1) * c.kv_dim()];
                if let Some(b) = &layer.q_bias {
                    ops::add_bias(q, b);
                }
                if let Some(b) = &layer.k_bias {
                    ops::add_bias(k, b);
                }
                if let Some(b) = &layer.v_bias {
                    ops::add_bias(v, b);
                }
                model.rope.table_for(start_pos + row, &mut s.rope_table);
                model.rope.apply(q, &s.rope_table);
                model.rope.apply(k, &s.rope_table);
                self.cache.store(index, start_pos + row, k, v);
            }
            attention(
                &pool,
                &self.cache,
                c,
                index,
                start_pos,
                rows,
                &s.q,
                &mut s.attention,
            );
            matmul(
                &pool,
                &layer.attention_output,
                &s.attention,
                rows,
                &mut s.projected,
                "attn_output",
            )?;
            ops::add_in_place(&mut s.x, &s.projected);
            for (out, x) in s
                .normed
                .chunks_exact_mut(c.hidden_size)
                .zip(s.x.chunks_exact(c.hidden_size))
            {
                ops::rms_norm(x, &layer.ffn_norm, c.rms_norm_eps, out);
            }
            matmul(&pool, &layer.gate, &s.normed, rows, &mut s.gate, "ffn_gate")?;
            matmul(&pool, &layer.up, &s.normed, rows, &mut s.up, "ffn_up")?;
            ops::silu_mul(&mut s.gate, &s.up);
            matmul(
                &pool,
                &layer.down,
                &s.gate,
                rows,
                &mut s.projected,
                "ffn_down",
            )?;
            ops::add_in_place(&mut s.x, &s.projected);
        }
        self.cache.set_len(start_pos + rows);

        let head_rows = if last_only { 1 } else { rows };
        let first = rows - head_rows;
        for (out, x) in s
            .normed
            .chunks_exact_mut(c.hidden_size)
            .zip(s.x.chunks_exact(c.hidden_size))
            .skip(first)
        {
            ops::rms_norm(x, &w.output_norm, c.rms_norm_eps, out);
        }
        let logits = sized(&mut s.logits, head_rows * c.vocab_size);
        matmul(
            &pool,
            w.output_head(),
            &s.normed[first * c.hidden_size..rows * c.hidden_size],
            head_rows,
            logits,
            "output",
        )?;
        Ok(())
    }
}

/// Causal attention of `rows` new positions over the cache. Each (row, kv head) is one task that
/// serves every query head of its group, so each cached key and value is read once per group.
#[allow(clippy::too_many_arguments)]
fn attention(
    pool: &rayon::ThreadPool,
    cache: &KvCache,
    c: &Config,
    layer: usize,
    start_pos: usize,
    rows: usize,
    q: &[f32],
    out: &mut [f32],
) {
    let group_width = c.head_count / c.kv_head_count * c.head_dim;
    let task = |(index, out): (usize, &mut [f32])| {
        let (row, kv_head) = (index / c.kv_head_count, index % c.kv_head_count);
        let count = start_pos + row + 1;
        let queries = &q[index * group_width..(index + 1) * group_width];
        SCORES.with(|scores| {
            ops::attend_group(
                queries,
                cache.head_keys(layer, kv_head, count),
                cache.head_values(layer, kv_head, count),
                count,
                &mut scores.borrow_mut(),
                out,
            )
        });
    };
    let out = &mut out[..rows * c.q_dim()];
    if pool.current_num_threads() <= 1 {
        out.chunks_exact_mut(group_width).enumerate().for_each(task);
    } else {
        pool.install(|| {
            out.par_chunks_exact_mut(group_width)
                .enumerate()
                .for_each(task)
        });
    }
}

thread_local! {
    /// Attention scores of the task running on this thread: (group, positions).
    static SCORES: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}
